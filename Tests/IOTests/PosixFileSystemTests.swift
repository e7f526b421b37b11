#if canImport(Glibc)
import Glibc
#endif
import ScrollbackFormat
import ScrollbackIO
import Testing

/// A fresh directory under /tmp (mkdtemp), removed with its files when the test ends.
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/scrollback-io-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard let made else { throw StorageError.io(path: "/tmp", operation: "mkdtemp", errno: errno) }
        path = String(cString: made)
    }

    deinit { removeTree(path) }

    private func removeTree(_ path: String) {
        if let names = try? PosixFileSystem().listDirectory(path) {
            for name in names {
                let child = path + "/" + name
                if unlink(child) != 0 { removeTree(child) }
            }
        }
        rmdir(path)
    }
}

/// The errno of a thrown `StorageError.io`, or nil (records an issue) for anything else.
func ioErrno(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> Int32? {
    do {
        try body()
        Issue.record("expected an I/O error", sourceLocation: sourceLocation)
        return nil
    } catch let StorageError.io(_, _, code) {
        return code
    } catch {
        Issue.record("expected StorageError.io, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

@Suite struct PosixFileSystemTests {
    let fs = PosixFileSystem()

    @Test func readWriteTruncateRoundTrip() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/data"
        let file = try fs.open(path, mode: .createNew)
        defer { try? file.close() }
        try file.write(Array("hello".utf8), at: 3)
        #expect(try file.size() == 8)
        #expect(try file.readBytes(count: 16, at: 0) == [0, 0, 0] + Array("hello".utf8))
        #expect(try file.readBytes(count: 4, at: 100) == [])

        // A large write and read cross many pages and arrive intact.
        let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        try file.write(big, at: 4096)
        #expect(try file.readBytes(count: big.count, at: 4096) == big)
        try file.syncData()

        try file.truncate(to: 4)
        #expect(try file.size() == 4)
        #expect(try file.readBytes(count: 16, at: 0) == [0, 0, 0, UInt8(ascii: "h")])
        try file.truncate(to: 10)
        #expect(try file.readBytes(count: 16, at: 0) == [0, 0, 0, UInt8(ascii: "h"), 0, 0, 0, 0, 0, 0])

        // Data survives close and reopen.
        try file.close()
        let again = try fs.open(path, mode: .existing)
        defer { try? again.close() }
        #expect(try again.readBytes(count: 4, at: 0) == [0, 0, 0, UInt8(ascii: "h")])
        try fs.syncDirectory(dir.path)
    }

    /// `writeBack` (sync_file_range) pushes a written range to the device and changes nothing
    /// a read sees; an empty range is a no-op; a closed handle throws `.io` naming the call.
    @Test func writeBackOfAWrittenRange() throws {
        let dir = try TemporaryDirectory()
        let file = try fs.open(dir.path + "/data", mode: .createNew)
        let bytes = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        try file.write(bytes, at: 8192)
        try file.writeBack(offset: 8192, count: UInt64(bytes.count))
        try file.writeBack(offset: 0, count: 0)
        try file.writeBack(offset: 1 << 40, count: 4096)   // past the end: nothing to write
        #expect(try file.readBytes(count: bytes.count, at: 8192) == bytes)
        try file.syncData()
        try file.close()
        do {
            try file.writeBack(offset: 0, count: 4096)
            Issue.record("writeBack on a closed handle did not throw")
        } catch let StorageError.io(_, operation, _) {
            #expect(operation == "sync_file_range")
        }
    }

    @Test func errnoOnMissingFileAndCreateNewOnExisting() throws {
        let dir = try TemporaryDirectory()
        #expect(ioErrno { _ = try fs.open(dir.path + "/missing", mode: .existing) } == ENOENT)
        #expect(ioErrno { _ = try fs.open(dir.path + "/missing", mode: .readOnly) } == ENOENT)
        #expect(ioErrno { _ = try fs.open(dir.path + "/no/such/dir/f", mode: .createIfMissing) } == ENOENT)
        let file = try fs.open(dir.path + "/f", mode: .createNew)
        try file.close()
        #expect(ioErrno { _ = try fs.open(dir.path + "/f", mode: .createNew) } == EEXIST)
        let reopened = try fs.open(dir.path + "/f", mode: .createIfMissing)
        try reopened.close()
        #expect(ioErrno { try fs.removeFile(dir.path + "/missing") } == ENOENT)
        #expect(ioErrno { try fs.rename(dir.path + "/missing", to: dir.path + "/x") } == ENOENT)
        #expect(ioErrno { try fs.syncDirectory(dir.path + "/missing") } == ENOENT)
        #expect(ioErrno { _ = try fs.listDirectory(dir.path + "/missing") } == ENOENT)
        #expect(ioErrno { _ = try fs.listDirectory(dir.path + "/f") } == ENOTDIR)
    }

    @Test func readOnlyAndClosedHandles() throws {
        let dir = try TemporaryDirectory()
        let writer = try fs.open(dir.path + "/f", mode: .createNew)
        try writer.write([1, 2, 3], at: 0)
        try writer.close()
        #expect(ioErrno { try writer.close() } == EBADF)
        #expect(ioErrno { _ = try writer.size() } == EBADF)
        #expect(ioErrno { try writer.write([1], at: 0) } == EBADF)

        let reader = try fs.open(dir.path + "/f", mode: .readOnly)
        defer { try? reader.close() }
        #expect(try reader.readBytes(count: 3, at: 0) == [1, 2, 3])
        #expect(ioErrno { try reader.write([9], at: 0) } == EBADF)
        #expect(ioErrno { try reader.truncate(to: 0) } != nil)
        // An offset beyond off_t is an error, not a trap.
        #expect(ioErrno { _ = try reader.readBytes(count: 1, at: UInt64.max) } == EINVAL)
    }

    @Test func renameReplacesDestination() throws {
        let dir = try TemporaryDirectory()
        let a = try fs.open(dir.path + "/a", mode: .createNew)
        try a.write(Array("new".utf8), at: 0)
        let b = try fs.open(dir.path + "/b", mode: .createNew)
        try b.write(Array("old!".utf8), at: 0)
        try b.close()
        try fs.rename(dir.path + "/a", to: dir.path + "/b")
        try fs.syncDirectory(dir.path)
        #expect(!fs.fileExists(dir.path + "/a"))
        #expect(try fs.listDirectory(dir.path) == ["b"])
        let readBack = try fs.open(dir.path + "/b", mode: .readOnly)
        #expect(try readBack.readBytes(count: 10, at: 0) == Array("new".utf8))
        try readBack.close()
        // The handle still refers to the renamed file.
        try a.write([UInt8(ascii: "N")], at: 0)
        try a.close()
        #expect(try fs.open(dir.path + "/b", mode: .readOnly).readBytes(count: 3, at: 0) == Array("New".utf8))
        try fs.removeFile(dir.path + "/b")
        #expect(!fs.fileExists(dir.path + "/b"))
    }

    @Test func listDirectoryIsSortedAndCreateDirectoryIsRecursive() throws {
        let dir = try TemporaryDirectory()
        for name in ["zeta", "alpha", "log-00000002.seg", "log-00000001.seg", "Beta"] {
            try fs.open(dir.path + "/" + name, mode: .createNew).close()
        }
        try fs.createDirectory(dir.path + "/sub/deeper/deepest")
        try fs.createDirectory(dir.path + "/sub/deeper")  // exists: no error
        #expect(fs.fileExists(dir.path + "/sub/deeper/deepest"))
        #expect(try fs.listDirectory(dir.path) == ["Beta", "alpha", "log-00000001.seg", "log-00000002.seg", "sub", "zeta"])
        #expect(try fs.listDirectory(dir.path + "/sub/deeper/deepest") == [])
        // A file in the way of a directory is an error.
        #expect(ioErrno { try fs.createDirectory(dir.path + "/zeta") } == EEXIST)
        #expect(ioErrno { try fs.createDirectory(dir.path + "/zeta/x") } == ENOTDIR)
        try fs.syncDirectory(dir.path + "/sub")
    }

    @Test func concurrentPositionalWritesAndReads() async throws {
        let dir = try TemporaryDirectory()
        let file = try fs.open(dir.path + "/f", mode: .createNew)
        defer { try? file.close() }
        let blocks = 64
        let blockSize = 4096
        try await withThrowingTaskGroup(of: Void.self) { group in
            for block in 0..<blocks {
                group.addTask {
                    try file.write([UInt8](repeating: UInt8(block), count: blockSize), at: UInt64(block * blockSize))
                }
            }
            try await group.waitForAll()
        }
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for block in 0..<blocks {
                group.addTask {
                    try file.readBytes(count: blockSize, at: UInt64(block * blockSize))
                        == [UInt8](repeating: UInt8(block), count: blockSize)
                }
            }
            for try await ok in group { #expect(ok) }
        }
        #expect(try file.size() == UInt64(blocks * blockSize))
    }
}
