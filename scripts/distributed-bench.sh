#!/usr/bin/env bash
# Data-parallel throughput on this machine: `train:optimized:128`-sized steps (model optimized,
# batch 128 per rank, no augmentation), 1 rank x 1 thread against 2 ranks x 1 thread under
# mpirun, back to back, REPS times. Prints each run's training images/s and, for the 2-rank
# runs, the allreduce share of the step (from cnn train's "data parallel:" line).
#   scripts/distributed-bench.sh [REPS=3] [STEPS=10]   (DIST_ARGS: more options for the 2-rank run, e.g. --bucket-mb 64)
# Needs CIFAR-10 (../shared/data or ./data) and a release build (.build/release/cnn).
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-3}
STEPS=${2:-10}
CNN=.build/release/cnn
RUNS=$(mktemp -d)
trap 'rm -rf "$RUNS"' EXIT
# STEPS steps of 128 for one rank; the 2-rank run gets twice the images, so the same STEPS steps of 2 x 128.
one_limit=$((128 * STEPS * 5 / 4))
two_limit=$((256 * STEPS * 5 / 4))
common=(train --model optimized --batch-size 128 --epochs 1 --no-augment --workers 1 --no-test --no-progress
        --device cpu --val-split 0.2 --runs-dir "$RUNS")
for rep in $(seq "$REPS"); do
    one=$(SWIFTCNN_THREADS=1 $CNN "${common[@]}" --limit $one_limit --name "one-$rep" 2>&1 | grep -o '([0-9.]* img/s)' | tr -dc '0-9.')
    out=$(SWIFTCNN_THREADS=1 mpirun --oversubscribe --allow-run-as-root -np 2 --mca btl_vader_single_copy_mechanism none \
          $CNN "${common[@]}" --limit $two_limit --name "two-$rep" --distributed ${DIST_ARGS:-} 2>&1)
    two=$(grep -o '[0-9]* images/s over all ranks' <<<"$out" | tr -dc '0-9')
    share=$(grep -o 'gradient allreduce .*' <<<"$out" | head -1)
    # Control: two independent 1-thread processes at once (no MPI) — what this machine gives two
    # processes right now (a shared machine: other jobs take cores).
    SWIFTCNN_THREADS=1 $CNN "${common[@]}" --limit $one_limit --name "pa-$rep" >"$RUNS/pa.log" 2>&1 &
    SWIFTCNN_THREADS=1 $CNN "${common[@]}" --limit $one_limit --name "pb-$rep" >"$RUNS/pb.log" 2>&1
    wait
    pair=$(cat "$RUNS/pa.log" "$RUNS/pb.log" | grep -o '([0-9.]* img/s)' | tr -dc '0-9.\n' | paste -sd+ | bc)
    ratio=$(python3 -c "print(f'{$two / $one:.2f}')")
    pratio=$(python3 -c "print(f'{$pair / $one:.2f}')")
    echo "rep $rep: 1 rank x 1 thread $one img/s; 2 ranks x 1 thread $two img/s; ratio ${ratio}x; control: 2 independent processes $pair img/s (${pratio}x); $share"
done
