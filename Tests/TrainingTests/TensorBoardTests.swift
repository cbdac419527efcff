import Foundation
import Testing
@testable import Training

/// The TensorBoard event file: CRC-32C, the protobuf bytes of a scalar, and a written file read back.
@Suite struct TensorBoardTests {
    @Test func crc32cMatchesTheStandardCheckValue() {
        // The CRC-32C check value (RFC 3720, iSCSI): CRC of the ASCII digits "123456789".
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
    }

    @Test func scalarValueBytes() {
        // Summary.Value { tag: "a", simple_value: 1.0 }: field 1 (0x0A) length 1 'a', field 2 fixed32 (0x15) 1.0f.
        var v = Protobuf()
        v.string(field: 1, "a")
        v.float(field: 2, 1)
        #expect(v.bytes == [0x0A, 0x01, 0x61, 0x15, 0x00, 0x00, 0x80, 0x3F])
        // Varints: 300 = 0xAC 0x02 (protobuf's documented example), under field 2 (key 0x10).
        var e = Protobuf()
        e.varint(field: 2, 300)
        #expect(e.bytes == [0x10, 0xAC, 0x02])
    }

    /// Protobuf fields (the reader `TensorBoardImageTests` shares).
    func fields(_ b: [UInt8]) -> [(Int, [UInt8], UInt64)] { TensorBoardImageTests.fields(b) }

    @Test func writtenEventsReadBack() throws {
        let dir = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let w = try TensorBoardWriter(directory: dir, now: Date(timeIntervalSince1970: 1_700_000_000))
        try w.add(scalars: [("Loss/train", 1.5), ("Accuracy/val", 0.25)], step: 3)
        #expect(w.url.lastPathComponent.hasPrefix("events.out.tfevents.1700000000."))
        let records = try TensorBoardWriter.readRecords(w.url)
        #expect(records.count == 2)
        // First record: wall_time (field 1) and file_version (field 3).
        let first = fields(records[0])
        #expect(first.contains { $0.0 == 3 && String(decoding: $0.1, as: UTF8.self) == "brain.Event:2" })
        // Second: step 3 (field 2), summary (field 5) with two values.
        let second = fields(records[1])
        #expect(second.contains { $0.0 == 2 && $0.2 == 3 })
        let summary = try #require(second.first { $0.0 == 5 }?.1)
        let values = fields(summary).filter { $0.0 == 1 }.map { fields($0.1) }
        #expect(values.count == 2)
        let tags = values.map { v in String(decoding: v.first { $0.0 == 1 }!.1, as: UTF8.self) }
        let numbers = values.map { v -> Float in
            let raw = v.first { $0.0 == 2 }!.1
            return Float(bitPattern: raw.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) })
        }
        #expect(tags == ["Loss/train", "Accuracy/val"])
        #expect(numbers == [1.5, 0.25])
    }

    @Test func corruptionIsDetected() throws {
        let dir = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let w = try TensorBoardWriter(directory: dir)
        try w.add(scalars: [("x", 1)], step: 1)
        var bytes = [UInt8](try Data(contentsOf: w.url))
        bytes[bytes.count - 6] ^= 0x01   // a data byte of the last record
        try Data(bytes).write(to: w.url)
        do {
            _ = try TensorBoardWriter.readRecords(w.url)
            Issue.record("a corrupted record was accepted")
        } catch {
            #expect("\(error)".contains("bad data CRC"), "\(error)")
        }
    }
}
