"""Classifier-free guidance in Meng et al.'s convention (arXiv 2210.03142, eq. 1 form).

x̂^w = (1 + w)·x̂(z, c) − w·x̂(z, ∅) over all channels, so w = 0 is the plain conditional model
(docs/guided_distillation.md c). The map is affine with weights summing to 1, so guiding x̂, ε̂ or v̂
gives the same result; that breaks once x̂ is clipped, so clipping (denoisers.clip_denoiser) wraps
the guided denoiser, never its inputs. diffusers/LDM write u + s(c − u): s = 1 + w. We store w
and convert only at interfaces. A learned-variance model's frac is taken from the conditional
rows, unguided (DiT's forward_with_cfg convention); only x̂ (its ε channels) is guided.
"""

from collections.abc import Callable

import torch
from torch import Tensor

from frugaldiff.diffusion.parameterization import broadcast_like

# (z (B, C, H, W), t (B,), labels (B,) int64) -> x̂ (B, C, H, W)
ConditionalX0 = Callable[[Tensor, Tensor, Tensor], Tensor]


def guide(cond: Tensor, uncond: Tensor, w: float | Tensor) -> Tensor:
    """(1 + w)·cond − w·uncond, computed as cond + w·(cond − uncond); w a float or (B,).

    The second form is the same number and makes w = 0 and cond ≡ uncond exact: w = 0 returns
    cond itself, bit for bit, whatever uncond holds.
    """
    if isinstance(w, Tensor):
        return cond + broadcast_like(w.to(cond.dtype), cond) * (cond - uncond)  # (B, C, H, W)
    if w == 0:
        return cond
    return cond + w * (cond - uncond)  # (B, C, H, W)


def w_to_cfg_scale(w: float) -> float:
    """Meng's w → the diffusers/LDM guidance scale s = 1 + w."""
    return 1.0 + w


def cfg_scale_to_w(scale: float) -> float:
    """The diffusers/LDM guidance scale s → Meng's w = s − 1."""
    return scale - 1.0


class GuidedDenoiser:
    """A solver denoiser D(z, t) → x̂^w for fixed labels (B,) and a fixed w.

    For w ≠ 0 it makes ONE network call on 2B rows, conditional rows first, then the same z with
    the null label, and combines them with `guide`. For w = 0 the unconditional half would get
    weight 0, so it makes one B-row call and returns the conditional x̂ unchanged.

    NFE: 2 network passes per image for w ≠ 0, 1 for w = 0, measured by the rows the network
    evaluates (sampling/networks.py RowCounter). Meng et al. count the CFG teacher at 2 NFE per
    step for every w ("N×2", docs/guided_distillation.md c, h); a report that compares with the
    paper at w = 0 must say whether it shows that nominal 2·steps or this measured 1·steps.
    """

    def __init__(
        self, predict_x0: ConditionalX0, labels: Tensor, null_label: int, w: float
    ) -> None:
        if labels.ndim != 1:
            raise ValueError(f"labels: expected shape (B,); found {tuple(labels.shape)}")
        self.predict_x0 = predict_x0
        self.labels = labels  # (B,)
        self.null_label = int(null_label)
        self.w = float(w)

    def _rows(self, z: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The network's rows: (z, t, labels), and for w ≠ 0 the null-label copies after them."""
        batch = z.shape[0]
        if batch != self.labels.shape[0]:
            raise ValueError(f"z has {batch} rows but labels has {self.labels.shape[0]}")
        if self.w == 0:
            return z, t, self.labels
        null = torch.full_like(self.labels, self.null_label)  # (B,)
        # (2B, C, H, W), (2B,), (2B,): conditional rows first
        return torch.cat([z, z]), torch.cat([t, t]), torch.cat([self.labels, null])

    def __call__(self, z: Tensor, t: Tensor) -> Tensor:
        x0 = self.predict_x0(*self._rows(z, t))  # (B or 2B, C, H, W)
        if self.w == 0:
            return x0  # (B, C, H, W)
        batch = z.shape[0]
        return guide(x0[:batch], x0[batch:], self.w)  # (B, C, H, W)

    def with_frac(self, z: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(x̂^w, frac) (B, C, H, W) each, one network call as `__call__`; frac unguided, from
        the conditional rows. Needs a predictor with `with_frac(z, t, labels) -> (x̂, frac)`
        (checked before sampling starts: sampling/learned_variance.py).
        """
        x0, frac = self.predict_x0.with_frac(*self._rows(z, t))  # type: ignore[attr-defined]
        batch = z.shape[0]
        if self.w == 0:
            return x0, frac
        return guide(x0[:batch], x0[batch:], self.w), frac[:batch]  # (B, C, H, W) each


def guided_denoiser(
    predict_x0: ConditionalX0, labels: Tensor, null_label: int, w: float
) -> GuidedDenoiser:
    """The guided denoiser for `labels` (B,) at weight w (Meng's convention, w = 0: conditional)."""
    return GuidedDenoiser(predict_x0, labels, null_label, w)
