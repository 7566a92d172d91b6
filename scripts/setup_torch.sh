#!/usr/bin/env bash
# Creates scripts/.venv with PyTorch for the reference benchmark (scripts/torch_bench.py).
# Idempotent: exits at once if the venv already imports torch.
# Plain PyPI wheel (with its nvidia deps: ~5 GB, about a minute); the CPU-only index is not
# reachable here, and --no-deps fails at import.
set -euo pipefail

TORCH_VERSION="2.15.0"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="$VENV/bin/python"

if [ -x "$PY" ] && "$PY" -W ignore -c "import torch" >/dev/null 2>&1; then
    echo "torch $("$PY" -W ignore -c 'import torch; print(torch.__version__)') already in $VENV" >&2
    exit 0
fi

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
echo "creating $VENV with $PYTHON ($("$PYTHON" --version 2>&1))" >&2
"$PYTHON" -m venv "$VENV"
"$PY" -m pip install --quiet --upgrade pip >&2
"$PY" -m pip install "torch==$TORCH_VERSION" >&2
"$PY" -W ignore -c "import torch; print('installed torch', torch.__version__)" >&2
