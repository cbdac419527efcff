import ArgumentParser
import DataParallel
import Foundation
import OpenCLBackend
import SwiftCNN
#if canImport(Glibc)
import Glibc
#endif

/// `cnn train --distributed` under `mpirun -np N`: data-parallel training (docs/distributed.md).
/// Each rank holds a replica of the model on its own device, trains on its shard of every global
/// batch, and averages gradients with the others; rank 0 alone writes the run folder and logs.
struct DistributedOptions: ParsableArguments {
    @Flag(help: "Data-parallel training across the processes of `mpirun -np N` (one per device; loads Open MPI's libmpi at run time). --batch-size is per rank: the global batch is N times it.")
    var distributed = false
    @Flag(name: .customLong("sync-bn"), help: "With --distributed: BatchNorm statistics over the global batch (all ranks), not per rank.")
    var syncBN = false
    @Option(name: .customLong("bucket-mb"), help: "With --distributed: gradient allreduce bucket size in MiB (a bucket starts as soon as backward has produced it).")
    var bucketMiB: Double = 1
    @Option(name: .customLong("check-replicas"), help: "With --distributed: every N steps, check that the parameters are bit-identical on all ranks (a checksum allreduce; 0: off).")
    var checkReplicas: Int = 0
    @Flag(name: .customLong("no-dropout"), help: "Turn dropout off (the identity in training too).")
    var noDropout = false

    func validate() throws {
        if !distributed {
            if syncBN { throw ValidationError("--sync-bn needs --distributed (under mpirun)") }
            if let size = Self.launcherSize, size > 1 {
                throw ValidationError("started by mpirun as one of \(size) processes but without --distributed: each would train "
                    + "the whole model alone into the same run folder. Add --distributed, or run cnn train without mpirun")
            }
        }
        guard bucketMiB > 0 else { throw ValidationError("--bucket-mb must be positive, got \(bucketMiB)") }
        guard checkReplicas >= 0 else { throw ValidationError("--check-replicas must be >= 0, got \(checkReplicas)") }
    }

    /// The job size Open MPI's launcher announces (nil: not started by mpirun).
    static var launcherSize: Int? { ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"].flatMap { Int($0) } }
}

/// What a run folder records of its data-parallel layout (`distributed.json`, written by rank 0).
struct DistributedRecord: Codable {
    var ranks: Int
    var batchSizePerRank: Int
    var globalBatchSize: Int
    var syncBatchNorm: Bool

    static func url(_ dir: URL) -> URL { dir.appendingPathComponent("distributed.json") }

    /// The record of `dir` (a run without one ran on one process).
    static func load(_ dir: URL) throws -> DistributedRecord? {
        guard let d = FileManager.default.contents(atPath: url(dir).path) else { return nil }
        do { return try JSONDecoder().decode(DistributedRecord.self, from: d) } catch {
            throw CNNError.invalidData("\(url(dir).path) is unreadable (\(error)); it records the number of ranks of the run")
        }
    }

    /// `--resume` needs the ranks the run was started with: a different N changes the global batch,
    /// the data order of each step, and (per-rank BatchNorm) the statistics.
    static func checkResume(_ dir: URL, ranks: Int) throws {
        let r = try load(dir)
        let was = r?.ranks ?? 1
        guard was != ranks else { return }
        let how = was == 1 ? "cnn train --resume \(shellWord(dir.path)) (without mpirun)"
            : "mpirun -np \(was) cnn train --distributed --resume \(shellWord(dir.path))"
        throw CNNError.invalidArgument("cannot resume \(dir.path) on \(ranks) rank\(ranks == 1 ? "" : "s"): it was trained on \(was) "
            + "(global batch \(r?.globalBatchSize ?? 0 > 0 ? String(r!.globalBatchSize) : "of one process")); a different number would change "
            + "the global batch and the data order. Resume with: \(how)")
    }
}

extension Train {
    /// Plain `cnn train --resume` of a data-parallel run is refused (see `DistributedRecord.checkResume`).
    func checkPlainResume() throws {
        if let resume { try DistributedRecord.checkResume(URL(fileURLWithPath: resume), ranks: 1) }
    }

    /// `cnn train --distributed`: starts MPI, trains, and on any error on this rank reports it with
    /// the rank and ends the whole job (MPI_Abort), so no other rank waits for it forever.
    func runDistributed(_ c: TrainConfig) throws {
        // On CPU ranks the cores compute: a rank waiting in MPI yields its core instead of spinning
        // (Open MPI polls by default, which suits dedicated GPU nodes). An explicit setting wins.
        if c.device == .cpu, ProcessInfo.processInfo.environment["OMPI_MCA_mpi_yield_when_idle"] == nil {
            setenv("OMPI_MCA_mpi_yield_when_idle", "1", 1)
        }
        let world: MPIWorld
        do { world = try MPIWorld.start() } catch {
            throw ValidationError("\(error)")
        }
        do {
            try trainDistributed(c, world: world)
        } catch let e as ExitCode {
            world.finish()
            throw e
        } catch {
            FileHandle.standardError.write(Data("cnn train: \(world.who) failed: \(error)\ncnn train: ending all \(world.size) ranks of the job (MPI_Abort)\n".utf8))
            world.abort(code: 1)
        }
        world.finish()
    }

