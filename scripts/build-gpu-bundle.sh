#!/usr/bin/env bash
# Builds a self-contained bundle for scripts/gpu-check.sh: a Linux x86_64 machine with an NVIDIA
# GPU and its driver, but no Swift toolchain, runs it.
#
#   scripts/build-gpu-bundle.sh [--out DIR] [--data-images N] [--no-data] [--tar] [--incremental]
#
# DIR (default .build-bundle/gpu-bundle, git-ignored) gets:
#   bin/cnn, bin/cnn-bench   release builds, --static-swift-stdlib, -target-cpu haswell (AVX2 + FMA,
#                            so -DSWIFTCNN_FMA), stripped
#   bin/BUILD_INFO.json      commit, date, flags, toolchain, the glibc the binaries need
#   lib/                     libOpenCL.so.1 (the ocl-icd loader), libclblast.so.1, and the other
#                            non-glibc libraries the binaries load (libpng16, libjpeg, zlib, and
#                            libcurl with its dependencies: the static Foundation's networking)
#   lib/fallback/            libstdc++.so.6, libgcc_s.so.1 (libclblast's C++ runtime), used by
#                            gpu-check.sh only when the machine's own are missing or too old
#   data/cifar-10-batches-bin/  the first N training and N/5 test images of CIFAR-10 (default
#                            N = 4000; --no-data leaves it out) for the short training run
#   gpu-check.sh             the check itself (see its header)
# With --tar also DIR.tar.xz (~35 MB). Needs: swift, ldd, strip, objdump, xz, the packages of `make setup`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

OUT=.build-bundle/gpu-bundle
DATA_IMAGES=4000
TAR=0
INCREMENTAL=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --data-images) DATA_IMAGES=$2; shift 2 ;;
    --no-data) DATA_IMAGES=0; shift ;;
    --tar) TAR=1; shift ;;
    --incremental) INCREMENTAL=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "build-gpu-bundle.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

TARGET_CPU=${TARGET_CPU:-haswell}
SCRATCH=${SCRATCH:-.build-bundle}
FLAGS=(-c release --static-swift-stdlib -Xswiftc -target-cpu -Xswiftc "$TARGET_CPU" -Xswiftc -DSWIFTCNN_FMA
       --scratch-path "$SCRATCH")

# The static Foundation links libcurl (FoundationNetworking: the CIFAR-10 download) by `-lcurl`, which
# needs the unversioned libcurl.so of a -dev package. Without it, point the linker at a folder with
# libcurl.so -> the installed libcurl.so.4 (the binaries then load libcurl.so.4, copied below).
LINKFIX=$SCRATCH/linkfix
mkdir -p "$LINKFIX"
for lib in curl xml2; do
  if ! ld -l"$lib" -o /dev/null --unresolved-symbols=ignore-all 2>/dev/null; then
    so=$(ldconfig -p | awk -v n="lib$lib.so." '$1 ~ "^"n {print $NF; exit}')
    [ -n "$so" ] && ln -sf "$so" "$LINKFIX/lib$lib.so"
  fi
done
FLAGS+=(-Xlinker -L"$ROOT/$LINKFIX")

# A clean build, both executables in one invocation: release builds inline across modules, and an
# incremental build that recompiled a library but not a client that inlined its old code produced a
# binary that wrote past the end of an object (heap corruption in `cnn train`). --incremental skips it.
if [ "$INCREMENTAL" = 0 ]; then rm -rf "$SCRATCH/release" "$SCRATCH/x86_64-unknown-linux-gnu/release"; fi
echo "== building cnn and cnn-bench (${FLAGS[*]})"
swift build "${FLAGS[@]}"
BIN=$(swift build "${FLAGS[@]}" --show-bin-path)

rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/lib/fallback"
cp "$BIN/cnn" "$BIN/cnn-bench" "$OUT/bin/"
strip "$OUT/bin/cnn" "$OUT/bin/cnn-bench" 2>/dev/null || echo "note: strip failed; binaries keep their symbols"
cp scripts/gpu-check.sh "$OUT/"
# PyTorch's side of the comparison (the GPU machine has PyTorch with CUDA, not the shared folder).
[ -f ../shared/bench/pytorch_baseline.py ] && cp ../shared/bench/pytorch_baseline.py "$OUT/"
chmod +x "$OUT/gpu-check.sh"

