import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import ScrollbackFormat
import ScrollbackIO
import ScrollbackStorage
import Synchronization
import Testing
import TestSupport

/// Checkpoints beside commits: a checkpoint is planned under the writer lock and written
/// while commits go on (`StorageEngine.checkpoint()`), on the engine's own thread when
/// `backgroundMaintenance` is on. Ordering is observed with a gate on the page file's sync,
/// never with timings.
@Suite struct BackgroundCheckpointTests {
    /// Commits complete while a checkpoint is held inside its I/O (its page-file sync waits at
    /// a gate); the checkpoint then makes the state it planned durable, and the commits made
    /// meanwhile come back from the log after a reopen.
    @Test func commitsCompleteWhileACheckpointIsInItsIO() throws {
        let fs = PageSyncGateFileSystem()
        var options = StorageEngineTests.smallOptions()
        options.checkpointDirtyBytes = 64 << 20   // only the explicit checkpoint
        options.checkpointLogBytes = 64 << 20
        let engine = try StorageEngine.open(fileSystem: fs, directory: "/store", options: options, schema: KeyValueSchema.schema)
        var model: [UInt64: UInt64] = [:]
        for i in 0..<300 as Range<UInt64> {
            let operations: [KeyValueSchema.Operation] = [.put(i, i), .put(i + 10_000, i * 3)]
            try KeyValueSchema.commit(operations, to: engine)
            KeyValueSchema.apply(operations, to: &model)
        }
        fs.closeGate()
        let checkpointDone = DispatchSemaphore(value: 0)
        let checkpointError = Lock<(any Error)?>(nil)
        DispatchQueue.global().async {
            do { try engine.checkpoint() } catch { checkpointError.withLock { $0 = error } }
            checkpointDone.signal()
        }
        #expect(fs.waitForHeldSync(), "the checkpoint never reached its page-file sync")
        // Overwrites and deletes free pages of the state being written; new keys allocate.
        let committed = DispatchSemaphore(value: 0)
        let commitModel = Lock(model)
        let commitError = Lock<(any Error)?>(nil)
        DispatchQueue.global().async {
            do {
                for i in 0..<200 as Range<UInt64> {
                    let operations: [KeyValueSchema.Operation] = [.put(i * 2, 7), .delete(i + 10_000), .put(i + 50_000, i)]
                    try KeyValueSchema.commit(operations, to: engine)
                    commitModel.withLock { KeyValueSchema.apply(operations, to: &$0) }
                }
            } catch { commitError.withLock { $0 = error } }
            committed.signal()
        }
        let finished = committed.wait(timeout: .now() + 60) == .success
        #expect(finished, "commits waited for the checkpoint's I/O")
        #expect(fs.heldSyncs == 1, "the checkpoint was still in its I/O while the commits completed")
        fs.openGate()
        checkpointDone.wait()
        if !finished { committed.wait() }
        #expect(checkpointError.withLock { $0 } == nil)
        #expect(commitError.withLock { $0 } == nil)
        model = commitModel.withLock { $0 }
        #expect(try KeyValueSchema.contents(of: engine) == model)
        #expect(engine.verify() == [])
        #expect(!engine.isPoisoned, "\(engine.poisonCause ?? "")")
        // The page file's durable state is the planned one; the log replays the rest. A crash
        // image (no close) would replay the same: reopen from the files as they are now.
        let crashed = MemoryFileSystem()
        try crashed.createDirectory("/store")
        for name in try fs.base.listDirectory("/store") {
            crashed.setContents(of: "/store/" + name, to: fs.base.contents(of: "/store/" + name) ?? [])
        }
        try engine.close()
        let reopened = try StorageEngine.open(fileSystem: crashed, directory: "/store", options: options, schema: KeyValueSchema.schema)
        #expect(try KeyValueSchema.contents(of: reopened) == model)
        #expect(reopened.verify() == [])
        try reopened.close()
        let again = try StorageEngine.open(fileSystem: fs, directory: "/store", options: options, schema: KeyValueSchema.schema)
        #expect(try KeyValueSchema.contents(of: again) == model)
        try again.close()
    }

