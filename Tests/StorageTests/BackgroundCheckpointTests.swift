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
        let gate = PageSyncGate()
        let fs = gate.fileSystem
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
        gate.closeGate()
        let checkpointDone = DispatchSemaphore(value: 0)
        let checkpointError = Lock<(any Error)?>(nil)
        startThread {
            do { try engine.checkpoint() } catch { checkpointError.withLock { $0 = error } }
            checkpointDone.signal()
        }
        #expect(gate.waitForHeldSync(), "the checkpoint never reached its page-file sync")
        // Overwrites and deletes free pages of the state being written; new keys allocate.
        let committed = DispatchSemaphore(value: 0)
        let commitModel = Lock(model)
        let commitError = Lock<(any Error)?>(nil)
        startThread {
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
        #expect(gate.heldSyncs == 1, "the checkpoint was still in its I/O while the commits completed")
        gate.openGate()
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
        for name in try gate.base.listDirectory("/store") {
            crashed.setContents(of: "/store/" + name, to: gate.base.contents(of: "/store/" + name) ?? [])
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
/// can keep a checkpoint inside its I/O (`fileSystem` is what the engine opens).
final class PageSyncGate: @unchecked Sendable {
    let base = MemoryFileSystem()
    private let monitor = ConditionMutex()
    private var closed = false
    private var waiting = 0
    private(set) lazy var fileSystem = SlowSyncFileSystem(base: base) { [unowned self] path in
        if path.hasSuffix("/pages") { self.pageSync() }
    }

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

    private func pageSync() {
        monitor.withLock {
            waiting += 1
            while closed { monitor.wait() }
            waiting -= 1
        }
    }
}
