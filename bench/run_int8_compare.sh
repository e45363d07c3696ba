#!/usr/bin/env bash
# Float32 against int8, one export's two models, in one sitting on a quiet machine:
#   1. bench/serve_load.py   our service once per model (array, png, batch, npy), the bare
#                            Starlette baseline on the float model, ONNX Runtime alone on each
#                            (one thread; one image and 256 a call)  -> serve_load-int8.json
#   2. bench/bulk_score.py   200,000 arrays and 10,000 images through pipeline.score, each
#                            model, ONNX Runtime direct on each       -> bulk_score-int8.json
#   3. bench/serve_profile.py  where a request's time goes, per route, each model
#                                         -> serve_profile-float32.json, serve_profile-int8.json
#
#   dvc repro                       # writes models/model.onnx and models/model.int8.onnx
#   bench/run_int8_compare.sh       # the full comparison (CELL_S=5: about 8 minutes)
#   bench/run_int8_compare.sh --quick   # every step in its quick mode into a temp folder
#
# Environment: FLOAT, INT8 (the models), CELL_S (seconds of each wrk cell), OUT (the folder
# the JSON goes to; bench/results, or a temp folder with --quick), PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."

FLOAT=${FLOAT:-models/model.onnx}
INT8=${INT8:-models/model.int8.onnx}
CELL_S=${CELL_S:-5}
if [[ -x .venv/bin/python ]]; then PYTHON=${PYTHON:-.venv/bin/python}; else PYTHON=${PYTHON:-python3}; fi
QUICK=()
if [[ ${1:-} == --quick ]]; then
    QUICK=(--quick)
    OUT=${OUT:-$(mktemp -d -t int8-compare-XXXX)}
fi
OUT=${OUT:-bench/results}
for model in "$FLOAT" "$INT8"; do
    [[ -f $model && -f ${model%.onnx}.json ]] || {
        echo "$model or its card ${model%.onnx}.json is missing: run dvc repro" >&2
        exit 1
    }
done
MODELS=(--models "float32=$FLOAT" "int8=$INT8")
mkdir -p "$OUT"
echo "writing to $OUT; 1-minute load average now: $(cut -d' ' -f1 /proc/loadavg)"
start=$(date +%s)

"$PYTHON" bench/serve_load.py "${QUICK[@]}" --seconds "$CELL_S" --servers ours \
    --payloads array,png,batch,npy "${MODELS[@]}" --out "$OUT/serve_load-int8.json"
echo "serve_load done after $(($(date +%s) - start)) s"

"$PYTHON" bench/bulk_score.py "${QUICK[@]}" --sizes 200000 --image-sizes 10000 \
    --ray-sizes "" --ray-image-sizes "" --criterion-size 0 "${MODELS[@]}" \
    --out "$OUT/bulk_score-int8.json"
echo "bulk_score done after $(($(date +%s) - start)) s"

for precision in float32 int8; do
    model=$FLOAT
    [[ $precision == int8 ]] && model=$INT8
    "$PYTHON" bench/serve_profile.py "${QUICK[@]}" --model "$model" \
        --out "$OUT/serve_profile-$precision.json"
done
echo "all done after $(($(date +%s) - start)) s; JSON in $OUT"
