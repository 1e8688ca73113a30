"""What the network outputs (ε, x or v) and the affine maps between them.

With z = α x + σ ε and v ≡ α ε − σ x (Salimans & Ho, arXiv 2202.00512, eq. 4 ff.;
docs/guided_distillation.md b): x̂ from ε̂ is (z − σ ε̂)/α, from v̂ is α z − σ v̂; back again
ε̂ = (z − α x̂)/σ and v̂ = α ε̂ − σ x̂. Solvers and guidance work on x̂ only; losses compare
outputs in output space against `target_for`.

alpha and sigma are given broadcastable to z, e.g. (B, 1, 1, 1) from `broadcast_like`.
"""

import torch
from torch import Tensor

from frugaldiff.errors import ConfigError

PARAMETERIZATIONS = ("eps", "x", "v")


def check_parameterization(param: str) -> str:
    """Return `param` if it is a known output type, else raise ConfigError listing them."""
    if param not in PARAMETERIZATIONS:
        raise ConfigError(f"model.param={param!r}; expected one of {list(PARAMETERIZATIONS)}")
    return param


def broadcast_like(vec: Tensor, ref: Tensor) -> Tensor:
    """View a per-sample vector (B,) as (B, 1, ..., 1) with ref's number of dims."""
    if vec.ndim != 1 or vec.shape[0] != ref.shape[0]:
        raise ValueError(
            f"expected a ({ref.shape[0]},) vector for a batch shaped {tuple(ref.shape)}; "
            f"found shape {tuple(vec.shape)}"
        )
    return vec.reshape(vec.shape[0], *([1] * (ref.ndim - 1)))  # (B, 1, 1, 1)


def x0_from(output: Tensor, z: Tensor, alpha: Tensor, sigma: Tensor, param: str) -> Tensor:
    """x̂ from a network output of type `param`; all tensors broadcast to z's shape.

    eps blows up as α → 0 (t → 1): one reason PD and Meng et al. prefer v or x outputs.
    """
    check_parameterization(param)
    if param == "eps":
        return (z - sigma * output) / alpha  # (B, C, H, W)
    if param == "x":
        return output
    return alpha * z - sigma * output  # v: α z − σ v̂


def eps_from_x0(x0: Tensor, z: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """ε̂ = (z − α x̂)/σ: the noise that x̂ implies at this z."""
    return (z - alpha * x0) / sigma  # (B, C, H, W)


def v_from_x0(x0: Tensor, z: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """v̂ = α ε̂ − σ x̂, with ε̂ implied by x̂ at this z."""
    return alpha * eps_from_x0(x0, z, alpha, sigma) - sigma * x0  # (B, C, H, W)


def output_from_x0(param: str, x0: Tensor, z: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """The output of type `param` that would give x̂ at z (inverse of `x0_from`)."""
    check_parameterization(param)
    if param == "eps":
        return eps_from_x0(x0, z, alpha, sigma)
    if param == "x":
        return x0
    return v_from_x0(x0, z, alpha, sigma)


def target_for(param: str, x0: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """The regression target in output space, given the clean x and the noise ε that made z.

    Regressing in output space with loss weight 1 equals weighting the x-MSE by 1, SNR or
    1 + SNR (x, eps, v), see weighting.py.
    """
    check_parameterization(param)
    if param == "eps":
        return eps
    if param == "x":
        return x0
    return alpha * eps - sigma * x0  # v ≡ α ε − σ x


def x_mse_factor(param: str, logsnr: Tensor) -> Tensor:
    """c(λ) with output-space MSE = c · x-space MSE: 1 (x), SNR (eps), 1 + SNR (v); shape of λ.

    From ε̂ − ε = −(α/σ)(x̂ − x) and v̂ − v = −(x̂ − x)/σ (docs/guided_distillation.md b).
    """
    check_parameterization(param)
    if param == "x":
        return torch.ones_like(logsnr)
    if param == "eps":
        return torch.exp(logsnr)
    return 1.0 + torch.exp(logsnr)
