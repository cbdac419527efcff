import CNNCore
import Foundation

/// The random choices for one sample. `Augmenter.draw` makes them from a generator in a fixed
/// order; tests and tools can also build one by hand and `apply` it.
package struct SampleDraw: Sendable, Equatable {
    /// Top-left corner of the crop in the padded image, each in 0...2 * padding
    /// (`padding` = no shift).
    package var cropY: Int
    package var cropX: Int
    package var flip: Bool
    /// Rotation in degrees, counter-clockwise for positive values.
    package var angle: Float
    /// Centre (row, column) of the cutout square, or nil for none.
    package var cutoutCenter: (y: Int, x: Int)?

    package init(cropY: Int = 0, cropX: Int = 0, flip: Bool = false, angle: Float = 0, cutoutCenter: (y: Int, x: Int)? = nil) {
        self.cropY = cropY
        self.cropX = cropX
        self.flip = flip
        self.angle = angle
        self.cutoutCenter = cutoutCenter
    }

    package static func == (a: SampleDraw, b: SampleDraw) -> Bool {
        a.cropY == b.cropY && a.cropX == b.cropX && a.flip == b.flip && a.angle == b.angle
            && a.cutoutCenter?.y == b.cutoutCenter?.y && a.cutoutCenter?.x == b.cutoutCenter?.x
    }
}

