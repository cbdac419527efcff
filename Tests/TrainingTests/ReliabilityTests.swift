import Foundation
import Synchronization
import Testing
import SwiftCNN
@testable import Training

// Issue 12, items 1 (interruptions), 4 (numerical trouble) and 6 (disk). docs/reliability.md
// lists each case with the test here that covers it.

/// This test binary (Linux: /proc/self/exe); `cnn` is built beside it.
let testBinary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]

/// Collects a trainer's log lines (the trainer logs from the thread that runs it).
final class LogLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func add(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return lines.joined(separator: "\n") }
}

@Suite(.enabled(if: TestData.cifarDirectory != nil, "needs CIFAR-10"), .serialized)
struct ReliabilityTests {
    func config(limit: Int, epochs: Int) -> TrainConfig {
        var c = TrainConfig()
        c.model = .lite
        c.data = TestData.cifarDirectory
        c.limit = limit
        c.epochs = epochs
        c.workers = 2
        c.evaluateTest = false
        return c
    }

    func trainer(_ c: TrainConfig, _ data: TrainingData, _ dir: URL?, backend: any Backend = CPUBackend(), log: LogLines? = nil) throws -> Trainer {
        let t = try Trainer(config: c, data: data, backend: backend, runDirectory: dir)
        t.showProgress = false
        t.log = { line in log?.add(line) }
        return t
    }

