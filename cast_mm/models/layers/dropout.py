"""``nn.Dropout`` whose masks are hashed (:mod:`cast_mm.ops.hashed_dropout`)."""
from torch import Tensor, nn

from cast_mm.ops.hashed_dropout import hashed_dropout
from ..execution_profile import FAST


class Dropout(nn.Dropout):
    """Dropout that draws its mask by hashing (seed, element index) instead of ``bernoulli_``.

    Same distribution as ``nn.Dropout`` (each element kept with probability ``1 - p``, scaled by
    ``1 / (1 - p)``) and the same module (no parameters, ``p``, ``train()`` / ``eval()``); the
    mask is drawn in parallel and recomputed in the backward pass instead of being saved, and a
    seed gives the same mask on every device. With ``hashed=False`` it is ``nn.Dropout``.

    Args:
        p (float): probability of dropping an element. Defaults to 0.5.
        hashed (bool): hashed masks. Defaults to True (the fast path).
    """

    def __init__(self, p: float = 0.5, hashed: bool = FAST['backbone']['hashed_dropout']) -> None:
        super().__init__(p)
        if not isinstance(hashed, bool):
            raise TypeError(f'hashed_dropout must be True or False, got {hashed!r}')
        self.hashed = hashed

    def forward(self, x: Tensor) -> Tensor:
        if self.hashed:
            return hashed_dropout(x, self.p, self.training)
        return super().forward(x)

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, hashed={self.hashed}'
