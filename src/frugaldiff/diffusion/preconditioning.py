"""What the network sees of the VP core: data ÷ σ_d and its time input (EDM, docs/microdit.md (g)).

EDM (Karras et al., arXiv 2206.00364, Table 1) is the VP core read with x̃ = x/σ_d and log-SNR
λ = 2 ln(σ_d/σ): c_in·x_σ = α x̃ + σ_t ε is the VP state, F's target (x − c_skip·x_σ)/c_out is
−v, w(σ)‖D̂ − x‖² = ‖F + v‖² (the v-MSE, `snr_plus1` in weighting.py's x-space convention) and
D̂ = σ_d·x̂. So an EDM run is a config (configs/method/edm.yaml): v output, the `edm_lognormal`
timestep sampler, `time_input: c_noise` and `sigma_data`. The defaults (σ_d = 1, time input t)
are the plain VP core, unchanged.
"""

import math

from torch import Tensor

from frugaldiff.config import DiffusionConfig
from frugaldiff.diffusion.schedule import NoiseSchedule
from frugaldiff.errors import ConfigError
from frugaldiff.models.embeddings import TIME_SCALE

TIME_INPUTS = ("t", "c_noise")


class InputScaling:
    """Maps the core's data and time to the network's units and back; draws nothing.

    `to_model_units` divides the data (B, C, H, W) in [-1, 1] by σ_d before noising (training);
    solvers then run in those units, so sampling clips x̂ at ±`clip_limit` = ±1/σ_d (x in
    [-1, 1]) and multiplies the result back with `to_data_units` before decoding or uint8.
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        sigma_data: float = DiffusionConfig.sigma_data,
        time_input: str = DiffusionConfig.time_input,
    ) -> None:
        if not (math.isfinite(sigma_data) and sigma_data > 0):
            raise ConfigError(f"diffusion.sigma_data={sigma_data}; expected a finite value > 0")
        if time_input not in TIME_INPUTS:
            raise ConfigError(
                f"diffusion.time_input={time_input!r}; expected one of {list(TIME_INPUTS)}"
            )
        self.schedule = schedule
        self.sigma_data = float(sigma_data)
        self.time_input = time_input

    @classmethod
    def from_config(cls, cfg: DiffusionConfig, schedule: NoiseSchedule) -> "InputScaling":
        return cls(schedule, sigma_data=cfg.sigma_data, time_input=cfg.time_input)

    @property
    def is_identity(self) -> bool:
        """True for the plain VP core (σ_d = 1, time input t)."""
        return self.sigma_data == 1.0 and self.time_input == "t"

    @property
    def clip_limit(self) -> float:
        """|x̂| bound in model units that is |x| <= 1 in data units."""
        return 1.0 / self.sigma_data

    def to_model_units(self, x: Tensor) -> Tensor:
        """x / σ_d, any shape."""
        return x if self.sigma_data == 1.0 else x / self.sigma_data

    def to_data_units(self, x: Tensor) -> Tensor:
        """σ_d · x, any shape (the inverse of `to_model_units`)."""
        return x if self.sigma_data == 1.0 else x * self.sigma_data

    def c_noise(self, t: Tensor) -> Tensor:
        """EDM's c_noise = ln σ / 4 = (ln σ_d − λ_t/2)/4 for t (B,); float32 or t's float64."""
        logsnr = self.schedule.logsnr(t)  # (B,)
        return (math.log(self.sigma_data) - 0.5 * logsnr) / 4.0  # (B,)

    def network_time(self, t: Tensor) -> Tensor:
        """The time argument the network gets for core time t (B,): t, or c_noise / TIME_SCALE.

        The embedders take sinusoids of TIME_SCALE·time (embeddings.py), so passing
        c_noise / TIME_SCALE makes them see c_noise itself, unscaled, as EDM's and MicroDiT's
        embedders do (docs/microdit.md (b) 2).
        """
        if self.time_input == "t":
            return t
        return (self.c_noise(t) / TIME_SCALE).to(t.dtype)  # (B,)
