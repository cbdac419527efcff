/// OpenCL C sources of SwiftCNN, compiled into the binary (SwiftPM `.embedInCode`).
public enum KernelSource {
    /// Source shared by every program (RNG, helpers); prepended to each family.
    public static var common: String { String(decoding: PackageResources.common_cl, as: UTF8.self) }
}
