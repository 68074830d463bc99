#!/usr/bin/env bash
# The whole benchmark suite on a GPU machine, rows appended to benchmarks/results/.
#
#   bash benchmarks/gpu_all.sh            # from the repository root, with .venv installed
#
# Needs the 'gpu' extra (cuda-bindings) for dask-cuda. Bounds with bf16 and fp32 matmul rates;
# inference in bf16 on one GPU through a dask-cuda cluster (one worker per GPU): GaZNet-1 at
# batch 4096 and 16384, and the 50-member DEEPZ ensemble (stacked members, summaries on the GPU);
# then fp32 for comparison; training on cuda; the scaling plot from all rows. Each step has a
# time limit so the whole script ends within 9 minutes on one H100/H200.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
N="${DPZ_BENCH_N:-50000}"
GPUS="$("$PY" -c 'import torch; print(torch.cuda.device_count())')"
if [ "$GPUS" -lt 1 ]; then
    echo "gpu_all.sh: torch sees no CUDA GPU" >&2
    exit 1
fi
mapfile -t WORKERS < <(seq 1 "$GPUS")  # 1 2 ... GPUs

step() { timeout "$1" "${@:2}" || echo "gpu_all.sh: step failed or timed out: ${*:2}" >&2; }

step 150 "$PY" -m benchmarks.bounds --n "$N" --device cuda --precision bf16 fp32
step 180 "$PY" -m benchmarks.inference --n "$N" --device cuda --precision bf16 --cluster cuda \
    --workers "${WORKERS[@]}" --batch-sizes 4096 16384 --batch-size 16384 --ensemble-members 50 \
    --rows-per-task 16384 --chunk-sweep 16384 32768
step 60 "$PY" -m benchmarks.inference --n "$N" --device cuda --precision fp32 --cluster cuda \
    --workers "${WORKERS[@]}" --batch-sizes 16384 --batch-size 16384 --ensemble-members 50 --rows-per-task 16384
step 90 "$PY" -m benchmarks.training --device cuda --n 20000 --epochs 2 --tile-n "$N"
step 20 "$PY" -m benchmarks.plot_scaling
