#!/usr/bin/env bash
# hw4_1.sh <transforms_json> <output_dir>
# Render every frame of <transforms_json> with the trained DVGO run into
# <output_dir>/<basename of file_path>.png (the course's grading contract).
# The run: $HW4_NERF_RUN, else runs/full/nerf/hotdog, else runs/quick/nerf/hotdog
# (train one with `hw4 nerf train --data DIR --out runs/full/nerf/hotdog --profile full`).
set -euo pipefail
if [ "$#" -ne 2 ]; then
    echo "usage: bash hw4_1.sh <transforms_json> <output_dir>" >&2
    exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN="${HW4_NERF_RUN:-}"
if [ -z "$RUN" ]; then
    RUN="$HERE/runs/full/nerf/hotdog"
    [ -f "$RUN/fine.pt" ] || [ ! -f "$HERE/runs/quick/nerf/hotdog/fine.pt" ] || RUN="$HERE/runs/quick/nerf/hotdog"
fi
PY="$HERE/.venv/bin/python"
[ -x "$PY" ] || PY="$(command -v python3)"
exec "$PY" -m hw4lib nerf render --run "$RUN" --transforms "$1" --out "$2"
