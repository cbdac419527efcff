/// OpenCL C sources of SwiftCNN, compiled into the binary (SwiftPM `.embedInCode`).
/// One program per family: `common` followed by the family's file (see OpenCLBackend's runtime).
public enum KernelSource {
    /// Source shared by every program (RNG, local-memory reduction helpers); prepended to each family.
    public static var common: String { text(PackageResources.common_cl) }
    public static var conv: String { text(PackageResources.conv_cl) }
    public static var pooling: String { text(PackageResources.pooling_cl) }
    public static var batchnorm: String { text(PackageResources.batchnorm_cl) }
    public static var elementwise: String { text(PackageResources.elementwise_cl) }
    public static var loss: String { text(PackageResources.loss_cl) }
    public static var optimizers: String { text(PackageResources.optimizers_cl) }
    public static var reductions: String { text(PackageResources.reductions_cl) }
    public static var augment: String { text(PackageResources.augment_cl) }
    public static var lightweight: String { text(PackageResources.lightweight_cl) }

    private static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
