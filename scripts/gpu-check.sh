#!/usr/bin/env bash
# gpu-check.sh — SwiftCNN on an NVIDIA GPU machine without a Swift toolchain, in one call of at most
# about 10 minutes (default budget 540 s: a 15-minute device session with room for start-up).
#
# Runs from the bundle that scripts/build-gpu-bundle.sh makes (bin/cnn, bin/cnn-bench built with
# --static-swift-stdlib; lib/libOpenCL.so.1, lib/libclblast.so.1, ...; data/ a CIFAR-10 slice;
# pytorch_baseline.py):
#
#   gpu-check.sh [--results DIR] [--budget SECONDS]
#
#   1. environment: OS, glibc, CPU, nvidia-smi, the bundle's BUILD_INFO.json      -> env.txt
#   2. libraries: LD_LIBRARY_PATH=bundle/lib (+ lib/fallback when the machine's libstdc++ is missing
#      or too old for libclblast)                                                 -> libs.txt
#   3. the NVIDIA OpenCL ICD: looks for libnvidia-opencl.so* in the driver mounts (/usr/local/nvidia/lib64,
#      /usr/lib/x86_64-linux-gnu, ..., ldconfig) and reports what it finds; when no ICD file names it,
#      writes /etc/OpenCL/vendors/nvidia.icd (libnvidia-opencl.so.1), or, without root, an ICD folder in
#      the results and OCL_ICD_VENDORS pointing at it                             -> icd.txt
#   then the steps, most valuable first, each with a time cap (never past the budget):
#   devices     cnn devices                                                       -> devices.txt
#   verify      cnn verify --device opencl (every kernel against the CPU reference) -> verify.txt
#   tune        cnn tune --device opencl (CLBlast GEMM search, ~30 s, then our kernels' work-group
#               sizes, a few seconds; later steps use both)                      -> tune.txt, tune.json
#   bench-e2e   cnn-bench on the GPU, end-to-end cases train:*, infer:*, epoch:* (perStep counts
#               in the JSON)                                                      -> bench-e2e.json/.txt
#   pt-*        PyTorch eager on CUDA, the same cases, one step each (pytorch_baseline.py; TF32 off)
#               -> pytorch/*.json, merged into pytorch-cuda.json
#   compare-pt  cnn-bench compare PyTorch vs SwiftCNN                             -> compare-pt.txt
#   train       a short real training run of `optimized` (with --data-on-device when this cnn has it) -> train.txt, run/
#   roofline    cnn-bench --roofline h200 on train:optimized:128, train:speedrun:512 (when this
#               cnn-bench has --roofline)                                         -> roofline.json/.txt
#   bench-ops   cnn-bench on the GPU, the per-op cases (short repetitions)         -> bench-ops.json/.txt
#   bench-cpu   cnn-bench on the CPU (GEMM, train b128, infer b256) and compare-cpu -> bench-cpu.json, compare-cpu.txt
#   report      one table of the end-to-end figures (python3)                     -> report.txt
# A glibc older than the bundle needs stops the run at step 2 with a clear message (nothing could start).
# An ICD file that names NVIDIA is trusted only when its library loads; the driver's folder is put on
# LD_LIBRARY_PATH whenever libnvidia-opencl.so* was found.
# A step that fails or times out is recorded and the next one runs (its partial output is kept).
# summary.txt lists each step's status and seconds; the folder is also packed as DIR.tar.gz. Exit
# status: 0 when every step passed, 1 otherwise.
#
# Results go to --results DIR, else $OUT/gpu-check when $OUT is set, else ./gpu-check-results-DATE.
# For testing elsewhere: GPU_CHECK_DRIVER_DIRS (colon-separated folders searched first for
# libnvidia-opencl.so*), GPU_CHECK_VENDORS_DIR (instead of /etc/OpenCL/vendors; then exported as
# OCL_ICD_VENDORS), GPU_CHECK_DEVICE (default opencl), GPU_CHECK_TORCH_DEVICE (default cuda), and
# GPU_CHECK_SMALL=1 (smaller cases: a rehearsal on a CPU OpenCL driver such as PoCL).
set -uo pipefail

BUNDLE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUDGET=540
RESULTS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --results) RESULTS=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    -h|--help) sed -n '2,44p' "$0"; exit 0 ;;
    *) echo "gpu-check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$RESULTS" ]; then
  if [ -n "${OUT:-}" ]; then RESULTS=$OUT/gpu-check; else RESULTS=$PWD/gpu-check-results-$(date -u +%Y%m%d-%H%M%S); fi
