import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Compile-time build settings of this binary (the fast CPU path depends on them).
package enum BuildFlags {
    #if SWIFTCNN_FMA
    package static let swiftcnnFMA = true
    #else
    package static let swiftcnnFMA = false
    #endif

    #if DEBUG
    package static let configuration = "debug"
    #else
    package static let configuration = "release"
    #endif

    package static var swiftCompiler: String {
        #if compiler(>=6.3)
        return "Swift >= 6.3"
        #elseif compiler(>=6.2)
        return "Swift 6.2"
        #elseif compiler(>=6.1)
        return "Swift 6.1"
        #else
        return "Swift 6.0"
        #endif
    }
}

/// GFLOP/s of a one-thread SIMD16 multiply-add loop (about `seconds` long). Eight independent
/// accumulators hide the FMA latency; operands come through pointers so the loop is neither folded
/// nor removed. Built for a CPU with FMA it runs at the core's peak (e.g. ~140 GFLOP/s on an
/// AVX-512 Xeon); on the default x86-64 target every lane is a libm `fmaf` call (< 1 GFLOP/s).
package func simdFMAProbe(seconds: Double = 0.01) -> Double {
    let operands = UnsafeMutablePointer<SIMD16<Float>>.allocate(capacity: 2)
    let acc = UnsafeMutablePointer<SIMD16<Float>>.allocate(capacity: 8)
    defer { operands.deallocate(); acc.deallocate() }
    operands[0] = SIMD16(repeating: 1.0001)
    operands[1] = SIMD16(repeating: 0.9999)
    acc.initialize(repeating: SIMD16(repeating: 0), count: 8)
    var iterations = 0
    let t0 = monotonicSeconds()
    var elapsed = 0.0
    repeat {
        fmaProbeKernel(operands, acc, 2000)
        iterations += 2000
        elapsed = monotonicSeconds() - t0
    } while elapsed < seconds
    return Double(iterations) * 8 * 16 * 2 / elapsed / 1e9
}

@inline(never)
func fmaProbeKernel(_ x: UnsafePointer<SIMD16<Float>>, _ acc: UnsafeMutablePointer<SIMD16<Float>>, _ n: Int) {
    var a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], a4 = acc[4], a5 = acc[5], a6 = acc[6], a7 = acc[7]
    let y = x[0], z = x[1]
    for _ in 0..<n {
        a0.addProduct(y, z); a1.addProduct(y, z); a2.addProduct(y, z); a3.addProduct(y, z)
        a4.addProduct(y, z); a5.addProduct(y, z); a6.addProduct(y, z); a7.addProduct(y, z)
    }
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3; acc[4] = a4; acc[5] = a5; acc[6] = a6; acc[7] = a7
}

/// Seconds on a monotonic clock.
package func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

enum EnvironmentProbe {
    static func collect(command: [String]) -> BenchEnvironment {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        func field(_ name: String) -> String? {
            for line in cpuinfo.split(separator: "\n") where line.hasPrefix(name) {
                if let colon = line.firstIndex(of: ":") {
                    return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
            }
            return nil
        }
        let interesting: Set<String> = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                                        "avx512_bf16", "avx512_vnni", "amx_tile", "asimd", "sve"]
        let flags = (field("flags") ?? field("Features") ?? "").split(separator: " ").map(String.init).filter { interesting.contains($0) }
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        var memGiB: Double?
        if let line = meminfo.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
           let kb = Double(line.split(separator: " ").dropFirst().first ?? "") {
            memGiB = (kb / 1_048_576 * 10).rounded() / 10
        }
        var os = "unknown"
        if let rel = try? String(contentsOfFile: "/etc/os-release", encoding: .utf8),
           let line = rel.split(separator: "\n").first(where: { $0.hasPrefix("PRETTY_NAME=") }) {
            os = line.dropFirst("PRETTY_NAME=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        var uts = utsname()
        uname(&uts)
        let kernel = withUnsafeBytes(of: &uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let machine = withUnsafeBytes(of: &uts.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }

        let probe = simdFMAProbe()
        let target: String
        if BuildFlags.configuration == "debug" {
            target = "unknown (debug build)"
        } else {
            target = probe > 8 ? "fma" : "no-fma (default target: pass -Xswiftc -target-cpu -Xswiftc native)"
        }
        let date = ISO8601DateFormatter().string(from: Date())
        return BenchEnvironment(
            date: date, command: command, gitCommit: gitCommit(), hostName: ProcessInfo.processInfo.hostName,
            os: os, kernel: "\(kernel) \(machine)", cpuModel: field("model name") ?? field("Model") ?? machine,
            logicalCores: ProcessInfo.processInfo.processorCount, activeCores: ProcessInfo.processInfo.activeProcessorCount,
            memoryGiB: memGiB, cpuFlags: flags,
            build: BuildInfo(configuration: BuildFlags.configuration, swiftcnnFMA: BuildFlags.swiftcnnFMA,
                             simdFMAProbeGflops: (probe * 1000).rounded() / 1000, targetCPU: target,
                             swiftCompiler: BuildFlags.swiftCompiler, bundle: bundleInfo()))
    }

    /// HEAD of the git checkout around the working directory (`-dirty` if tracked files changed).
    static func gitCommit() -> String? {
        guard let head = run("/usr/bin/env", ["git", "rev-parse", "HEAD"])?.trimmingCharacters(in: .whitespacesAndNewlines),
              head.count == 40 else { return nil }
        let status = run("/usr/bin/env", ["git", "status", "--porcelain", "--untracked-files=no"]) ?? ""
        return status.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? head : head + "-dirty"
    }

    /// BUILD_INFO.json beside the executable (a bundle built by scripts/build-gpu-bundle.sh).
    static func bundleInfo() -> [String: String]? {
        guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
        let path = (exe as NSString).deletingLastPathComponent + "/BUILD_INFO.json"
        guard let data = FileManager.default.contents(atPath: path),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return obj.mapValues { "\($0)" }
    }

    /// stdout of a command, or nil when it fails.
    static func run(_ exe: String, _ args: [String]) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}
