#!/usr/bin/env bash
# Benchmarks the pure-Swift SGEMM against numpy (OpenBLAS), interleaved in one run.
# Usage: scripts/gemm-bench.sh [--portable]     env: ROUNDS=5 SHAPES=square|model POOL=1
#        SWIFTCNN_THREADS=n, OPENBLAS_NUM_THREADS=n, GEMM_KC/GEMM_MC/GEMM_NC (blocking sweep)
# Builds scripts/gemm_bench.swift with Sources/CPUBackend/Fast/*.swift directly (swiftc -O), for
# this CPU (-target-cpu native -DSWIFTCNN_FMA), or with --nofma for the default x86-64 target.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${TMPDIR:-/tmp}/swiftcnn-gemm-bench"
mkdir -p "$out"
flags=(-O -wmo -swift-version 6 -target-cpu native -DSWIFTCNN_FMA)
if [[ "${1:-}" == "--nofma" ]]; then flags=(-O -wmo -swift-version 6); fi
swiftc "${flags[@]}" -parse-as-library -module-name GEMMBench "$root"/Sources/CPUBackend/Fast/*.swift \
    "$root/scripts/gemm_bench.swift" -o "$out/gemm_bench"
exec python3 "$root/scripts/gemm_bench.py" "$out/gemm_bench"
