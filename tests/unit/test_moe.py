"""EC-MoE routing, layer-wise widths and parameter counts of MicroDiT (docs/microdit.md
(e)(f)(h))."""

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from frugaldiff.errors import ConfigError
from frugaldiff.models.embeddings import LabelEmbedder, TimestepEmbedder
from frugaldiff.models.moe import ExpertChoiceMoE, expert_capacity, moe_block_indices
from frugaldiff.models.param_count import (
    DIT_XL_2,
    MICRODIT_TINY_2,
    MICRODIT_XL_2,
    DiTShape,
    count_microdit_parameters,
    parameter_breakdown,
)
from frugaldiff.models.scaling import (
    CONSTANT_ATTN_RATIOS,
    CONSTANT_MLP_RATIOS,
    MICRODIT_ATTN_RATIOS,
    MICRODIT_MLP_RATIOS,
    layerwise_widths,
    linear_ratios,
)
from frugaldiff.report.paper_values import paper_value


def _moe(generator: torch.Generator, dim: int = 8, num_experts: int = 4) -> ExpertChoiceMoE:
    moe = ExpertChoiceMoE(dim, hidden_dim=12, num_experts=num_experts, capacity_factor=2.0)
    moe.reset_parameters(generator)
    return moe


# ---------------------------------------------------------------- routing


@pytest.mark.parametrize(("num_tokens", "capacity"), [(16, 8), (4, 2)])  # T and T_k at r = .75
def test_every_expert_takes_exactly_its_capacity(
    generator: torch.Generator, num_tokens: int, capacity: int
) -> None:
    moe = _moe(generator)
    x = torch.randn(3, num_tokens, 8, generator=generator)  # (B, N, D)
    probs, token_idx = moe.route(x)
    assert token_idx.shape == probs.shape == (3, 4, capacity)  # ⌊f·N/E⌋ = ⌊2·N/4⌋
    # Distinct tokens per (sample, expert).
    assert all(len(set(row.tolist())) == capacity for row in token_idx.reshape(-1, capacity))


def test_capacity_is_floored_and_guarded() -> None:
    assert expert_capacity(64, 8, 2.0) == 16
    assert expert_capacity(10, 8, 1.25) == 1  # ⌊1.5625⌋
    assert expert_capacity(3, 8, 2.0) == 1  # ⌊0.75⌋ = 0, guarded to 1
    assert expert_capacity(4, 2, 4.0) == 4  # 8 > N, capped at N


def test_output_equals_per_expert_loop_reference(generator: torch.Generator) -> None:
    moe = _moe(generator)
    x = torch.randn(2, 10, 8, generator=generator)  # (B, N, D)
    out = moe(x)
    k = expert_capacity(10, 4, 2.0)
    probs = torch.softmax(x @ moe.router.weight.T, dim=-1)  # (B, N, E)
    expected = torch.zeros_like(x)
    for b in range(2):
        for e in range(4):
            column = probs[b, :, e].tolist()
            chosen = sorted(range(10), key=lambda t, c=column: -c[t])[:k]
            for t in chosen:
                hidden = F.gelu(x[b, t] @ moe.w1[e])  # (F,)
                expected[b, t] += column[t] * (hidden @ moe.w2[e])  # (D,)
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_token_taken_by_several_experts_or_by_none(generator: torch.Generator) -> None:
    # Router = identity on the first E features, so x[..., :E] are the logits: with these
    # softmax rows each expert's top 2 are: e0 {0, 1}, e1 {0, 2}, e2 {1, 2}; tokens 3-5: none.
    table = torch.tensor(
        [
            [0.45, 0.45, 0.10],
            [0.40, 0.20, 0.40],
            [0.20, 0.40, 0.40],
            [0.30, 0.35, 0.35],
            [0.35, 0.30, 0.35],
            [1 / 3, 1 / 3, 1 / 3],
        ]
    )
    moe = ExpertChoiceMoE(4, hidden_dim=6, num_experts=3, capacity_factor=1.0)
    moe.reset_parameters(generator)
    with torch.no_grad():
        moe.router.weight.copy_(torch.eye(3, 4))
    x = torch.cat([table.log(), torch.randn(6, 1, generator=generator)], dim=1)[None]  # (1, 6, 4)
    _, token_idx = moe.route(x)
    assert [set(row.tolist()) for row in token_idx[0]] == [{0, 1}, {0, 2}, {1, 2}]
    out = moe(x)[0]  # (6, 4)
    assert torch.equal(out[3:], torch.zeros(3, 4))

    def expert(e: int, t: int) -> Tensor:
        return F.gelu(x[0, t] @ moe.w1[e]) @ moe.w2[e]  # (D,)

    assert torch.allclose(out[0], 0.45 * expert(0, 0) + 0.45 * expert(1, 0))
    assert torch.allclose(out[2], 0.40 * expert(1, 2) + 0.40 * expert(2, 2))


