import Foundation
import ScrollbackFormat
import ScrollbackIO
import ScrollbackStorage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The file systems the lock tests run on.
enum FileSystemKind: String, CaseIterable, CustomStringConvertible, Sendable {
    case posix, memory, crashSimulating
    var description: String { rawValue }
}

/// A file system of some kind with a store directory in it; a POSIX one lives in a fresh
/// temporary directory removed at deinit.
final class StoreDirectory {
    let fs: any FileSystem
    let path: String
    private let temporary: String?

    init(_ kind: FileSystemKind) throws {
        switch kind {
        case .posix:
            var template = Array("/tmp/scrollback-lock-XXXXXX".utf8CString)
            guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
                throw StorageError.io(path: "/tmp", operation: "mkdtemp", errno: errno)
            }
            let path = String(cString: made)
            fs = PosixFileSystem()
            self.path = path + "/store"
            temporary = path
        case .memory:
            fs = MemoryFileSystem()
            path = "/store"
            temporary = nil
        case .crashSimulating:
            fs = CrashSimulatingFileSystem(seed: 1)
            path = "/store"
            temporary = nil
        }
        try fs.createDirectory(path)
    }

    deinit {
        if let temporary { try? FileManager.default.removeItem(atPath: temporary) }
    }

    var readersPath: String { path + "/" + ReaderTableLayout.fileName }
    var lockPath: String { path + "/" + StoreLockLayout.fileName }

    /// The current bytes of a file (through a fresh read-only handle), or nil if missing.
    func contents(_ file: String) -> [UInt8]? {
        guard fs.fileExists(file), let handle = try? fs.open(file, mode: .readOnly) else { return nil }
        defer { try? handle.close() }
        return try? handle.readBytes(count: Int((try? handle.size()) ?? 0), at: 0)
    }

    /// Replaces a file's bytes (creating it).
    func setContents(_ file: String, _ bytes: [UInt8]) throws {
        let handle = try fs.open(file, mode: .createIfMissing)
        defer { try? handle.close() }
        try handle.truncate(to: 0)
        try handle.write(bytes, at: 0)
    }
}

/// Patience short enough that a test expecting a refusal does not wait long.
let impatient = ReaderTable.Patience(guardWaitMicroseconds: 20_000, headerReadAttempts: 2, slotReadAttempts: 2, snapshotAttempts: 8)

func snapshot(_ transaction: UInt64, _ position: UInt64 = 0x1_0000_0018) -> ReaderSnapshot {
    ReaderSnapshot(transactionID: transaction, logPosition: position)
}

/// The thrown `StorageError`, or nil (recording an issue) if `body` did not throw one.
func storageError(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> StorageError? {
    do {
        try body()
        Issue.record("expected an error", sourceLocation: sourceLocation)
        return nil
    } catch let error as StorageError {
        return error
    } catch {
        Issue.record("expected StorageError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The bytes of the ```hex <name> block of spec/reader-table.md: lines `offset: bytes`;
/// bytes not shown are zero; `size` is the block's total length.
func specExample(_ name: String, size: Int) throws -> [UInt8] {
    let spec = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("spec/reader-table.md")
    let text = try String(contentsOf: spec, encoding: .utf8)
    let blocks = text.components(separatedBy: "```hex \(name)\n")
    #expect(blocks.count == 2, "exactly one ```hex \(name) block in spec/reader-table.md")
    let block = try #require(blocks.last?.components(separatedBy: "```").first)
    var bytes = [UInt8](repeating: 0, count: size)
    var lastOffset = -1
    for line in block.split(separator: "\n") {
        let parts = line.split(separator: ":", maxSplits: 1)
        let offset = try #require(parts.count == 2 ? Int(parts[0], radix: 16) : nil, "bad example line: \(line)")
        #expect(offset > lastOffset && offset % 16 == 0, "line offsets ascend in steps of 16: \(line)")
        lastOffset = offset
        for (index, pair) in parts[1].split(separator: " ").enumerated() {
            let byte = try #require(UInt8(pair, radix: 16), "bad hex \(pair)")
            try #require(offset + index < size, "example longer than \(size) bytes")
            bytes[offset + index] = byte
        }
    }
    return bytes
}
