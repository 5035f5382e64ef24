#!/usr/bin/env bash
# One command on a machine with one CUDA GPU (under 8 minutes): versions, the DVGO path the GPU
# takes, DVGO and BYOL speeds with projected run times, and a GPU-vs-CPU render check, as a
# table and one JSON. `--smoke`: the same run at toy sizes on the CPU, in seconds. See
# docs/guide.md, "Checking a GPU machine". Exit: 0 all sections ok, 1 a section failed, 2 no GPU.
#   bash tools/gpu_check.sh [--out FILE] [--smoke]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$root/.venv/bin/python"
[ -x "$py" ] || py=python3
# default JSON: $OUT/gpu_check.json where a runner collects $OUT, else ./gpu_check.json
out="gpu_check.json"
[ -n "${OUT:-}" ] && out="$OUT/gpu_check.json"
# this checkout's hw4lib, also when the Python is not the project's own venv
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" -m hw4lib.gpucheck --out "$out" "$@"
