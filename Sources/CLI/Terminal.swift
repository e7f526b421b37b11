#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure of the tool itself (bad file, store missing, …): printed as one line on
/// stderr, exit code 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The command already printed what went wrong; exit with `code`.
struct ExitStatus: Error {
    var code: Int32
}

/// Buffered writes to a file descriptor (stdout for data, stderr for messages).
final class Output: @unchecked Sendable {
    static let standardOutput = Output(fd: 1)
    static let standardError = Output(fd: 2, bufferLimit: 0)

    private let fd: Int32
    private let bufferLimit: Int
    private var buffer: [UInt8] = []

    init(fd: Int32, bufferLimit: Int = 1 << 16) {
        self.fd = fd
        self.bufferLimit = bufferLimit
        buffer.reserveCapacity(bufferLimit + 1024)
    }

    func write(_ text: String) {
        buffer.append(contentsOf: text.utf8)
        if buffer.count > bufferLimit { flush() }
    }

    func write(bytes: [UInt8]) {
        buffer.append(contentsOf: bytes)
        if buffer.count > bufferLimit { flush() }
    }

    func line(_ text: String) {
        buffer.append(contentsOf: text.utf8)
        buffer.append(0x0A)
        if buffer.count > bufferLimit { flush() }
    }

    /// Writes everything buffered. A write error (EPIPE when the reader went away, …) ends
    /// the process quietly with status 1: nothing more can be reported on that stream.
    func flush() {
        var offset = 0
        while offset < buffer.count {
            let n = buffer.withUnsafeBytes { raw in
                Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
            }
            if n < 0 {
                if errno == EINTR { continue }
                buffer.removeAll()
                exit(1)
            }
            offset += n
        }
        buffer.removeAll(keepingCapacity: true)
    }

    var isTerminal: Bool { isatty(fd) == 1 }
}

/// Prints one line on stderr (line breaks inside `text` become spaces).
func printError(_ text: String) {
    Output.standardError.line(String(text.map { $0.isNewline ? " " : $0 }))
    Output.standardError.flush()
}

/// Reads a file descriptor line by line (split on `\n`; a `\r` before it is dropped). Lines
/// longer than `maxLineBytes` are reported as too long and skipped, so memory stays bounded.
final class LineReader {
    enum Line {
        case line([UInt8])
        case tooLong(Int)
    }

    let fd: Int32
    /// Named in read errors.
    let name: String
    let maxLineBytes: Int
    /// Called right before the reader blocks in `read(2)` (exec flushes its answers there,
    /// so an interactive client sees each answer before sending the next request).
    var beforeBlocking: () -> Void = {}
    private var buffer: [UInt8] = []
    private var start = 0
    private var eof = false
    /// Bytes consumed so far (for progress bars).
    private(set) var bytesRead: UInt64 = 0
    private var discarding = false
    private var discarded = 0

    init(fd: Int32, name: String = "standard input", maxLineBytes: Int = 64 << 20) {
        self.fd = fd
        self.name = name
        self.maxLineBytes = maxLineBytes
    }

    /// Opens a file for reading, or throws a CLIError naming it.
    static func open(path: String) throws -> LineReader {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CLIError("cannot open \(path): \(String(cString: strerror(errno)))") }
        return LineReader(fd: fd, name: path)
    }

    func close() { _ = Glibc.close(fd) }

    /// The next line, or nil at end of input. A last line without a newline is returned;
    /// an empty remainder after the final newline is not a line.
    func next() throws -> Line? {
        while true {
            if let newline = buffer[start...].firstIndex(of: 0x0A) {
                var end = newline
                let lineStart = start
                start = newline + 1
                if discarding {
                    discarding = false
                    let total = discarded + (newline - lineStart)
                    discarded = 0
                    return .tooLong(total)
                }
                if end > lineStart, buffer[end - 1] == 0x0D { end -= 1 }
                return .line(Array(buffer[lineStart..<end]))
            }
            if eof {
                guard start < buffer.count || discarding else { return nil }
                defer {
                    start = buffer.count
                    discarding = false
                }
                if discarding { return .tooLong(discarded + buffer.count - start) }
                var end = buffer.count
                if buffer[end - 1] == 0x0D { end -= 1 }
                return .line(Array(buffer[start..<end]))
            }
            // Compact, enforce the limit, then read more.
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            if buffer.count > maxLineBytes {
                discarding = true
                discarded += buffer.count
                buffer.removeAll(keepingCapacity: true)
            }
            beforeBlocking()
            let chunk = 1 << 16
            let old = buffer.count
            buffer.append(contentsOf: repeatElement(0, count: chunk))
            var n: Int
            repeat {
                n = buffer.withUnsafeMutableBytes { raw in Glibc.read(fd, raw.baseAddress! + old, chunk) }
            } while n < 0 && errno == EINTR
            if n < 0 {
                let code = errno
                buffer.removeLast(chunk)
                throw CLIError("cannot read \(name): \(String(cString: strerror(code)))")
            }
            buffer.removeLast(chunk - n)
            bytesRead += UInt64(n)
            if n == 0 { eof = true }
        }
    }
}

/// A progress bar on stderr, drawn only when stderr is a terminal (or when forced), at
/// most ten times a second. `finish()` ends the line.
final class ProgressBar {
    private let label: String
    private var total: UInt64
    private let enabled: Bool
    private var lastDraw: UInt64 = 0
    private let started: UInt64
    private var drewSomething = false
    private let unit: String

    init(label: String, total: UInt64, unit: String = "", enabled: Bool? = nil) {
        self.label = label
        self.total = total
        self.unit = unit
        self.enabled = enabled ?? Output.standardError.isTerminal
        self.started = ProgressBar.nowNanoseconds()
    }

    static func nowNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Seconds since the bar was created.
    var elapsed: Double { Double(ProgressBar.nowNanoseconds() - started) / 1e9 }

    func update(_ done: UInt64, items: UInt64? = nil) {
        guard enabled else { return }
        let now = ProgressBar.nowNanoseconds()
        guard now - lastDraw >= 100_000_000 || done >= total else { return }
        lastDraw = now
        draw(done, items: items)
    }

    private func draw(_ done: UInt64, items: UInt64?) {
        let fraction = total == 0 ? 1.0 : min(1.0, Double(done) / Double(total))
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let percent = Int(fraction * 100)
        var text = "\r\(label) [\(bar)] \(percent)%"
        if let items {
            let rate = elapsed > 0 ? Double(items) / elapsed : 0
            text += " \(items)\(unit) (\(Int(rate))\(unit)/s)"
        } else {
            text += " \(done)/\(total)\(unit)"
        }
        Output.standardError.write(text + "\u{1B}[K")
        Output.standardError.flush()
        drewSomething = true
    }

    func finish(_ done: UInt64, items: UInt64? = nil) {
        guard enabled else { return }
        draw(done, items: items)
        if drewSomething {
            Output.standardError.write("\n")
            Output.standardError.flush()
        }
    }
}
