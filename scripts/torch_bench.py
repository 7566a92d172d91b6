"""PyTorch reference for `tinylab bench`: training steps per second of the tinylab transformer.

Builds the same decoder-only transformer as the Rust/candle model (f32, CPU): token embedding
plus learned positional embedding, pre-LN blocks (LayerNorm eps 1e-5 with weight and bias),
causal multi-head attention with a fused bias-free QKV projection and a bias-free output
projection, optional MLP d -> 4d -> d with exact (erf) GELU, final LayerNorm, bias-free
unembedding. One step is zero_grad, forward, cross-entropy over all B*T positions against
random targets, backward, AdamW(lr=1e-3, weight_decay=0) step, on one fixed random batch.

Prints exactly one JSON line to stdout (see README.md); everything else goes to stderr.
`--model cat` builds instead the 1-layer CAT model of experiments/cat/ as tinylab builds it
(see `CatModel`): no positions, pre-LN, causal depthwise convolutions on the q/k/v inputs,
separate bias-free W_Q/W_K/W_V/W_O, L2-normalized q and k times a learned per-head temperature,
causal softmax, final LayerNorm, logits only at the labelled positions (`--labelled` per
sequence), AdamW(lr=3e-3) with weight decay 0.1 on matrices only.

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
    """Causal multi-head attention; `impl`: `eager` / `sdpa` softmax, or `linear` (scores
    q·kᵀ/√d_head with the future masked to 0, no softmax, as tinylab's linear attention).
    `identity_k`: W_K = I, frozen (k = x; experiments/ocr's reparameterized QK), so the fused
    projection makes q and v only."""

    def __init__(self, d, n_heads, seq_len, impl, identity_k=False):
        super().__init__()
        self.n_heads, self.d_head, self.impl, self.identity_k = n_heads, d // n_heads, impl, identity_k
        self.qkv = nn.Linear(d, (2 if identity_k else 3) * d, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        mask = torch.triu(torch.ones(seq_len, seq_len, dtype=torch.bool), diagonal=1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        B, T, D = x.shape
        if self.identity_k:
            q, v = self.qkv(x).view(B, T, 2, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
            k = x.view(B, T, self.n_heads, self.d_head).transpose(1, 2)
        else:
            q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        if self.impl == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.d_head))
            if self.impl == "linear":
                y = scores.masked_fill(self.mask[:T, :T], 0.0) @ v
            else:
                scores = scores.masked_fill(self.mask[:T, :T], float("-inf"))
                y = scores.softmax(dim=-1) @ v
        return self.o(y.transpose(1, 2).reshape(B, T, D))


def norm(kind, d):
    return nn.LayerNorm(d, eps=1e-5) if kind == "layer" else nn.Identity()


class Block(nn.Module):
    def __init__(self, d, n_heads, seq_len, mlp, impl, norm_kind="layer", residual=True, identity_k=False):
        super().__init__()
        self.residual = residual
        self.ln1 = norm(norm_kind, d)
        self.attn = Attention(d, n_heads, seq_len, impl, identity_k)
        self.ln2 = norm(norm_kind, d) if mlp else None
        self.mlp = (
            nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate="none"), nn.Linear(4 * d, d))
            if mlp
            else None
        )

    def forward(self, x):
        a = self.attn(self.ln1(x))
        x = x + a if self.residual else a
        if self.mlp is not None:
            m = self.mlp(self.ln2(x))
            x = x + m if self.residual else m
        return x


class Transformer(nn.Module):
    """The tinylab transformer (`--model gpt`). `onehot`: W_E = I (vocab = d), frozen, and the
    unembedding tied to it (experiments/ocr); `positions = none` drops W_pos."""

    def __init__(self, vocab, d, seq_len, n_layers, n_heads, mlp, impl, norm_kind="layer",
                 residual=True, positions="learned", onehot=False, identity_k=False):
        super().__init__()
        self.onehot = onehot
        if onehot:
            self.register_buffer("W_E", torch.eye(vocab, d), persistent=False)
        else:
            self.W_E = nn.Parameter(torch.randn(vocab, d) * 0.02)
        self.W_pos = nn.Parameter(torch.randn(seq_len, d) * 0.02) if positions == "learned" else None
        self.blocks = nn.ModuleList(
            Block(d, n_heads, seq_len, mlp, impl, norm_kind, residual, identity_k) for _ in range(n_layers)
        )
        self.ln_f = norm(norm_kind, d)
        self.unembed = None if onehot else nn.Linear(d, vocab, bias=False)

    def forward(self, tokens, select=None):
        x = self.W_E[tokens]
        if self.W_pos is not None:
            x = x + self.W_pos[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        rows = self.ln_f(x).reshape(-1, x.shape[-1])
        if select is not None:
            rows = rows[select]
        return rows @ self.W_E.t() if self.onehot else self.unembed(rows)


def causal_conv(x, filt, impl):
    """y_t = sum_i filt[i] * x_{t-i} (depthwise, causal); x [B, T, d], filt [K, d] (row i = lag i)."""
    K = filt.shape[0]
    if impl == "conv1d":
        w = filt.flip(0).t().unsqueeze(1)  # [d, 1, K]: conv1d is a cross-correlation
        y = F.conv1d(x.transpose(1, 2), w, padding=K - 1, groups=x.shape[2])
        return y[..., : x.shape[1]].transpose(1, 2)
    y = x * filt[0]
    for lag in range(1, K):
        y = y + F.pad(x, (0, 0, lag, 0))[:, : x.shape[1]] * filt[lag]
    return y


class CatBlock(nn.Module):
    """One CAT attention block as tinylab's attention.rs builds it (factorized weights, one or
    more heads, convolutions on the q/k/v inputs, L2 q/k norm with temperature exp(log_temp))."""

    def __init__(self, d, n_heads, kernel, qk_scale_init, conv_impl):
        super().__init__()
        self.h, self.dh, self.conv_impl = n_heads, d // n_heads, conv_impl
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        bound = 1.0 / math.sqrt(kernel)
        self.conv = nn.ParameterList(
            nn.Parameter(torch.empty(kernel, d).uniform_(-bound, bound)) for _ in range(3)
        )
        self.W_Q = nn.Linear(d, d, bias=False)
        self.W_K = nn.Linear(d, d, bias=False)
        self.W_V = nn.Linear(d, d, bias=False)
        self.W_O = nn.Linear(d, d, bias=False)
        self.log_temp = nn.Parameter(torch.full((n_heads,), math.log(qk_scale_init)))

    def heads(self, x):
        B, T, _ = x.shape
        return x.view(B, T, self.h, self.dh).transpose(1, 2)  # [B, H, T, dh]

    def forward(self, x):
        B, T, D = x.shape
        a = self.ln1(x)
        xq, xk, xv = (causal_conv(a, f, self.conv_impl) for f in self.conv)
        q, k, v = self.heads(self.W_Q(xq)), self.heads(self.W_K(xk)), self.heads(self.W_V(xv))
        q = q / (q.square().sum(-1, keepdim=True) + 1e-6).sqrt() * self.log_temp.exp().view(1, -1, 1, 1)
        k = k / (k.square().sum(-1, keepdim=True) + 1e-6).sqrt()
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.dh))
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        y = scores.masked_fill(mask, float("-inf")).softmax(dim=-1) @ v
        return x + self.W_O(y.transpose(1, 2).reshape(B, T, D))


class CatModel(nn.Module):
    """Embedding (no positions) -> CAT blocks -> final LayerNorm -> unembedding."""

    def __init__(self, vocab, d, n_layers, n_heads, kernel, qk_scale_init, conv_impl):
        super().__init__()
        self.W_E = nn.Parameter(torch.randn(vocab, d))
        self.blocks = nn.ModuleList(
            CatBlock(d, n_heads, kernel, qk_scale_init, conv_impl) for _ in range(n_layers)
        )
        self.ln_f = nn.LayerNorm(d, eps=1e-5)
        self.unembed = nn.Linear(d, vocab, bias=False)

    def forward(self, tokens, select):
        x = self.W_E[tokens]
        for block in self.blocks:
            x = block(x)
        rows = self.ln_f(x).reshape(-1, x.shape[-1])[select]
        return self.unembed(rows)


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


def build(a):
    """The model, its optimizer and one fixed batch (tokens, labelled flat positions, targets)."""
    if a.model == "gpt":
        model = Transformer(a.vocab, a.d_model, a.seq_len, a.layers, a.heads, a.mlp, a.attn, a.norm,
                            a.residual, a.positions, a.onehot, a.identity_k)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
        if a.labelled:
            # logits only at the last `--labelled` positions of each sequence (where the count,
            # not the place, matters for the time)
            per_seq = torch.arange(a.seq_len - a.labelled, a.seq_len)
            select = (torch.arange(a.batch).unsqueeze(1) * a.seq_len + per_seq).reshape(-1)
        else:
            select = torch.arange(a.batch * a.seq_len)
    else:
        model = CatModel(a.vocab, a.d_model, a.layers, a.heads, a.conv_kernel, a.qk_scale_init, a.conv_impl)
        mats = [p for p in model.parameters() if p.dim() >= 2]
        vecs = [p for p in model.parameters() if p.dim() < 2]
        groups = [{"params": mats, "weight_decay": 0.1}, {"params": vecs, "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=3e-3)
        # `--labelled` positions per sequence, in the second half (as MQAR's queries)
        half = a.seq_len // 2
        per_seq = torch.arange(a.labelled) * (half // a.labelled) + half
        select = (torch.arange(a.batch).unsqueeze(1) * a.seq_len + per_seq).reshape(-1)
    tokens = torch.randint(0, a.vocab, (a.batch, a.seq_len))
    targets = torch.randint(0, a.vocab, (select.numel(),))
    return model, opt, tokens, select, targets


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["gpt", "cat"], default="gpt")
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=64)
    p.add_argument("--no-mlp", dest="mlp", action="store_false", help="attention-only blocks")
    p.add_argument("--attn", choices=["eager", "sdpa", "linear"], default="eager")
    p.add_argument("--conv-kernel", type=int, default=3, help="cat: taps of each convolution")
    p.add_argument("--conv-impl", choices=["conv1d", "shift"], default="conv1d",
                   help="cat: depthwise F.conv1d or shifted views times taps")
    p.add_argument("--qk-scale-init", type=float, default=10.0, help="cat: initial temperature")
    p.add_argument("--labelled", type=int, default=None,
                   help="labelled positions per sequence (logits only there); cat: default 8, "
                        "in the second half; gpt: default all, else the last N")
    p.add_argument("--norm", choices=["layer", "none"], default="layer", help="gpt: LayerNorm or none")
    p.add_argument("--no-residual", dest="residual", action="store_false", help="gpt: no residual adds")
    p.add_argument("--positions", choices=["learned", "none"], default="learned", help="gpt: W_pos or none")
    p.add_argument("--onehot", action="store_true",
                   help="gpt: W_E = I (vocab = d), frozen, unembedding tied to it")
    p.add_argument("--identity-k", action="store_true", help="gpt: W_K = I, frozen (k = x)")
    p.add_argument("--runs", type=int, default=1,
                   help="train this many independent models one after the other (seeds seed..)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--flops", action="store_true", help="add train_flops_per_step to the JSON")
    a = p.parse_args()
    if a.d_model % a.heads:
        p.error("--d-model must be divisible by --heads")
    if a.steps < 1 or a.runs < 1:
        p.error("--steps and --runs must be >= 1")
    if a.model == "cat":
        a.labelled = 8 if a.labelled is None else a.labelled
        if a.labelled * 2 > a.seq_len:
            p.error("--labelled must be <= seq_len / 2")
    elif a.labelled is not None and not 0 < a.labelled <= a.seq_len:
        p.error("--labelled must be in 1..=seq_len")
    if a.onehot and a.vocab != a.d_model:
        p.error("--onehot needs --vocab equal to --d-model")

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    times, total, cpu = [], 0.0, 0.0
    for run in range(a.runs):
        torch.manual_seed(a.seed + run)
        model, opt, tokens, select, targets = build(a)

        def step():
            opt.zero_grad(set_to_none=True)
            logits = model(tokens, select if a.model == "cat" or a.labelled else None)
            loss = F.cross_entropy(logits, targets)
            loss.backward()
            opt.step()
            return loss

        for _ in range(a.warmup):
            step()
        t_run, c_run = time.perf_counter(), time.process_time()
        for _ in range(a.steps):
            t0 = time.perf_counter()
            loss = step()
            times.append(time.perf_counter() - t0)
        total += time.perf_counter() - t_run
        cpu += time.process_time() - c_run
    median = statistics.median(times)
    print(f"last loss {loss.item():.4f}; step s: min {min(times):.5f} median {median:.5f} "
          f"max {max(times):.5f}; {a.runs} run(s) x {a.steps} steps in {total:.3f} s", file=sys.stderr)

    out = {
        "impl": f"pytorch-{a.attn}" if a.model == "gpt" else f"pytorch-cat-{a.conv_impl}",
        "torch": torch.__version__,
        "model": a.model,
        "threads": a.threads,
        "d_model": a.d_model,
        "seq_len": a.seq_len,
        "batch": a.batch,
        "layers": a.layers,
        "heads": a.heads,
        "vocab": a.vocab,
        "mlp": a.mlp if a.model == "gpt" else False,
        "attn_kind": a.attn if a.model == "gpt" else "softmax",
        "labelled": a.labelled,
        "params": sum(t.numel() for t in model.parameters()),
        "runs": a.runs,
        "steps": a.steps,
        "median_step_s": median,
        "steps_per_s": 1.0 / median,
        "min_step_s": min(times),
        "total_timed_s": total,
        "cpu_s_per_step": cpu / (a.runs * a.steps),
    }
    if a.flops and a.model == "gpt":
        out["train_flops_per_step"] = train_flops_per_step(a)
    print(json.dumps(out), flush=True)

if __name__ == "__main__":
    main()
