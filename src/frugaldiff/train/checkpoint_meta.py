"""What a checkpoint says about its model, beside the weights and the resolved run config.

Distillation chains hand checkpoints on (teacher -> stage 1 -> halvings; a direct run's start)
and the sampler must know what it loads: a plain or CFG network, a w-conditioned student, the
student of a halving (whose raw weights are the model) or a direct chain's CFG student. These
facts are written by the stage that trained the model (train/stages.py) and read back here
once, as one typed record, instead of being probed key by key wherever a checkpoint is opened.
Checkpoints from before a key existed read as its default.
"""

from dataclasses import asdict, dataclass
from typing import Any

from frugaldiff.errors import CheckpointError

KEYS = ("guidance_w_max", "student_steps", "halving", "direct", "masking", "latent")


@dataclass(frozen=True)
class CheckpointMeta:
    """The model facts of one checkpoint (docs/guided_distillation.md (e), (f), (l))."""

    guidance_w_max: float | None = None  # w-conditioned (stage 1, a halving): the w range's top
    student_steps: int | None = None  # a distillation chain's model: the steps it samples with
    halving: bool = False  # written by a halving: the raw weights are the student
    direct: bool = False  # a direct chain's CFG model (Meng's baseline, no w input)
    masking: str | None = None  # unmasked | naive | deferred | none (models/registry.py)
    latent: dict[str, Any] | None = None  # the VAE whose latents it was trained on

    def __post_init__(self) -> None:
        if self.direct and self.guidance_w_max is not None:
            raise CheckpointError(
                "checkpoint metadata: a direct chain's model has no w input, but "
                f"guidance_w_max={self.guidance_w_max}"
            )

    @property
    def w_conditioned(self) -> bool:
        """A stage-1 or halving student of the guided chain: called with w, 1 NFE per step."""
        return self.guidance_w_max is not None

    @property
    def distilled(self) -> bool:
        """Any model of a distillation chain (it cannot start another chain)."""
        return self.w_conditioned or self.student_steps is not None

    @property
    def chain_weights(self) -> str:
        """The state dict a halving starts from: "model" after a halving (PD trains raw weights),
        else "ema" (stage 1's EMA, or a direct start's, which is the CFG teacher's)."""
        return "model" if self.halving else "ema"

    def to_payload(self) -> dict[str, Any]:
        """The keys a checkpoint stores (the same names as ever, so older readers still work)."""
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "CheckpointMeta":
        """The record of a loaded checkpoint (train/state.py load_checkpoint)."""
        steps = payload.get("student_steps")
        w_max = payload.get("guidance_w_max")
        return cls(
            guidance_w_max=None if w_max is None else float(w_max),
            student_steps=None if steps is None else int(steps),
            halving=bool(payload.get("halving")),
            direct=bool(payload.get("direct")),
            masking=payload.get("masking"),
            latent=payload.get("latent"),
        )
