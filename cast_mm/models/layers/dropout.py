"""``nn.Dropout`` whose CPU masks are hashed (:mod:`cast_mm.ops.hashed_dropout`)."""
from torch import Tensor, nn

from cast_mm.ops.hashed_dropout import hashed_dropout
from ..fast_paths import FAST_PATHS


class Dropout(nn.Dropout):
    """Dropout that, on CPU tensors, draws its mask by hashing instead of ``bernoulli_``.

    Same distribution as ``nn.Dropout`` (each element kept with probability ``1 - p``, scaled by
    ``1 / (1 - p)``) and the same module (no parameters, ``p``, ``train()`` / ``eval()``); the
    mask is drawn in parallel and recomputed in the backward pass instead of being saved. On
    other devices, or with ``hashed=False``, it is ``nn.Dropout``.

    Args:
        p (float): probability of dropping an element. Defaults to 0.5.
        hashed (bool): hashed masks on CPU. Defaults to True (the fast path).
    """

    def __init__(self, p: float = 0.5, hashed: bool = FAST_PATHS['hashed_dropout']) -> None:
        super().__init__(p)
        if not isinstance(hashed, bool):
            raise TypeError(f'hashed_dropout must be True or False, got {hashed!r}')
        self.hashed = hashed

    def forward(self, x: Tensor) -> Tensor:
        if self.hashed and x.device.type == 'cpu':
            return hashed_dropout(x, self.p, self.training)
        return super().forward(x)

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, hashed={self.hashed}'
