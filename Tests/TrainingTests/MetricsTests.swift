import Foundation
import Testing
@testable import Training

@Suite struct MetricsTests {
    // 3 classes; labels and predictions chosen so every count is easy to verify by hand.
    //   true a: predicted a, a, b        true b: predicted b, c        true c: predicted c, c, c, a
    let cm = ConfusionMatrix(classes: ["a", "b", "c"], labels: [0, 0, 0, 1, 1, 2, 2, 2, 2], predictions: [0, 0, 1, 1, 2, 2, 2, 2, 0])

    @Test func countsAndAccuracy() {
        #expect(cm.counts == [[2, 1, 0], [0, 1, 1], [1, 0, 3]])
        #expect(cm.total == 9 && cm.correct == 6)
        #expect(abs(cm.accuracy - 6.0 / 9) < 1e-12)
    }

    @Test func precisionRecallF1ByHand() {
        let r = cm.perClass()
        // a: tp 2, predicted 3, support 3 -> p 2/3, r 2/3;  b: tp 1, predicted 2, support 2 -> p 1/2, r 1/2
        // c: tp 3, predicted 4, support 4 -> p 3/4, r 3/4
        let expected: [(Double, Double, Int)] = [(2.0 / 3, 2.0 / 3, 3), (0.5, 0.5, 2), (0.75, 0.75, 4)]
        for (got, e) in zip(r, expected) {
            #expect(abs(got.precision - e.0) < 1e-12 && abs(got.recall - e.1) < 1e-12 && got.support == e.2)
            #expect(abs(got.f1 - e.0) < 1e-12, "p == r, so F1 equals both")
        }
    }

    @Test func reportHasScikitLearnLayout() {
        let text = cm.classificationReport(digits: 2)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0].contains("precision") && lines[0].contains("recall") && lines[0].contains("f1-score") && lines[0].contains("support"))
        // Golden output of sklearn.metrics.classification_report(labels, predictions, target_names=["a", "b", "c"]).
        let sklearn = "              precision    recall  f1-score   support\n\n           a       0.67      0.67      0.67         3\n           b       0.50      0.50      0.50         2\n           c       0.75      0.75      0.75         4\n\n    accuracy                           0.67         9\n   macro avg       0.64      0.64      0.64         9\nweighted avg       0.67      0.67      0.67         9\n"
        #expect(text == sklearn)
        // macro avg = mean of per-class values: (2/3 + 1/2 + 3/4) / 3 = 0.6389; weighted = (2 + 1 + 3)/9 = 0.6667
        #expect(lines.contains { $0.contains("macro avg") && $0.contains("0.64") })
        #expect(lines.contains { $0.contains("weighted avg") && $0.contains("0.67") })
        #expect(lines.contains { $0.contains("accuracy") && $0.contains("0.67") && $0.hasSuffix("9") })
    }

    @Test func undefinedPrecisionIsZeroAsScikitLearn() {
        let m = ConfusionMatrix(classes: ["x", "y"], labels: [0, 0], predictions: [0, 0])
        let r = m.perClass()
        #expect(r[1].precision == 0 && r[1].recall == 0 && r[1].f1 == 0 && r[1].support == 0)
    }

    @Test func csvAndTopK() {
        #expect(cm.csv().split(separator: "\n")[1] == "a,2,1,0")
        // Two rows of 3 scores; labels 2 and 0. Row 0: label is the 2nd largest; row 1: the largest.
        let scores: [Float] = [0.5, 0.1, 0.4, 0.7, 0.2, 0.1]
        #expect(topKAccuracy(scores: scores, classes: 3, labels: [2, 0], top: 1) == 0.5)
        #expect(topKAccuracy(scores: scores, classes: 3, labels: [2, 0], top: 2) == 1.0)
    }
}

@Suite struct ScheduleTests {
    @Test func plateauCutsAfterPatienceEpochsWithoutImprovement() {
        var c = ScheduleConfig()
        c.kind = .plateau
        c.patience = 2
        c.factor = 0.1
        var s = LRSchedule(config: c, baseLR: 1e-3, epochs: 10, stepsPerEpoch: 5)
        // PyTorch ReduceLROnPlateau(patience 2): cut when bad epochs exceed 2.
        let losses = [1.0, 0.9, 0.95, 0.91, 0.92, 0.8, 0.85]
        var lrs: [Double] = []
        for (i, l) in losses.enumerated() {
            _ = s.epochEnd(epoch: i + 1, valLoss: l)
            lrs.append(s.lr(step: (i + 1) * 5))
        }
        // Epochs 3, 4, 5 are bad (3 > patience 2) -> cut after epoch 5; epoch 6 improves; 7 is bad (1).
        #expect(lrs.map { ($0 * 1e7).rounded() / 1e7 } == [1e-3, 1e-3, 1e-3, 1e-3, 1e-4, 1e-4, 1e-4])
    }

