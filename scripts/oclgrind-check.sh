#!/usr/bin/env bash
# Runs every OpenCL kernel under Oclgrind, the OpenCL device simulator that reports what PoCL
# tolerates and a GPU turns into wrong answers: API misuse (--check-api) and data races
# (--data-races). `cnn verify --quick` launches every kernel of Kernels/*.cl (KernelCoverageTests
# checks that) plus the CLBlast GEMM kernels it uses, on small shapes, and compares each result
# with the CPU reference; its deviceBatch cases run Kernels/augment.cl (batches built on the device,
# resident and staged) against the host pipeline. Fails on any Oclgrind report or any failed check. About 15 s here.
#
# Not used: --uninitialized. Oclgrind 21.10 (Debian 12) stops with "Unsupported instruction:
# freeze" in that plugin on integer division in im2col/col2im, and reports CLBlast's XgemmDirect
# writing uninitialised values to local memory (its tile padding), so it cannot give a clean run.
#
# Usage: scripts/oclgrind-check.sh [path/to/cnn]     (default .build/release/cnn)
set -euo pipefail
cd "$(dirname "$0")/.."
cnn="${1:-.build/release/cnn}"
command -v oclgrind >/dev/null || { echo "oclgrind is not installed (Debian: apt-get install oclgrind)" >&2; exit 1; }
[ -x "$cnn" ] || { echo "no $cnn: build it first (make build)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
start=$(date +%s%N)
status=0
# A program cache of its own: Oclgrind compiles from source, and its binaries are not PoCL's.
# Oclgrind writes its reports to stderr (its --log option does not take the API errors): every
# report names the kernel or the API function on a tab-indented "Kernel:" / "Function:" line.
SWIFTCNN_CACHE_DIR="$work/cache" oclgrind --check-api --data-races \
    "$cnn" verify --device opencl --quick > "$work/verify.txt" 2> "$work/stderr.txt" || status=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
cat "$work/stderr.txt" "$work/verify.txt" | grep -E "^(device|all [0-9]+ checks|[0-9]+ of [0-9]+ checks)" || true
reports=$(grep -cE "^(Oclgrind - |OCLGRIND )|^[[:space:]]+(Kernel|Function): " "$work/stderr.txt" || true)
if [ "${reports:-0}" != 0 ]; then
    echo "Oclgrind reported problems ($reports report lines):"
    grep -v "^[0-9]* checks in" "$work/stderr.txt" | head -100
    status=1
fi
if [ "$status" != 0 ]; then
    echo "--- cnn verify output (failures) ---"
    grep -v " pass$" "$work/verify.txt" | head -60
    echo "oclgrind check FAILED in $((ms / 1000)).$((ms % 1000 / 100)) s"
    exit 1
fi
echo "oclgrind check: 0 reports (--check-api --data-races), every check passed, $((ms / 1000)).$((ms % 1000 / 100)) s"
