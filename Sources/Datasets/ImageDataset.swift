import CNNCore

/// Images held in memory as 8-bit planes, with integer labels and class names.
///
/// Layout: `pixels` is (N, C, H, W) row-major UInt8 — image `i`, channel `c`, row `y`, column `x`
/// is at `((i * C + c) * H + y) * W + x` (CIFAR-10's own record layout, minus the label byte).
/// `labels[i]` is in `0..<classNames.count`. CIFAR-10's 60,000 images take 184 MB this way.
public struct ImageDataset: Sendable {
    public var pixels: [UInt8]       // (N, C, H, W)
    public var labels: [Int32]       // (N)
    public var classNames: [String]  // (K)
    public let channels: Int
    public let height: Int
    public let width: Int
    /// Where the images came from (a path, or a description), for messages and reports.
    public var source: String

    public init(pixels: [UInt8], labels: [Int32], classNames: [String],
                channels: Int, height: Int, width: Int, source: String = "memory") throws {
        try require(channels > 0 && height > 0 && width > 0,
                    "dataset \(source): image size \(channels)x\(height)x\(width) must be positive")
        try require(pixels.count == labels.count * channels * height * width,
                    "dataset \(source): \(pixels.count) pixel bytes for \(labels.count) images of \(channels)x\(height)x\(width)")
        try require(!classNames.isEmpty, "dataset \(source): no class names")
        if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= classNames.count }) {
            throw CNNError.invalidData("dataset \(source): image \(bad) has label \(labels[bad]), outside 0..<\(classNames.count) (\(classNames.count) classes)")
        }
        self.pixels = pixels
        self.labels = labels
        self.classNames = classNames
        self.channels = channels
        self.height = height
        self.width = width
        self.source = source
    }

    public var count: Int { labels.count }
    public var numClasses: Int { classNames.count }
    /// Bytes per image: C * H * W.
    public var imageSize: Int { channels * height * width }
    /// Shape of one image: (C, H, W).
    public var imageShape: Shape { Shape(channels, height, width) }

    /// Pixels of image `i`: (C, H, W).
    public func image(_ i: Int) -> ArraySlice<UInt8> {
        pixels[(i * imageSize)..<((i + 1) * imageSize)]
    }

    /// A dataset of the images at `indices`, in that order (copies the pixels).
    public func subset(_ indices: [Int]) throws -> ImageDataset {
        let n = imageSize
        var out = [UInt8](repeating: 0, count: indices.count * n)
        var lab = [Int32](repeating: 0, count: indices.count)
        for (j, i) in indices.enumerated() {
            try require(i >= 0 && i < count, "subset of \(source): index \(i) outside 0..<\(count)")
            out.withUnsafeMutableBufferPointer { dst in
                pixels.withUnsafeBufferPointer { src in
                    _ = UnsafeMutableBufferPointer(rebasing: dst[(j * n)..<((j + 1) * n)])
                        .initialize(from: src[(i * n)..<((i + 1) * n)])
                }
            }
            lab[j] = labels[i]
        }
        return try ImageDataset(pixels: out, labels: lab, classNames: classNames,
                                channels: channels, height: height, width: width, source: source)
    }

    /// Number of images of each class (K), optionally over `indices` only.
    public func classCounts(indices: [Int]? = nil) -> [Int] {
        var counts = [Int](repeating: 0, count: numClasses)
        if let indices {
            for i in indices { counts[Int(labels[i])] += 1 }
        } else {
            for l in labels { counts[Int(l)] += 1 }
        }
        return counts
    }

    /// A printable table: one line per class with its count and share, then the total.
    ///
    ///     class        count   share
    ///     airplane      1005   10.1%
    ///     ...
    ///     total        10000
    public func classCountTable(indices: [Int]? = nil, title: String? = nil) -> String {
        ClassBalance(counts: classCounts(indices: indices), classNames: classNames).table(title: title)
    }

    /// A warning when the largest class is more than `threshold` times the smallest (or a class
    /// is empty); nil when the classes are balanced enough.
    public func imbalanceWarning(indices: [Int]? = nil, threshold: Double = 1.5) -> String? {
        ClassBalance(counts: classCounts(indices: indices), classNames: classNames).warning(threshold: threshold)
    }
}

/// Class counts with their table and imbalance check (shared by datasets and splits).
public struct ClassBalance: Sendable, Equatable {
    public var counts: [Int]
    public var classNames: [String]

    public init(counts: [Int], classNames: [String]) {
        self.counts = counts
        self.classNames = classNames
    }

    public var total: Int { counts.reduce(0, +) }

    public func table(title: String? = nil) -> String {
        let nameWidth = max(5, classNames.map(\.count).max() ?? 0)
        let countWidth = max(5, String(total).count)
        func pad(_ s: String, _ w: Int, right: Bool) -> String {
            let fill = String(repeating: " ", count: max(0, w - s.count))
            return right ? fill + s : s + fill
        }
        var lines: [String] = []
        if let title { lines.append(title) }
        lines.append(pad("class", nameWidth, right: false) + "  " + pad("count", countWidth, right: true) + "   share")
        for (k, name) in classNames.enumerated() {
            let share = total > 0 ? 100 * Double(counts[k]) / Double(total) : 0
            lines.append(pad(name, nameWidth, right: false) + "  " + pad(String(counts[k]), countWidth, right: true)
                         + "  " + pad(formatFixed(share, 1), 5, right: true) + "%")
        }
        lines.append(pad("total", nameWidth, right: false) + "  " + pad(String(total), countWidth, right: true))
        return lines.joined(separator: "\n")
    }

    public func warning(threshold: Double = 1.5) -> String? {
        guard !counts.isEmpty else { return nil }
        if let empty = counts.firstIndex(of: 0) {
            return "warning: class '\(classNames[empty])' has no images; the model cannot learn it. "
                + "Add images for it or remove the class."
        }
        let maxK = counts.indices.max { counts[$0] < counts[$1] }!
        let minK = counts.indices.min { counts[$0] < counts[$1] }!
        let ratio = Double(counts[maxK]) / Double(counts[minK])
        guard ratio > threshold else { return nil }
        return "warning: classes are imbalanced: '\(classNames[maxK])' has \(counts[maxK]) images, "
            + "'\(classNames[minK])' has \(counts[minK]) (ratio \(formatFixed(ratio, 2)) > \(formatFixed(threshold, 2))). "
            + "Accuracy alone will flatter the model: check per-class recall, or rebalance the data."
    }
}

/// `x` with `digits` decimals (Foundation-free, locale-independent).
func formatFixed(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return String(x) }
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let r = (abs(x) * p).rounded()
    let intPart = Int(r / p)
    let frac = Int(r - Double(intPart) * p)
    var s = (x < 0 && r != 0 ? "-" : "") + String(intPart)
    if digits > 0 {
        let f = String(frac)
        s += "." + String(repeating: "0", count: digits - f.count) + f
    }
    return s
}

extension ImageDataset {
    /// One line for logs: "50000 images, 3x32x32, 10 classes (path)".
    public var summary: String {
        "\(count) images, \(channels)x\(height)x\(width), \(numClasses) classes (\(source))"
    }
}
