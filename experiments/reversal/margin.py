#!/usr/bin/env python3
"""The reversal block of W_OV, from a run's `probes/circuits.safetensors` (standard library only).

Usage: python3 experiments/reversal/margin.py [--png OUT.png] RUN_DIR [RUN_DIR ...]

Run `tinylab probe RUN --what circuits --set tokens=<vocab>` first (the experiments here
already list that probe). For each run it prints, over the held-out pairs i (rows b_i,
columns a_j of the token-basis circuits; OV rows = attended token, columns = output logit;
QK rows = query token, columns = key token):

* raw_margin   mean_i OV[b_i, a_i] - mean_{i != j} OV[b_i, a_j]: the block margin of W_OV itself;
* eff_margin   the same on s_x * OV[x, :], where s_x = score_scale * QK[eos, x] is the linear
               attention score of the `eos` query on key x: what b_i adds to the logits at
               `eos`. It removes the sign symmetry (W_Q, W_V) -> (-W_Q, -W_V) that leaves the
               model unchanged but flips the sign of W_OV's rows;
* acc_A        accuracy of the exact logits of [b_i, r_rev, eos] restricted to the a's (chance
               1/n), and acc_all, the arg-max over the whole vocabulary (what
               `eval.reverse_test.acc` measures), both for seq_len = 3 (no noise);
* pred         the most frequent whole-vocabulary prediction.

With several runs it also prints mean +- std (sample std) over them. `--png` writes a heat map
of the first run's effective reversal block (rows b_0.., columns a_0..; red > 0, blue < 0,
white 0, scaled by the largest |entry|).
"""

import json
import math
import zlib
import re
import struct
import sys
from pathlib import Path


def load_safetensors(path):
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    out = {}
    for key, meta in header.items():
        if key == "__metadata__":
            continue
        assert meta["dtype"] == "F32", meta
        rows, cols = meta["shape"]
        lo, hi = meta["data_offsets"]
        flat = struct.unpack(f"<{rows * cols}f", data[8 + n + lo : 8 + n + hi])
        out[key] = [list(flat[r * cols : (r + 1) * cols]) for r in range(rows)]
    return out


def task_of(run):
    """Sizes from the resolved config.toml (kind = "reversal")."""
    text = (Path(run) / "config.toml").read_text()
    task = text.split("[task]", 1)[1].split("\n[", 1)[0]

    def get(key, default):
        m = re.search(rf"^{key}\s*=\s*(\S+)", task, re.M)
        return type(default)(m.group(1).strip('"')) if m else default

    n = get("num_pairs", 20)
    noise = get("num_noise", 0)
    seq_len = get("seq_len", 3)
    frac = get("reverse_frac", 0.0)
    model = text.split("[model]", 1)[1].split("\n[", 1)[0]
    m = re.search(r"^attn_scale\s*=\s*(\S+)", model, re.M)
    scale = float(m.group(1)) if m and float(m.group(1)) != 0.0 else 1.0  # linear attention: 1
    return n, noise, seq_len, frac, scale


def analyse(run):
    n, noise, seq_len, frac, scale = task_of(run)
    c = load_safetensors(Path(run) / "probes" / "circuits.safetensors")
    ov, qk = c["blocks.0.attn.full_OV.0"], c["blocks.0.attn.full_QK.0"]
    a = list(range(n))
    b = [n + i for i in range(n)]
    r_rev = 2 * n + 1
    eos = 2 * n + 3 + noise
    held = list(range(int(math.floor(n * frac)), n))
    s = [scale * qk[eos][x] for x in range(len(qk))]

    def margin(m):
        diag = sum(m(b[i], a[i]) for i in held) / len(held)
        off = [m(b[i], a[j]) for i in held for j in held if j != i]
        return diag - sum(off) / len(off)

    raw = margin(lambda x, y: ov[x][y])
    eff = margin(lambda x, y: s[x] * ov[x][y])
    ok_a = ok_all = 0
    preds = {}
    for i in held:
        z = [s[b[i]] * ov[b[i]][k] + s[r_rev] * ov[r_rev][k] + s[eos] * ov[eos][k] for k in range(len(ov))]
        ok_a += max(a, key=lambda j: z[j]) == a[i]
        top = max(range(len(z)), key=lambda k: z[k])
        ok_all += top == a[i]
        name = f"a{top}" if top < n else f"b{top - n}" if top < 2 * n else f"tok{top}"
        preds[name] = preds.get(name, 0) + 1
    exact = seq_len == 3
    block = [[s[b[i]] * ov[b[i]][a[j]] for j in held] for i in held]
    return {
        "block": block,
        "raw_margin": raw,
        "eff_margin": eff,
        "acc_A": ok_a / len(held) if exact else float("nan"),
        "acc_all": ok_all / len(held) if exact else float("nan"),
        "pred": max(preds, key=preds.get) if exact else "-",
        "score_b": sum(s[b[i]] for i in held) / len(held),
    }


def write_png(path, block, cell=12):
    """A diverging heat map (blue - white - red) of `block`, `cell` pixels per entry."""
    top = max(abs(v) for row in block for v in row) or 1.0

    def colour(v):
        t = max(-1.0, min(1.0, v / top))
        fade = int(255 * (1 - abs(t)))
        return (255, fade, fade) if t >= 0 else (fade, fade, 255)

    raw = b""
    for row in block:
        line = b"".join(bytes(colour(v)) * cell for v in row)
        raw += (b"\x00" + line) * cell
    h, w = len(block) * cell, len(block[0]) * cell

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    Path(path).write_bytes(png)


def main():
    args = sys.argv[1:]
    png = None
    if args[:1] == ["--png"]:
        png, args = args[1], args[2:]
    runs = args
    if not runs:
        sys.exit(__doc__)
    rows = [(run, analyse(run)) for run in runs]
    if png:
        write_png(png, rows[0][1]["block"])
    keys = ["raw_margin", "eff_margin", "acc_A", "acc_all", "score_b"]
    print(f"{'run':40s} " + " ".join(f"{k:>11s}" for k in keys) + "  pred")
    for run, r in rows:
        print(f"{run:40s} " + " ".join(f"{r[k]:11.4f}" for k in keys) + f"  {r['pred']}")
    if len(rows) > 1:
        stats = []
        for k in keys:
            v = [r[k] for _, r in rows]
            mean = sum(v) / len(v)
            std = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1))
            stats.append(f"{mean:.4f}±{std:.4f}")
        print(f"{'mean ± std':40s} " + " ".join(f"{x:>11s}" for x in stats))


if __name__ == "__main__":
    main()
