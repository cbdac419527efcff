import CPUBackend
import Datasets
import Foundation
import NN
import Testing
@testable import Training

extension TestData {
    /// A Python whose `tensorboard` package imports: $SWIFTCNN_TENSORBOARD_PYTHON, ~/torchvenv/bin/python3,
    /// /usr/bin/python3; nil if none (CI makes one: .ci/run).
    static let tensorBoardPython: String? = {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["SWIFTCNN_TENSORBOARD_PYTHON"] { candidates.append(env) }
        candidates.append(NSString(string: "~/torchvenv/bin/python3").expandingTildeInPath)
        candidates.append("/usr/bin/python3")
        for c in candidates where FileManager.default.isExecutableFile(atPath: c) {
            if (try? run(c, ["-c", "from tensorboard.backend.event_processing import event_accumulator"]))?.status == 0 { return c }
        }
        return nil
    }()
}

/// TensorBoard image and histogram summaries: the records read back by our reader, and by
/// TensorBoard's own `EventAccumulator`.
@Suite struct TensorBoardImageTests {
    /// Minimal protobuf reader for the tests: the fields of `b` as (field, bytes of a length-delimited
    /// or fixed field, varint value).
    static func fields(_ b: [UInt8]) -> [(Int, [UInt8], UInt64)] {
        var out: [(Int, [UInt8], UInt64)] = []
        var i = 0
        func varint() -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true { let x = b[i]; i += 1; v |= UInt64(x & 0x7F) << shift; if x < 0x80 { return v }; shift += 7 }
        }
        while i < b.count {
            let key = varint(), field = Int(key >> 3)
            switch key & 7 {
            case 0: out.append((field, [], varint()))
            case 1: out.append((field, Array(b[i..<(i + 8)]), 0)); i += 8
            case 2: let n = Int(varint()); out.append((field, Array(b[i..<(i + n)]), 0)); i += n
            case 5: out.append((field, Array(b[i..<(i + 4)]), 0)); i += 4
            default: Issue.record("unexpected wire type \(key & 7)"); return out
            }
        }
        return out
    }
    /// The tags of one event record's summary values.
    static func tags(_ record: [UInt8]) -> [String] {
        let summary = fields(record).first { $0.0 == 5 }?.1 ?? []
        return fields(summary).filter { $0.0 == 1 }.map { v in String(decoding: fields(v.1).first { $0.0 == 1 }?.1 ?? [], as: UTF8.self) }
    }
    static func double(_ b: some Collection<UInt8>) -> Double {
        Double(bitPattern: b.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
    }

    static func sampleImage() -> DecodedImage {
        var c = Canvas(width: 12, height: 7)
        c.fill(PixelRect(x: 2, y: 1, width: 4, height: 3), RGB(200, 10, 30))
        return c.image
    }

    @Test func imageAndHistogramRecordsReadBack() throws {
        let dir = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let w = try TensorBoardWriter(directory: dir)
        let image = Self.sampleImage()
        try w.add(images: [("Conv1_Weights", image)], step: 2)
        let values: [Float] = [-1, 0, 0.5, 1, 3, .nan]
        try w.add(histograms: [("Weights/fc.weight", values)], step: 4, buckets: 4)
        let records = try TensorBoardWriter.readRecords(w.url)
        #expect(records.count == 3)
        // Image: Event.step 2, Summary.value { tag, image { height, width, colorspace, PNG } }.
        let e1 = Self.fields(records[1])
        #expect(e1.contains { $0.0 == 2 && $0.2 == 2 })
        let s1 = try #require(e1.first { $0.0 == 5 }?.1)
        let v1 = Self.fields(try #require(Self.fields(s1).first { $0.0 == 1 }?.1))
        #expect(String(decoding: try #require(v1.first { $0.0 == 1 }?.1), as: UTF8.self) == "Conv1_Weights")
        let img = Self.fields(try #require(v1.first { $0.0 == 4 }?.1))
        #expect(img.first { $0.0 == 1 }?.2 == 7 && img.first { $0.0 == 2 }?.2 == 12 && img.first { $0.0 == 3 }?.2 == 3)
        #expect(try ImageCodec.decode(Data(try #require(img.first { $0.0 == 4 }?.1))) == image)
        // Histogram: min, max, num, sum, sum of squares, 4 equal buckets over [-1, 3] (NaN left out).
        let e2 = Self.fields(records[2])
        let s2 = try #require(e2.first { $0.0 == 5 }?.1)
        let v2 = Self.fields(try #require(Self.fields(s2).first { $0.0 == 1 }?.1))
        let h = Self.fields(try #require(v2.first { $0.0 == 5 }?.1))
        func d(_ f: Int) -> Double? { h.first { $0.0 == f }.map { Self.double($0.1) } }
        #expect(d(1) == -1 && d(2) == 3 && d(3) == 5 && d(4) == 3.5 && d(5) == 11.25)
        func packed(_ f: Int) -> [Double] {
            let b = h.first { $0.0 == f }?.1 ?? []
            return stride(from: 0, to: b.count, by: 8).map { Self.double(b[$0..<($0 + 8)]) }
        }
        #expect(packed(6) == [0, 1, 2, 3])
        // (-inf, 0]: -1, 0; (0, 1]: 0.5, 1; (1, 2]: none; (2, 3]: 3.
        #expect(packed(7) == [2, 2, 0, 1])
    }

    @Test func trainerHooksWriteFiltersAndHistograms() throws {
        let dir = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let folder = RunFolder(url: dir)
        try folder.start(config: TrainConfig(), history: [])
        let model = try ModelZoo.make("optimized", backend: CPUBackend(), seed: 1)
        try folder.recordModel(model, epoch: 1, histograms: true)
        try folder.recordModel(model, epoch: 2, histograms: false)
        let events = try #require(try FileManager.default.contentsOfDirectory(atPath: dir.path).first { $0.hasPrefix("events.out.tfevents.") })
        let records = try TensorBoardWriter.readRecords(dir.appendingPathComponent(events))
        // Version, filters @1, histograms @1, filters @2.
        #expect(records.count == 4)
        let tags = records.dropFirst().map(Self.tags)
        #expect(tags[0] == ["Conv1_Weights"] && tags[2] == ["Conv1_Weights"])
        let names = model.parameters.map { $0.0 }
        #expect(tags[1] == names.flatMap { ["Weights/\($0)", "Gradients/\($0)"] })
    }

    @Test(.enabled(if: Browser.inCI, "only in CI (CI=true), which installs TensorBoard (.ci/run)"))
    func tensorBoardReaderIsInstalledInCI() {
        #expect(TestData.tensorBoardPython != nil, "CI must provide a Python with the tensorboard package (SWIFTCNN_TENSORBOARD_PYTHON, see .ci/run)")
    }

    @Test(.enabled(if: TestData.tensorBoardPython != nil, "no Python with the tensorboard package (pip install tensorboard; or set SWIFTCNN_TENSORBOARD_PYTHON)"))
    func tensorBoardsOwnReaderReadsThem() throws {
        let dir = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let w = try TensorBoardWriter(directory: dir)
        try w.add(scalars: [("Loss/train", 1.5)], step: 1)
        try w.add(images: [("Samples/raw", Self.sampleImage())], step: 1)
        try w.add(histograms: [("Weights/conv1.0.weight", [-1, 0, 0.5, 1, 3])], step: 3, buckets: 4)
        let script = """
        import sys
        from tensorboard.backend.event_processing import event_accumulator as ea
        acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.IMAGES: 0, ea.HISTOGRAMS: 0, ea.SCALARS: 0})
        acc.Reload()
        for e in acc.Scalars('Loss/train'): print('scalar', e.step, e.value)
        for e in acc.Images('Samples/raw'): print('image', e.step, e.width, e.height, e.encoded_image_string[:4] == b'\\x89PNG', len(e.encoded_image_string))
        for e in acc.Histograms('Weights/conv1.0.weight'):
            h = e.histogram_value
            print('histo', e.step, h.min, h.max, h.num, h.sum, list(h.bucket_limit), list(h.bucket))
        """
        let r = try TestData.run(TestData.tensorBoardPython!, ["-c", script, dir.path])
        #expect(r.status == 0, "\(r.output)")
        let png = try Figures.pngData(Self.sampleImage())
        let lines = r.output.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("WARNING") }
        #expect(lines.contains("scalar 1 1.5"), "\(r.output)")
        #expect(lines.contains("image 1 12 7 True \(png.count)"), "\(r.output)")
        #expect(lines.contains("histo 3 -1.0 3.0 5.0 3.5 [0.0, 1.0, 2.0, 3.0] [2.0, 2.0, 0.0, 1.0]"), "\(r.output)")
    }
}
