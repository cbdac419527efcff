import CNNCore

/// How padding pixels are made for the random crop.
/// How a rotated image samples its source (PIL's resampling filters, as torchvision's
/// `RandomRotation(interpolation=...)`, whose default is nearest).
public enum RotationInterpolation: String, Codable, Sendable, CaseIterable {
    case nearest   // the source pixel under the mapped point: no blur, values stay integral
    case bilinear  // the four source pixels around it, blended
}

public enum PaddingMode: String, Codable, Sendable, CaseIterable {
    case zero     // black (pixel value 0), as torchvision's padding_mode="constant", fill=0
    case reflect  // mirror without repeating the edge, as torchvision's padding_mode="reflect"
}

/// Per-channel normalisation, applied as torchvision's `ToTensor` + `Normalize`:
/// out = (pixel / 255 - mean[c]) / std[c]. One value applies to every channel.
public struct Normalization: Codable, Sendable, Equatable {
    public var mean: [Float]
    public var std: [Float]
    public init(mean: [Float], std: [Float]) {
        self.mean = mean
        self.std = std
    }
    /// The PyTorch CIFAR-10 guide's Normalize((0.5,)*3, (0.5,)*3): pixels to [-1, 1].
    public static let half = Normalization(mean: [0.5], std: [0.5])
    /// CIFAR-10's training-set statistics (per channel R, G, B, pixels scaled to [0, 1]).
    public static let cifar10 = Normalization(mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616])
    /// Pixels / 255 only (no centring).
    public static let unit = Normalization(mean: [0], std: [1])

    /// Named presets for configs and flags: "half" (0.5/0.5), "cifar10", "unit".
    public static func named(_ name: String) throws -> Normalization {
        switch name.lowercased() {
        case "half", "0.5", "guide": return .half
        case "cifar10", "cifar": return .cifar10
        case "unit", "none": return .unit
        default:
            throw CNNError.invalidArgument("unknown normalization '\(name)': use half (mean 0.5, std 0.5), cifar10 (CIFAR-10 statistics) or unit (pixels / 255)")
        }
    }

    /// Mean and std for `channels` channels (a single value is repeated).
    public func perChannel(_ channels: Int) throws -> (mean: [Float], std: [Float]) {
        func expand(_ v: [Float], _ name: String) throws -> [Float] {
            if v.count == 1 { return [Float](repeating: v[0], count: channels) }
            guard v.count == channels else {
                throw CNNError.invalidArgument("normalization \(name) has \(v.count) values but the images have \(channels) channel(s); give 1 or \(channels) values")
            }
            return v
        }
        let m = try expand(mean, "mean"), s = try expand(std, "std")
        if let bad = s.firstIndex(where: { !($0 > 0) || !$0.isFinite }) {
            throw CNNError.invalidArgument("normalization std[\(bad)] = \(s[bad]) must be positive")
        }
        if let bad = m.firstIndex(where: { !$0.isFinite }) {
            throw CNNError.invalidArgument("normalization mean[\(bad)] = \(m[bad]) must be finite")
        }
        return (m, s)
    }
}

