#!/usr/bin/env bash
# Problem 2 inference, the course's interface:
#   bash hw4_2.sh <input csv: id,filename[,label]> <image folder> <output csv: id,filename,label>
# Uses the fine-tuned model in $HW4_SSL_RUN, else runs/full/ssl/finetune_C (the report's best
# setting, made by `hw4 ssl study --profile full` or `hw4 ssl finetune --setting C ...`).
set -euo pipefail
if [ "$#" -ne 3 ]; then
    echo "usage: bash hw4_2.sh <csv> <image_dir> <output_csv>" >&2
    exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
run="${HW4_SSL_RUN:-$here/runs/full/ssl/finetune_C}"
if [ -x "$here/.venv/bin/hw4" ]; then hw4="$here/.venv/bin/hw4"; else hw4="hw4"; fi
exec "$hw4" ssl predict --run "$run" --csv "$1" --images "$2" --out "$3"
