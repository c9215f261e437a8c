"""The superpixel-source protocol: whatever computes the superpixel maps CAST runs on.

A source computes the superpixels of one image (a pipeline transform asks it per sample) or of
a batch (a segmentor asks it for sliding windows, or for every batch when superpixels are
computed in the model). Sources are registered in ``cast_mm.registry.SUPERPIXEL_SOURCES``
under the names the configs use, ``cast_mm.SEEDSSuperpixels`` and ``cast_mm.SLICSuperpixels``
(:class:`~cast_mm.superpixels.SEEDSSource`, :class:`~cast_mm.superpixels.SLICSource`); the
pipeline steps of the same names (``cast_mm.datasets.transforms``) are the same sources as
data transforms. Any of them can be named wherever the configs take one (a pipeline step,
``window_superpixels``, ``device_superpixels``).
"""
import inspect
from typing import Dict, Optional

import numpy as np
import torch
from mmengine.registry import Registry
from torch import Tensor

from cast_mm.registry import SUPERPIXEL_SOURCES

#: Colour orders a source accepts.
CHANNEL_ORDERS = ('bgr', 'rgb')


class SuperpixelSource:
    """Base of the superpixel sources.

    Subclasses set the budget attributes and implement :meth:`compute`; a source that runs
    on tensors (on the images' device) also overrides :meth:`compute_batch`.

    Attributes:
        num_superpixels (int | None): fixed budget per image.
        pixels_per_superpixel (int | None): budget ``H * W // pixels_per_superpixel`` when
            ``num_superpixels`` is None.
        channel_order (str): colour order of the images the source is given, ``'bgr'`` or
            ``'rgb'``.
    """

    num_superpixels: Optional[int] = None
    pixels_per_superpixel: Optional[int] = None
    channel_order: str = 'bgr'

    def set_budget(self, num_superpixels: Optional[int],
                   pixels_per_superpixel: Optional[int]) -> None:
        """Check and set the budget (a fixed count, or one superpixel per so many pixels)."""
        for name, value in (('num_superpixels', num_superpixels),
                            ('pixels_per_superpixel', pixels_per_superpixel)):
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
                raise ValueError(f'{type(self).__name__}: {name} must be a positive integer, '
                                 f'got {value!r}')
        if num_superpixels is None and pixels_per_superpixel is None:
            raise ValueError(f'{type(self).__name__} needs num_superpixels or '
                             'pixels_per_superpixel')
        self.num_superpixels = num_superpixels
        self.pixels_per_superpixel = pixels_per_superpixel

    def set_channel_order(self, channel_order: str) -> None:
        """Check and set the colour order of the images given to the source."""
        if channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"{type(self).__name__}: channel_order must be 'bgr' or 'rgb', "
                             f'got {channel_order!r}')
        self.channel_order = channel_order

    def budget(self, height: int, width: int) -> int:
        """Number of superpixels asked for an image of this size."""
        if self.num_superpixels is not None:
            return int(self.num_superpixels)
        return max(1, (height * width) // int(self.pixels_per_superpixel))

    def budget_repr(self) -> str:
        """The budget as ``__repr__`` shows it."""
        if self.num_superpixels is not None:
            return f'num_superpixels={self.num_superpixels}'
        return f'pixels_per_superpixel={self.pixels_per_superpixel}'

    def compute(self, image: np.ndarray) -> np.ndarray:
        """Superpixels ``(H, W)`` int64 of one ``H x W x 3`` uint8 image."""
        raise NotImplementedError

    def compute_batch(self, images: Tensor) -> Tensor:
        """Superpixels ``(B, H, W)`` int64 of ``(B, 3, H, W)`` uint8 images.

        The default runs :meth:`compute` on every image on the CPU; the maps are returned on
        the images' device.
        """
        check_images(images)
        arrays = images.permute(0, 2, 3, 1).cpu().numpy()
        maps = [torch.from_numpy(self.compute(np.ascontiguousarray(a))) for a in arrays]
        return torch.stack(maps).long().to(images.device)


def check_images(images: Tensor) -> None:
    """Raise ``ValueError`` unless ``images`` is a ``(B, 3, H, W)`` uint8 batch."""
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f'superpixel sources take (B, 3, H, W) uint8 images, got {shape}')
    if images.dtype != torch.uint8:
        raise ValueError(f'superpixel sources take uint8 images, got {images.dtype}')


def build_superpixel_source(cfg: Dict,
                            channel_order: Optional[str] = None,
                            registry: Registry = SUPERPIXEL_SOURCES) -> SuperpixelSource:
    """Build a :class:`SuperpixelSource` from a config, refusing unknown arguments.

    Args:
        cfg (dict): ``type`` (a registered source, e.g. ``'cast_mm.SEEDSSuperpixels'``, or a
            :class:`SuperpixelSource` class) and the source's arguments.
        channel_order (str, optional): the colour order of the images the source will be
            given; overrides the config's.
        registry (Registry): where the sources are registered. Defaults to
            ``cast_mm.registry.SUPERPIXEL_SOURCES``.
    """
    cfg = dict(cfg)
    if 'type' not in cfg:
        raise ValueError(f'a superpixel source config needs a type, got {cfg}')
    cls = registry.get(cfg['type']) if isinstance(cfg['type'], str) else cfg['type']
    if not (isinstance(cls, type) and issubclass(cls, SuperpixelSource)):
        raise ValueError(f"{cfg['type']!r} is not a superpixel source; use "
                         "'cast_mm.SEEDSSuperpixels' or 'cast_mm.SLICSuperpixels' (or a "
                         'SuperpixelSource registered in cast_mm.registry.SUPERPIXEL_SOURCES)')
    params = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(cfg) - {'type'} - set(params))
    if unknown:
        known = sorted(name for name in params if name != 'self')
        name = cfg['type'] if isinstance(cfg['type'], str) else cls.__name__
        raise ValueError(f'{name} got unknown keys {unknown}; it takes {known}')
    if channel_order is not None:
        cfg['channel_order'] = channel_order
    cfg.pop('type')
    return cls(**cfg)