def test_routing_never_crosses_the_batch(generator: torch.Generator) -> None:
    moe = _moe(generator)
    x = torch.randn(2, 8, 8, generator=generator)  # (B, N, D)
    perturbed = x.clone()
    perturbed[1] += 10 * torch.randn(8, 8, generator=generator)
    assert torch.equal(moe(x)[0], moe(perturbed)[0])


def test_moe_placement_matches_the_official_models() -> None:
    assert len(moe_block_indices(28, dense_last=True)) == 13  # XL backbone
    assert moe_block_indices(16, dense_last=True) == (1, 3, 5, 7, 9, 11, 13)  # Tiny, not 15
    assert moe_block_indices(6, dense_last=False) == (1, 3, 5)  # XL mixer, last one MoE


# ---------------------------------------------------------------- layer-wise scaling


@pytest.mark.parametrize("depth", [0, 1, 2, 16, 28])
def test_ratios_are_numpy_linspace_bit_for_bit(depth: int) -> None:
    assert linear_ratios(depth, 0.5, 4.0) == tuple(np.linspace(0.5, 4.0, depth).tolist())


def _rule(depth: int, i: int, first: float, last: float) -> Fraction:
    """α_i or β_i in exact rationals, straight from docs/microdit.md (f)."""
    return Fraction(first) + (Fraction(last) - Fraction(first)) * Fraction(i, depth - 1)


@pytest.mark.parametrize("i", [0, 14, 27])  # first, middle, last block of XL
def test_xl_widths_match_the_formula(i: int) -> None:
    depth, dim, head_dim = 28, 1024, 64
    moe = moe_block_indices(depth, dense_last=True)
    widths = layerwise_widths(
        depth,
        dim,
        head_dim,
        attn_ratios=MICRODIT_ATTN_RATIOS,
        mlp_ratios=MICRODIT_MLP_RATIOS,
        ffn="swiglu",
        moe_blocks=moe,
    )
    alpha, beta = _rule(depth, i, 0.5, 1.0), _rule(depth, i, 0.5, 4.0)
    attn = dim if alpha == 1 else 2 * head_dim * math.ceil(math.floor(alpha * dim) / (2 * head_dim))
    hidden = 256 * math.ceil(math.floor(Fraction(2, 3) * math.floor(beta * dim)) / 256)
    assert (widths.attn_dims[i], widths.num_heads[i]) == (attn, attn // head_dim)
    assert widths.mlp_hidden[i] == hidden
    # docs/microdit.md (f): heads 8 → 16, dense hidden 512 → 2816; MoE hidden 768 (block 1) → 3840.
    assert (widths.num_heads[0], widths.num_heads[-1]) == (8, 16)
    assert (widths.mlp_hidden[0], widths.mlp_hidden[-1]) == (512, 2816)
    assert (widths.mlp_hidden[moe[0]], widths.mlp_hidden[moe[-1]]) == (768, 3840)


def test_gelu_rule_and_constant_widths() -> None:
    scaled = layerwise_widths(
        12, 384, 64, attn_ratios=(0.5, 1.0), mlp_ratios=(0.5, 4.0), ffn="gelu", moe_blocks=()
    )
    # 32·⌈β·D/32⌉: 192 at β = .5; β_6 = 0.5 + 3.5·6/11 gives 925.1 → 928; 1536 at β = 4.
    assert (scaled.mlp_hidden[0], scaled.mlp_hidden[6], scaled.mlp_hidden[-1]) == (192, 928, 1536)
    constant = layerwise_widths(
        12,
        384,
        64,
        attn_ratios=CONSTANT_ATTN_RATIOS,
        mlp_ratios=CONSTANT_MLP_RATIOS,
        ffn="gelu",
        moe_blocks=(),
    )
    assert constant.num_heads == (6,) * 12
    assert constant.mlp_hidden == (1536,) * 12


# ---------------------------------------------------------------- parameter counts


def test_the_sparse_xl_count_is_the_papers_1_16b() -> None:
    count = count_microdit_parameters(MICRODIT_XL_2)
    assert count == 1_165_442_320  # our count of the released code, docs/microdit.md (h)
    # The abstract's "1.16 billion" truncates 1.165 to two decimals.
    billions = paper_value("sehwag2024_microdit/final_params_billion").value
    assert billions <= count / 1e9 < billions + 0.01
    parts = parameter_breakdown(MICRODIT_XL_2)
    assert parts["embed"] + parts["conditioning"] == 18_639_872
    assert (parts["mixer"], parts["mixer_projections"]) == (184_084_992, 2_362_112)
    assert (parts["backbone"], parts["head"]) == (958_238_720, 2_116_624)
    dense = dataclasses.replace(MICRODIT_XL_2, num_experts=0)
    assert count_microdit_parameters(dense) == 639_980_816


def test_tiny_and_dit_xl_counts() -> None:
    assert count_microdit_parameters(MICRODIT_TINY_2) == 200_692_752
    assert count_microdit_parameters(DIT_XL_2) == 675_129_632
    d, depth = DIT_XL_2.dim, DIT_XL_2.depth
    assert parameter_breakdown(DIT_XL_2)["backbone"] == depth * (18 * d**2 + 15 * d)


def test_a_mapping_with_a_misspelled_key_names_it() -> None:
    fields = dataclasses.asdict(DIT_XL_2)
    assert count_microdit_parameters(fields) == 675_129_632
    fields["num_expert"] = fields.pop("num_experts")
    with pytest.raises(ConfigError, match=r"'num_expert'.*did you mean 'num_experts'"):
        count_microdit_parameters(fields)


class _Block(nn.Module):
    """adaLN block: self-attention, then a GELU / SwiGLU MLP or the EC-MoE."""

    def __init__(self, shape: DiTShape, width: int, attn_dim: int, hidden: int, moe: bool):
        super().__init__()
        self.norm1, self.norm2 = (
            nn.LayerNorm(width, elementwise_affine=shape.norm_weight, bias=False) for _ in "12"
        )
        self.num_heads = attn_dim // shape.head_dim
        self.qkv = nn.Linear(width, 3 * attn_dim, bias=shape.bias)
        self.proj = nn.Linear(attn_dim, width, bias=shape.bias)
        self.swiglu_gate = None
        if moe:
            self.ffn: nn.Module = ExpertChoiceMoE(width, hidden, shape.num_experts, 2.0)
        else:
            self.ffn = nn.Sequential(
                nn.Linear(width, hidden, bias=shape.bias),
                nn.GELU() if shape.ffn == "gelu" else nn.SiLU(),
                nn.Linear(hidden, width, bias=shape.bias),
            )
            if shape.ffn == "swiglu":
                self.swiglu_gate = nn.Linear(width, hidden, bias=shape.bias)
        self.ada = nn.Linear(shape.dim, 6 * width)

    def mlp(self, h: Tensor) -> Tensor:
        if self.swiglu_gate is None:
            return self.ffn(h)  # (B, N, W)
        first, act, last = self.ffn
        return last(act(first(h)) * self.swiglu_gate(h))  # (B, N, W)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        batch, num_tokens, _ = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c)[:, None].chunk(6, dim=-1)
        h = self.norm1(x) * (1 + scale1) + shift1  # (B, N, W)
        qkv = self.qkv(h).view(batch, num_tokens, 3, self.num_heads, -1)  # (B, N, 3, heads, h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # (B, heads, N, h) each
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)  # (B, N, heads, h)
        x = x + gate1 * self.proj(a.reshape(batch, num_tokens, -1))  # (B, N, W)
        return x + gate2 * self.mlp(self.norm2(x) * (1 + scale2) + shift2)  # (B, N, W)


