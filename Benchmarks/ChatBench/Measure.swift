import Foundation

/// Monotonic time in nanoseconds (CLOCK_MONOTONIC; no allocation).
@inline(__always)
func nowNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Latency figures of one query on one engine, from the exact sorted samples (nearest rank).
struct LatencySummary {
    var samples: Int
    var p50: Double  // microseconds
    var p95: Double
    var p99: Double
    var max: Double
    var mean: Double

    init(nanoseconds: [UInt64]) {
        let sorted = nanoseconds.sorted()
        samples = sorted.count
        func rank(_ p: Double) -> Double {
            guard !sorted.isEmpty else { return .nan }
            let r = Int((p * Double(sorted.count)).rounded(.up))
            return Double(sorted[Swift.min(sorted.count - 1, Swift.max(0, r - 1))]) / 1000
        }
        p50 = rank(0.50)
        p95 = rank(0.95)
        p99 = rank(0.99)
        max = sorted.last.map { Double($0) / 1000 } ?? .nan
        mean = sorted.isEmpty ? .nan : Double(sorted.reduce(0, +)) / Double(sorted.count) / 1000
    }

    /// Figures of an empty sample are null (JSON has no NaN).
    var json: [String: Any] {
        func number(_ v: Double) -> Any { v.isFinite ? v : NSNull() }
        return ["samples": samples, "p50_us": number(p50), "p95_us": number(p95), "p99_us": number(p99),
                "max_us": number(max), "mean_us": number(mean)]
    }
}

/// Peak resident set size of the process so far (getrusage), in bytes.
func peakResidentBytes() -> UInt64 {
    var usage = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    return UInt64(usage.ru_maxrss) * 1024
}

/// Current resident set size (from /proc/self/statm), in bytes.
func currentResidentBytes() -> UInt64 {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = UInt64(fields[1]) else { return 0 }
    return pages * UInt64(sysconf(Int32(_SC_PAGESIZE)))
}

/// What the JSON says about the machine.
func machineDescription() -> [String: Any] {
    var cpu = "unknown"
    if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) {
        for line in info.split(separator: "\n") where line.hasPrefix("model name") {
            cpu = line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? cpu
            break
        }
    }
    var memory: UInt64 = 0
    if let info = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
        for line in info.split(separator: "\n") where line.hasPrefix("MemTotal:") {
            let digits = line.filter(\.isNumber)
            memory = (UInt64(digits) ?? 0) * 1024
        }
    }
    var uts = utsname()
    uname(&uts)
    let kernel = withUnsafeBytes(of: &uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    return [
        "nproc": ProcessInfo.processInfo.activeProcessorCount,
        "memory_bytes": memory,
        "cpu_model": cpu,
        "kernel": kernel,
        "hostname": ProcessInfo.processInfo.hostName,
    ]
}

/// `git rev-parse HEAD` (and whether the tree has changes other than the files this run
/// writes: RESULTS*.md, bands.json and the charts under Benchmarks/, which a run rewrites
/// before it reports), or "unknown".
func gitCommit() -> (commit: String, dirty: Bool) {
    func run(_ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
    let commit = run(["rev-parse", "HEAD"]) ?? "unknown"
    let status = run(["status", "--porcelain", "--untracked-files=no", "--", ".",
                      ":(exclude)Benchmarks/RESULTS*.md", ":(exclude)Benchmarks/bands.json", ":(exclude)Benchmarks/*.png"]) ?? ""
    return (commit, !status.isEmpty)
}

func formatMicroseconds(_ us: Double) -> String {
    guard us.isFinite else { return "—" }
    if us < 10 { return String(format: "%.2f µs", us) }
    if us < 1000 { return String(format: "%.1f µs", us) }
    if us < 1_000_000 { return String(format: "%.2f ms", us / 1000) }
    return String(format: "%.2f s", us / 1_000_000)
}

func formatBytes(_ bytes: UInt64) -> String {
    let b = Double(bytes)
    if b >= Double(1 << 30) { return String(format: "%.2f GiB", b / Double(1 << 30)) }
    if b >= Double(1 << 20) { return String(format: "%.1f MiB", b / Double(1 << 20)) }
    if b >= Double(1 << 10) { return String(format: "%.1f KiB", b / Double(1 << 10)) }
    return "\(bytes) B"
}

func formatRatio(_ r: Double?) -> String {
    guard let r, r.isFinite else { return "—" }
    return r >= 10 ? String(format: "%.0f×", r) : String(format: "%.2f×", r)
}

/// Writes `text` to file descriptor 1 unbuffered (so it interleaves with the progress bars
/// on standard error in the order it happened).
func writeStandardOutput(_ text: String) {
    var copy = text
    copy.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let n = write(1, bytes.baseAddress! + offset, bytes.count - offset)
            if n <= 0 { return }
            offset += n
        }
    }
}
