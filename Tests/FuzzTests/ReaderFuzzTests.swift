import CNNCore
import Datasets
import Foundation
import NN
import Testing
import Training

@Suite struct ReaderFuzzTests {
    // ------------------------------------------------------------ safetensors

    /// A checkpoint-like file: F32 weights, a 0-element tensor, an I64 scalar counter, metadata.
    static func safetensorsSeeds() throws -> [[UInt8]] {
        let w = HostTensor(shape: [2, 3], values: [1, -2, 3.5, 0, 1e-3, 7])
        let b = HostTensor(shape: [3], values: [0.5, 0.25, -1])
        let empty = HostTensor(shape: [0, 4], values: [])
        let a = try SafeTensors.encode([("conv1.weight", .float(w)), ("conv1.bias", .float(b)), ("empty", .float(empty)),
                                        ("bn.num_batches_tracked", .int64(shape: [], values: [12]))],
                                       metadata: ["format": "pt", "swiftcnn_model": "cnn"])
        let c = try SafeTensors.encode([("x", .float(HostTensor(shape: [1], values: [2])))])
        return [[UInt8](a), [UInt8](c)]
    }

    static let safetensorsDictionary = ["\"F32\"", "\"I64\"", "\"F16\"", "\"BF16\"", "\"dtype\"", "\"shape\"", "\"data_offsets\"",
                                        "\"__metadata__\"", "[", "]", "{", "}", ",", ":", "null", "true", "-1", "[-1]", "[]",
                                        "[4611686018427387904,4]", "[9223372036854775807]", "[0,9223372036854775807]",
                                        "[[[[[[[[", "\"\\u0000\"", "1.5"].map { Array($0.utf8) }

    /// Mutates the JSON header alone and re-frames it with its (new) length, so that the reader
    /// gets past the length check to the shapes and offsets; sometimes mutates the data instead.
    static func mutateHeader(_ b: inout [UInt8], _ m: inout Mutator) {
        guard b.count >= 8 else { return }
        let n = b.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        guard n <= b.count - 8 else { return }
        var header = Array(b[8..<(8 + n)]), data = Array(b[(8 + n)...])
        if m.rng.nextInt(5) == 0 { m.mutate(&data, other: []) } else { m.mutate(&header, other: []) }
        if m.rng.nextInt(2) == 0 { while header.count % 8 != 0 { header.append(0x20) } }
        var len = UInt64(header.count).littleEndian
        b = withUnsafeBytes(of: &len) { Array($0) } + header + data
    }

    @Test func safetensorsReaderSurvivesMutations() throws {
        let report = Fuzz.run("safetensors", corpus: try Self.safetensorsSeeds(), iterations: Fuzz.iterations(default: 4_000), seed: 40,
                              dictionary: Self.safetensorsDictionary, fields: [0, 4, 7], structured: Self.mutateHeader) { bytes in
            let (entries, _) = try SafeTensors.decode(Data(bytes), source: "fuzz.safetensors")
            for (_, v) in entries {
                switch v {
                case .float(let t): #expect(t.values.count == t.shape.count)
                case .int64(let s, let vals): #expect(vals.count == s.count)
                }
            }
        }
        #expect(report.otherErrors.isEmpty)
    }

    // ------------------------------------------------------------ config files

    static let configDictionary: [[UInt8]] = {
        let keys = ["model", "epochs", "batchSize", "optimizer", "learningRate", "schedule", "augmentation", "device", "limit",
                    "imageSize", "imageChannels", "cropPadding", "cutoutSize", "paddingMode", "normalization", "kind", "mean", "std",
                    "rotationDegrees", "horizontalFlip", "workers", "validationFraction", "seed", "patience", "factor"]
        let values = ["null", "true", "false", "{}", "[]", "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u0000", "\\ud800", "1e400", "-0",
                      "\"reflect\"", "\"cpu\"", "\"opencl:99999999999999999999:0\"", "\"cifar10\"", "{\"mean\":[0.5],\"std\":[0]}",
                      "[[[[[[[[[[[[[[[["]
        return keys.map { Array("\"\($0)\"".utf8) } + values.map { Array($0.utf8) }
    }()

