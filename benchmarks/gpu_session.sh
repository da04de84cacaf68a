#!/bin/bash
# Every GPU measurement of this project, for a machine with a GPU (the `device` tool's `run`, from the
# repository root; its machine has torch, pytest and the other dependencies, and $OUT comes back):
#
#   bash benchmarks/gpu_session.sh checks   # ~6 min: nvidia-smi, pytest -m gpu, speed.py gpu
#   bash benchmarks/gpu_session.sh scale    # <= 9 min a call: the scale setting, 200,000 training images;
#                                           # resumable: call again (with the returned runs CSV put back) to go on
#
# Results: $OUT/speed.csv and $OUT/debiasing_runs.csv (the repository's tables with the new rows appended; copy
# them over benchmarks/results/ and commit), and a log of each step.
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
case "${1:-checks}" in
  checks)
    nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
    timeout 150 python3 -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tee "$OUT/pytest_gpu.txt"
    timeout 330 python3 benchmarks/speed.py gpu 2>&1 | tee "$OUT/speed_gpu.txt"
    cp benchmarks/results/speed.csv "$OUT/"
    ;;
  scale)
    # a CelebA-like size: the same 2% darker share as the default, 200,000 training images (100,000 ran on CPU),
    # 12 epochs, the length that converged at 100,000. `standard` and `intrinsic` give the representation gap; Group
    # DRO is the labelled reference; the default command (the two-stage recipe, its latent read after 20,000 images)
    # and SAM alone are the label-free result and its control.
    # Four runs at a time share the GPU; rows already in the CSV are skipped, so each call goes on from the last.
    # A fresh machine's /tmp is empty, so each cold call renders its sets again: with 4 processes a run (the 16
    # cores) rather than 1, the same images.
    timeout 520 python3 benchmarks/debiasing.py run --settings skin --n-train 200000 --epochs 12 --device cuda \
      --workers 4 --render-workers 4 --cache /tmp/debias-bench --seeds 0 1 2 3 4 --long-seeds \
      --methods standard intrinsic default group-dro "standard sam0.05" \
      2>&1 | tee "$OUT/scale.txt"
    python3 benchmarks/debiasing.py summary --n-train 200000 --epochs 12 > /dev/null 2>&1
    cp benchmarks/results/debiasing_runs.csv benchmarks/results/*_n200000* "$OUT/" 2>/dev/null
    ;;
  *) echo "usage: bash benchmarks/gpu_session.sh checks|scale" >&2; exit 2 ;;
esac
