import CNNCore
import Foundation
@testable import OpenCLBackend
import Testing

// Checks that need a fresh process: the OpenCL ICD loader reads OCL_ICD_VENDORS once per process,
// and "a second process start skips compilation" needs a second process. The parent re-runs this
// test binary with only `ChildProcessProbe` selected and the environment of the scenario; the
// probe writes what it saw as JSON to $SWIFTCNN_CHILD_OUT.

enum Child {
    /// This test binary (Linux: /proc/self/exe).
    static var executable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// Runs the probe in `mode` with `environment` added; returns its JSON result.
    static func run(mode: String, environment extra: [String: String], timeout: TimeInterval = 300) throws -> [String: String] {
        let dir = try temporaryDirectory("child-\(mode)")
        let out = dir.appendingPathComponent("result.json"), log = dir.appendingPathComponent("log.txt")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--testing-library", "swift-testing", "--filter", "ChildProcessProbe"]
        var env = ProcessInfo.processInfo.environment
        env["SWIFTCNN_CHILD_PROBE"] = mode
        env["SWIFTCNN_CHILD_OUT"] = out.path
        for (k, v) in extra { env[k] = v }
        process.environment = env
        let logHandle = try FileHandle(forWritingTo: log)
        process.standardOutput = logHandle
        process.standardError = logHandle
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try? logHandle.close()
        let tail = String((try? String(contentsOf: log, encoding: .utf8))?.suffix(3000) ?? "")
        guard let data = try? Data(contentsOf: out),
              let result = try? JSONDecoder().decode([String: String].self, from: data) else {
            throw CNNError.io("child probe '\(mode)' (exit \(process.terminationStatus)) wrote no result; its output:\n\(tail)")
        }
        return result
    }
}

@Suite struct ChildProcessTests {
    /// OCL_ICD_VENDORS pointing at an empty folder: no platform. `auto` falls back to the CPU
    /// backend with one line saying why; `opencl` fails with a clear message.
    @Test func noPlatformFallsBackToTheCPUBackend() throws {
        let empty = try temporaryDirectory("no-icd")
        let r = try Child.run(mode: "noPlatform", environment: ["OCL_ICD_VENDORS": empty.path])
        #expect(r["devices"] == "0")
        #expect(r["noPlatformReason"]?.contains("no OpenCL platform") == true, "\(r)")
        #expect(r["auto"] == "cpu", "\(r)")
        let reason = r["autoReason"] ?? ""
        #expect(reason.contains("no OpenCL platform") && reason.contains("CPU backend") && !reason.contains("\n"), "\(reason)")
        #expect(r["openclError"]?.contains("no OpenCL platform") == true, "\(r)")
        #expect(r["openclError"]?.contains("--device cpu") == true, "\(r)")
        print("no platform: auto -> \(reason)\nno platform: opencl -> \(r["openclError"] ?? "")")
    }

    /// A fresh cache folder: the first process compiles every kernel family and stores it; the
    /// second loads every one from the cache and compiles nothing.
    @Test(.enabled(if: OCL.available, "no OpenCL device"))
    func secondProcessSkipsCompilation() throws {
        let cache = try temporaryDirectory("program-cache"), pocl = try temporaryDirectory("pocl-cache")
        let env = ["SWIFTCNN_CACHE_DIR": cache.path, "POCL_CACHE_DIR": pocl.path]
        let families = String(KernelFamily.allCases.count)
        let first = try Child.run(mode: "programCache", environment: env)
        #expect(first["compilations"] == families && first["hits"] == "0", "\(first)")
        #expect(first["writes"] == families, "\(first)")
        let second = try Child.run(mode: "programCache", environment: env)
        #expect(second["hits"] == families && second["compilations"] == "0" && second["rejected"] == "0", "\(second)")
        print("program build, \(families) kernel families: first process \(first["seconds"] ?? "?") s "
              + "(compile \(first["compileSeconds"] ?? "?") s), second process \(second["seconds"] ?? "?") s "
              + "(load from cache \(second["loadSeconds"] ?? "?") s)")
    }
}

/// The child side. Skipped unless a parent started this process for it.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SWIFTCNN_CHILD_PROBE"] != nil, "runs only as a child process"))
struct ChildProcessProbe {
    @Test func probe() throws {
        let env = ProcessInfo.processInfo.environment
        let out = URL(fileURLWithPath: try #require(env["SWIFTCNN_CHILD_OUT"]))
        var r: [String: String] = [:]
        switch env["SWIFTCNN_CHILD_PROBE"] {
        case "noPlatform":
            let inv = OpenCLDiscovery.inventory()
            r["devices"] = String(inv.devices.count)
            r["noPlatformReason"] = inv.noPlatformReason ?? ""
            switch try selectDevice("auto") {
            case .cpu(let reason): r["auto"] = "cpu"; r["autoReason"] = reason
            case .opencl(let dev, let reason): r["auto"] = dev.selector; r["autoReason"] = reason
            }
            do {
                _ = try selectDevice("opencl")
                r["openclError"] = ""
            } catch {
                r["openclError"] = "\(error)"
            }
        case "programCache":
            ProgramCache.resetStats()
            let t0 = Date()
            let backend = try OpenCLBackend(selector: "opencl")
            for family in KernelFamily.allCases { _ = try backend.runtime.program(family) }
            let s = ProgramCache.stats
            r = ["hits": String(s.hits), "compilations": String(s.compilations), "rejected": String(s.rejected),
                 "writes": String(s.writes), "seconds": String(Date().timeIntervalSince(t0)),
                 "compileSeconds": String(s.compileSeconds), "loadSeconds": String(s.loadSeconds)]
        case let mode? where mode.hasPrefix("tuning"):
            r = try TuningProbe.run(mode)   // TuningTests.swift
        default:
            Issue.record("unknown probe mode \(env["SWIFTCNN_CHILD_PROBE"] ?? "")")
        }
        try JSONEncoder().encode(r).write(to: out)
    }
}