/// The augmentation pipeline as a value: the CLI fills it from flags, a JSON/YAML config decodes
/// into it (every key optional, defaults below), and a checkpoint stores it.
///
/// Per-sample steps run in this fixed order, as the torchvision pipeline
/// `RandomCrop(pad) -> RandomHorizontalFlip -> RandomRotation -> ToTensor -> Normalize -> Cutout`:
/// 1. random crop: pad by `cropPadding` (zero or reflect), crop back to the original size;
/// 2. horizontal flip with probability `horizontalFlip`; with `alternatingFlip`, each image's coin is
///    drawn once per run and the choice inverts every other epoch (airbench), so over two epochs each
///    image is seen once each way;
/// 3. rotation by an angle uniform in ±`rotationDegrees` (`rotationInterpolation`: nearest, as
///    torchvision's default, or bilinear; counter-clockwise for positive angles, about the image
///    centre, outside filled with 0 — PIL's Image.rotate);
/// 4. normalisation (always);
/// 5. cutout: a `cutoutSize` square (centre uniform over the image, clipped at the borders)
///    set to 0 after normalisation, with probability `cutoutProbability`.
/// Then per batch, with probability `mixProbability`: MixUp (`mixupAlpha` > 0) or CutMix
/// (`cutmixAlpha` > 0); when both are on, CutMix with probability `cutmixSwitchProbability`.
/// A step is off at its zero value.
public struct AugmentationConfig: Codable, Sendable, Equatable {
    public var horizontalFlip: Float = 0
    public var rotationDegrees: Float = 0
    public var rotationInterpolation: RotationInterpolation = .nearest
    public var cropPadding: Int = 0
    public var paddingMode: PaddingMode = .zero
    public var normalization: Normalization = .half
    public var cutoutSize: Int = 0
    public var cutoutProbability: Float = 1
    public var mixupAlpha: Float = 0
    public var cutmixAlpha: Float = 0
    public var mixProbability: Float = 1
    public var cutmixSwitchProbability: Float = 0.5
    public var alternatingFlip = false

    public init(horizontalFlip: Float = 0, rotationDegrees: Float = 0, rotationInterpolation: RotationInterpolation = .nearest,
                cropPadding: Int = 0,
                paddingMode: PaddingMode = .zero, normalization: Normalization = .half,
                cutoutSize: Int = 0, cutoutProbability: Float = 1,
                mixupAlpha: Float = 0, cutmixAlpha: Float = 0, mixProbability: Float = 1,
                cutmixSwitchProbability: Float = 0.5) {
        self.horizontalFlip = horizontalFlip
        self.rotationDegrees = rotationDegrees
        self.rotationInterpolation = rotationInterpolation
        self.cropPadding = cropPadding
        self.paddingMode = paddingMode
        self.normalization = normalization
        self.cutoutSize = cutoutSize
        self.cutoutProbability = cutoutProbability
        self.mixupAlpha = mixupAlpha
        self.cutmixAlpha = cutmixAlpha
        self.mixProbability = mixProbability
        self.cutmixSwitchProbability = cutmixSwitchProbability
    }

    /// The PyTorch CIFAR-10 guide's training transform: flip(0.5) + rotation(15) + normalize(0.5, 0.5).
    public static let guide = AugmentationConfig(horizontalFlip: 0.5, rotationDegrees: 15)
    /// Normalisation only (validation and test).
    public static let none = AugmentationConfig()

    /// The same normalisation with every random step off: what validation and test data get.
    public var forEvaluation: AugmentationConfig { AugmentationConfig(normalization: normalization) }

    public var usesMixing: Bool { mixupAlpha > 0 || cutmixAlpha > 0 }

    enum CodingKeys: String, CodingKey {
        case horizontalFlip, rotationDegrees, rotationInterpolation, cropPadding, paddingMode, normalization, cutoutSize, cutoutProbability
        case mixupAlpha, cutmixAlpha, mixProbability, cutmixSwitchProbability, alternatingFlip
    }

