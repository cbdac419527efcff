import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A one-line progress bar on stderr (only when stderr is a terminal, unless forced):
/// `epoch 3/15 [=========>      ] 312/625  1834 img/s  ETA 0:17  loss 0.8123  acc 71.2%`.
package final class ProgressBar {
    package let total: Int
    package let label: String
    package let enabled: Bool
    private let start = Date()
    private var lastDraw = Date.distantPast
    private let width = 24

    package init(total: Int, label: String, enabled: Bool? = nil) {
        self.total = max(total, 1)
        self.label = label
        self.enabled = enabled ?? (isatty(2) != 0)
    }

    /// Redraws at most ~10 times a second (and always at the end).
    package func update(done: Int, images: Int, extra: String = "") {
        guard enabled else { return }
        let now = Date()
        guard done >= total || now.timeIntervalSince(lastDraw) > 0.1 else { return }
        lastDraw = now
        let elapsed = now.timeIntervalSince(start)
        let frac = Double(done) / Double(total)
        let filled = Int(frac * Double(width))
        let bar = String(repeating: "=", count: filled) + (filled < width ? ">" : "") + String(repeating: " ", count: max(0, width - filled - 1))
        let rate = elapsed > 0 ? Double(images) / elapsed : 0
        let eta = frac > 0 ? elapsed * (1 - frac) / frac : 0
        let line = "\(label) [\(bar)] \(done)/\(total)  \(Int(rate)) img/s  ETA \(formatDuration(eta))  \(extra)"
        FileHandle.standardError.write(("\r\u{1B}[K" + line).data(using: .utf8)!)
    }

    /// Clears the bar so the next line starts clean.
    package func finish() {
        guard enabled else { return }
        FileHandle.standardError.write("\r\u{1B}[K".data(using: .utf8)!)
    }
}

package func formatDuration(_ s: Double) -> String {
    guard s.isFinite, s >= 0 else { return "?" }
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
}

/// Writes to stderr (informational lines that should not mix with machine-readable stdout).
package func note(_ s: String) {
    FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
}
