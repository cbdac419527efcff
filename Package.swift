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
                ]),
        .target(name: "CNNCore"),
        .target(name: "CPUBackend", dependencies: ["CNNCore"]),
        .target(name: "OpenCLBackend", dependencies: ["CNNCore", "COpenCL", "CCLBlast", "Kernels"]),
        .target(name: "NN", dependencies: ["CNNCore"]),
        .target(name: "Datasets", dependencies: ["CNNCore"]),
        .target(name: "Training", dependencies: ["CNNCore", "NN", "Datasets", "CPUBackend", "OpenCLBackend"]),
        .target(name: "SwiftCNN", dependencies: ["CNNCore", "CPUBackend", "OpenCLBackend", "NN", "Datasets", "Training"]),
        .executableTarget(name: "cnn", dependencies: [
            "SwiftCNN",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "cnn-bench", dependencies: [
            "SwiftCNN",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Benchmarks"),
        .testTarget(name: "CNNCoreTests", dependencies: ["CNNCore"]),
        .testTarget(name: "CPUBackendTests", dependencies: ["CNNCore", "CPUBackend"]),
        .testTarget(name: "OpenCLBackendTests", dependencies: ["CNNCore", "CPUBackend", "OpenCLBackend"]),
        .testTarget(name: "NNTests", dependencies: ["CNNCore", "CPUBackend", "NN"]),
        .testTarget(name: "DatasetsTests", dependencies: ["CNNCore", "Datasets"]),
        .testTarget(name: "TrainingTests", dependencies: ["SwiftCNN"]),
    ]
)