    /// A stop request mid-epoch writes `latest` with the step reached; resuming from it gives the
    /// uninterrupted run's metrics and weights bit for bit (CPU backend). Stopped after the epoch's
    /// last step (`atEnd`), the request is seen during validation: all steps are done and the
    /// resumed run repeats only the validation.
    @Test(arguments: [false, true]) func stopMidEpochResumesExactly(atEnd: Bool) throws {
        var c = config(limit: 1000, epochs: 2)
        c.augmentation.cutoutSize = 8
        c.augmentation.mixupAlpha = 0.2
        c.schedule.kind = .cosine
        let data = try TrainingData.load(c, log: { _ in })
        let a = TestData.temporaryDirectory(), b = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: a); try? FileManager.default.removeItem(at: b) }
        let full = try trainer(c, data, a)
        let ra = try full.run()

        let first = try trainer(c, data, b)
        let flag = StopFlag()
        first.stopFlag = flag
        let stopAt = atEnd ? first.trainLoader.batchesPerEpoch : 5
        first.afterStep = { step in if step == stopAt { flag.request() } }
        let r1 = try first.run()
        #expect(r1.interrupted && r1.history.isEmpty)
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: b.appendingPathComponent("latest.json"))) as? [String: Any]
        #expect(state?["epoch"] as? Int == 0 && state?["stepInEpoch"] as? Int == stopAt && state?["globalStep"] as? Int == stopAt, "\(state ?? [:])")

        let second = try trainer(c, data, b)
        try second.resume(from: b)
        let rb = try second.run()
        #expect(rb.history.count == 2)
        try expectSameRun(full, ra, second, rb)
    }

    /// The real `cnn train` binary under SIGTERM: exit 143, the resume command, a checkpoint.
    @Test func sigtermWritesACheckpointAndExits143() throws {
        let exe = URL(fileURLWithPath: testBinary).deletingLastPathComponent().appendingPathComponent("cnn").path
        guard FileManager.default.isExecutableFile(atPath: exe) else {
            Issue.record("no cnn binary beside the test binary (\(exe)): build the whole package")
            return
        }
        let dir = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("log.txt")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.currentDirectoryURL = dir
        p.arguments = ["train", "--device", "cpu", "--model", "lite", "--data", TestData.cifarDirectory!, "--limit", "20000",
                       "--epochs", "2", "--no-test", "--no-progress", "--workers", "1", "--name", "sig"]
        let h = try FileHandle(forWritingTo: log)
        p.standardOutput = h
        p.standardError = h
        try p.run()
        // Wait until the handlers are installed (the line printed right after), then give training a
        // moment to be mid-epoch. A stop requested before the first step works the same way.
        let deadline = Date().addingTimeInterval(60)
        while p.isRunning, Date() < deadline, !((try? String(contentsOf: log, encoding: .utf8)) ?? "").contains("Ctrl-C (or SIGTERM) stops") {
            Thread.sleep(forTimeInterval: 0.02)
        }
        Thread.sleep(forTimeInterval: 1.0)
        kill(p.processIdentifier, SIGTERM)
        // Never hang the suite: a child that has not exited a minute later is killed (and the test fails).
        let pid = p.processIdentifier
        DispatchQueue.global().asyncAfter(deadline: .now() + 60) { if p.isRunning { kill(pid, SIGKILL) } }
        p.waitUntilExit()
        try? h.close()
        let out = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(p.terminationStatus == 143 && p.terminationReason == .exit, "exit \(p.terminationStatus)\n\(out)")
        #expect(out.contains("resume with: cnn train --resume runs/sig"), "\(out)")
        let run = dir.appendingPathComponent("runs/sig")
        for f in ["latest.json", "latest.safetensors", "latest.optim.safetensors"] {
            #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent(f).path), "\(f) missing")
        }
        print("SIGTERM: " + (out.split(separator: "\n").filter { $0.contains("checkpoint written") || $0.contains("resume with") }.joined(separator: " | ")))
    }

    /// A huge learning rate in epoch 2 (injected after epoch 1's checkpoint): the run stops naming
    /// the step and the layers, and `latest` still holds epoch 1, byte for byte. CPU and OpenCL.
    func nonFiniteStops(backend: @autoclosure () throws -> any Backend) throws {
        let c = config(limit: 300, epochs: 3)
        let data = try TrainingData.load(c, log: { _ in })
        let dir = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try trainer(c, data, dir, backend: try backend())
        first.stopAfterEpoch = 1
        _ = try first.run()
        let latest = dir.appendingPathComponent("latest.safetensors")
        let before = try Data(contentsOf: latest)
        let second = try trainer(c, data, dir, backend: try backend())
        try second.resume(from: dir)
        second.learningRateScale = 1e30
        second.nonFiniteCheckEvery = 1
        var message = ""
        do { _ = try second.run() } catch { message = "\(error)" }
        print("huge learning rate (\(type(of: try backend()))): \(message)")
        #expect(message.contains("training diverged: non-finite") && message.contains("in epoch 2"), "\(message)")
        #expect(message.contains("first non-finite weights in features.") || message.contains("first non-finite gradient in"), "\(message)")
        #expect(message.contains("(epoch 1) is kept"), "\(message)")
        #expect(try Data(contentsOf: latest) == before)
        let again = try trainer(c, data, nil, backend: try backend())
        try again.resume(from: dir)
        #expect(try again.runner.parametersAreFinite())
    }

    @Test func nonFiniteStopsOnTheCPU() throws { try nonFiniteStops(backend: CPUBackend()) }

    @Test(.enabled(if: !OpenCLDiscovery.inventory().devices.isEmpty, "needs an OpenCL device (PoCL in CI)"))
    func nonFiniteStopsOnOpenCL() throws {
        try nonFiniteStops(backend: try OpenCLBackend(device: OpenCLDiscovery.inventory().devices[0]))
    }

    /// `--on-nan skip`: the run rolls back to the epoch's start, divides the learning rate by 10
    /// and finishes with finite weights.
    @Test func onNaNSkipRollsBackAndContinues() throws {
        let c = config(limit: 300, epochs: 3)
        let data = try TrainingData.load(c, log: { _ in })
        let log = LogLines()
        let t = try trainer(c, data, nil, log: log)
        t.onNonFinite = .skip
        t.nonFiniteCheckEvery = 1
        t.learningRateScale = 1e23      // Adam moves each weight by about lr per step: 1e20 overflows
        t.maxNonFiniteRecoveries = 20
        let r = try t.run()
        print("--on-nan skip: " + log.text.split(separator: "\n").filter { $0.contains("rolled back") }.joined(separator: "\n  "))
        #expect(log.text.contains("rolled back to the weights of epoch"), "\(log.text)")
        #expect(t.learningRateScale < 1e23)
        #expect(r.history.count == 3 && r.history.allSatisfy { $0.validationLoss.isFinite }, "\(r.history)")
        #expect(try t.runner.parametersAreFinite())
    }

    /// A checkpoint write that fails mid-run (injected after the tensor files, before the commit
    /// point) keeps the previous checkpoint, says so, and training goes on.
    @Test func failedCheckpointWriteKeepsThePreviousOne() throws {
        let c = config(limit: 300, epochs: 2)
        let data = try TrainingData.load(c, log: { _ in })
        let dir = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = LogLines()
        let t = try trainer(c, data, dir, log: log)
        let calls = Mutex(0)
        t.runFolder?.checkpointFault = { stem in
            let n = calls.withLock { $0 += 1; return $0 }
            if n > 2 { throw CNNError.io("injected: No space left on device") }   // epoch 1 writes latest and best
        }
        let r = try t.run()
        #expect(r.history.count == 2)
        #expect(log.text.contains("could not write checkpoint 'latest' of epoch 2"), "\(log.text)")
        #expect(log.text.contains("latest.* (epoch 1) is kept; training continues"), "\(log.text)")
        let again = try trainer(c, data, nil)
        try again.resume(from: dir)
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("latest.json"))) as? [String: Any]
        #expect(state?["epoch"] as? Int == 1)
    }

    /// An unwritable run folder is reported before training, naming the folder and what to do.
    @Test func unwritableRunFolderIsFoundBeforeTraining() throws {
        let c = config(limit: 300, epochs: 1)
        let data = try TrainingData.load(c, log: { _ in })
        let dir = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("not-a-folder")
        try Data("x".utf8).write(to: file)
        let steps = Mutex(0)
        let t = try trainer(c, data, file.appendingPathComponent("run"))
        t.afterStep = { _ in steps.withLock { $0 += 1 } }
        var message = ""
        do { _ = try t.run() } catch { message = "\(error)" }
        #expect(message.contains("cannot create the run folder \(file.path)/run") && message.contains("--runs-dir"), "\(message)")
        #expect(steps.withLock { $0 } == 0)
        // /proc refuses new entries even to root: the "not writable" path of the probe.
        let ro = try trainer(c, data, URL(fileURLWithPath: "/proc/self/swiftcnn-run"))
        do { _ = try ro.run(); Issue.record("training in /proc") } catch { #expect("\(error)".contains("/proc/self/swiftcnn-run") && "\(error)".contains("--runs-dir"), "\(error)") }
    }
}

