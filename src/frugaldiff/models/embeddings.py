"""Conditioning embeddings: diffusion time, class label (with a null row) and guidance weight.

Time follows DDPM / progressive distillation (Ho et al. 2020; Salimans & Ho 2022, arXiv
2202.00512): sinusoidal features of 1000·t → Dense → swish → Dense. The guidance weight w of
Meng et al. 2023 (arXiv 2210.03142, Sec. 4) enters "the same way as t" (Fourier features); our
reading is `papers/guided_distillation.md` (e). MicroDiT's time embedder (arXiv 2407.15811,
official code) uses [cos, sin] features and GELU(tanh) instead. No forward draws random numbers.
"""

import math

import torch
from torch import Tensor, nn

# The sinusoid sees 1000·t (t in [0, 1]), as DDPM and PD feed their time input. EDM runs pass
# c_noise / 1000 instead, so it sees c_noise unscaled (diffusion/preconditioning.py).
TIME_SCALE = 1000.0


def sinusoidal_embedding(x: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features of a batch of scalars, DDPM's `get_timestep_embedding`.

    x: (B,) float, already scaled (e.g. 1000·t). Returns (B, dim) float32: `dim // 2` sines,
    then as many cosines, at frequencies max_period^(-k / (dim // 2 - 1)), k = 0 … dim // 2 - 1
    (so the highest is 1 rad per unit and the lowest 1 / max_period); odd `dim` pads one zero.
    Computed in float32 whatever the input dtype or autocast, since 1000·t needs the mantissa.
    """
    if x.ndim != 1:
        raise ValueError(f"sinusoidal_embedding: expected x of shape (B,), got {tuple(x.shape)}")
    half = dim // 2
    if half < 2:
        raise ValueError(f"sinusoidal_embedding: dim must be at least 4, got {dim}")
    exponent = torch.arange(half, device=x.device, dtype=torch.float32) / (half - 1)  # (F/2,)
    freqs = torch.exp(-math.log(max_period) * exponent)  # (F/2,)
    args = x.float()[:, None] * freqs[None, :]  # (B, F/2)
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)  # (B, 2·(F/2))
    if dim % 2:
        emb = nn.functional.pad(emb, (0, 1))  # (B, F)
    return emb


class TimestepEmbedder(nn.Module):
    """t in [0, 1] → sinusoid(1000·t, frequency_dim) → Linear → SiLU → Linear → (B, dim)."""

    def __init__(self, dim: int, *, frequency_dim: int) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.linear_in = nn.Linear(frequency_dim, dim)
        self.linear_out = nn.Linear(dim, dim)

    def features(self, t: Tensor) -> Tensor:
        """t: (B,) float in [0, 1] → (B, frequency_dim) float32 sinusoidal features."""
        return sinusoidal_embedding(TIME_SCALE * t.float(), self.frequency_dim)

    def forward(self, t: Tensor) -> Tensor:
        """t: (B,) float in [0, 1] (1 = noisiest) → (B, dim)."""
        freqs = self.features(t).to(self.linear_in.weight.dtype)  # (B, F)
        return self.linear_out(nn.functional.silu(self.linear_in(freqs)))  # (B, D)


def cos_sin_embedding(x: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """DiT's / MicroDiT's `timestep_embedding`: (B,) → (B, dim) float32, [cos, sin].

    `dim // 2` cosines, then as many sines, at frequencies max_period^(−k/(dim//2)),
    k = 0 … dim//2 − 1 (the lowest is above 1/max_period, unlike `sinusoidal_embedding`); odd
    `dim` pads one zero. Computed in float32, as the official code.
    """
    if x.ndim != 1:
        raise ValueError(f"cos_sin_embedding: expected x of shape (B,), got {tuple(x.shape)}")
    half = dim // 2
    exponent = torch.arange(half, device=x.device, dtype=torch.float32) / half  # (F/2,)
    freqs = torch.exp(-math.log(max_period) * exponent)  # (F/2,)
    args = x.float()[:, None] * freqs[None, :]  # (B, F/2)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # (B, 2·(F/2))
    if dim % 2:
        emb = nn.functional.pad(emb, (0, 1))  # (B, F)
    return emb


class MicroDiTTimestepEmbedder(nn.Module):
    """t in [0, 1] → [cos, sin](1000·t, F) → Linear → GELU(tanh) → Linear → (B, dim).

    Official MicroDiT `TimestepEmbedder` (F = 512 features, 256 frequencies) fed c_noise: EDM
    runs pass c_noise/1000 as t (diffusion/preconditioning.py), so it sees c_noise unscaled.
    Official init N(0, 0.02²) on both weights (its 100σ-truncated twin: see
    `microdit_block.trunc_normal`), biases 0.
    """

    def __init__(self, dim: int, *, frequency_dim: int) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.linear_in = nn.Linear(frequency_dim, dim)
        self.linear_out = nn.Linear(dim, dim)
        for layer in (self.linear_in, self.linear_out):
            nn.init.trunc_normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)

    def features(self, t: Tensor) -> Tensor:
        """t: (B,) float in [0, 1] → (B, frequency_dim) float32 [cos, sin] features."""
        return cos_sin_embedding(TIME_SCALE * t.float(), self.frequency_dim)

    def forward(self, t: Tensor) -> Tensor:
        """t: (B,) float in [0, 1] (1 = noisiest) → (B, dim)."""
        freqs = self.features(t).to(self.linear_in.weight.dtype)  # (B, F)
        hidden = nn.functional.gelu(self.linear_in(freqs), approximate="tanh")  # (B, D)
        return self.linear_out(hidden)  # (B, D)


class LabelEmbedder(nn.Module):
    """Class label → (B, dim); row `num_classes` is the null label of classifier-free guidance.

    An embedding table equals PD's one-hot → Dense without its bias (the time MLP has one).
    Label dropout belongs to the training objective, which passes `null_label` itself.
    """

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"LabelEmbedder: num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.weight = nn.Parameter(torch.empty(num_classes + 1, dim))  # (K + 1, D)
        # PD's Dense on a one-hot input has variance 1/fan_in, fan_in = classes; PyTorch's
        # N(0, 1) default would swamp the time embedding at initialisation. Deviation: uniform,
        # not PD's (truncated) normal: the same variance, and a normal_ on the meta device
        # (used to count parameters) costs a torch._dynamo import.
        bound = math.sqrt(3.0 / num_classes)
        nn.init.uniform_(self.weight, -bound, bound)

    @property
    def null_label(self) -> int:
        """The index of the null (unconditional) label, equal to `num_classes`."""
        return self.num_classes

    def forward(self, labels: Tensor) -> Tensor:
        """labels: (B,) long in [0, num_classes] → (B, dim)."""
        return nn.functional.embedding(labels, self.weight)  # (B, D)


class GuidanceWeightEmbedder(nn.Module):
    """Guidance weight w → (B, dim), added to the time + class embedding (Meng et al. 2023).

    Features are the time sinusoid at 1000·w/w_max, i.e. `TimestepEmbedder.features(w / w_max)`:
    same width and frequencies, with w in [0, w_max] spanning what t spans in [0, 1]. The last
    Linear is zero-initialised, so a freshly attached embedder adds exactly 0 and the stage-1
    student equals its conditional teacher at every w (docs/guided_distillation.md (e), item 4).
    """

    def __init__(self, dim: int, w_max: float, *, frequency_dim: int) -> None:
        super().__init__()
        if not w_max > 0:
            raise ValueError(f"GuidanceWeightEmbedder: w_max must be > 0, got {w_max}")
        self.w_max = float(w_max)
        self.frequency_dim = frequency_dim
        self.linear_in = nn.Linear(frequency_dim, dim)
        self.linear_out = nn.Linear(dim, dim)
        # Zero output layer: the student starts as its teacher for every w (see docstring).
        nn.init.zeros_(self.linear_out.weight)
        nn.init.zeros_(self.linear_out.bias)

    def features(self, w: Tensor) -> Tensor:
        """w: (B,) float → (B, frequency_dim) float32 sinusoidal features of 1000·w/w_max."""
        return sinusoidal_embedding(TIME_SCALE * w.float() / self.w_max, self.frequency_dim)

    def forward(self, w: Tensor) -> Tensor:
        """w: (B,) float, nominally in [0, w_max] (beyond is extrapolation) → (B, dim)."""
        freqs = self.features(w).to(self.linear_in.weight.dtype)  # (B, F)
        return self.linear_out(nn.functional.silu(self.linear_in(freqs)))  # (B, D)
