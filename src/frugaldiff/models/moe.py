"""Expert-choice mixture-of-experts FFN of MicroDiT (Sehwag et al. 2024, arXiv 2407.15811).

Expert-choice routing (Zhou et al. 2022, arXiv 2202.09368) as the official `FeedForwardECMoe`
does it: softmax over experts per token; per *sample* each expert takes the k = ⌊f·N/E⌋ tokens
of highest probability; output = Σ over the experts that took a token of prob · expert(token),
without renormalisation. A token may be taken by several experts or by none (it then gets 0 and
only the residual carries it). No router noise, no auxiliary loss. Details: docs/microdit.md (e).
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Official init (docs/microdit.md (b)): trunc-normal 0.02 on the gate and w1; the caller passes the
# block's output std (0.02/√(2(i+1)) in block i) for w2.
ROUTER_INIT_STD = 0.02
EXPERT_IN_INIT_STD = 0.02


def expert_capacity(num_tokens: int, num_experts: int, capacity_factor: float) -> int:
    """k, the number of tokens each expert takes per sample: ⌊f·N/E⌋ (official `int(f*t/E)`).

    N is the current length (T_k when masked, T at inference), so k follows the mask ratio.
    """
    k = int(capacity_factor * num_tokens / num_experts)
    # Deviation: clamped to [1, N]. The official code would route nothing at k = 0 (smoke
    # sizes, docs/microdit.md (k) 7) and fail in topk at k > N (f > E).
    return min(max(k, 1), num_tokens)


def moe_block_indices(depth: int, *, dense_last: bool, every: int = 2) -> tuple[int, ...]:
    """Indices of the EC-MoE blocks among `depth` blocks: i with i % every == every - 1.

    every=2 is the paper's "every other block". dense_last=True is the backbone rule (i ≤ L-2:
    13 of 28 in XL); the patch-mixer uses dense_last=False (all odd blocks, so 1, 3, 5 of 6 in
    XL), as the official code does.
    """
    end = depth - 1 if dense_last else depth
    return tuple(range(every - 1, end, every))


class ExpertChoiceMoE(nn.Module):
    """E GELU experts (two bias-free Linears, hidden `hidden_dim`) behind an expert-choice router.

    `hidden_dim` is used as given; the layer-wise rule 256·⌈int(β_i D)/256⌉ lives in
    `frugaldiff.models.scaling.ffn_hidden`. Parameters: E·2·D·hidden (experts) + D·E (router).
    Routing is within each sample, never across the batch, so sample i's output does not depend
    on sample j. Top-k ties are broken by `torch.topk` (deterministic on CPU, not on GPU).
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int,
        num_experts: int,
        capacity_factor: float,
        *,
        out_init_std: float = 0.02,
    ) -> None:
        super().__init__()
        if num_experts < 1 or not capacity_factor > 0:
            raise ValueError(
                f"ExpertChoiceMoE: expected num_experts >= 1 and capacity_factor > 0, "
                f"got {num_experts} and {capacity_factor}"
            )
        self.dim = dim
        self.hidden_dim = hidden_dim
        self.num_experts = num_experts
        self.capacity_factor = capacity_factor
        self.out_init_std = out_init_std
        self.router = nn.Linear(dim, num_experts, bias=False)  # weight (E, D)
        self.w1 = nn.Parameter(torch.empty(num_experts, dim, hidden_dim))  # (E, D, F)
        self.w2 = nn.Parameter(torch.empty(num_experts, hidden_dim, dim))  # (E, F, D)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Official init; pass a generator to draw it reproducibly (the global RNG otherwise)."""
        nn.init.trunc_normal_(self.router.weight, std=ROUTER_INIT_STD, generator=generator)
        nn.init.trunc_normal_(self.w1, std=EXPERT_IN_INIT_STD, generator=generator)
        nn.init.trunc_normal_(self.w2, std=self.out_init_std, generator=generator)

    def capacity(self, num_tokens: int) -> int:
        """Tokens per expert per sample at sequence length `num_tokens`."""
        return expert_capacity(num_tokens, self.num_experts, self.capacity_factor)

    def route(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: (B, N, D) → (probs, token_idx), both (B, E, k): each expert's chosen tokens.

        probs are the chosen tokens' softmax-over-experts probabilities (in (0, 1)); token_idx
        are distinct per (sample, expert), ordered by decreasing probability.
        """
        probs = F.softmax(self.router(x), dim=-1)  # (B, N, E)
        k = self.capacity(x.shape[1])
        return torch.topk(probs.transpose(1, 2), k, dim=-1)  # (B, E, k), (B, E, k)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, N, D) → (B, N, D); rows of tokens no expert took are exactly 0."""
        batch, num_tokens, dim = x.shape
        probs, token_idx = self.route(x)  # (B, E, k), (B, E, k)
        k = token_idx.shape[-1]
        # Gather/scatter by index instead of the official one-hot einsums (same sums, without
        # the (B, E, k, N) one-hot tensor).
        flat_idx = token_idx.reshape(batch, self.num_experts * k, 1).expand(
            -1, -1, dim
        )  # (B, Ek, D)
        x_in = x.gather(1, flat_idx).view(batch, self.num_experts, k, dim)  # (B, E, k, D)
        h = F.gelu(torch.einsum("bekd,edf->bekf", x_in, self.w1))  # (B, E, k, F), exact GELU
        y = torch.einsum("bekf,efd->bekd", h, self.w2)  # (B, E, k, D)
        y = y * probs.unsqueeze(-1)  # (B, E, k, D), weighted by the router probability
        # Zeros in y's dtype (autocast may have changed it); a token taken by several experts
        # accumulates each contribution. On CUDA, bit-exact reruns need deterministic algorithms.
        out = y.new_zeros(batch, num_tokens, dim)  # (B, N, D)
        return out.scatter_add_(1, flat_idx, y.reshape(batch, -1, dim))  # (B, N, D)
