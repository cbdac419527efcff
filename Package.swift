// swift-tools-version:6.0
// SwiftCNN: train image-classification CNNs from Swift on any OpenCL GPU, or on the CPU.
// Layout and rules: README.md ("Design").
import PackageDescription

let package = Package(
    name: "SwiftCNN",
    products: [
        .library(name: "SwiftCNN", targets: ["SwiftCNN"]),
        .executable(name: "cnn", targets: ["cnn"]),
        .executable(name: "cnn-bench", targets: ["cnn-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // System libraries (Debian: ocl-icd-opencl-dev, opencl-headers, libclblast-dev).
        .systemLibrary(name: "COpenCL", path: "Sources/COpenCL",
                       providers: [.apt(["ocl-icd-opencl-dev", "opencl-headers"])]),
        .systemLibrary(name: "CCLBlast", path: "Sources/CCLBlast",
                       providers: [.apt(["libclblast-dev"])]),
        // OpenCL C sources, compiled into the binary so it runs wherever it is copied.
        .target(name: "Kernels", path: "Kernels",
                exclude: [],
                resources: [
                    .embedInCode("common.cl"),
                    .embedInCode("conv.cl"),
                    .embedInCode("pooling.cl"),
                    .embedInCode("batchnorm.cl"),
                    .embedInCode("elementwise.cl"),
                    .embedInCode("loss.cl"),
                    .embedInCode("optimizers.cl"),
                    .embedInCode("reductions.cl"),
                    .embedInCode("augment.cl"),
                    .embedInCode("lightweight.cl"),
                ]),
        .target(name: "CNNCore"),
        // The pure-Swift SGEMM engine: packing, micro-kernels, thread pool, scratch workspace.
        .target(name: "SGEMM"),
        // SGEMM timings for scripts/gemm-bench.sh (against numpy) and blocking / thread-pool sweeps.
        .executableTarget(name: "gemm-bench", dependencies: ["SGEMM"]),
        .target(name: "CPUBackend", dependencies: ["CNNCore", "SGEMM"]),
        // CLBlast's RetrieveParameters (C++ only in 1.5.3): the tuner reads a device's default GEMM parameters.
        .target(name: "CLBlastParams", path: "Sources/CLBlastParams", linkerSettings: [.linkedLibrary("clblast")]),
        .target(name: "OpenCLBackend", dependencies: ["CNNCore", "COpenCL", "CCLBlast", "CLBlastParams", "Kernels"]),
        .target(name: "NN", dependencies: ["CNNCore"]),
        // libpng / libjpeg-turbo wrappers for image-folder datasets (Debian: libpng-dev, libjpeg62-turbo-dev).
        .target(name: "CImageCodecs", path: "Sources/CImageCodecs",
                linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg")]),
        .target(name: "Datasets", dependencies: ["CNNCore", "CImageCodecs"]),
        // Runs every primitive on a device and on the CPU reference; `cnn verify` and cnn-bench's gate.
        .target(name: "Verification", dependencies: ["CNNCore"]),
        .target(name: "Training", dependencies: ["CNNCore", "NN", "Datasets"]),
        .target(name: "SwiftCNN", dependencies: ["CNNCore", "CPUBackend", "OpenCLBackend", "NN", "Datasets", "Training", "Verification"]),
        // Data-parallel training on MPI (docs/distributed.md). CMPI loads Open MPI's libmpi at run
        // time (dlopen), so nothing links against MPI and plain `cnn train` needs no MPI runtime.
        .target(name: "CMPI", path: "Sources/CMPI", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "DataParallel", dependencies: ["CMPI", "CNNCore", "NN", "Datasets", "Training"]),
        .executableTarget(name: "cnn", dependencies: [
            "SwiftCNN", "DataParallel",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // cnn-bench's logic (cases, timing, JSON, compare), a library so that BenchTests can run it.
        .target(name: "BenchKit", dependencies: [
            "SwiftCNN",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "cnn-bench", dependencies: [
            "SwiftCNN", "BenchKit",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Benchmarks"),
        .testTarget(name: "CNNCoreTests", dependencies: ["CNNCore"]),
        .testTarget(name: "SGEMMTests", dependencies: ["SGEMM"]),
        .testTarget(name: "CPUBackendTests", dependencies: ["CNNCore", "CPUBackend", "SGEMM"]),
        .testTarget(name: "OpenCLBackendTests", dependencies: ["CNNCore", "CPUBackend", "OpenCLBackend", "Verification"]),
        .testTarget(name: "NNTests", dependencies: ["CNNCore", "CPUBackend", "NN"]),
        .testTarget(name: "DatasetsTests", dependencies: ["CNNCore", "Datasets"]),
        .testTarget(name: "VerificationTests", dependencies: ["CNNCore", "CPUBackend", "OpenCLBackend", "Verification"]),
        .testTarget(name: "TrainingTests", dependencies: ["SwiftCNN"]),
        .testTarget(name: "BenchTests", dependencies: ["SwiftCNN", "BenchKit"]),
        // Data-parallel training: sharding, and `mpirun -np 2 cnn train --distributed` runs.
        .testTarget(name: "DataParallelTests", dependencies: ["SwiftCNN", "DataParallel"]),
        // Seeded mutation fuzzing of the file readers (docs/reliability.md, "Fuzzing"); Fuzz/ is its seed corpus.
        .testTarget(name: "FuzzTests", dependencies: ["CNNCore", "Datasets", "NN", "Training"], exclude: ["Fuzz"]),
    ]
)
