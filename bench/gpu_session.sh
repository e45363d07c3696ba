#!/usr/bin/env bash
# Everything measured on the lent GPU, in one device call (the box has no MLflow/DVC):
#   bash bench/gpu_session.sh MIRROR_DIR OUT_DIR [sweep|seeds]
# Builds data/processed from the .gz files, smoke-trains 1 epoch with every
# augmentation on (fails fast), runs the speed benchmark, then the accuracy runs.
set -uo pipefail
MIRROR=${1:?folder with the MNIST .gz files}; OUT=${2:?output folder}; MODE=${3:-sweep}
export PYTHONPATH=src PYTHONUNBUFFERED=1
DATA=/tmp/mnist-processed
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 bench/prepare_data.py "$MIRROR" "$DATA" || exit 1
python3 bench/accuracy.py "$DATA" --overlay bench/params-best.yaml --set max_epochs=1 \
    --set 'hidden=[64]' --name smoke --out "$OUT/accuracy.jsonl" || exit 1
python3 bench/train_speed.py "$DATA" --out "$OUT/train_speed-cuda.json" ${BENCH_ARGS:-} \
    2>&1 | grep -v -i warn | tee "$OUT/bench.log"
# Bounded: each run gets what is left before DEADLINE seconds (the device call's limit is 600).
best() { local left=$(( ${DEADLINE:-540} - SECONDS )); [ "$left" -gt 20 ] || return 0
    timeout "$left" python3 bench/accuracy.py "$DATA" --overlay bench/params-best.yaml \
    --out "$OUT/accuracy.jsonl" "$@" 2>&1 | grep '^{' ; }
if [ "$MODE" = sweep ]; then
    for p in "batch_size=4096 lr=0.012 max_epochs=14" "batch_size=2048 lr=0.01 max_epochs=8" \
             "batch_size=1024 lr=0.006 max_epochs=8" "batch_size=2048 lr=0.008 max_epochs=10"; do
        args=(); for kv in $p; do args+=(--fast "$kv"); done
        python3 bench/train_speed.py "$DATA" --only b-fast "${args[@]}" --out /tmp/x.json \
            2>&1 | grep -E "b-fast +epoch" | sed "s|^|[$p] |" | tee -a "$OUT/profiles.log"
    done
    best --name best
    best --name best-noaffine --set augment_degrees=0 --set augment_scale=0
    best --name w2048 --set 'hidden=[2048,2048]' --set dropout=0.3
    best --name 3x1024-bn --set 'hidden=[1024,1024,1024]' --set batch_norm=true
    best --name best-b512 --set batch_size=512 --set lr=0.003 --set max_epochs=50
else
    best --name "${NAME:-best}" --seeds "${SEEDS:-1,2,3}" ${BEST_ARGS:-}
fi