    /// With `backgroundMaintenance`, the policy's checkpoints run on the engine's thread while
    /// four writers commit; every commit is there after a reopen and the trees verify.
    @Test func backgroundMaintenanceBesideConcurrentWriters() throws {
        let fs = MemoryFileSystem()
        var options = StorageEngineTests.smallOptions()
        options.backgroundMaintenance = true
        let engine = try StorageEngine.open(fileSystem: fs, directory: "/store", options: options, schema: KeyValueSchema.schema)
        let model = Lock<[UInt64: UInt64]>([:])
        let failures = Lock<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { writer in
            for i in 0..<400 as Range<UInt64> {
                let key = UInt64(writer) << 32 | i
                let operations: [KeyValueSchema.Operation] = [.put(key, i)] + (i % 4 == 3 ? [.delete(key - 2)] : [])
                do {
                    try KeyValueSchema.commit(operations, to: engine)
                    model.withLock { KeyValueSchema.apply(operations, to: &$0) }
                } catch {
                    failures.withLock { $0.append("writer \(writer) commit \(i): \(error)") }
                    return
                }
            }
        }
        #expect(failures.withLock { $0 } == [])
        #expect(engine.statistics.checkpoints > 0, "the small checkpoint policy must have fired")
        #expect(!engine.isPoisoned, "\(engine.poisonCause ?? "")")
        let expected = model.withLock { $0 }
        #expect(try KeyValueSchema.contents(of: engine) == expected)
        #expect(engine.verify() == [])
        try engine.close()
        let reopened = try StorageEngine.open(fileSystem: fs, directory: "/store", options: options, schema: KeyValueSchema.schema)
        #expect(try KeyValueSchema.contents(of: reopened) == expected)
        #expect(reopened.verify() == [])
        try reopened.close()
    }
}

/// An in-memory file system whose page-file syncs (`pages`) can be held at a gate, so a test
/// can keep a checkpoint inside its I/O.
final class PageSyncGateFileSystem: FileSystem, @unchecked Sendable {
    let base = MemoryFileSystem()
    private let monitor = ConditionMutex()
    private var closed = false
    private var waiting = 0

    func closeGate() { monitor.withLock { closed = true } }

    func openGate() {
        monitor.withLock {
            closed = false
            monitor.broadcast()
        }
    }

    /// Page-file syncs waiting at the gate now.
    var heldSyncs: Int { monitor.withLock { waiting } }

    /// Waits (at most 60 s) until a page-file sync is held; false if none came.
    func waitForHeldSync() -> Bool {
        for _ in 0..<60_000 {
            if heldSyncs > 0 { return true }
            usleep(1000)
        }
        return false
    }

    fileprivate func pageSync() {
        monitor.withLock {
            waiting += 1
            while closed { monitor.wait() }
            waiting -= 1
        }
    }

    func open(_ path: String, mode: OpenMode) throws -> any ScrollbackIO.FileHandle {
        let handle = try base.open(path, mode: mode)
        return path.hasSuffix("/pages") ? GatedPageHandle(handle, fileSystem: self) : handle
    }

    func fileExists(_ path: String) -> Bool { base.fileExists(path) }
    func listDirectory(_ path: String) throws -> [String] { try base.listDirectory(path) }
    func createDirectory(_ path: String) throws { try base.createDirectory(path) }
    func rename(_ source: String, to destination: String) throws { try base.rename(source, to: destination) }
    func removeFile(_ path: String) throws { try base.removeFile(path) }
    func syncDirectory(_ directory: String) throws { try base.syncDirectory(directory) }
}

private final class GatedPageHandle: ScrollbackIO.FileHandle, @unchecked Sendable {
    let handle: any ScrollbackIO.FileHandle
    let fileSystem: PageSyncGateFileSystem

    init(_ handle: any ScrollbackIO.FileHandle, fileSystem: PageSyncGateFileSystem) {
        self.handle = handle
        self.fileSystem = fileSystem
    }

    var path: String { handle.path }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int { try handle.read(into: buffer, at: offset) }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws { try handle.write(bytes, at: offset) }
    func truncate(to size: UInt64) throws { try handle.truncate(to: size) }
    func allocate(upTo size: UInt64) throws { try handle.allocate(upTo: size) }
    func syncData() throws {
        fileSystem.pageSync()
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
