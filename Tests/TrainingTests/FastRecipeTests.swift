import CNNCore
import CPUBackend
import Datasets
import Foundation
@testable import NN
import Testing
@testable import Training

/// The tricks of the `fast` recipe (airbench94), each on its own: dirac initialisation, frozen
/// BatchNorm scales and the BatchNorm-bias learning rate (parameter runs), the head's 1/9, the
/// triangle schedule, lookahead, alternating flip and translation TTA.
@Suite struct FastRecipeTests {
    let backend = CPUBackend()

    func randomGradients(_ m: Model, seed: UInt64) throws -> [Float] {
        var rng = SeededRNG(seed: seed)
        let g = (0..<m.parameterCount).map { _ in rng.uniform(-1, 1) }
        try backend.write(g, to: m.flatGradients)
        return g
    }

    @Test func diracConvolutionPassesItsInputChannelsThrough() throws {
        let conv = Conv2d(4, 6, kernel: 3, padding: 1, bias: false, identityInit: true)
        let model = try Model(name: "d", network: Sequential(named: [("conv", conv)]), inputShape: [4, 5, 5], backend: backend, seed: 3)
        var rng = SeededRNG(seed: 4)
        let x = (0..<2 * 4 * 25).map { _ in rng.uniform(-2, 2) }
        let y = try backend.floats(try model.forward(try backend.upload(x, shape: [2, 4, 5, 5]), training: false))
        for n in 0..<2 {
            for c in 0..<4 {
                let got = Array(y[(n * 6 + c) * 25..<(n * 6 + c + 1) * 25]), want = Array(x[(n * 4 + c) * 25..<(n * 4 + c + 1) * 25])
                #expect(got == want, "channel \(c) of image \(n) is the identity of input channel \(c)")
            }
            // The filters past the input channels keep their random initialisation.
            #expect(Array(y[(n * 6 + 4) * 25..<(n * 6 + 5) * 25]) != Array(x[(n * 4) * 25..<(n * 4 + 1) * 25]))
        }
        let w = try backend.floats(conv.weight.value)
        #expect(w[(4 * 4) * 9..<(6 * 4) * 9].contains { $0 != 0 && abs($0) <= 1 / Float(36).squareRoot() })
    }

