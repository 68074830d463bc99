#!/usr/bin/env bash
# The whole benchmark suite on a GPU machine, rows appended to benchmarks/results/.
#
#   bash benchmarks/gpu_all.sh            # from the repository root, with .venv installed
#
# Needs the 'gpu' extra (cuda-bindings) for dask-cuda. Bounds with bf16 and fp32 matmul rates;
# inference in bf16 on one GPU through a dask-cuda cluster (one worker per GPU), then fp32 for
# comparison; training on cuda; the scaling plot from all rows.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
N="${DPZ_BENCH_N:-100000}"
GPUS="$("$PY" -c 'import torch; print(torch.cuda.device_count())')"
if [ "$GPUS" -lt 1 ]; then
    echo "gpu_all.sh: torch sees no CUDA GPU" >&2
    exit 1
fi
mapfile -t WORKERS < <(seq 1 "$GPUS")  # 1 2 ... GPUs

"$PY" -m benchmarks.bounds --n "$N" --device cuda --precision bf16 fp32
"$PY" -m benchmarks.inference --n "$N" --device cuda --precision bf16 --cluster cuda \
    --workers "${WORKERS[@]}" --batch-sizes 1024 4096 16384 --batch-size 4096 \
    --rows-per-task 8192 --chunk-sweep 4096 8192 16384 32768
"$PY" -m benchmarks.inference --n "$N" --device cuda --precision fp32 --cluster cuda \
    --workers "${WORKERS[@]}" --batch-sizes 4096 --batch-size 4096 --rows-per-task 8192 --chunk-sweep 8192
"$PY" -m benchmarks.training --device cuda --n 20000 --epochs 2 --tile-n "$N"
"$PY" -m benchmarks.plot_scaling
