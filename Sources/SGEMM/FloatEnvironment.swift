// Subnormal floats on the fast paths: flushed to zero.
//
// Why: in a long training run some weights decay into the subnormal range (below 1.2e-38; e.g.
// fc.0.weight of `optimized` held 90,000 of them after 6 epochs of the guide's recipe, with Adam's
// exp_avg behind them). On x86 an FMA with a subnormal operand takes a microcode assist, and the
// guide's recipe slowed from 23 s to 76 s per epoch on the 2-core Zen 4 VM, almost all of it in the
// fc.0 GEMM. With DAZ + FTZ set (as TensorFlow does by default, and PyTorch offers through
// torch.set_flush_denormal) those values count as zero: an absolute change below 1.2e-38, far
// inside every tolerance the fast paths are held to.
//
// The fast paths set the mode on each thread they run on (pool workers at start, the calling thread
// on each primitive: one cheap control-register read when it is already set). The reference
// backend never sets it; a thread that ran fast primitives keeps the mode (ordinary code is not
// affected beyond the same sub-1e-38 rounding). SWIFTCNN_KEEP_SUBNORMALS=1 turns this off.

#if canImport(Glibc)
import Glibc
#endif
import Foundation

package enum FloatEnvironment {
    /// False when SWIFTCNN_KEEP_SUBNORMALS=1.
    package static let enabled: Bool = ProcessInfo.processInfo.environment["SWIFTCNN_KEEP_SUBNORMALS"] != "1"

    /// Sets flush-to-zero (and denormals-are-zero on x86) on the calling thread, if not yet set.
    @inline(__always)
    package static func flushSubnormalsOnThisThread() {
        guard enabled else { return }
        #if canImport(Glibc) && arch(x86_64)
        var env = fenv_t()
        fegetenv(&env)
        let bits: UInt32 = 0x8040   // MXCSR: FTZ (bit 15) | DAZ (bit 6)
        if env.__mxcsr & bits != bits {
            env.__mxcsr |= bits
            fesetenv(&env)
        }
        #elseif canImport(Glibc) && arch(arm64)
        var env = fenv_t()
        fegetenv(&env)
        let fz: UInt32 = 1 << 24    // FPCR.FZ
        if env.__fpcr & fz == 0 {
            env.__fpcr |= fz
            fesetenv(&env)
        }
        #endif
    }

    /// Clears flush-to-zero and denormals-are-zero on the calling thread (IEEE behaviour). New
    /// threads inherit the mode of the thread that creates them, so tests that need IEEE
    /// subnormals call this first.
    package static func keepSubnormalsOnThisThread() {
        #if canImport(Glibc) && arch(x86_64)
        var env = fenv_t()
        fegetenv(&env)
        env.__mxcsr &= ~UInt32(0x8040)
        fesetenv(&env)
        #elseif canImport(Glibc) && arch(arm64)
        var env = fenv_t()
        fegetenv(&env)
        env.__fpcr &= ~(UInt32(1) << 24)
        fesetenv(&env)
        #endif
    }

    /// True when the calling thread flushes subnormal results to zero (for tests).
    package static var flushesOnThisThread: Bool {
        quarter(Float.leastNormalMagnitude) == 0
    }

    /// x / 4 computed at run time (the optimizer would fold a constant division at compile time,
    /// in the default IEEE mode).
    @inline(never) @_optimize(none)
    static func quarter(_ x: Float) -> Float { x / 4 }
}
