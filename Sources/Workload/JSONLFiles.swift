#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Scrollback
import ScrollbackJSON

/// Writes messages as JSON Lines (`MessageJSON`, one object a line) to a file (or standard
/// output for path "-"), buffered.
/// Not thread-safe.
package final class JSONLWriter {
    private let file: UnsafeMutablePointer<FILE>
    private let ownsFile: Bool
    private var buffer: [UInt8] = []
    package let path: String
    package private(set) var linesWritten = 0

    /// Creates or truncates `path` ("-" is standard output).
    package init(path: String) throws {
        self.path = path
        if path == "-" {
            guard let f = fdopen(dup(1), "wb") else { throw WorkloadError("cannot write to standard output") }
            file = f
            ownsFile = true
        } else {
            guard let f = fopen(path, "wb") else {
                throw WorkloadError("cannot create \(path): \(String(cString: strerror(errno)))")
            }
            file = f
            ownsFile = true
        }
        buffer.reserveCapacity(1 << 20)
    }

    package func write(_ message: Message) throws {
        MessageJSON.appendLine(message, to: &buffer)
        linesWritten += 1
        if buffer.count >= 1 << 20 { try flush() }
    }

    package func flush() throws {
        guard !buffer.isEmpty else { return }
        let written = buffer.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        guard written == buffer.count else { throw WorkloadError("write to \(path) failed: \(String(cString: strerror(errno)))") }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes and closes (standard output is flushed, not closed).
    package func close() throws {
        try flush()
        if ownsFile {
            guard fclose(file) == 0 else { throw WorkloadError("closing \(path) failed: \(String(cString: strerror(errno)))") }
        } else {
            fflush(file)
        }
    }

    /// Writes a whole generated dataset to `path`; returns the number of lines.
    @discardableResult
    package static func write(
        _ generator: DatasetGenerator, to path: String, progress: ((Int, Int) -> Void)? = nil
    ) throws -> Int {
        let writer = try JSONLWriter(path: path)
        try generator.forEachBatch(size: 10_000, progress: progress) { batch in
            for m in batch { try writer.write(m) }
        }
        try writer.close()
        return writer.linesWritten
    }
}

/// Reads JSON Lines messages (`MessageJSON`, exactly as `JSONLWriter` writes them: other
/// members are an error) from a file ("-" is standard input), one line at a time.
/// Blank lines are skipped. Errors name the line number. Not thread-safe.
package final class JSONLReader: Sequence, IteratorProtocol {
    private let file: UnsafeMutablePointer<FILE>
    private let ownsFile: Bool
    package let path: String
    /// 1-based number of the line read last.
    package private(set) var lineNumber = 0
    private var line: UnsafeMutablePointer<CChar>? = nil
    private var capacity = 0
    /// The first error met by the Sequence interface (which cannot throw).
    package private(set) var error: WorkloadError?

    package init(path: String) throws {
        self.path = path
        if path == "-" {
            guard let f = fdopen(dup(0), "rb") else { throw WorkloadError("cannot read standard input") }
            file = f
            ownsFile = true
        } else {
            guard let f = fopen(path, "rb") else {
                throw WorkloadError("cannot open \(path): \(String(cString: strerror(errno)))")
            }
            file = f
            ownsFile = true
        }
    }

    deinit {
        free(line)
        if ownsFile { fclose(file) }
    }

    /// The next message, nil at the end of the file.
    package func read() throws -> Message? {
        while true {
            let n = getline(&line, &capacity, file)
            if n < 0 { return nil }
            lineNumber += 1
            guard let line else { return nil }
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(line).assumingMemoryBound(to: UInt8.self), count: n)
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) { continue }
            do {
                return try MessageJSON.decode(line: Array(bytes), .file).message
            } catch {
                throw WorkloadError("\(path):\(lineNumber): JSONL: \(error)")
            }
        }
    }

    /// Sequence form: stops at the end or at the first bad line (then `error` is set).
    package func next() -> Message? {
        guard error == nil else { return nil }
        do { return try read() } catch {
            self.error = error as? WorkloadError ?? WorkloadError("\(error)")
            return nil
        }
    }
}
