// FormatBench: release-mode throughput of the Format layer's hot codecs.
//
//   swift run -c release FormatBench
//
// Prints CRC32C throughput in GB/s (10^9 bytes per second) on 256 B, 4 KiB, 8 KiB and 1 MiB buffers: the best
// of several rounds, each checksumming at least 256 MB. The checksums are folded into a printed
// value so the optimizer cannot drop the work.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ScrollbackFormat

func nowNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Best throughput (GB/s) over `rounds` rounds of checksumming `buffer` repeatedly.
func measureCRC32C(bufferSize: Int, rounds: Int = 7, bytesPerRound: Int = 256 << 20) -> (gbps: Double, fold: UInt32) {
    var state: UInt64 = 0x1234_5678_9ABC_DEF0
    let buffer = (0..<bufferSize).map { _ -> UInt8 in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return UInt8(truncatingIfNeeded: state >> 56)
    }
    let iterations = max(1, bytesPerRound / bufferSize)
    var best = 0.0
    var fold: UInt32 = 0
    buffer.withUnsafeBytes { raw in
        for _ in 0..<rounds {
            let start = nowNanoseconds()
            for _ in 0..<iterations {
                fold = CRC32C.checksum(raw, continuing: fold)
            }
            let seconds = Double(nowNanoseconds() - start) / 1e9
            best = max(best, Double(iterations * bufferSize) / seconds / 1e9)
        }
    }
    return (best, fold)
}

var folded: UInt32 = 0
for (label, size) in [("256 B", 256), ("4 KiB", 4 << 10), ("8 KiB", 8 << 10), ("1 MiB", 1 << 20)] {
    let result = measureCRC32C(bufferSize: size)
    folded ^= result.fold
    let formatted = (result.gbps * 100).rounded() / 100
    print("CRC32C \(label): \(formatted) GB/s")
}
print("(fold \(folded))")