fi
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
START=$(date +%s)
SUMMARY=$RESULTS/summary.txt
: > "$SUMMARY"
FAILED=0

say() { echo "$*" | tee -a "$SUMMARY"; }
elapsed() { echo $(( $(date +%s) - START )); }
# step NAME CAP_SECONDS COMMAND...: runs COMMAND with a time cap (never past the budget), output to
# NAME.txt and the terminal; records status and seconds in the summary.
step() {
  local name=$1 cap=$2; shift 2
  local left=$(( BUDGET - $(elapsed) - 5 ))
  [ "$cap" -gt "$left" ] && cap=$left
  if [ "$cap" -lt 5 ]; then
    say "$(printf '%-12s SKIPPED (the %ss budget is spent)' "$name" "$BUDGET")"
    FAILED=1
    return 1
  fi
  echo "---- $name (cap ${cap}s): $*" | tee "$RESULTS/$name.txt"
  local t0 rc
  t0=$(date +%s)
  timeout --kill-after=5 "$cap" "$@" 2>&1 | tee -a "$RESULTS/$name.txt"
  rc=${PIPESTATUS[0]}
  local secs=$(( $(date +%s) - t0 ))
  case $rc in
    0) say "$(printf '%-12s ok      %4ss' "$name" "$secs")" ;;
    124|137) say "$(printf '%-12s TIMEOUT %4ss (cap %ss; partial output kept)' "$name" "$secs" "$cap")"; FAILED=1 ;;
    *) say "$(printf '%-12s FAILED  %4ss (exit %s)' "$name" "$secs" "$rc")"; FAILED=1 ;;
  esac
  return $rc
}

say "gpu-check: bundle $BUNDLE, results $RESULTS, budget ${BUDGET}s, $(date -u +%Y-%m-%dT%H:%M:%SZ)"

