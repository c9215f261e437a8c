from .determinism import prepare_deterministic_environment
from .distributed import close_distributed, setup_cpu_distributed
from .host_values import host_values
from .images import (ImageFileError, image_file_notes, three_channel_image, uint8_image,
                     uint8_three_channel_image)
from .tool_config import load_tool_config, read_config

__all__ = [
    'ImageFileError', 'close_distributed', 'host_values', 'image_file_notes', 'load_tool_config',
    'prepare_deterministic_environment', 'read_config', 'setup_cpu_distributed',
    'three_channel_image', 'uint8_image', 'uint8_three_channel_image'
]
