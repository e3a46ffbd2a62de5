#!/usr/bin/env bash
# GPU check (issue 13): a 1,000-image synth and an LFW view-2 embed on --device, images/s, and
# the CPU's results on a subset within the golden tolerance. See bench/gpu_check.py.
#   bench/gpu_check.sh [cuda|cuda:N] [extra gpu_check.py options]
# Exit 2 with one line when the device is unusable (no GPU): safe to run anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
device="${1:-cuda}"
shift || true
"$PY" -c 'import torch; print(f"torch {torch.__version__}, cuda {torch.version.cuda}, available {torch.cuda.is_available()}")'
exec "$PY" bench/gpu_check.py --device "$device" "$@"
