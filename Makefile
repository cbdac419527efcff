# SwiftCNN — the two commands of the README:
#   make run    set up, build, and train the guide's model on CIFAR-10 (the main job)
#   make test   set up, build, and run every test (what CI runs)
# Other targets: setup, build, bench, verify, oclgrind, clean. Variables: see below.

SHELL := /bin/bash
APT_PACKAGES := ocl-icd-opencl-dev opencl-headers libclblast-dev pocl-opencl-icd oclgrind clinfo libpng-dev libjpeg62-turbo-dev zlib1g-dev openmpi-bin libopenmpi-dev chromium python3-venv
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Code generation: build for this machine's CPU. On the default x86-64 target, SIMD fused
# multiply-add lowers to a library call per lane (~100x slower), so the fast CPU path is
# compiled with FMA only when the target has it (SWIFTCNN_FMA). For a binary meant for
# another machine set TARGET_CPU (e.g. haswell, skylake-avx512).
ARCH := $(shell uname -m)
HAS_FMA := $(shell grep -qw fma /proc/cpuinfo 2>/dev/null && echo 1 || ([ "$(ARCH)" = aarch64 ] && echo 1))
TARGET_CPU ?= native
SWIFT_FLAGS := -Xswiftc -target-cpu -Xswiftc $(TARGET_CPU) $(if $(HAS_FMA),-Xswiftc -DSWIFTCNN_FMA)
RELEASE := -c release $(SWIFT_FLAGS)
CNN := .build/release/cnn

# Main job settings (the guide's recipe; override on the command line, e.g. `make run EPOCHS=3`).
MODEL ?= optimized
EPOCHS ?= 15
DEVICE ?= auto
RUN_ARGS ?=

.PHONY: run test setup build bench verify oclgrind clean

setup:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@command -v swift >/dev/null || { echo "Swift 6 is required (https://www.swift.org/install/linux/)"; exit 1; }

build: setup
	swift build $(RELEASE) --product cnn
	swift build $(RELEASE) --product cnn-bench

run: build
	$(CNN) train --model $(MODEL) --epochs $(EPOCHS) --device $(DEVICE) $(RUN_ARGS)

test: setup
	swift build $(RELEASE) --build-tests -Xswiftc -enable-testing
	scripts/oclgrind-check.sh $(CNN)
	swift test $(RELEASE) -Xswiftc -enable-testing --skip-build

# Every OpenCL kernel under the Oclgrind simulator (API misuse, data races), small shapes.
oclgrind: build
	scripts/oclgrind-check.sh $(CNN)

bench: build
	.build/release/cnn-bench --device all --out bench-results.json

verify: build
	$(CNN) verify --device $(DEVICE)

clean:
	rm -rf .build
