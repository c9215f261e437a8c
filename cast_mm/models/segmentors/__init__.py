from .superpixel_encoder_decoder import SuperpixelEncoderDecoder, window_starts

__all__ = ['SuperpixelEncoderDecoder', 'window_starts']