# ---------------------------------------------------------------- 1. environment
{
  echo "== uname"; uname -a
  echo "== os"; (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME") || echo unknown
  echo "== glibc"; ldd --version 2>&1 | head -1
  echo "== cpu"; grep -m1 'model name' /proc/cpuinfo; echo "cores: $(nproc)"
  echo "== memory"; grep -E 'MemTotal|MemAvailable' /proc/meminfo
  echo "== nvidia-smi"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1
    nvidia-smi 2>&1 | head -20
  else
    echo "nvidia-smi not found"
  fi
  echo "== BUILD_INFO.json"; cat "$BUNDLE/bin/BUILD_INFO.json" 2>/dev/null || echo "none"
  echo "== NVIDIA_* environment"; env | grep -E '^NVIDIA_|^CUDA_' || true
} > "$RESULTS/env.txt" 2>&1
say "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; GPU: $( (nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found') | head -1)"

# ---------------------------------------------------------------- 2. libraries
export LD_LIBRARY_PATH="$BUNDLE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
{
  need=$(sed -n 's/.*"needsGlibc": "\([0-9.]*\)".*/\1/p' "$BUNDLE/bin/BUILD_INFO.json" 2>/dev/null)
  have=$(ldd --version 2>&1 | head -1 | grep -o '[0-9]\+\.[0-9]\+$')
  echo "glibc: the bundle needs >= ${need:-?}, this machine has ${have:-?}"
  if [ -n "$need" ] && [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]; then
    echo "GLIBC_TOO_OLD"
  fi
} > "$RESULTS/libs.txt"
if grep -q GLIBC_TOO_OLD "$RESULTS/libs.txt"; then
  # Every binary of the bundle would fail to start ("GLIBC_2.xx not found"): stop here, clearly.
  say "glibc: this machine has $(grep -o 'this machine has [0-9.?]*' "$RESULTS/libs.txt" | cut -d' ' -f4) but the bundle needs"
  say "       $(grep -o 'needs >= [0-9.?]*' "$RESULTS/libs.txt" | cut -d' ' -f3); no step can run. Build the bundle on a distribution"
  say "       with an older glibc (scripts/build-gpu-bundle.sh records the need in bin/BUILD_INFO.json)."
  tar -C "$(dirname "$RESULTS")" -czf "$RESULTS.tar.gz" "$(basename "$RESULTS")" 2>/dev/null
  exit 1
fi
if ldd "$BUNDLE/bin/cnn-bench" 2>&1 | grep -q 'not found' || ! "$BUNDLE/bin/cnn-bench" --help > /dev/null 2>>"$RESULTS/libs.txt"; then
  echo "using lib/fallback (libstdc++ / libgcc_s missing or too old here)" >> "$RESULTS/libs.txt"
  export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$BUNDLE/lib/fallback"
fi
{ echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"; echo "== ldd bin/cnn-bench"; ldd "$BUNDLE/bin/cnn-bench"
  echo "== ldd lib/libclblast.so.1"; ldd "$BUNDLE/lib/libclblast.so.1"; } >> "$RESULTS/libs.txt" 2>&1
grep -q 'not found' "$RESULTS/libs.txt" && say "libraries: something is missing, see libs.txt" || say "libraries: ok (libs.txt)"

# ---------------------------------------------------------------- 3. NVIDIA OpenCL ICD
VENDORS=${GPU_CHECK_VENDORS_DIR:-/etc/OpenCL/vendors}
{
  echo "== ICD files in $VENDORS"
  for f in "$VENDORS"/*.icd; do [ -e "$f" ] && echo "$f: $(cat "$f")"; done
  [ -n "${OCL_ICD_VENDORS:-}" ] && echo "OCL_ICD_VENDORS=$OCL_ICD_VENDORS"
  echo "== libnvidia-opencl.so* in the driver mounts"
} > "$RESULTS/icd.txt" 2>&1
FOUND=()
IFS=: read -r -a EXTRA_DIRS <<< "${GPU_CHECK_DRIVER_DIRS:-}"
for d in "${EXTRA_DIRS[@]}" /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /lib/x86_64-linux-gnu \
         /usr/local/cuda/lib64 /run/nvidia/driver/usr/lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/nvidia/current; do
  for f in "$d"/libnvidia-opencl.so*; do [ -e "$f" ] && FOUND+=("$f"); done
done
while read -r f; do [ -n "$f" ] && FOUND+=("$f"); done < <(ldconfig -p 2>/dev/null | awk '/libnvidia-opencl\.so/ {print $NF}')
mapfile -t FOUND < <(printf '%s\n' "${FOUND[@]}" | awk 'NF' | sort -u)
printf '%s\n' "${FOUND[@]:-none found}" >> "$RESULTS/icd.txt"
# Also report the other driver libraries OpenCL needs (libcuda, the PTX JIT).
for f in "${FOUND[@]}"; do
  { echo "== ldd $f"; ldd "$f" 2>&1; } >> "$RESULTS/icd.txt"
done
{ echo "== other NVIDIA libraries in those folders"
  ls -1 /usr/local/nvidia/lib64/ /usr/lib/x86_64-linux-gnu/ 2>/dev/null | grep -E '^lib(cuda|nvidia-(ptxjitcompiler|opencl|compiler))' | sort -u; } >> "$RESULTS/icd.txt"

# The driver's folder goes on the library path whenever the library was found: its neighbours
# (libcuda, the PTX JIT) must load with it, whether or not an ICD file already names it.
for f in "${FOUND[@]}"; do
  case ":$LD_LIBRARY_PATH:" in *":$(dirname "$f"):"*) ;; *) export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$f")" ;; esac
done
# loads LIB: true when LIB (a path, or a name the loader resolves) exists and its dependencies resolve.
loads() {
  local lib=$1 path=$1
  if [ "${lib#/}" = "$lib" ]; then
    path=$(ldconfig -p 2>/dev/null | awk -v n="$lib" '$1 == n {print $NF; exit}')
    if [ -z "$path" ]; then
      local d; IFS=: read -r -a dirs <<< "$LD_LIBRARY_PATH"
      for d in "${dirs[@]}"; do [ -n "$d" ] && [ -e "$d/$lib" ] && { path=$d/$lib; break; }; done
    fi
  fi
  [ -n "$path" ] && [ -e "$path" ] && ! ldd "$path" 2>&1 | grep -q 'not found'
}
REGISTERED=$(grep -ls 'nvidia' "$VENDORS"/*.icd 2>/dev/null | head -1)
if [ -n "$REGISTERED" ] && loads "$(head -1 "$REGISTERED")"; then
  say "OpenCL ICD: already registered and its library loads ($REGISTERED: $(cat "$REGISTERED"))"
  [ "$VENDORS" != /etc/OpenCL/vendors ] && export OCL_ICD_VENDORS="$VENDORS"
elif [ -n "$REGISTERED" ] && [ ${#FOUND[@]} -eq 0 ]; then
  say "OpenCL ICD: $REGISTERED names $(cat "$REGISTERED"), which does not load here (missing, or its dependencies are"
  say "            missing: see icd.txt), and no libnvidia-opencl.so was found; OpenCL steps will fail, CPU steps still run"
  { echo "== ldd of the registered library"; ldd "$(head -1 "$REGISTERED")" 2>&1; } >> "$RESULTS/icd.txt"
elif [ ${#FOUND[@]} -eq 0 ]; then
  say "OpenCL ICD: NO libnvidia-opencl.so found in the driver mounts — the container needs the driver's OpenCL library"
  say "            (e.g. NVIDIA_DRIVER_CAPABILITIES=compute,utility or all); OpenCL steps will fail, CPU steps still run"
else
  # Prefer the .so.1 the dynamic loader finds by name; else the first file by absolute path.
  LIB=""
  for f in "${FOUND[@]}"; do case "$f" in */libnvidia-opencl.so.1) LIB=$f; break ;; esac; done
  [ -z "$LIB" ] && LIB=${FOUND[0]}
  LIBDIR=$(dirname "$LIB")
  NAME=libnvidia-opencl.so.1
  if ! ldconfig -p 2>/dev/null | grep -q 'libnvidia-opencl\.so\.1 '; then
    NAME=$LIB   # not in the loader's cache: name it by path (its folder is on LD_LIBRARY_PATH above)
  fi
  [ -n "$REGISTERED" ] && say "OpenCL ICD: $REGISTERED names $(cat "$REGISTERED"), which does not load here; registering $NAME instead"
  ICD_FILE=$VENDORS/nvidia.icd
  [ -n "$REGISTERED" ] && ICD_FILE=$VENDORS/nvidia-swiftcnn.icd
  if { mkdir -p "$VENDORS" && echo "$NAME" > "$ICD_FILE"; } 2>/dev/null; then
    say "OpenCL ICD: wrote $ICD_FILE -> $NAME (found: ${FOUND[*]})"
    [ "$VENDORS" != /etc/OpenCL/vendors ] && export OCL_ICD_VENDORS="$VENDORS"
  else
    mkdir -p "$RESULTS/icd"
    echo "$LIB" > "$RESULTS/icd/nvidia.icd"
    export OCL_ICD_VENDORS="$RESULTS/icd"
    say "OpenCL ICD: /etc/OpenCL/vendors not writable; OCL_ICD_VENDORS=$OCL_ICD_VENDORS -> $LIB (found: ${FOUND[*]})"
  fi
fi
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >> "$RESULTS/icd.txt"

# ---------------------------------------------------------------- the checks
CNN=$BUNDLE/bin/cnn
BENCH=$BUNDLE/bin/cnn-bench
DATA=$BUNDLE/data/cifar-10-batches-bin
DEV=${GPU_CHECK_DEVICE:-opencl}
TORCH_DEV=${GPU_CHECK_TORCH_DEVICE:-cuda}
# Scratch outside the results (they come back from the device session; checkpoints and program
# binaries are tens of MB): fresh program and tuning caches, so compile and tuning times are measured.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-work.XXXXXX")
export SWIFTCNN_CACHE_DIR="$WORK/cache"
# Case sizes: the GPU's, or (GPU_CHECK_SMALL=1, a rehearsal on a CPU driver) small ones of the same kinds.
if [ "${GPU_CHECK_SMALL:-0}" = 1 ]; then
  E2E_FILTER='train:optimized:128,infer:optimized:128,epoch:*'; E2E_BATCH=(--batch 128); EPOCH_IMAGES=256; REPS=3
  PT_CASES=train:optimized:128,infer:optimized:128; TRAIN_EPOCHS=1; TRAIN_LIMIT=512
  PT_ARGS=(--warmup 2 --steps 5); PT_CAP=60; VERIFY_CAP=150
else
  # the default batches: 64, 128, 256 and train:speedrun:512
  E2E_FILTER='train:*,infer:*,epoch:*'; E2E_BATCH=(); EPOCH_IMAGES=2048; REPS=10
  PT_CASES=train:optimized:128,train:speedrun:512,train:cnn:128,infer:optimized:256,infer:cnn:256; TRAIN_EPOCHS=2; TRAIN_LIMIT=
  PT_ARGS=(); PT_CAP=40; VERIFY_CAP=75
fi
# Options that other work adds to cnn and cnn-bench: used when this build has them.
BENCH_HELP=$("$BENCH" run --help 2>&1 || true)
TRAIN_HELP=$("$CNN" train --help 2>&1 || true)
has_option() { printf '%s\n' "$1" | grep -q -- "$2"; }

step devices 20 "$CNN" devices
step verify "$VERIFY_CAP" "$CNN" verify --device "$DEV"
step tune 90 "$CNN" tune --device "$DEV" --json "$RESULTS/tune.json"
step bench-e2e 150 "$BENCH" --device "$DEV" --filter "$E2E_FILTER" "${E2E_BATCH[@]}" --reps "$REPS" --min-reps 2 \
  --max-case-seconds 4 --case-budget 20 --device-time-reps 2 --epoch-images "$EPOCH_IMAGES" --data "$DATA" \
  --out "$RESULTS/bench-e2e.json"

# PyTorch eager on CUDA, the same cases side by side (the GPU machine has PyTorch; the bundle carries
# ../shared/bench/pytorch_baseline.py when build-gpu-bundle.sh found it).
# One step per case (the script writes its JSON only at the end: a timeout then loses one case, not all),
# merged into pytorch-$TORCH_DEV.json for `cnn-bench compare`.
if [ -f "$BUNDLE/pytorch_baseline.py" ] && python3 -c "import torch, sys; sys.exit(0 if '$TORCH_DEV' == 'cpu' or torch.cuda.is_available() else 1)" 2>/dev/null; then
  mkdir -p "$RESULTS/pytorch"
  IFS=, read -r -a PT_LIST <<< "$PT_CASES"
  for c in "${PT_LIST[@]}"; do
    step "pt-${c//:/-}" "$PT_CAP" python3 "$BUNDLE/pytorch_baseline.py" --device "$TORCH_DEV" --cases "$c" "${PT_ARGS[@]}" \
      --out "$RESULTS/pytorch/${c//:/-}.json"
  done
  python3 - "$RESULTS/pytorch" "$RESULTS/pytorch-$TORCH_DEV.json" <<'PY'
import glob, json, sys
parts = [json.load(open(f)) for f in sorted(glob.glob(sys.argv[1] + "/*.json"))]
if parts:
    merged = dict(parts[0]); merged["results"] = [r for p in parts for r in p.get("results", [])]
    json.dump(merged, open(sys.argv[2], "w"), indent=2)
PY
  [ -f "$RESULTS/pytorch-$TORCH_DEV.json" ] && [ -f "$RESULTS/bench-e2e.json" ] && \
    step compare-pt 10 "$BENCH" compare "$RESULTS/pytorch-$TORCH_DEV.json" "$RESULTS/bench-e2e.json"
else
  say "pytorch      SKIPPED (no pytorch_baseline.py in the bundle, or no PyTorch with $TORCH_DEV here)"
fi

if [ -f "$DATA/data_batch_1.bin" ]; then
  N=$(( $(stat -c %s "$DATA/data_batch_1.bin") / 3073 ))
  [ -n "$TRAIN_LIMIT" ] && [ "$TRAIN_LIMIT" -lt "$N" ] && N=$TRAIN_LIMIT
  NT=$(( $(stat -c %s "$DATA/test_batch.bin" 2>/dev/null || echo 0) / 3073 ))
  ON_DEVICE=()
  if has_option "$TRAIN_HELP" --data-on-device; then ON_DEVICE=(--data-on-device)
  else say "train        note: this cnn has no --data-on-device; training with the host pipeline"; fi
  PROFILE=()
  has_option "$TRAIN_HELP" -- --profile && PROFILE=(--profile)
  step train 75 "$CNN" train --model optimized --batch-size 128 --epochs "$TRAIN_EPOCHS" --device "$DEV" --data "$DATA" \
    --limit "$N" --test-limit "$(( NT > 0 ? NT : 1 ))" --runs-dir "$WORK/runs" --name gpu-check --no-progress \
    "${ON_DEVICE[@]}" "${PROFILE[@]}"
  # The run's text files (metrics, report, config); its checkpoints stay in the scratch folder.
  mkdir -p "$RESULTS/run" && cp "$WORK"/runs/gpu-check/*.json* "$WORK"/runs/gpu-check/*.txt "$WORK"/runs/gpu-check/*.csv "$RESULTS/run/" 2>/dev/null
else
  say "train        SKIPPED (the bundle has no data/; build it with --data-images N)"
fi

if has_option "$BENCH_HELP" --roofline; then
  printf '%s\n' "$BENCH_HELP" | grep -A3 -- --roofline > "$RESULTS/roofline-help.txt"
  step roofline 60 "$BENCH" --device "$DEV" --filter 'train:optimized:128,train:speedrun:512' --batch 128,512 --reps 3 --min-reps 1 \
    --max-case-seconds 4 --epoch-images 0 --roofline h200 --out "$RESULTS/roofline.json"
else
  say "roofline     SKIPPED (this cnn-bench has no --roofline)"
fi

step bench-ops 60 "$BENCH" --device "$DEV" --exclude 'train:*,infer:*,epoch:*' --reps 3 --min-reps 1 --max-case-seconds 1 \
  --case-budget 3 --device-time-reps 0 --epoch-images 0 --out "$RESULTS/bench-ops.json"
step bench-cpu 40 "$BENCH" --device cpu --filter 'gemm:square:*,train:optimized:128,infer:optimized:256' --reps 3 --min-reps 1 \
  --max-case-seconds 3 --case-budget 8 --epoch-images 0 --out "$RESULTS/bench-cpu.json"
if [ -f "$RESULTS/bench-cpu.json" ] && [ -f "$RESULTS/bench-e2e.json" ]; then
  step compare-cpu 10 "$BENCH" compare "$RESULTS/bench-cpu.json" "$RESULTS/bench-e2e.json" --threshold 0.1
fi

# One table: SwiftCNN end to end (images/s, perStep) beside PyTorch, and the tuning result.
if command -v python3 >/dev/null; then
  step report 10 python3 - "$RESULTS" <<'PY'
import json, os, sys
d = sys.argv[1]
def load(name):
    try:
        with open(os.path.join(d, name)) as f: return json.load(f)
    except Exception as e:
        print(f"{name}: not available ({e.__class__.__name__})"); return None
def cases(doc):
    if doc is None: return []
    if isinstance(doc, dict):
        for k in ("results", "cases"):
            if isinstance(doc.get(k), list): return doc[k]
    return doc if isinstance(doc, list) else []
def rate(c):
    for k in ("imagesPerSecond", "images_per_s", "imagesPerSec", "throughput"):
        if isinstance(c.get(k), (int, float)): return c[k]
    return None
tune = load("tune.json")
if tune:
    print(f"tuning: {tune.get('searchSeconds', 0):.1f} s, {tune.get('candidatesTimed')} timed, "
          f"{tune.get('rejectedByGate')} rejected by the gate; GEMM total "
          f"{sum(s['defaultSeconds'] for s in tune['shapes'])*1e3:.3f} -> {sum(s['tunedSeconds'] for s in tune['shapes'])*1e3:.3f} ms")
    wg = tune.get("workGroups")
    if wg:
        changed = [f"{k['kernel']} {k['defaultLocal']}->{k['chosenLocal']}" for k in wg["kernels"] if k["chosenLocal"] != k["defaultLocal"]]
        print(f"work-group sizes: {wg.get('searchSeconds', 0):.1f} s, {len(changed)} of {len(wg['kernels'])} kernels changed"
              f"{': ' + ', '.join(changed) if changed else ''}; {wg.get('rejectedByGate')} rejected by the gate")
ptfiles = [f for f in os.listdir(d) if f.startswith("pytorch-") and f.endswith(".json")]
pt = {c.get("name") or c.get("case"): c for c in cases(load(ptfiles[0]) if ptfiles else None)}
print(f"{'case':28} {'SwiftCNN img/s':>15} {'PyTorch img/s':>14} {'ratio':>6}  perStep")
for c in cases(load("bench-e2e.json")):
    name = c.get("name", "?"); r = rate(c); p = rate(pt.get(name, {})) if name in pt else None
    ps = c.get("perStep") or {}
    per = ", ".join(f"{k} {v:g}" for k, v in ps.items() if isinstance(v, (int, float)))
    print(f"{name:28} {r if r is not None else float('nan'):15.1f} {p if p is not None else float('nan'):14.1f} "
          f"{(r / p) if r and p else float('nan'):6.2f}  {per}")
PY
fi

mkdir -p "$RESULTS/tuning-cache" && cp "$SWIFTCNN_CACHE_DIR"/tuning/*.json "$RESULTS/tuning-cache/" 2>/dev/null
rm -rf "$WORK"
say "gpu-check: done in $(elapsed)s (budget ${BUDGET}s); $([ $FAILED = 0 ] && echo 'every step passed' || echo 'some steps FAILED or timed out')"
tar -C "$(dirname "$RESULTS")" -czf "$RESULTS.tar.gz" "$(basename "$RESULTS")" 2>/dev/null && say "packed $RESULTS.tar.gz"
exit $FAILED