/// The child of `killDuringSaveNeverAcceptsATornSet`: saves checkpoints in a loop, each with every
/// weight, optimizer tensor and step equal to the save's number k, until killed.
@Suite struct CheckpointSaveLoopProbe {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["SWIFTCNN_SAVE_LOOP_DIR"] != nil))
    func saveUntilKilled() throws {
        let dir = URL(fileURLWithPath: ProcessInfo.processInfo.environment["SWIFTCNN_SAVE_LOOP_DIR"]!)
        let (model, opt, state) = try KillTrial.make()
        for k in 1...100_000 {
            if k == 2 { _ = FileManager.default.createFile(atPath: dir.appendingPathComponent("ready").path, contents: nil) }
            try KillTrial.fill(model: model, optimizer: opt, k: k)
            var s = state
            s.globalStep = k
            s.optimizerStep = k
            try Checkpoint.save(dir: dir, stem: "latest", model: model, optimizer: opt, state: s, normalization: .half)
        }
    }
}

enum KillTrial {
    static func make() throws -> (Model, Optimizer, CheckpointState) {
        let model = try ModelZoo.make("cnn", backend: CPUBackend(), seed: 1)
        let opt = try SGD(model: model, hyper: SGDHyper(learningRate: 0.1, momentum: 0.9))
        let state = CheckpointState(config: TrainConfig(), model: model.name, inputShape: model.inputShape.dims, classNames: CIFAR10.defaultClassNames,
                                    epoch: 1, globalStep: 0, optimizerStep: 0, schedule: LRSchedule(config: ScheduleConfig(), baseLR: 0.1, epochs: 1, stepsPerEpoch: 1),
                                    history: [], bestValidationAccuracy: 0, bestEpoch: 0, bestValidationLoss: 0, epochsWithoutImprovement: 0, savedAt: "")
        return (model, opt, state)
    }

    static func fill(model: Model, optimizer: Optimizer, k: Int) throws {
        try model.backend.fill(model.flatParameters, value: Float(k))
        let tensors = [("momentum_buffer", HostTensor(shape: [model.parameterCount], values: [Float](repeating: Float(k), count: model.parameterCount)))]
        try optimizer.loadState(tensors: tensors, step: k)
    }
}

@Suite struct CheckpointRollForwardTests {
    /// A save that stopped after its commit point (JSON written, tensor files still pending) is
    /// completed before the next save of that stem and when a run folder is opened — also for
    /// `best`, which resume never loads.
    @Test func committedPendingSaveIsRolledForward() throws {
        let dir = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var (model, opt, state) = try KillTrial.make()
        try KillTrial.fill(model: model, optimizer: opt, k: 1)
        try Checkpoint.save(dir: dir, stem: "best", model: model, optimizer: opt, state: state, normalization: .half)
        // Save 2: a directory in the way of the model file makes its rename fail after the commit.
        try KillTrial.fill(model: model, optimizer: opt, k: 2)
        state.epoch = 2
        let final = Checkpoint.modelURL(dir, "best")
        try FileManager.default.removeItem(at: final)
        try FileManager.default.createDirectory(at: final.appendingPathComponent("blocker"), withIntermediateDirectories: true)
        #expect(throws: CNNError.self) {
            try Checkpoint.save(dir: dir, stem: "best", model: model, optimizer: opt, state: state, normalization: .half)
        }
        try FileManager.default.removeItem(at: final)
        try Checkpoint.completePending(dir: dir, stem: "best")
        let file = try SafeTensors.read(final)
        #expect(file.metadata["swiftcnn_epoch"] == "2", "best.safetensors holds epoch \(file.metadata["swiftcnn_epoch"] ?? "?")")
        let (fresh, freshOpt, _) = try KillTrial.make()
        let loaded = try Checkpoint.load(dir: dir, stem: "best", model: fresh, optimizer: freshOpt)
        #expect(loaded.epoch == 2)
        #expect(try fresh.backend.floats(fresh.flatParameters).allSatisfy { $0 == 2 })
    }
}

