"""Closed forms and invariants of the time, label and guidance-weight embeddings."""

import math

import pytest
import torch

from frugaldiff.models.embeddings import (
    TIME_SCALE,
    GuidanceWeightEmbedder,
    LabelEmbedder,
    TimestepEmbedder,
    sinusoidal_embedding,
)


def _frequencies(dim: int, max_period: float = 10000.0) -> torch.Tensor:
    half = dim // 2
    return torch.tensor([max_period ** (-k / (half - 1)) for k in range(half)], dtype=torch.float64)


def test_sinusoid_matches_closed_form() -> None:
    x = torch.tensor([0.0, 0.5, 17.0, 999.0], dtype=torch.float64)
    emb = sinusoidal_embedding(x, 16)
    freqs = _frequencies(16)
    expected = torch.cat([torch.sin(x[:, None] * freqs), torch.cos(x[:, None] * freqs)], dim=1)
    assert emb.shape == (4, 16)
    assert emb.dtype == torch.float32
    assert (emb.double() - expected).abs().max() < 1e-4  # float32 arguments up to 999
    # Highest frequency 1 rad per unit, lowest 1 / max_period.
    assert freqs[0] == 1.0
    assert math.isclose(freqs[-1].item(), 1e-4)


def test_sinusoid_odd_dim_pads_one_zero() -> None:
    emb = sinusoidal_embedding(torch.tensor([3.0, 4.0]), 9)
    assert emb.shape == (2, 9)
    assert torch.equal(emb[:, -1], torch.zeros(2))


def test_sinusoid_distance_depends_only_on_offset() -> None:
    # ‖e(x) − e(y)‖² = Σ_k 4 sin²(f_k (x − y) / 2): shift-invariant and Lipschitz in x − y.
    generator = torch.Generator().manual_seed(0)
    x = 1000 * torch.rand(64, generator=generator, dtype=torch.float64)
    y = 1000 * torch.rand(64, generator=generator, dtype=torch.float64)
    freqs = _frequencies(32)
    dist2 = (sinusoidal_embedding(x, 32) - sinusoidal_embedding(y, 32)).double().square().sum(1)
    expected = (4 * torch.sin(freqs[None, :] * (x - y)[:, None] / 2).square()).sum(1)
    assert (dist2 - expected).abs().max() < 1e-3
    lipschitz = freqs.square().sum().sqrt()
    assert torch.all(dist2.sqrt() <= lipschitz * (x - y).abs() + 1e-3)


def test_timestep_embedder_shapes_and_dtype_follow_weights() -> None:
    embedder = TimestepEmbedder(24, frequency_dim=8)
    t = torch.tensor([0.0, 0.3, 1.0])
    assert embedder(t).shape == (3, 24)
    assert torch.equal(embedder.features(t), sinusoidal_embedding(TIME_SCALE * t, 8))
    assert embedder.to(torch.bfloat16)(t).dtype == torch.bfloat16


def test_guidance_features_equal_time_features_at_w_over_w_max() -> None:
    w_max = 4.0
    w = torch.linspace(0, w_max, 9)
    guidance = GuidanceWeightEmbedder(32, w_max, frequency_dim=16)
    time = TimestepEmbedder(32, frequency_dim=16)
    assert (guidance.features(w) - time.features(w / w_max)).abs().max() < 1e-4


def test_guidance_features_smooth_and_distinct_over_w_range() -> None:
    guidance = GuidanceWeightEmbedder(512, 4.0, frequency_dim=128)
    grid = torch.linspace(0, 4, 401, dtype=torch.float64)  # step 0.01
    feats = guidance.features(grid).double()  # (401, 128)
    pairwise = torch.cdist(feats, feats)
    off_diagonal = pairwise[~torch.eye(len(grid), dtype=torch.bool)]
    assert off_diagonal.min() > 1.0  # every w on the grid has its own features
    near = (guidance.features(grid + 1e-3).double() - feats).norm(dim=1)  # neighbours
    far = pairwise[0, -1]  # w = 0 against w = 4
    assert near.max() < 0.1 * far


def test_fresh_guidance_embedder_adds_exactly_zero() -> None:
    guidance = GuidanceWeightEmbedder(32, 4.0, frequency_dim=16)
    out = guidance(torch.tensor([0.0, 0.3, 1.0, 4.0, 7.5]))
    assert torch.equal(out, torch.zeros(5, 32))


def test_guidance_embedder_rejects_non_positive_w_max() -> None:
    with pytest.raises(ValueError, match="w_max"):
        GuidanceWeightEmbedder(32, 0.0, frequency_dim=16)


def test_label_embedder_has_a_null_row() -> None:
    embedder = LabelEmbedder(10, 16)
    assert embedder.null_label == 10
    assert embedder.weight.shape == (11, 16)
    out = embedder(torch.tensor([0, 9, 10]))
    assert out.shape == (3, 16)
    assert not torch.equal(out[2], out[1])
    with pytest.raises(IndexError):
        embedder(torch.tensor([11]))


def test_label_rows_have_one_hot_dense_variance() -> None:
    # Variance 1/num_classes, as PD's Dense on a one-hot label (not PyTorch's N(0, 1)).
    embedder = LabelEmbedder(10, 4096)
    assert abs(embedder.weight.var().item() - 0.1) < 0.005