class _TinyDiT(nn.Module):
    """A class-conditional DiT / MicroDiT built from a DiTShape, to count its parameters."""

    def __init__(self, shape: DiTShape) -> None:
        super().__init__()
        d, dm, p = shape.dim, shape.mixer_width, shape.patch_size
        self.shape = shape
        self.patch = nn.Conv2d(shape.in_channels, d, p, stride=p)
        if shape.pos_embed_parameter:
            self.pos = nn.Parameter(torch.zeros(1, shape.num_tokens, d), requires_grad=False)
        self.time = TimestepEmbedder(d, frequency_dim=shape.frequency_dim)
        self.label = LabelEmbedder(shape.num_classes, d)
        self.mixer = self._stack(shape.mixer_depth, dm, layerwise=False, dense_last=False)
        self.map_in = self.map_out = nn.Identity()
        if shape.mixer_depth and dm != d:
            norm = nn.LayerNorm
            self.map_in = nn.Sequential(
                norm(d, elementwise_affine=shape.norm_weight, bias=False),
                nn.Linear(d, dm, bias=shape.bias),
            )
            self.map_out = nn.Sequential(
                norm(dm, elementwise_affine=shape.norm_weight, bias=False),
                nn.Linear(dm, d, bias=shape.bias),
            )
        self.blocks = self._stack(shape.depth, d, layerwise=True, dense_last=True)
        self.norm_final = nn.LayerNorm(d, elementwise_affine=shape.norm_weight, bias=False)
        self.final = nn.Linear(d, p * p * shape.out_channels)
        self.final_ada = nn.Linear(d, 2 * d)

    def _stack(self, depth: int, width: int, *, layerwise: bool, dense_last: bool) -> nn.ModuleList:
        shape = self.shape
        moe = moe_block_indices(depth, dense_last=dense_last) if shape.num_experts else ()
        widths = layerwise_widths(
            depth,
            width,
            shape.head_dim,
            attn_ratios=shape.attn_ratios if layerwise else CONSTANT_ATTN_RATIOS,
            mlp_ratios=shape.mlp_ratios if layerwise else CONSTANT_MLP_RATIOS,
            ffn=shape.ffn,
            moe_blocks=moe,
        )
        return nn.ModuleList(
            _Block(shape, width, widths.attn_dims[i], widths.mlp_hidden[i], i in moe)
            for i in range(depth)
        )

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)  # (B, T, D)
        c = self.time(t) + self.label(labels)  # (B, D)
        h = self.map_in(tokens)  # (B, T, Dm)
        for block in self.mixer:
            h = block(h, c)  # (B, T, Dm)
        h = self.map_out(h)  # (B, T, D)
        for block in self.blocks:
            h = block(h, c)  # (B, T, D)
        shift, scale = self.final_ada(c)[:, None].chunk(2, dim=-1)  # (B, 1, D) each
        return self.final(self.norm_final(h) * (1 + scale) + shift)  # (B, T, p²C)


