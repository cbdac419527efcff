import Foundation

/// The process's resident memory, from /proc/self/status (Linux); nil where that is unavailable.
package enum ProcessMemory {
    /// Resident set size now, in bytes (VmRSS).
    package static func residentBytes() -> Int? { field("VmRSS:") }
    /// Peak resident set size so far, in bytes (VmHWM).
    package static func peakResidentBytes() -> Int? { field("VmHWM:") }

    static func field(_ name: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
        }
        return nil
    }

    /// "123 MiB".
    package static func mebibytes(_ bytes: Int) -> String { "\((bytes + (1 << 19)) >> 20) MiB" }
}
