#!/usr/bin/env bash
# Benchmarks the pure-Swift SGEMM against numpy (OpenBLAS), interleaved in one run.
# Usage: scripts/gemm-bench.sh [--nofma]     env: ROUNDS=5 SHAPES=square|model POOL=1
#        SWIFTCNN_THREADS=n, OPENBLAS_NUM_THREADS=n, GEMM_KC/GEMM_MC/GEMM_NC (blocking sweep)
# Builds the gemm-bench executable (Sources/gemm-bench, on the SGEMM target) in release mode with
# the Makefile's code-generation flags: -target-cpu $TARGET_CPU (default native) and -DSWIFTCNN_FMA
# when the CPU has FMA, into .build like `make build`. --nofma builds it for the default target
# without those flags (no FMA: what a build without the Makefile's flags runs), in .build-nofma so
# that the main build is left alone.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [[ "${1:-}" == "--nofma" ]]; then
    flags=(--scratch-path "$root/.build-nofma")
else
    flags=(-Xswiftc -target-cpu -Xswiftc "${TARGET_CPU:-native}")
    if grep -qw fma /proc/cpuinfo 2>/dev/null || [[ "$(uname -m)" == aarch64 ]]; then
        flags+=(-Xswiftc -DSWIFTCNN_FMA)
    fi
fi
swift build -c release "${flags[@]}" --product gemm-bench >&2
exe="$(swift build -c release "${flags[@]}" --product gemm-bench --show-bin-path)/gemm-bench"
exec python3 "$root/scripts/gemm_bench.py" "$exe"