_SMALL = DiTShape(
    in_channels=3,
    out_channels=3,
    patch_size=2,
    num_tokens=16,
    dim=32,
    depth=4,
    head_dim=8,
    frequency_dim=64,
    num_classes=10,
)


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(
            dataclasses.replace(
                _SMALL,
                bias=False,
                norm_weight=True,
                attn_ratios=MICRODIT_ATTN_RATIOS,
                mlp_ratios=MICRODIT_MLP_RATIOS,
                num_experts=4,
                mixer_depth=2,
                mixer_dim=16,
            ),
            id="microdit-gelu-moe-mixer",
        ),
        pytest.param(
            dataclasses.replace(_SMALL, depth=2, out_channels=6, pos_embed_parameter=True),
            id="dense-dit",
        ),
        pytest.param(
            dataclasses.replace(
                _SMALL,
                depth=3,
                ffn="swiglu",
                norm_weight=True,
                attn_ratios=MICRODIT_ATTN_RATIOS,
                mlp_ratios=MICRODIT_MLP_RATIOS,
                num_experts=2,
                mixer_depth=3,
            ),
            id="swiglu-moe-same-width-mixer",
        ),
    ],
)
def test_count_equals_an_instantiated_small_model(
    generator: torch.Generator, shape: DiTShape
) -> None:
    model = _TinyDiT(shape)
    assert sum(p.numel() for p in model.parameters()) == count_microdit_parameters(shape)
    x = torch.randn(2, 3, 8, 8, generator=generator)  # (B, C, H, W): T = 16 tokens
    out = model(x, torch.rand(2, generator=generator), torch.tensor([0, 10]))
    assert out.shape == (2, 16, 4 * shape.out_channels)
    assert torch.isfinite(out).all()


def test_expert_output_init_shrinks_with_depth_as_microdit() -> None:
    """Experts start at std 0.02/√(2(i+1)) in backbone block i and 0.02/√(2L) in every mixer
    block, L the *backbone* depth (official `weight_init_std`: the mixer gets depth_init=False,
    num_layers=depth), for DiT's block and for MicroDiT's."""
    from frugaldiff.models.dit import DiT, DiTConfig
    from frugaldiff.models.stacks import output_init_std

    for block in ("dit", "microdit"):
        cfg = DiTConfig(
            image_size=8, patch_size=2, hidden_size=64, depth=6, num_heads=2, num_classes=10,
            ffn="moe", moe_every=2, num_experts=4, patch_mixer_depth=2, masking="deferred",
            block=block,
        )  # fmt: skip
        with torch.random.fork_rng():
            torch.manual_seed(0)  # module init draws from the global RNG; keep tests order-free
            model = DiT(cfg)
        expected = {
            ("backbone", 1): 0.02 / 4**0.5,
            ("backbone", 3): 0.02 / 8**0.5,
            ("mixer", 1): 0.02 / 12**0.5,  # 2L = 12, not 2·(mixer depth 2) = 4
        }
        stacks = {"backbone": model.blocks, "mixer": model.mixer}
        seen = {
            (stage, i): b.ffn.w2
            for stage, blocks in stacks.items()
            for i, b in enumerate(blocks)
            if hasattr(b.ffn, "w2") and isinstance(b.ffn.w2, torch.nn.Parameter)
        }  # the experts' (E, F, D) output weights; a SwiGLU's w2 is a Linear
        assert seen.keys() == expected.keys(), block  # every 2nd, the backbone's last dense
        for key, std in expected.items():
            # trunc_normal_ cuts at ±2 absolute, far beyond these stds: the sample std is std
            assert seen[key].std().item() == pytest.approx(std, rel=0.05), (block, key)
            assert output_init_std(key[1], cfg.depth, in_mixer=key[0] == "mixer") == std
