import Foundation
import ScrollbackIO

/// An in-memory file system whose log syncs (`fdatasync` of `.seg` files) can be held at a
/// gate or slowed down, so tests can keep a durable write inside its group commit (to cancel
/// or close around it) or make concurrent writers meet in one group.
final class GatedFileSystem: FileSystem, @unchecked Sendable {
    let base = MemoryFileSystem()
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var closed = false
    private var waiting = 0
    private var delay: Double = 0

    /// Holds every log sync from now on until `open()`.
    func close() { condition.withLock { closed = true } }

    func open() {
        condition.withLock {
            closed = false
            condition.broadcast()
        }
    }

    /// Makes every log sync take `seconds` longer.
    func slowSyncs(by seconds: Double) { condition.withLock { delay = seconds } }

    /// Log syncs waiting at the closed gate now.
    var heldSyncs: Int { condition.withLock { waiting } }

    fileprivate func logSync() {
        let pause = condition.withLock {
            waiting += 1
            condition.broadcast()
            while closed { condition.wait() }
            waiting -= 1
            return delay
        }
        if pause > 0 { Thread.sleep(forTimeInterval: pause) }
    }

    func open(_ path: String, mode: OpenMode) throws -> any ScrollbackIO.FileHandle {
        let handle = try base.open(path, mode: mode)
        return path.hasSuffix(".seg") ? GatedHandle(handle, fileSystem: self) : handle
    }

    func fileExists(_ path: String) -> Bool { base.fileExists(path) }
    func listDirectory(_ path: String) throws -> [String] { try base.listDirectory(path) }
    func createDirectory(_ path: String) throws { try base.createDirectory(path) }
    func rename(_ source: String, to destination: String) throws { try base.rename(source, to: destination) }
    func removeFile(_ path: String) throws { try base.removeFile(path) }
    func syncDirectory(_ directory: String) throws { try base.syncDirectory(directory) }
    /// No background syncs: the tests count the syncs held at the gate.
    var allowsBackgroundIO: Bool { false }
}

private final class GatedHandle: ScrollbackIO.FileHandle, @unchecked Sendable {
    let handle: any ScrollbackIO.FileHandle
    let fileSystem: GatedFileSystem

    init(_ handle: any ScrollbackIO.FileHandle, fileSystem: GatedFileSystem) {
        self.handle = handle
        self.fileSystem = fileSystem
    }

    var path: String { handle.path }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        try handle.read(into: buffer, at: offset)
    }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws { try handle.write(bytes, at: offset) }
    func truncate(to size: UInt64) throws { try handle.truncate(to: size) }
    func syncData() throws {
        fileSystem.logSync()
        try handle.syncData()
    }
    func size() throws -> UInt64 { try handle.size() }
    func close() throws { try handle.close() }
    func tryLock(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool { try handle.tryLock(range, exclusive: exclusive) }
    func unlock(_ range: Range<UInt64>) throws { try handle.unlock(range) }
    func isLockedByOthers(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool {
        try handle.isLockedByOthers(range, exclusive: exclusive)
    }
}