/// Applies an `AugmentationConfig`'s per-sample steps to (C, H, W) UInt8 images, writing
/// (C, H, W) Float32 normalised images. Crop, flip and rotation are fused into one pass over the
/// output: each output pixel maps back to a source position (crop and flip are per-axis index
/// maps; rotation is PIL's inverse affine map with nearest or bilinear sampling), so nothing is copied twice.
///
/// Normalisation is `(v / 255 - mean) / std` in Float, the same operations as torchvision's
/// ToTensor + Normalize, so integral pixel values give the same floats. Rotated values are
/// bilinear blends kept in Float (not re-quantised to 8 bits as PIL would).
package struct Augmenter: Sendable {
    package let config: AugmentationConfig
    package let channels: Int
    package let height: Int
    package let width: Int
    let mean: [Float]
    let std: [Float]
    /// (C, 256): the normalised value of each byte per channel.
    let lut: [Float]

    package init(config: AugmentationConfig, channels: Int, height: Int, width: Int) throws {
        try config.validate(channels: channels, height: height, width: width)
        self.config = config
        self.channels = channels
        self.height = height
        self.width = width
        (mean, std) = try config.normalization.perChannel(channels)
        var lut = [Float](repeating: 0, count: channels * 256)
        for c in 0..<channels {
            for v in 0..<256 { lut[c * 256 + v] = (Float(v) / 255 - mean[c]) / std[c] }
        }
        self.lut = lut
    }

    /// The draw that changes nothing (crop centred, no flip, no rotation, no cutout).
    package var identityDraw: SampleDraw { SampleDraw(cropY: config.cropPadding, cropX: config.cropPadding) }

    /// Draws one sample's choices. Always consumes the same values in the same order (crop y,
    /// crop x, flip, angle, cutout gate, cutout y, cutout x), whichever steps are on, so turning
    /// a step on does not change the others' draws.
    package func draw(_ rng: inout SeededRNG) -> SampleDraw {
        let span = 2 * config.cropPadding + 1
        let cy = DataRandom.int(span, &rng)
        let cx = DataRandom.int(span, &rng)
        let flip = rng.nextFloat() < config.horizontalFlip
        let u = rng.nextFloat()
        let angle = config.rotationDegrees > 0 ? config.rotationDegrees * (2 * u - 1) : 0
        let gate = rng.nextFloat()
        let ky = DataRandom.int(height, &rng)
        let kx = DataRandom.int(width, &rng)
        let cut = config.cutoutSize > 0 && gate < config.cutoutProbability
        return SampleDraw(cropY: cy, cropX: cx, flip: flip, angle: angle, cutoutCenter: cut ? (ky, kx) : nil)
    }

    /// The draw of dataset image `item` in `epoch` (0-based) of a run seeded `seed`: `draw` from the
    /// image's sample stream, and with `alternatingFlip` the flip from its run-long coin, inverted in
    /// odd epochs. The host pipeline and the device feed both draw through here.
    package func draw(seed: UInt64, epoch: Int, item: Int) -> SampleDraw {
        var rng = DataRandom.rng(seed, .sample, epoch: epoch, item: item)
        var d = draw(&rng)
        if config.alternatingFlip {
            var coin = DataRandom.rng(seed, .flip, epoch: 0, item: item)
            d.flip = (coin.nextFloat() < config.horizontalFlip) != (epoch % 2 == 1)
        }
        return d
    }

    /// Convenience for tests and tools: one image (C, H, W) in, normalised (C, H, W) out.
    package func apply(_ d: SampleDraw, to image: [UInt8]) -> [Float] {
        precondition(image.count == channels * height * width)
        var out = [Float](repeating: 0, count: image.count)
        image.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in apply(d, source: src.baseAddress!, into: dst.baseAddress!) }
        }
        return out
    }

    /// Writes the augmented, normalised image. source: (C, H, W) UInt8; dst: (C, H, W) Float.
    package func apply(_ d: SampleDraw, source: UnsafePointer<UInt8>, into dst: UnsafeMutablePointer<Float>) {
        let H = height, W = width, p = config.cropPadding
        let reflect = config.paddingMode == .reflect
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: H + W) { maps in
            // rowMap[y] / colMap[x]: the source row / column an output row / column of the cropped,
            // flipped image comes from, or -1 for zero padding.
            let rowMap = maps.baseAddress!, colMap = maps.baseAddress! + H
            for y in 0..<H { rowMap[y] = Self.padIndex(y + d.cropY - p, H, reflect) }
            for x in 0..<W { colMap[x] = Self.padIndex((d.flip ? W - 1 - x : x) + d.cropX - p, W, reflect) }
            if d.angle == 0 {
                gatherNormalised(source, dst, rowMap, colMap)
            } else {
                rotate(d.angle, source, dst, rowMap, colMap)
                normaliseInPlace(dst)
            }
        }
        if let c = d.cutoutCenter { cutout(dst, centerY: c.y, centerX: c.x) }
    }

    /// Index `i` of a padded axis of length `n`: itself inside, mirrored (no edge repeat) or -1 outside.
    @inline(__always) static func padIndex(_ i: Int, _ n: Int, _ reflect: Bool) -> Int32 {
        if i >= 0 && i < n { return Int32(i) }
        guard reflect else { return -1 }
        var j = i
        // One reflection suffices because padding < n (checked by the config).
        if j < 0 { j = -j }
        if j >= n { j = 2 * (n - 1) - j }
        return Int32(min(max(j, 0), n - 1))
    }

    private func gatherNormalised(_ src: UnsafePointer<UInt8>, _ dst: UnsafeMutablePointer<Float>,
                                  _ rowMap: UnsafeMutablePointer<Int32>, _ colMap: UnsafeMutablePointer<Int32>) {
        let H = height, W = width, HW = H * W
        lut.withUnsafeBufferPointer { lutAll in
            for c in 0..<channels {
                let table = lutAll.baseAddress! + c * 256
                let plane = src + c * HW
                let zero = table[0]
                for y in 0..<H {
                    let out = dst + c * HW + y * W
                    let r = Int(rowMap[y])
                    if r < 0 {
                        for x in 0..<W { out[x] = zero }
                        continue
                    }
                    let row = plane + r * W
                    for x in 0..<W {
                        let m = Int(colMap[x])
                        out[x] = m < 0 ? zero : table[Int(row[m])]
                    }
                }
            }
        }
    }

    /// PIL's Image.rotate(angle, NEAREST or BILINEAR, center=None, fillcolor=0) on the mapped image, into
    /// `dst` as raw pixel values (0...255, Float). Output pixel (x, y) samples the input at
    ///   xin = cos·(x + ½ − W/2) − sin·(y + ½ − H/2) + W/2,  yin = sin·(x + ½ − W/2) + cos·(y + ½ − H/2) + H/2;
    /// outside [0, W) x [0, H) it is 0, inside it blends the four pixels around (xin − ½, yin − ½)
    /// with edge clamping, weights (1−dx)(1−dy), dx(1−dy), (1−dx)dy, dx·dy. Nearest takes the pixel
    /// (floor(xin), floor(yin)) (PIL's affine NEAREST): the same gather with weights (1, 0, 0, 0).
    private func rotate(_ degrees: Float, _ src: UnsafePointer<UInt8>, _ dst: UnsafeMutablePointer<Float>,
                        _ rowMap: UnsafeMutablePointer<Int32>, _ colMap: UnsafeMutablePointer<Int32>) {
        let H = height, W = width, HW = H &* W, C = channels
        let rad = Double(degrees) * Double.pi / 180
        let cs = Float((cos(rad) * 1e15).rounded() / 1e15)
        let sn = Float((sin(rad) * 1e15).rounded() / 1e15)
        let halfW = Float(W) / 2, halfH = Float(H) / 2
        let fW = Float(W), fH = Float(H)
        let sentinel = Int32(HW)  // offset of the 0 appended to every source plane
        let nearest = config.rotationInterpolation == .nearest
        // Pass 1, shared by all channels: for each output pixel the source offsets of its four
        // neighbours (sentinel for padding or outside) and their bilinear weights.
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: 4 * HW) { offsBuf in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * HW + C * (HW + 1)) { fBuf in
                let offs = offsBuf.baseAddress!, wts = fBuf.baseAddress!, planes = fBuf.baseAddress! + 4 * HW
                for c in 0..<C {
                    let p = src + c &* HW, q = planes + c &* (HW &+ 1)
                    for i in 0..<HW { q[i] = Float(p[i]) }
                    q[HW] = 0
                }
                for y in 0..<H {
                    let yy = Float(y) + 0.5 - halfH
                    let bx = -sn * yy + halfW
                    let by = cs * yy + halfH
                    for x in 0..<W {
                        let xx = Float(x) + 0.5 - halfW
                        let xin = cs * xx + bx
                        let yin = sn * xx + by
                        let k = 4 &* (y &* W &+ x)
                        guard xin >= 0, xin < fW, yin >= 0, yin < fH else {
                            offs[k] = sentinel; offs[k &+ 1] = sentinel; offs[k &+ 2] = sentinel; offs[k &+ 3] = sentinel
                            wts[k] = 0; wts[k &+ 1] = 0; wts[k &+ 2] = 0; wts[k &+ 3] = 0
                            continue
                        }
                        let x0: Int, y0: Int, dx: Float, dy: Float
                        if nearest {
                            // xin, yin >= 0 here, so truncating floors.
                            x0 = Int(Int32(xin)); y0 = Int(Int32(yin)); dx = 0; dy = 0
                        } else {
                            // xs, ys >= -0.5, so truncating (x + 1) floors: no libm call.
                            let xs = xin - 0.5, ys = yin - 0.5
                            x0 = Int(Int32(xs + 1)) &- 1; y0 = Int(Int32(ys + 1)) &- 1
                            dx = xs - Float(x0); dy = ys - Float(y0)
                        }
                        let ca = colMap[max(x0, 0)], cb = colMap[min(x0 &+ 1, W &- 1)]
                        let ra = rowMap[max(y0, 0)], rb = rowMap[min(y0 &+ 1, H &- 1)]
                        let w32 = Int32(W)
                        offs[k] = (ra < 0 || ca < 0) ? sentinel : ra &* w32 &+ ca
                        offs[k &+ 1] = (ra < 0 || cb < 0) ? sentinel : ra &* w32 &+ cb
                        offs[k &+ 2] = (rb < 0 || ca < 0) ? sentinel : rb &* w32 &+ ca
                        offs[k &+ 3] = (rb < 0 || cb < 0) ? sentinel : rb &* w32 &+ cb
                        wts[k] = (1 - dx) * (1 - dy)
                        wts[k &+ 1] = dx * (1 - dy)
                        wts[k &+ 2] = (1 - dx) * dy
                        wts[k &+ 3] = dx * dy
                    }
                }
                // Pass 2: a branch-free weighted gather, all channels per pixel (weights loaded once).
                for i in 0..<HW {
                    let k = 4 &* i
                    let o0 = Int(offs[k]), o1 = Int(offs[k &+ 1]), o2 = Int(offs[k &+ 2]), o3 = Int(offs[k &+ 3])
                    let w0 = wts[k], w1 = wts[k &+ 1], w2 = wts[k &+ 2], w3 = wts[k &+ 3]
                    var q = planes, out = dst + i
                    for _ in 0..<C {
                        out.pointee = w0 * q[o0] + w1 * q[o1] + w2 * q[o2] + w3 * q[o3]
                        q += HW &+ 1
                        out += HW
                    }
                }
            }
        }
    }

    private func normaliseInPlace(_ dst: UnsafeMutablePointer<Float>) {
        let HW = height * width
        for c in 0..<channels {
            let m = mean[c], s = std[c]
            let plane = dst + c * HW
            for i in 0..<HW { plane[i] = (plane[i] / 255 - m) / s }
        }
    }

    /// Zeroes a `cutoutSize` square whose top-left is (centerY - size/2, centerX - size/2),
    /// clipped to the image, in every channel (0 = the channel mean after normalisation).
    private func cutout(_ dst: UnsafeMutablePointer<Float>, centerY: Int, centerX: Int) {
        let L = config.cutoutSize
        let y1 = max(0, centerY - L / 2), y2 = min(height, centerY - L / 2 + L)
        let x1 = max(0, centerX - L / 2), x2 = min(width, centerX - L / 2 + L)
        guard y1 < y2, x1 < x2 else { return }
        for c in 0..<channels {
            for y in y1..<y2 {
                let row = dst + (c * height + y) * width
                for x in x1..<x2 { row[x] = 0 }
            }
        }
    }
}
