import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Lines read from the stdout pipe of a process a test started, each wait bounded.
package struct PipeLines {
    package enum Next: Equatable {
        case line(String)
        /// The process closed its output (`rest`: a last line without its newline, if any).
        case ended
        case timedOut
    }

    private var pending: [UInt8] = []

    package init() {}

    /// Bytes after the last newline.
    package var rest: String? { pending.isEmpty ? nil : String(decoding: pending, as: UTF8.self) }

    /// The next complete line of `fd`, waiting until `deadline` (nil: only what has arrived).
    package mutating func next(from fd: Int32, until deadline: Date?) -> Next {
        while true {
            if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                return .line(line)
            }
            var wait: Int32 = 0
            if let deadline {
                let left = deadline.timeIntervalSinceNow
                if left <= 0 { return .timedOut }
                wait = Int32(max(1, min(left, 1) * 1000))
            }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, wait) <= 0 {
                if deadline == nil { return .timedOut }
                continue
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return .ended }
            pending.append(contentsOf: chunk[..<n])
        }
    }
}