@Suite struct LeftoverFileTests {
    /// Opening a run folder removes what killed processes left: temporaries and probes of dead
    /// processes and uncommitted pending checkpoint files; a live process's temporary stays.
    @Test func leftoversOfDeadProcessesAreRemoved() throws {
        let dir = TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        // A pid that is not running: one above the kernel's limit.
        let maxPid = Int32((try? String(contentsOfFile: "/proc/sys/kernel/pid_max", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 4_194_304
        let dead = maxPid + 1
        let names = [".latest.safetensors.tmp-\(dead)-7", ".write-probe-\(dead)", ".latest.pending.safetensors",
                     ".best.pending.optim.safetensors", ".config.json.tmp-\(getpid())-3", "notes.txt"]
        for n in names { _ = FileManager.default.createFile(atPath: dir.appendingPathComponent(n).path, contents: Data([1, 2, 3])) }
        RunFolder(url: dir).removeLeftovers()
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: dir.path))
        #expect(left == [".config.json.tmp-\(getpid())-3", "notes.txt"], "left: \(left.sorted())")
    }
}

@Suite struct CheckpointKillTests {
    /// `kill -9` at random instants of repeated checkpoint saves: resume either accepts a set whose
    /// three files are all of one save, or refuses with a message. Never a torn set accepted.
    @Test func killDuringSaveNeverAcceptsATornSet() throws {
        var rng = SeededRNG(seed: 12)
        var accepted = 0, refused = 0, torn = 0, trials = 0, midSave = 0
        var refusals: Set<String> = []
        let start = Date()
        let seconds = Double(ProcessInfo.processInfo.environment["SWIFTCNN_KILL_SECONDS"] ?? "") ?? 4
        // At least 3 trials however slow the machine (CI runs the suite in parallel on 2 cores, where
        // one trial can take seconds), within a hard cap of a minute.
        while trials < 100_000, trials < 3 || Date().timeIntervalSince(start) < seconds, Date().timeIntervalSince(start) < 60 {
            trials += 1
            let dir = TestData.temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: dir) }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: testBinary)
            p.arguments = ["--testing-library", "swift-testing", "--filter", "CheckpointSaveLoopProbe"]
            var env = ProcessInfo.processInfo.environment
            env["SWIFTCNN_SAVE_LOOP_DIR"] = dir.path
            p.environment = env
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let deadline = Date().addingTimeInterval(20)
            while p.isRunning, Date() < deadline, !FileManager.default.fileExists(atPath: dir.appendingPathComponent("ready").path) {
                Thread.sleep(forTimeInterval: 0.001)
            }
            Thread.sleep(forTimeInterval: Double(rng.nextInt(60)) / 1000)   // 0-59 ms into the save loop
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            // Killed inside a save: a temporary or pending file is left behind.
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            if names.contains(where: { $0.contains(".tmp-") || $0.contains(".pending.") }) { midSave += 1 }
            let (model, opt, _) = try KillTrial.make()
            do {
                let s = try Checkpoint.load(dir: dir, stem: "latest", model: model, optimizer: opt)
                let k = Float(s.globalStep)
                let weights = try model.backend.floats(model.flatParameters)
                let o = try opt.state()
                if weights.allSatisfy({ $0 == k }) && o.step == s.globalStep && o.tensors.allSatisfy({ $0.1.values.allSatisfy { $0 == k } }) {
                    accepted += 1
                } else {
                    torn += 1
                }
            } catch {
                refused += 1
                let m = "\(error)"
                #expect(m.contains("cannot resume"), "unclear refusal: \(m)")
                refusals.insert(m.replacingOccurrences(of: dir.path, with: "DIR"))
            }
        }
        print("kill -9 during checkpoint saves: \(trials) trials (\(midSave) killed inside a save), \(accepted) resumed from a consistent set, "
              + "\(refused) refused (\(refusals.sorted().joined(separator: " | "))), \(torn) torn sets accepted")
        #expect(torn == 0)
        #expect(trials >= 3 && accepted > 0)
    }
}
