"""A checkpoint's model facts, read back as one typed record (train/checkpoint_meta.py)."""

import pytest

from frugaldiff.errors import CheckpointError
from frugaldiff.train.checkpoint_meta import CheckpointMeta


def test_a_checkpoint_without_the_keys_reads_as_a_plain_model() -> None:
    meta = CheckpointMeta.from_payload({"format": 1, "iteration": 10, "ema": {}})
    assert meta == CheckpointMeta()
    assert not meta.distilled
    assert meta.chain_weights == "ema"


def test_the_record_round_trips_through_a_payload() -> None:
    halving = CheckpointMeta(guidance_w_max=4.0, student_steps=2, halving=True, masking="none")
    payload = {"iteration": 30, **halving.to_payload()}
    assert CheckpointMeta.from_payload(payload) == halving
    assert halving.w_conditioned
    assert halving.chain_weights == "model"  # PD trains the raw weights
    assert payload["guidance_w_max"] == 4.0  # the keys older readers know


def test_a_direct_model_with_a_w_input_is_refused() -> None:
    with pytest.raises(CheckpointError, match="direct chain's model has no w input"):
        CheckpointMeta.from_payload({"direct": True, "guidance_w_max": 4.0, "student_steps": 4})