    @Test func cosineOneCycleStepAndWarmup() {
        var c = ScheduleConfig()
        c.kind = .cosine
        let cos = LRSchedule(config: c, baseLR: 1.0, epochs: 2, stepsPerEpoch: 50)
        #expect(cos.lr(step: 0) == 1.0 && abs(cos.lr(step: 50) - 0.5) < 1e-12 && cos.lr(step: 100) < 1e-12)
        c.kind = .onecycle
        let oc = LRSchedule(config: c, baseLR: 1.0, epochs: 1, stepsPerEpoch: 100)
        #expect(abs(oc.lr(step: 0) - 1.0 / 25) < 1e-12, "starts at max/25")
        #expect(abs(oc.lr(step: 29) - 1.0) < 1e-12, "peaks at pct_start * total - 1")
        #expect(abs(oc.lr(step: 99) - 1.0 / 25 / 1e4) < 1e-12, "ends at initial/1e4")
        c.kind = .step
        c.stepSize = 2
        c.gamma = 0.5
        var st = LRSchedule(config: c, baseLR: 1.0, epochs: 6, stepsPerEpoch: 1)
        var got: [Double] = []
        for e in 1...4 { _ = st.epochEnd(epoch: e, valLoss: nil); got.append(st.lr(step: e)) }
        #expect(got == [1.0, 0.5, 0.5, 0.25])
        c.kind = .constant
        c.warmupEpochs = 1
        c.warmupStart = 0.1
        let w = LRSchedule(config: c, baseLR: 1.0, epochs: 3, stepsPerEpoch: 10)
        #expect(abs(w.lr(step: 0) - 0.1) < 1e-12 && abs(w.lr(step: 5) - 0.55) < 1e-12 && w.lr(step: 10) == 1.0)
    }
}

@Suite struct ConfigTests {
    func write(_ s: String) -> String {
        let p = TestData.temporaryDirectory().appendingPathComponent("c.json").path
        _ = FileManager.default.createFile(atPath: p, contents: Data(s.utf8))
        return p
    }

    @Test func partialConfigKeepsDefaults() throws {
        let c = try TrainConfig.load(path: write(#"{"model": "cnn", "epochs": 3, "schedule": {"kind": "cosine"}, "augmentation": {"cutoutSize": 8}}"#))
        #expect(c.model == .cnn && c.epochs == 3 && c.batchSize == 64 && c.schedule.kind == .cosine && c.schedule.patience == 3)
        // An "augmentation" block describes the whole augmentation: what it leaves out is off.
        #expect(c.augmentation.cutoutSize == 8 && c.augmentation.horizontalFlip == 0 && c.augmentation.rotationDegrees == 0)
        let d = try TrainConfig.load(path: write(#"{"epochs": 3}"#))
        #expect(d.augmentation == .guide)
    }

    /// `model` and `device` are typed but keep their JSON strings, so old run folders resume; a bad
    /// value names the key, the value and the valid ones.
    @Test func typedModelAndDeviceKeepTheirStrings() throws {
        let c = try TrainConfig.load(path: write(#"{"model": "resnet8", "device": "opencl:1:0"}"#))
        #expect(c.model == .resnet8 && c.device == .openclDevice(platform: 1, device: 0))
        #expect(c.json().contains(#""model" : "resnet8""#) && c.json().contains(#""device" : "opencl:1:0""#))
        #expect(try TrainConfig.load(path: write(c.json())) == c)
        do { _ = try TrainConfig.load(path: write(#"{"model": "vgg"}"#)); Issue.record("accepted model vgg") } catch {
            let m = "\(error)"
            #expect(m.contains("model") && m.contains("'vgg'") && m.contains("optimized, speedrun"), "\(m)")
        }
        do { _ = try TrainConfig.load(path: write(#"{"device": "gpu"}"#)); Issue.record("accepted device gpu") } catch {
            let m = "\(error)"
            #expect(m.contains("device") && m.contains("'gpu'") && m.contains("opencl:P:D"), "\(m)")
        }
        do { _ = try TrainConfig.load(path: write(#"{"schedule": {"kind": "linear"}}"#)); Issue.record("accepted schedule linear") } catch {
            let m = "\(error)"
            #expect(m.contains("schedule.kind") && m.contains("linear") && m.contains("constant, plateau, cosine"), "\(m)")
        }
    }

    @Test func unknownKeyAndBadValueAreNamed() {
        do { _ = try TrainConfig.load(path: write(#"{"epocs": 3}"#)); Issue.record("accepted a typo") } catch {
            #expect("\(error)".contains("epocs"))
        }
        do { _ = try TrainConfig.load(path: write(#"{"epochs": "three"}"#)); Issue.record("accepted a string") } catch {
            #expect("\(error)".contains("epochs"))
        }
        var c = TrainConfig()
        c.validationFraction = 1.5
        #expect(throws: (any Error).self) { try c.validate() }
        do { try c.validate() } catch { #expect("\(error)".contains("validationFraction")) }
        #expect(c.problems().map(\.key) == ["validationFraction"])
    }
}
