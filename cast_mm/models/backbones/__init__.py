from .cast import CAST, CASTFeatures, check_superpixels, resize_labels

__all__ = ['CAST', 'CASTFeatures', 'check_superpixels', 'resize_labels']
