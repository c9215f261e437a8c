from .superpixel_encoder_decoder import (SuperpixelEncoderDecoder, SuperpixelInputs, check_test_cfg,
                                         window_fit_size, window_starts)

__all__ = ['SuperpixelEncoderDecoder', 'SuperpixelInputs', 'check_test_cfg', 'window_fit_size',
           'window_starts']