    public init(from decoder: any Decoder) throws {
        // Unknown keys are errors: a misspelt setting must not silently fall back to its default.
        let any = try decoder.container(keyedBy: AnyKey.self)
        if let unknown = any.allKeys.first(where: { CodingKeys(stringValue: $0.stringValue) == nil }) {
            let known = ["horizontalFlip", "rotationDegrees", "rotationInterpolation", "cropPadding", "paddingMode", "normalization", "cutoutSize",
                         "cutoutProbability", "mixupAlpha", "cutmixAlpha", "mixProbability", "cutmixSwitchProbability", "alternatingFlip"]
            throw CNNError.invalidArgument("augmentation config: unknown key '\(unknown.stringValue)'; known keys: "
                + known.joined(separator: ", "))
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AugmentationConfig()
        horizontalFlip = try c.decodeIfPresent(Float.self, forKey: .horizontalFlip) ?? d.horizontalFlip
        rotationDegrees = try c.decodeIfPresent(Float.self, forKey: .rotationDegrees) ?? d.rotationDegrees
        if let name = try c.decodeIfPresent(String.self, forKey: .rotationInterpolation) {
            guard let v = RotationInterpolation(rawValue: name) else {
                throw CNNError.invalidArgument("augmentation rotationInterpolation '\(name)': use nearest or bilinear")
            }
            rotationInterpolation = v
        } else {
            rotationInterpolation = d.rotationInterpolation
        }
        cropPadding = try c.decodeIfPresent(Int.self, forKey: .cropPadding) ?? d.cropPadding
        paddingMode = try c.decodeIfPresent(PaddingMode.self, forKey: .paddingMode) ?? d.paddingMode
        if let name = try? c.decodeIfPresent(String.self, forKey: .normalization) {
            normalization = try Normalization.named(name)
        } else {
            normalization = try c.decodeIfPresent(Normalization.self, forKey: .normalization) ?? d.normalization
        }
        cutoutSize = try c.decodeIfPresent(Int.self, forKey: .cutoutSize) ?? d.cutoutSize
        cutoutProbability = try c.decodeIfPresent(Float.self, forKey: .cutoutProbability) ?? d.cutoutProbability
        mixupAlpha = try c.decodeIfPresent(Float.self, forKey: .mixupAlpha) ?? d.mixupAlpha
        cutmixAlpha = try c.decodeIfPresent(Float.self, forKey: .cutmixAlpha) ?? d.cutmixAlpha
        mixProbability = try c.decodeIfPresent(Float.self, forKey: .mixProbability) ?? d.mixProbability
        cutmixSwitchProbability = try c.decodeIfPresent(Float.self, forKey: .cutmixSwitchProbability) ?? d.cutmixSwitchProbability
        alternatingFlip = try c.decodeIfPresent(Bool.self, forKey: .alternatingFlip) ?? d.alternatingFlip
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Checks every value against images of `channels` x `height` x `width`; errors name the setting.
    public func validate(channels: Int, height: Int, width: Int) throws {
        func probability(_ p: Float, _ name: String) throws {
            try require(p.isFinite && p >= 0 && p <= 1, "augmentation \(name) = \(p) must be a probability in [0, 1]")
        }
        try probability(horizontalFlip, "horizontalFlip")
        try probability(cutoutProbability, "cutoutProbability")
        try probability(mixProbability, "mixProbability")
        try probability(cutmixSwitchProbability, "cutmixSwitchProbability")
        try require(rotationDegrees.isFinite && rotationDegrees >= 0 && rotationDegrees <= 180,
                    "augmentation rotationDegrees = \(rotationDegrees) must be in [0, 180] (the angle is drawn from ±rotationDegrees)")
        // At most the image's side: more only adds crops that miss the image, and a huge value
        // overflowed the crop draw (2 * cropPadding + 1), found by the config fuzzer.
        try require(cropPadding >= 0 && cropPadding <= min(height, width),
                    "augmentation cropPadding = \(cropPadding) must be in 0...\(min(height, width)) (at most the image's side, \(height)x\(width))")
        if paddingMode == .reflect && cropPadding > 0 {
            try require(cropPadding < height && cropPadding < width,
                        "augmentation cropPadding = \(cropPadding) with reflect padding must be smaller than the image (\(height)x\(width))")
        }
        try require(cutoutSize >= 0, "augmentation cutoutSize = \(cutoutSize) must be >= 0")
        try require(mixupAlpha.isFinite && mixupAlpha >= 0, "augmentation mixupAlpha = \(mixupAlpha) must be >= 0 (0 turns MixUp off)")
        try require(cutmixAlpha.isFinite && cutmixAlpha >= 0, "augmentation cutmixAlpha = \(cutmixAlpha) must be >= 0 (0 turns CutMix off)")
        _ = try normalization.perChannel(channels)
    }
}
