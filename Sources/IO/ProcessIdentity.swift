#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Who a process is, well enough to tell it from a later process that reuses its pid: the
/// pid and the process's start time (field 22 of `/proc/<pid>/stat`: clock ticks after boot).
/// The store lock and the reader table record it for diagnostics; liveness itself is always
/// decided by byte-range locks, which the kernel releases when a process dies.
///
/// Thread-safety: a value type; the static functions read `/proc` and are safe from any thread.
package struct ProcessIdentity: Sendable, Equatable, CustomStringConvertible {
    package var pid: UInt64
    /// Clock ticks after boot at which the process started; 0 if unknown.
    package var startTime: UInt64

    package init(pid: UInt64, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }

    /// This process.
    package static var current: ProcessIdentity {
        let pid = getpid()
        return ProcessIdentity(pid: UInt64(pid), startTime: startTime(of: pid) ?? 0)
    }

    /// The start time of process `pid`, or nil if there is no such process (or `/proc` is
    /// not readable). Never traps on odd contents.
    package static func startTime(of pid: Int32) -> UInt64? {
        guard pid > 0 else { return nil }
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { _ = close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        var count = 0
        while count < buffer.count {
            let n = buffer.withUnsafeMutableBytes { raw in read(fd, raw.baseAddress! + count, raw.count - count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            count += n
        }
        return parseStartTime(buffer[..<count])
    }

    /// Field 22 of a `/proc/<pid>/stat` line. The command name (field 2) is in parentheses and
    /// may itself hold spaces and parentheses, so fields are counted after the *last* `)`.
    package static func parseStartTime(_ line: some BidirectionalCollection<UInt8>) -> UInt64? {
        guard let close = line.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = line[line.index(after: close)...].split(separator: UInt8(ascii: " "))
        // After ")": field 3 (state) is fields[0], so field 22 is fields[19].
        guard fields.count > 19 else { return nil }
        var value: UInt64 = 0
        for byte in fields[19] {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            if overflow1 || overflow2 { return nil }
            value = sum
        }
        return value
    }

    /// True if a process with this pid exists and, when `startTime` is known (non-zero), it
    /// started at that time (so it is the same process, not a later one with a reused pid).
    package var isRunning: Bool {
        guard pid > 0, pid <= UInt64(Int32.max), let actual = Self.startTime(of: Int32(pid)) else { return false }
        return startTime == 0 || actual == startTime
    }

    /// The name this program was started as (the last path component of `argv[0]`).
    package static var programName: String {
        let path = CommandLine.arguments.first ?? ""
        let name = Path.name(of: path)
        return name.isEmpty ? "unknown program" : name
    }

    /// Seconds since the Unix epoch, from the wall clock.
    package static func wallClockSeconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec)
    }

    package var description: String { "pid \(pid)" }
}