    /// Sets one setting (top level, or inside `augmentation` / `schedule`) to an extreme or
    /// ill-typed value and re-serialises, so that inputs reach validation and the augmenter
    /// (byte mutations of JSON mostly stop at the JSON parser).
    static func mutateSetting(_ b: inout [UInt8], _ m: inout Mutator) {
        guard var dict = (try? JSONSerialization.jsonObject(with: Data(b))) as? [String: Any] else { return m.mutate(&b, other: []) }
        let values: [Any] = [0, -1, 1, 2, 3, 4, 63, 64, 65, 1_000_000, Int.max, Int.min, 0.5, -0.5, 1.0, 1e-300, 1e300, -1e300,
                             "", "x", "reflect", "bilinear", "cifar10", "cosine", "opencl:0:0", true, false, NSNull(), [Any](), [String: Any](),
                             ["mean": [0.5], "std": [0.25]], ["mean": [0.1, 0.2], "std": [1, 1]], ["mean": [0.5], "std": [0]]]
        let nested = ["augmentation": ["horizontalFlip", "rotationDegrees", "rotationInterpolation", "cropPadding", "paddingMode", "normalization",
                                       "cutoutSize", "cutoutProbability", "mixupAlpha", "cutmixAlpha", "mixProbability", "cutmixSwitchProbability"],
                      "schedule": ["kind", "factor", "patience", "threshold", "minLR", "stepSize", "gamma", "warmupEpochs", "warmupStart"]]
        for _ in 0..<(1 + m.rng.nextInt(3)) {
            let value = values[m.rng.nextInt(values.count)]
            if m.rng.nextInt(3) == 0 {
                let group = m.rng.nextInt(2) == 0 ? "augmentation" : "schedule"
                var inner = dict[group] as? [String: Any] ?? [:]
                let keys = nested[group]!
                inner[keys[m.rng.nextInt(keys.count)]] = value
                dict[group] = inner
            } else {
                let keys = TrainConfig.fuzzKeys
                dict[keys[m.rng.nextInt(keys.count)]] = value
            }
        }
        if let out = try? JSONSerialization.data(withJSONObject: dict, options: .sortedKeys) { b = [UInt8](out) }
    }

    /// `cnn train --config FILE`: load (unknown keys and bad values are CNNErrors), validate,
    /// then build the augmenter for the configured image size as a run does.
    @Test func configParserSurvivesMutations() throws {
        let dir = FuzzTempDir("config")
        let path = dir.sub("config.json")
        let corpus = [Array(TrainConfig().json().utf8), try Fuzz.corpusFile("config.json"), Array("{}".utf8)]
        let report = Fuzz.run("config", corpus: corpus, iterations: Fuzz.iterations(default: 4_000), seed: 50,
                              dictionary: Self.configDictionary, structured: Self.mutateSetting) { bytes in
            dir.write("config.json", bytes)
            let c = try TrainConfig.load(path: path)
            try c.validate()
            guard c.imageSize <= 64 else { return }
            let aug = try Augmenter(config: c.augmentation, channels: c.imageChannels, height: c.imageSize, width: c.imageSize)
            var rng = SeededRNG(seed: 1)
            let image = [UInt8](repeating: 128, count: c.imageChannels * c.imageSize * c.imageSize)
            #expect(aug.apply(aug.draw(&rng), to: image).count == image.count)
        }
        #expect(report.otherErrors.isEmpty)
    }
}

extension TrainConfig {
    /// The top-level keys of a config file: those of the default config plus the optional ones it omits.
    static let fuzzKeys: [String] = {
        let json = (try? JSONSerialization.jsonObject(with: Data(TrainConfig().json().utf8))) as? [String: Any] ?? [:]
        return Set(json.keys).union(["earlyStoppingPatience", "maxGradNorm", "data", "testData", "limit", "testLimit", "name", "logEvery"]).sorted()
    }()
}