    /// This rank's device: `--device cpu` splits the cores among the host's ranks; `opencl`/`auto`
    /// take the local-rank-th GPU; `opencl:P:D` is used as given.
    func distributedBackend(_ request: DeviceRequest, world: MPIWorld) throws -> (any Backend, String) {
        if request == .cpu || (request == .auto && OpenCLDiscovery.inventory().devices.allSatisfy { $0.type != .gpu || $0.isSimulator }) {
            if ProcessInfo.processInfo.environment["SWIFTCNN_THREADS"] == nil {
                let cores = max(1, ProcessInfo.processInfo.activeProcessorCount / max(world.localSize, 1))
                setenv("SWIFTCNN_THREADS", String(cores), 1)
            }
            let threads = ProcessInfo.processInfo.environment["SWIFTCNN_THREADS"] ?? "?"
            return try (makeBackend(.cpu).backend, "\(world.who): Swift CPU backend, \(threads) thread\(threads == "1" ? "" : "s") (SWIFTCNN_THREADS; the cores split among \(world.localSize) local ranks)")
        }
        if case .openclDevice = request { return try makeBackend(request) }
        let gpus = OpenCLDiscovery.inventory().devices.filter { $0.type == .gpu && !$0.isSimulator }
        guard !gpus.isEmpty else { return try makeBackend(request) }
        let g = gpus[world.localRank % gpus.count]
        let (b, _) = try makeBackend(.openclDevice(platform: g.platformIndex, device: g.deviceIndex))
        let shared = world.localSize > gpus.count ? " (\(world.localSize) local ranks share \(gpus.count) GPUs)" : ""
        return (b, "\(world.who) (local rank \(world.localRank)): OpenCL GPU \(g.name) (\(g.selector))\(shared)")
    }