# Shared libraries: copy every non-glibc library the binaries and libclblast load (resolving
# symlinks, keeping the soname as the file name). glibc (libc, libm, libpthread, libdl, ld-linux)
# must come from the target machine.
is_glibc() {
  case "$1" in
    linux-vdso.so.*|libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|libutil.so.*|ld-linux*|libresolv.so.*) return 0 ;;
    *) return 1 ;;
  esac
}
copy_deps() {
  ldd "$1" | while read -r name arrow path _; do
    [ "$arrow" = "=>" ] || continue
    is_glibc "$name" && continue
    if [ "$path" = "not" ]; then echo "error: $1 needs $name, which is not installed here" >&2; exit 1; fi
    case "$name" in
      libstdc++.so.*|libgcc_s.so.*) dest="$OUT/lib/fallback/$name" ;;
      *) dest="$OUT/lib/$name" ;;
    esac
    [ -e "$dest" ] || cp -L "$path" "$dest"
  done
}
for f in "$OUT/bin/cnn" "$OUT/bin/cnn-bench"; do copy_deps "$f"; done
CLBLAST=$(ldd "$OUT/bin/cnn-bench" | awk '$1 ~ /^libclblast\.so/ {print $3}')
[ -n "$CLBLAST" ] && copy_deps "$CLBLAST"
for need in libOpenCL.so.1 libclblast.so.1; do
  [ -e "$OUT/lib/$need" ] || { echo "error: $need was not found among the binaries' libraries" >&2; exit 1; }
done

# The newest glibc symbol version any binary or copied library needs (the target's glibc must be >= it).
GLIBC_NEED=$( (objdump -T "$OUT"/bin/* "$OUT"/lib/*.so* "$OUT"/lib/fallback/*.so* 2>/dev/null || true) \
  | grep -o 'GLIBC_[0-9.]*' | sort -V -u | tail -1)
GLIBCXX_NEED=$( (objdump -T "$OUT"/lib/*.so* 2>/dev/null || true) | grep -o 'GLIBCXX_[0-9.]*' | sort -V -u | tail -1)

COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
DIRTY=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo true || echo false)
cat > "$OUT/bin/BUILD_INFO.json" <<EOF
{
  "commit": "$COMMIT",
  "dirty": "$DIRTY",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "flags": "${FLAGS[*]}",
  "targetCPU": "$TARGET_CPU",
  "swift": "$(swift --version 2>&1 | head -1 | sed 's/"/\\"/g')",
  "builtOn": "$(. /etc/os-release && echo "$PRETTY_NAME"), glibc $(ldd --version | head -1 | awk '{print $NF}')",
  "needsGlibc": "${GLIBC_NEED#GLIBC_}",
  "libclblastNeedsGlibcxx": "${GLIBCXX_NEED#GLIBCXX_}"
}
EOF

# A slice of CIFAR-10 for the short training run (the GPU machine may be offline).
if [ "$DATA_IMAGES" -gt 0 ]; then
  SRC=""
  for d in data/cifar-10-batches-bin ../shared/data/cifar-10-batches-bin; do
    [ -f "$d/data_batch_1.bin" ] && [ -f "$d/test_batch.bin" ] && { SRC=$d; break; }
  done
  if [ -z "$SRC" ]; then
    echo "note: no CIFAR-10 folder found (./data or ../shared/data); the bundle has no data (gpu-check skips training)"
  else
    [ "$DATA_IMAGES" -le 10000 ] || { echo "--data-images: at most 10000 (one batch file)" >&2; exit 2; }
    mkdir -p "$OUT/data/cifar-10-batches-bin"
    TEST_IMAGES=$(( DATA_IMAGES / 5 > 0 ? DATA_IMAGES / 5 : 1 ))
    head -c $(( DATA_IMAGES * 3073 )) "$SRC/data_batch_1.bin" > "$OUT/data/cifar-10-batches-bin/data_batch_1.bin"
    head -c $(( TEST_IMAGES * 3073 )) "$SRC/test_batch.bin" > "$OUT/data/cifar-10-batches-bin/test_batch.bin"
    cp "$SRC/batches.meta.txt" "$OUT/data/cifar-10-batches-bin/" 2>/dev/null || true
    printf 'The first %d training and %d test records of %s (CIFAR-10 binary layout).\nOnly data_batch_1 is present: train with --limit %d --test-limit %d.\n' \
      "$DATA_IMAGES" "$TEST_IMAGES" "$SRC" "$DATA_IMAGES" "$TEST_IMAGES" > "$OUT/data/cifar-10-batches-bin/README.txt"
  fi
fi

echo "== bundle $OUT ($(du -sh "$OUT" | cut -f1)); the target needs glibc >= ${GLIBC_NEED#GLIBC_}"
(cd "$OUT" && find . -type f | sort | xargs ls -l | awk '{printf "  %10d  %s\n", $5, $9}')
if [ "$TAR" = 1 ]; then
  # A 192 MiB dictionary lets xz see that cnn and cnn-bench share most of their bytes (static
  # Foundation): about 35 MB instead of 68 MB as .tar.gz. Unpack with `tar -xJf` (xz-utils).
  tar -C "$(dirname "$OUT")" -cf - "$(basename "$OUT")" | xz -T1 --lzma2=preset=6,dict=192MiB > "$OUT.tar.xz"
  echo "== $OUT.tar.xz ($(du -h "$OUT.tar.xz" | cut -f1))"
fi
echo "Run on the GPU machine: $OUT/gpu-check.sh [--results DIR]"
