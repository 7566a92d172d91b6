"""PyTorch reference for `tinylab bench`: training steps per second of the tinylab transformer.

Builds the same decoder-only transformer as the Rust/candle model (f32, CPU): token embedding
plus learned positional embedding, pre-LN blocks (LayerNorm eps 1e-5 with weight and bias),
causal multi-head attention with a fused bias-free QKV projection and a bias-free output
projection, optional MLP d -> 4d -> d with exact (erf) GELU, final LayerNorm, bias-free
unembedding. One step is zero_grad, forward, cross-entropy over all B*T positions against
random targets, backward, AdamW(lr=1e-3, weight_decay=0) step, on one fixed random batch.

Prints exactly one JSON line to stdout (see README.md); everything else goes to stderr.
Run with scripts/.venv/bin/python (made by scripts/setup_torch.sh).
"""

import argparse
import json
import math
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # numpy is not needed
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class Attention(nn.Module):
    def __init__(self, d, n_heads, seq_len, impl):
        super().__init__()
        self.n_heads, self.d_head, self.impl = n_heads, d // n_heads, impl
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        mask = torch.triu(torch.ones(seq_len, seq_len, dtype=torch.bool), diagonal=1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        if self.impl == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.d_head))
            scores = scores.masked_fill(self.mask[:T, :T], float("-inf"))
            y = scores.softmax(dim=-1) @ v
        return self.o(y.transpose(1, 2).reshape(B, T, D))


class Block(nn.Module):
    def __init__(self, d, n_heads, seq_len, mlp, impl):
        super().__init__()
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.attn = Attention(d, n_heads, seq_len, impl)
        self.ln2 = nn.LayerNorm(d, eps=1e-5) if mlp else None
        self.mlp = (
            nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate="none"), nn.Linear(4 * d, d))
            if mlp
            else None
        )

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        if self.mlp is not None:
            x = x + self.mlp(self.ln2(x))
        return x


class Transformer(nn.Module):
    def __init__(self, vocab, d, seq_len, n_layers, n_heads, mlp, impl):
        super().__init__()
        self.W_E = nn.Parameter(torch.randn(vocab, d) * 0.02)
        self.W_pos = nn.Parameter(torch.randn(seq_len, d) * 0.02)
        self.blocks = nn.ModuleList(Block(d, n_heads, seq_len, mlp, impl) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d, eps=1e-5)
        self.unembed = nn.Linear(d, vocab, bias=False)

    def forward(self, tokens):
        x = self.W_E[tokens] + self.W_pos[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.unembed(self.ln_f(x))


def train_flops_per_step(a):
    """Estimated training FLOPs per step = 3 x forward matmul FLOPs (backward ~ 2 x forward).

    forward = 2*B*T*P_mm + L * 2*2*B*H*T^2*d_head, where
      P_mm = L*(3d^2 + d^2 + [mlp] 8d^2) + d*vocab  (weights used in matmuls: QKV, O, MLP, unembed;
             the embedding lookup, LayerNorms and biases are not counted), and the second term is
             q@k^T and att@v per layer, counted over the full T x T (no discount for the causal mask).
    """
    d, T, B, L, H = a.d_model, a.seq_len, a.batch, a.layers, a.heads
    p_mm = L * (4 * d * d + (8 * d * d if a.mlp else 0)) + d * a.vocab
    fwd = 2 * B * T * p_mm + L * 2 * 2 * B * H * T * T * (d // H)
    return 3 * fwd


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=64)
    p.add_argument("--no-mlp", dest="mlp", action="store_false", help="attention-only blocks")
    p.add_argument("--attn", choices=["eager", "sdpa"], default="eager")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--flops", action="store_true", help="add train_flops_per_step to the JSON")
    a = p.parse_args()
    if a.d_model % a.heads:
        p.error("--d-model must be divisible by --heads")
    if a.steps < 1:
        p.error("--steps must be >= 1")

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(a.seed)
    model = Transformer(a.vocab, a.d_model, a.seq_len, a.layers, a.heads, a.mlp, a.attn)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    tokens = torch.randint(0, a.vocab, (a.batch, a.seq_len))
    targets = torch.randint(0, a.vocab, (a.batch, a.seq_len))

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(tokens)
        loss = F.cross_entropy(logits.view(-1, a.vocab), targets.view(-1))
        loss.backward()
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    print(f"last loss {loss.item():.4f}; step s: min {min(times):.5f} median {median:.5f} "
          f"max {max(times):.5f}", file=sys.stderr)

    out = {
        "impl": f"pytorch-{a.attn}",
        "torch": torch.__version__,
        "threads": a.threads,
        "d_model": a.d_model,
        "seq_len": a.seq_len,
        "batch": a.batch,
        "layers": a.layers,
        "heads": a.heads,
        "vocab": a.vocab,
        "mlp": a.mlp,
        "params": sum(t.numel() for t in model.parameters()),
        "steps": a.steps,
        "median_step_s": median,
        "steps_per_s": 1.0 / median,
        "min_step_s": min(times),
    }
    if a.flops:
        out["train_flops_per_step"] = train_flops_per_step(a)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
