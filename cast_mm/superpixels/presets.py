"""The superpixel budgets and SEEDS settings of the official CAST recipes.

=============  ==================  ==============  ==========  ==========================
preset         budget              histogram_bins  iterations  used by
=============  ==================  ==============  ==========  ==========================
``'seg'``      ``H * W / 16**2``   5               15          Segmenter / SPML fine-tuning
``'deit'``     196                 5               15          supervised ImageNet (DeiT)
``'moco'``     196                 15              20          MoCo-v3, linear probing
=============  ==================  ==============  ==========  ==========================
"""
from typing import Dict

#: The official segmentation budget: one superpixel per 16 x 16 pixels.
SEG_PIXELS_PER_SUPERPIXEL = 16**2

#: SEEDS settings by preset name (the table above).
PRESETS: Dict[str, Dict] = dict(
    seg=dict(num_superpixels=None, pixels_per_superpixel=SEG_PIXELS_PER_SUPERPIXEL,
             histogram_bins=5, num_iterations=15),
    deit=dict(num_superpixels=196, pixels_per_superpixel=None, histogram_bins=5,
              num_iterations=15),
    moco=dict(num_superpixels=196, pixels_per_superpixel=None, histogram_bins=15,
              num_iterations=20),
)