    @Test func frozenBatchNormScalesStayAtOneAndBiasesTrainFaster() throws {
        let a = try ModelZoo.make(.fast, backend: backend, seed: 7)
        let b = try ModelZoo.make(.fast, backend: backend, seed: 7)
        for (_, bn) in b.batchNormLayers {
            bn.bias.learningRateScale = 64
            bn.bias.weightDecayScale = 1.0 / 64
        }
        let g = try randomGradients(a, seed: 1)
        try backend.write(g, to: b.flatGradients)
        let p0 = try backend.floats(a.flatParameters)
        #expect(try backend.floats(b.flatParameters) == p0)
        let hyper = SGDHyper(learningRate: 0.01, momentum: 0.85, nesterov: true, weightDecay: 0)
        try SGD(model: a, hyper: hyper).step()
        try SGD(model: b, hyper: hyper).step()
        let pa = try backend.floats(a.flatParameters), pb = try backend.floats(b.flatParameters)
        // Each BatchNorm's weight and bias are one run apart from the convolutions around them.
        #expect(try b.parameterRuns().count > 6)
        let lite = try ModelZoo.make("lite", backend: backend, seed: 1)
        #expect(try lite.parameterRuns() == [ParameterRun(range: 0..<lite.parameterCount, learningRateScale: 1, weightDecayScale: 1)],
                "with every scale 1 the optimizer updates the whole buffer in one launch")
        for (path, bn) in a.batchNormLayers {
            let w = bn.weight.flatOffset..<(bn.weight.flatOffset + bn.features)
            #expect(Array(pa[w]) == [Float](repeating: 1, count: w.count), "\(path).weight is frozen at 1")
            #expect(Array(pb[w]) == [Float](repeating: 1, count: w.count))
            for i in bn.bias.flatOffset..<(bn.bias.flatOffset + bn.features) {
                let da = pa[i] - p0[i], db = pb[i] - p0[i]
                #expect(da != 0)
                #expect(abs(db - 64 * da) <= 1e-5 * abs(db), "\(path).bias moves 64x as far")
            }
        }
        // Everything else moves the same in both.
        let head = a.parameters.first { $0.name == "head.weight" }!.parameter
        #expect(Array(pa[head.flatOffset..<head.flatOffset + head.shape.count]) == Array(pb[head.flatOffset..<head.flatOffset + head.shape.count]))
    }

    @Test func headScaleIsOneNinth() throws {
        let model = try Model(name: "s", network: Sequential(named: [("scale", Scale(1.0 / 9))]), inputShape: [5], backend: backend, seed: 1)
        let x: [Float] = [9, -18, 0.5, 3, 1e-3]
        let y = try backend.floats(try model.forward(try backend.upload(x, shape: [1, 5]), training: true))
        #expect(y == x.map { $0 * Float(1.0 / 9) })
        let dy = try backend.upload([Float]([1, 2, 3, 4, 5]), shape: [1, 5])
        let dx = try model.network.backward(dy)
        #expect(try backend.floats(dx!) == [1, 2, 3, 4, 5].map { Float($0) * Float(1.0 / 9) })
    }

    @Test func triangleScheduleWarmsUpThenDecaysLinearlyToZero() {
        var c = ScheduleConfig()
        c.kind = .triangle
        c.warmupStart = 0.2
        c.pctStart = 0.2
        let s = LRSchedule(config: c, baseLR: 2.0, epochs: 10, stepsPerEpoch: 10)   // 100 steps, peak at 20
        #expect(abs(s.lr(step: 0) - 0.4) < 1e-12)
        #expect(abs(s.lr(step: 10) - 2.0 * 0.6) < 1e-12)
        #expect(abs(s.lr(step: 20) - 2.0) < 1e-12)
        #expect(abs(s.lr(step: 60) - 1.0) < 1e-12)
        #expect(abs(s.lr(step: 100)) < 1e-12)
        #expect(s.lr(step: 99) > 0)
        var bad = TrainConfig()
        bad.schedule = c
        bad.schedule.pctStart = 1
        bad.schedule.endFraction = 1.5
        #expect(bad.problems().map(\.key) == ["schedule.pctStart", "schedule.endFraction"])
    }

    /// airbench94's knots: triangle(steps, start=0.2, end=0.07, peak=0.23), i.e. np.interp over
    /// [0, int(0.23 steps), steps] -> [0.2, 1, 0.07].
    @Test func triangleScheduleEndsAtItsEndFraction() {
        var c = ScheduleConfig()
        c.kind = .triangle
        c.warmupStart = 0.2
        c.pctStart = 0.23
        c.endFraction = 0.07
        let s = LRSchedule(config: c, baseLR: 1.5, epochs: 10, stepsPerEpoch: 48)   // 480 steps, peak at int(110.4) = 110
        #expect(abs(s.lr(step: 0) - 1.5 * 0.2) < 1e-12)
        #expect(abs(s.lr(step: 55) - 1.5 * 0.6) < 1e-12)
        #expect(abs(s.lr(step: 110) - 1.5) < 1e-12)
        #expect(abs(s.lr(step: 295) - 1.5 * (0.07 + 0.93 * 0.5)) < 1e-12)
        #expect(abs(s.lr(step: 480) - 1.5 * 0.07) < 1e-12)
        #expect(abs(s.lr(step: 479) - 1.5 * (0.07 + 0.93 / 370)) < 1e-12)
    }

    /// Flip + translate TTA averages the six views' logits with weights 1/4 (unshifted, mirror) and
    /// 1/8 (each shift, mirror), then takes the softmax, as airbench's infer_mirror_translate.
    @Test func testTimeAugmentationAveragesTheViewsLogits() throws {
        let m = try ModelZoo.make("lite", backend: backend, seed: 7)
        var rng = SeededRNG(seed: 8)
        let n = 6, k = 10
        let data = try ImageDataset(pixels: (0..<n * 3 * 32 * 32).map { _ in UInt8(truncatingIfNeeded: rng.next()) },
                                    labels: (0..<n).map { Int32($0 % k) }, classNames: (0..<k).map { "c\($0)" },
                                    channels: 3, height: 32, width: 32)
        let r = try evaluate(model: m, dataset: data, normalization: .half, batchSize: n, flipTTA: true, translateTTA: true, topK: [1])
        var aug = AugmentationConfig.none
        aug.normalization = .half
        let loader = try BatchLoader(dataset: data, indices: nil, batchSize: n, shuffle: false, augmentation: aug, seed: 0, workers: 0)
        var images: HostTensor?
        for b in loader.batches(epoch: 0) { images = b.images }
        let x = try #require(images)
        let runner = try StepRunner(model: m, optimizer: nil)
        func mirrored(_ v: HostTensor) throws -> [Float] {
            zip(try runner.logits(images: v), try runner.logits(images: flipped(v))).map { 0.5 * ($0 + $1) }
        }
        let z0 = try mirrored(x), z1 = try mirrored(translated(x, dy: 1, dx: 1)), z2 = try mirrored(translated(x, dy: -1, dx: -1))
        var loss = 0.0
        for i in 0..<n {
            let z = (0..<k).map { Double(0.5 * z0[i * k + $0] + 0.25 * (z1[i * k + $0] + z2[i * k + $0])) }
            let best = z.indices.max { z[$0] < z[$1] }!
            #expect(r.predictions[i] == best, "image \(i)")
            let m = z.max()!, lse = m + log(z.map { exp($0 - m) }.reduce(0, +))
            loss += lse - z[i % k]
            let p = exp(z[best] - lse)
            #expect(abs(Double(r.top3[i][0].probability) - p) < 1e-5)
        }
        #expect(abs(r.loss - loss / Double(n)) < 1e-5)
        // Plain evaluation is not the same number: the views matter.
        let plain = try evaluate(model: m, dataset: data, normalization: .half, batchSize: n, topK: [1])
        #expect(abs(plain.loss - r.loss) > 1e-6)
    }

    /// Host simulation of lookahead over plain SGD with fixed gradients.
    @Test func lookaheadAveragesEveryKStepsAndEndsOnTheSlowWeights() throws {
        let m = try ModelZoo.make("lite", backend: backend, seed: 2)
        let g = try randomGradients(m, seed: 5)
        let p0 = try backend.floats(m.flatParameters)
        let mean0 = try backend.floats(m.buffers[0].buffer.value)
        let opt = try Lookahead(wrapping: try SGD(model: m, hyper: SGDHyper(learningRate: 0.1)), model: m, every: 2, totalSteps: 5)
        var fast = p0, slow = p0
        for t in 1...5 {
            // A BatchNorm running mean that training would move: here set by hand each step.
            try backend.fill(m.buffers[0].buffer.value, value: Float(t))
            try opt.step()
            for i in fast.indices { fast[i] -= 0.1 * g[i] }
            if t % 2 == 0 || t == 5 {
                let d: Float = t == 5 ? 1 : Float(pow(0.95, 2.0) * pow(Double(t) / 5, 3))
                if t % 2 == 0 { for i in slow.indices { slow[i] = d * slow[i] + (1 - d) * fast[i] } }
                if t == 5 { /* step 5 is not a multiple of 2: only the final copy */ }
                fast = slow
            }
            let got = try backend.floats(m.flatParameters)
            for i in stride(from: 0, to: got.count, by: 53) {
                #expect(abs(got[i] - fast[i]) <= 1e-5 * max(1, abs(fast[i])), "step \(t), parameter \(i)")
            }
        }
        // The run ends on the slow copy: the buffers too (the running mean set at step 4 was averaged in at step 4).
        let d4 = Float(pow(0.95, 2.0) * pow(4.0 / 5, 3)), d2 = Float(pow(0.95, 2.0) * pow(2.0 / 5, 3))
        let slowMean = mean0.map { d4 * (d2 * $0 + (1 - d2) * 2) + (1 - d4) * 4 }
        let mean = try backend.floats(m.buffers[0].buffer.value)
        for (a, b) in zip(mean, slowMean) { #expect(abs(a - b) <= 1e-5) }
        #expect(opt.decay(afterStep: 5) == Float(pow(0.95, 2.0)))
    }

    @Test func lookaheadStateRoundTripsAndNamesAMissingSlowCopy() throws {
        let m = try ModelZoo.make("lite", backend: backend, seed: 2)
        _ = try randomGradients(m, seed: 5)
        let opt = try Lookahead(wrapping: try SGD(model: m, hyper: SGDHyper(learningRate: 0.1, momentum: 0.9)), model: m, every: 3, totalSteps: 10)
        for _ in 0..<4 { try opt.step() }
        let s = try opt.state()
        #expect(s.tensors.contains { $0.0 == "lookahead.parameters" } && s.tensors.contains { $0.0 == "momentum_buffer" })
        let opt2 = try Lookahead(wrapping: try SGD(model: m, hyper: SGDHyper(learningRate: 0.1, momentum: 0.9)), model: m, every: 3, totalSteps: 10)
        try opt2.loadState(tensors: s.tensors, step: s.step)
        let s2 = try opt2.state()
        #expect(s2.step == 4 && s2.tensors.map(\.0) == s.tensors.map(\.0) && s2.tensors.map(\.1) == s.tensors.map(\.1))
        #expect {
            try opt2.loadState(tensors: s.tensors.filter { !$0.0.hasPrefix("lookahead.") }, step: 4)
        } throws: { "\($0)".contains("lookahead.parameters") && "\($0)".contains("--lookahead") }
    }

    @Test func alternatingFlipInvertsEachImageEveryOtherEpoch() throws {
        var cfg = AugmentationConfig(horizontalFlip: 0.5)
        cfg.cropPadding = 2
        cfg.paddingMode = .reflect
        let random = try Augmenter(config: cfg, channels: 3, height: 32, width: 32)
        cfg.alternatingFlip = true
        let alternating = try Augmenter(config: cfg, channels: 3, height: 32, width: 32)
        var flippedInEpoch0 = 0
        for item in 0..<400 {
            let e0 = alternating.draw(seed: 9, epoch: 0, item: item), e1 = alternating.draw(seed: 9, epoch: 1, item: item)
            let e2 = alternating.draw(seed: 9, epoch: 2, item: item), e3 = alternating.draw(seed: 9, epoch: 3, item: item)
            #expect(e0.flip != e1.flip && e0.flip == e2.flip && e1.flip == e3.flip, "image \(item)")
            if e0.flip { flippedInEpoch0 += 1 }
            // The other choices are the random pipeline's.
            let r = random.draw(seed: 9, epoch: 2, item: item)
            #expect(r.cropY == e2.cropY && r.cropX == e2.cropX && r.angle == e2.angle)
        }
        #expect((150...250).contains(flippedInEpoch0), "about half the images start flipped: \(flippedInEpoch0) of 400")
    }

    @Test func translationShiftsWithReflectPadding() throws {
        // One 3x4 plane: value = 10 * row + column.
        let img = HostTensor(shape: [1, 1, 3, 4], values: (0..<3).flatMap { y in (0..<4).map { Float(10 * y + $0) } })
        let down = translated(img, dy: 1, dx: 1)
        // out[y][x] = in[reflect(y - 1)][reflect(x - 1)]: row -1 reflects to row 1, column -1 to column 1.
        #expect(down.values == [11, 10, 11, 12, 1, 0, 1, 2, 11, 10, 11, 12])
        let up = translated(img, dy: -1, dx: -1)
        // row 3 reflects to row 1, column 4 to column 2.
        #expect(up.values == [11, 12, 13, 12, 21, 22, 23, 22, 11, 12, 13, 12])
        #expect(translated(img, dy: 0, dx: 0).values == img.values)
    }

    @Test func fastRecipeSetsEveryTrick() throws {
        var c = TrainConfig()
        Recipe.fast.apply(to: &c)
        #expect(c.model == .fast && c.batchSize == 1024 && c.optimizer == .sgd && c.nesterov && c.momentum == 0.85)
        #expect(abs(c.learningRate - 1.5) < 1e-12 && c.batchNormBiasLRScale == 64 && c.lookaheadEvery == 5)
        #expect(c.schedule.kind == .triangle && c.augmentation.alternatingFlip && c.testTimeFlip && c.testTimeTranslate)
        #expect(c.schedule.warmupStart == 0.2 && c.schedule.pctStart == 0.23 && c.schedule.endFraction == 0.07)
        // airbench's decay step per SGD step, lr · weightDecay = 0.0153 / (1 + 1/0.15) ≈ 0.002 of each weight.
        #expect(abs(c.learningRate * c.weightDecay - 0.0153 / (1 + 1 / 0.15)) < 1e-12)
        #expect(c.labelSmoothing == 0.2 && c.augmentation.cropPadding == 2 && c.augmentation.paddingMode == .reflect)
        // The new settings survive the config file.
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("fast-recipe-\(UInt32.random(in: 0...UInt32.max)).json")
        try c.json().write(to: url, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: url) }
        #expect(try TrainConfig.load(path: url.path) == c)
        var bad = c
        bad.lookaheadEvery = -1
        bad.batchNormBiasLRScale = 0
        #expect(Set(bad.problems().map(\.key)) == ["lookaheadEvery", "batchNormBiasLRScale"])
    }

    @Test func whiteningBiasTrainsForItsEpochsThenFreezes() throws {
        var rng = SeededRNG(seed: 3)
        let n = 64
        let pixels = (0..<n * 3 * 32 * 32).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let labels = (0..<n).map { Int32($0 % 10) }
        let train = try ImageDataset(pixels: pixels, labels: labels, classNames: (0..<10).map { "c\($0)" }, channels: 3, height: 32, width: 32)
        let data = TrainingData(train: train, split: try train.split(validationFraction: 0.25, seed: 1), test: nil)
        var c = TrainConfig()
        Recipe.fast.apply(to: &c)
        c.batchSize = 16
        c.epochs = 3
        c.whiteningBiasEpochs = 1
        c.lookaheadEvery = 0
        c.workers = 0
        let trainer = try Trainer(config: c, data: data, backend: backend, runDirectory: nil)
        trainer.showProgress = false
        trainer.log = { _ in }
        let bias = trainer.model.parameters.first { $0.name == "whiten.bias" }!.parameter
        let steps = trainer.trainLoader.batchesPerEpoch
        var seen: [Int: [Float]] = [0: try backend.floats(bias.value)]
        trainer.afterStep = { step in seen[step] = try? self.backend.floats(bias.value) }
        _ = try trainer.run()
        #expect(seen[1] != seen[0], "the bias trains in epoch 1")
        #expect(seen[steps] != seen[steps - 1])
        #expect(seen[steps + 1] == seen[steps] && seen[3 * steps] == seen[steps], "frozen from epoch 2 on")
    }
}
