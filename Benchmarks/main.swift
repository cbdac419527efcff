// cnn-bench: per-op and end-to-end benchmarks on the CPU and OpenCL devices, JSON results, compare.
// The logic lives in Sources/BenchKit (tests run it in-process); see `cnn-bench --help`.
import BenchKit

CNNBench.main()
