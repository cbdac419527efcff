import CImageCodecs
import CNNCore
import Foundation

/// An 8-bit image in interleaved (H, W, C) layout, C = 1 (gray) or 3 (RGB).
package struct DecodedImage: Sendable, Equatable {
    package var width: Int
    package var height: Int
    package var channels: Int
    package var pixels: [UInt8]  // (H, W, C)

    package init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * channels, "\(pixels.count) bytes for \(width)x\(height)x\(channels)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }
}

/// PNG and JPEG decoding (libpng, libjpeg-turbo via CImageCodecs), colour conversion and resizing.
package enum ImageCodec {
    /// Images above this many pixels are refused before any allocation.
    package static let defaultMaxPixels = ImageFolderOptions.defaultMaxPixels

    package enum Format: String, Sendable { case png, jpeg }

    /// The format from the file's first bytes (not its name), or nil.
    package static func sniff(_ bytes: UnsafeRawBufferPointer) -> Format? {
        if bytes.count >= 8, bytes[0] == 0x89, bytes[1] == 0x50, bytes[2] == 0x4E, bytes[3] == 0x47 { return .png }
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF { return .jpeg }
        return nil
    }

    /// Decodes a PNG or JPEG file. Errors name the file and say what is wrong with it.
    package static func decode(fileAt path: String, maxPixels: Int = defaultMaxPixels) throws -> DecodedImage {
        // A file far larger than any image within the pixel limit is refused before it is read
        // into memory: 16-bit RGBA stored uncompressed is 8 bytes a pixel, plus a filter byte a row,
        // stored-deflate block headers and chunk framing (well under 1/8 more) and 1 MiB of other
        // chunks. stat follows a symbolic link to the image it names.
        let maxBytes = maxPixels > (Int.max - (1 << 20)) / 9 ? Int.max : maxPixels * 9 + (1 << 20)
        var st = stat()
        if stat(path, &st) == 0, Int(st.st_size) > maxBytes {
            let size = Int(st.st_size)
            throw CNNError.invalidData("image \(path) is \(size) bytes, more than an image of at most \(maxPixels) pixels can take "
                + "(\(maxBytes) bytes); it is not such an image. Delete or replace the file.")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CNNError.io("cannot read image \(path): it does not exist or is not readable (check permissions)")
        }
        do {
            return try decode(data, maxPixels: maxPixels)
        } catch let e as CNNError {
            throw CNNError(e.kind, "image \(path): \(e.message). Delete or replace the file.")
        }
    }

    /// Decodes PNG or JPEG bytes (format from the signature).
    package static func decode(_ data: Data, maxPixels: Int = defaultMaxPixels) throws -> DecodedImage {
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> DecodedImage in
            guard let format = sniff(raw) else {
                throw CNNError.invalidData(data.isEmpty ? "the file is empty" : "not a PNG or JPEG file (unrecognised signature)")
            }
            var img = swiftcnn_image()
            var err = [CChar](repeating: 0, count: 512)
            let base = raw.bindMemory(to: UInt8.self).baseAddress!
            let rc: Int32 = format == .png
                ? swiftcnn_decode_png(base, raw.count, Int64(maxPixels), &img, &err, err.count)
                : swiftcnn_decode_jpeg(base, raw.count, Int64(maxPixels), &img, &err, err.count)
            defer { swiftcnn_image_free(&img) }
            guard rc == 0, let px = img.pixels else {
                let message = cString(err)
                throw CNNError.invalidData("corrupt or unsupported \(format.rawValue.uppercased()): \(message)")
            }
            let n = Int(img.width) * Int(img.height) * Int(img.channels)
            return DecodedImage(width: Int(img.width), height: Int(img.height), channels: Int(img.channels),
                                pixels: Array(UnsafeBufferPointer(start: px, count: n)))
        }
    }

    /// Writes a PNG (channels 1, 3 or 4; interleaved). Used by tests and reports.
    package static func writePNG(_ image: DecodedImage, to path: String) throws {
        var err = [CChar](repeating: 0, count: 512)
        let rc = image.pixels.withUnsafeBufferPointer {
            swiftcnn_encode_png(path, $0.baseAddress, Int32(image.width), Int32(image.height), Int32(image.channels), &err, err.count)
        }
        if rc != 0 { throw CNNError.io("cannot write PNG \(path): \(cString(err))") }
    }

    /// Writes a baseline JPEG of `quality` (1...100; channels 1 or 3, or 4: inverted CMYK with an Adobe marker, for tests).
    package static func writeJPEG(_ image: DecodedImage, to path: String, quality: Int = 95) throws {
        var err = [CChar](repeating: 0, count: 512)
        let rc = image.pixels.withUnsafeBufferPointer {
            swiftcnn_encode_jpeg(path, $0.baseAddress, Int32(image.width), Int32(image.height), Int32(image.channels),
                                 Int32(quality), &err, err.count)
        }
        if rc != 0 { throw CNNError.io("cannot write JPEG \(path): \(cString(err))") }
    }

    /// Converts to `channels` (1 or 3): RGB to gray with ITU-R 601-2 luma in PIL's fixed point,
    /// L = (19595 R + 38470 G + 7471 B + 32768) >> 16; gray to RGB by repeating the plane.
    package static func convert(_ image: DecodedImage, channels: Int) -> DecodedImage {
        precondition(channels == 1 || channels == 3)
        if image.channels == channels { return image }
        let n = image.width * image.height
        var out = [UInt8](repeating: 0, count: n * channels)
        if channels == 1 {
            for i in 0..<n {
                let r = UInt32(image.pixels[3 * i]), g = UInt32(image.pixels[3 * i + 1]), b = UInt32(image.pixels[3 * i + 2])
                out[i] = UInt8((19595 * r + 38470 * g + 7471 * b + 32768) >> 16)
            }
        } else {
            for i in 0..<n {
                let v = image.pixels[i]
                out[3 * i] = v; out[3 * i + 1] = v; out[3 * i + 2] = v
            }
        }
        return DecodedImage(width: image.width, height: image.height, channels: channels, pixels: out)
    }

    /// Resizes with PIL's bilinear filter (Image.resize(..., BILINEAR), which torchvision's Resize
    /// uses): a separable triangle filter on pixel centres, widened by the scale factor when
    /// shrinking so every input pixel contributes (antialiased). Upscaling is plain bilinear
    /// interpolation with clamped edges; equal sizes copy exactly. Rounds to the nearest integer.
    package static func resize(_ image: DecodedImage, width: Int, height: Int) -> DecodedImage {
        if image.width == width && image.height == height { return image }
        let c = image.channels
        let xw = filterWeights(inSize: image.width, outSize: width)
        let yw = filterWeights(inSize: image.height, outSize: height)
        // Horizontal pass: (H_in, W_out, C) in Float; then vertical: (H_out, W_out, C).
        var tmp = [Float](repeating: 0, count: image.height * width * c)
        for y in 0..<image.height {
            let row = y * image.width * c
            for x in 0..<width {
                let (start, weights) = xw[x]
                for ch in 0..<c {
                    var s: Float = 0
                    for (k, w) in weights.enumerated() { s += w * Float(image.pixels[row + (start + k) * c + ch]) }
                    tmp[(y * width + x) * c + ch] = s
                }
            }
        }
        var out = [UInt8](repeating: 0, count: height * width * c)
        for y in 0..<height {
            let (start, weights) = yw[y]
            for x in 0..<width * c {
                var s: Float = 0
                for (k, w) in weights.enumerated() { s += w * tmp[(start + k) * width * c + x] }
                out[y * width * c + x] = UInt8(min(255, max(0, s.rounded())))
            }
        }
        return DecodedImage(width: width, height: height, channels: c, pixels: out)
    }

    /// For each output index: the first input index and the normalised triangle weights
    /// (PIL's `precompute_coeffs` with the bilinear filter, support 1).
    static func filterWeights(inSize: Int, outSize: Int) -> [(Int, [Float])] {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filterScale
        return (0..<outSize).map { i in
            let center = (Double(i) + 0.5) * scale
            let lo = max(Int((center - support + 0.5).rounded(.down)), 0)
            let hi = min(Int((center + support + 0.5).rounded(.down)), inSize)
            var w = (lo..<hi).map { x -> Double in max(0, 1 - abs((Double(x) - center + 0.5) / filterScale)) }
            let total = w.reduce(0, +)
            if total > 0 { w = w.map { $0 / total } }
            return (lo, w.map(Float.init))
        }
    }
}

/// The NUL-terminated C string in `chars`.
func cString(_ chars: [CChar]) -> String {
    String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

extension DecodedImage {
    /// The pixels as (C, H, W) planes — the layout of datasets and model input — written to `dst`
    /// (width · height · channels bytes).
    package func writePlanes(into dst: UnsafeMutablePointer<UInt8>) {
        let hw = width * height, c = channels
        pixels.withUnsafeBufferPointer { src in
            for p in 0..<hw { for ch in 0..<c { dst[ch * hw + p] = src[p * c + ch] } }
        }
    }

    /// The pixels as (C, H, W) planes.
    package var planes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: pixels.count) { buffer, count in
            writePlanes(into: buffer.baseAddress!)
            count = pixels.count
        }
    }
}