    func trainDistributed(_ c: TrainConfig, world: MPIWorld) throws {
        let lead = world.rank == 0
        func say(_ s: String) { if lead { note(s) } }
        if onNaN == .skip { throw CNNError.invalidArgument("--on-nan skip is not supported with --distributed (use stop, the default)") }
        let (backend, reason) = try distributedBackend(c.device, world: world)
        note(reason)
        let data = try TrainingData.load(c, log: { if lead { note($0) } })
        let shard = try DataShard(rank: world.rank, count: world.size)
        try require(data.split.validation.count >= world.size,
                    "the validation split has \(data.split.validation.count) images, fewer than the \(world.size) ranks; raise --val-split or --limit")
        let runPath: String
        if let resume {
            runPath = resume
            try DistributedRecord.checkResume(URL(fileURLWithPath: resume), ranks: world.size)
        } else {
            // Rank 0 names the run; the others learn the name (they write nothing there).
            let f = DateFormatter()
            f.dateFormat = "yyyyMMdd-HHmmss"
            let name = c.name ?? "\(c.model)-\(f.string(from: Date()))"
            runPath = (c.runsDirectory as NSString).appendingPathComponent(name)
        }
        let runDir = URL(fileURLWithPath: runPath)
        let trainer = try Trainer(config: c, data: data, backend: backend, runDirectory: lead ? runDir : nil, shard: shard)
        // Rank 0 logs; every rank counts its epoch lines (the epochs this process trained).
        let epochLines = Counter()
        let log = trainer.log
        trainer.log = { line in
            if line.hasPrefix("epoch ") { epochLines.count += 1 }
            if lead { log(line) }
        }
        if !lead { trainer.showProgress = false }
        if profile, lead {
            // As `cnn train --profile`; a bucket's read-back and write-back count as host<->device bytes.
            var last = DeviceWorkCounts.snapshot(backend)
            let log = trainer.log, steps = trainer.trainLoader.batchesPerEpoch
            trainer.log = { line in
                log(line)
                guard line.hasPrefix("epoch ") else { return }
                let now = DeviceWorkCounts.snapshot(backend)
                log("  per step (\(steps) steps, rank 0): " + now.perStep(since: last, steps: steps).summary)
                last = now
            }
        }
        if noProgress { trainer.showProgress = false }
        if distributedOptions.noDropout { disableDropout(trainer.model) }
        let reducer = GradientReducer(world: world, model: trainer.model, bucketBytes: Int(distributedOptions.bucketMiB * 1_048_576))
        reducer.checkReplicasEvery = distributedOptions.checkReplicas
        reducer.attach(to: trainer.runner)
        if distributedOptions.syncBN {
            let bns = trainer.model.batchNormLayers
            enableSyncBatchNorm(trainer.model, world: world, reducer: reducer)
            say("--sync-bn: \(bns.count) BatchNorm layers take their statistics over all \(world.size) ranks")
        }
        let norm = c.augmentation.normalization
        trainer.evaluateTest = { model, test in
            try shardedEvaluate(world: world, model: model, dataset: test, normalization: norm, batchSize: c.batchSize,
                                flipTTA: c.testTimeFlip, translateTTA: c.testTimeTranslate, workers: c.workers)
        }
        say(trainer.model.summary())
        say("data parallel: \(world.size) ranks x batch \(c.batchSize) = global batch \(c.batchSize * world.size); "
            + "\(trainer.trainLoader.batchesPerEpoch) steps per epoch; gradients in \(reducer.buckets.count) allreduce bucket\(reducer.buckets.count == 1 ? "" : "s"); "
            + (distributedOptions.syncBN ? "synchronised BatchNorm" : "per-rank BatchNorm statistics"))
        say("optimizer: \(trainer.optimizer.summary), schedule: \(c.schedule.kind.rawValue), \(c.epochs) epochs (learning rate as given: scale it for the global batch, see docs/distributed.md)")
        say("run folder: \(runDir.path) (written by rank 0)")
        if resume != nil { try trainer.resume(from: runDir) }
        if lead, resume == nil {
            try FileManager.default.createDirectory(at: runDir, withIntermediateDirectories: true)
            let record = DistributedRecord(ranks: world.size, batchSizePerRank: c.batchSize, globalBatchSize: c.batchSize * world.size,
                                           syncBatchNorm: distributedOptions.syncBN)
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(try enc.encode(record), to: DistributedRecord.url(runDir))
        }
        // A signal on any rank (mpirun forwards SIGINT/SIGTERM to all) stops every rank after the
        // same step: the stop request travels with each step's first collective.
        let signals = StopSignals()
        signals.install()
        let (localFlag, rankStop) = (signals.flag, reducer.localStop)
        trainer.stopFlag = reducer.agreedStop
        Thread { while !localFlag.isRequested { usleep(20_000) }; rankStop.request() }.start()
        // mpirun turns Ctrl-C into SIGTERM and soon SIGKILL for every rank, too soon for a checkpoint.
        // SIGUSR1 (or SIGINT/SIGTERM) sent to any one rank process stops the job after the same step
        // on every rank, with the latest checkpoint written (`pkill -USR1 -f 'cnn train'`).
        signal(SIGUSR1, SIG_IGN)
        let usr1 = DispatchSource.makeSignalSource(signal: SIGUSR1, queue: .global())
        usr1.setEventHandler {
            if !rankStop.isRequested {
                FileHandle.standardError.write(Data("\nSIGUSR1: \(world.who) stops after this step; rank 0 writes the latest checkpoint\n".utf8))
            }
            rankStop.request()
        }
        usr1.resume()
        defer { usr1.cancel() }
        let result = try trainer.run()
        let steps = max(reducer.steps, 1)
        // Time in communication, as means over ranks, against the training step (the epochs'
        // training time, validation excluded).
        let loader = trainer.trainLoader, g = loader.batchSize * world.size
        let localPerEpoch = (0..<loader.batchesPerEpoch).reduce(0) { acc, b in
            acc + stride(from: b * g + world.rank, to: min((b + 1) * g, loader.indices.count), by: world.size).underestimatedCount
        }
        let epochsRun = result.history.suffix(epochLines.count)
        let trainSeconds = epochsRun.reduce(0.0) { $0 + Double(localPerEpoch) / max($1.imagesPerSecond, 1e-9) }
        var t = [world.bucketSeconds, reducer.waitSeconds, trainSeconds, Double(localPerEpoch * epochsRun.count)]
        try world.sum(&t)
        let n = Double(world.size), perStep = { (x: Double) in 1000 * x / (n * Double(steps)) }
        let stepMs = perStep(t[2])
        say(String(format: "data parallel: %d steps of %.1f ms, %.0f images/s over all ranks; gradient allreduce %.2f ms/step (%.1f%% of the step) "
                   + "on the communication thread, %.2f ms/step (%.1f%%) not hidden by backward (means over ranks)%@",
                   reducer.steps, stepMs, t[3] / max(t[2] / n, 1e-9), perStep(t[0]), 100 * perStep(t[0]) / max(stepMs, 1e-9),
                   perStep(t[1]), 100 * perStep(t[1]) / max(stepMs, 1e-9),
                   reducer.replicaChecks > 0 ? "; parameters bit-identical across ranks at \(reducer.replicaChecks) checks" : ""))
        if result.interrupted {
            let command = "mpirun -np \(world.size) cnn train --distributed --resume \(shellWord(runPath))"
            say("interrupted; the latest checkpoint is in \(runDir.path)")
            say("resume with: \(command)")
            throw ExitCode(1)
        }
        guard lead else { return }
        if let t = result.test {
            print(t.confusion.classificationReport())
            print("confusion matrix (rows: true class, columns: predicted)")
            print(t.confusion.formatted())
        }
        let best = String(format: "%.2f%%", 100 * result.bestValidationAccuracy)
        print("best validation accuracy \(best) at epoch \(result.bestEpoch)"
              + (result.test.map { String(format: "; test accuracy %.2f%%", 100 * $0.accuracy) } ?? "")
              + "; run folder \(runDir.path)")
    }
}

final class Counter { var count = 0 }
