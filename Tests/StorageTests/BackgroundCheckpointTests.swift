import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
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
        let gate = SyncGate.pages()
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

extension BackgroundCheckpointTests {
    /// A paced checkpoint holds its writeback back while a commit syncs the log: with a
    /// commit's log sync held at a gate, the checkpoint yields before its first writeback step
    /// and issues none in the 50 ms watched after that, nor until the sync ends (the yield
    /// limit is set far beyond the test).
    /// Without a yield limit it writes back and finishes while the sync is still held.
    @Test(arguments: [true, false]) func pacedCheckpointYieldsToACommitsLogSync(yields: Bool) throws {
        let gate = SyncGate.log()
        var options = StorageEngineTests.smallOptions()
        options.pageCacheBytes = 4 << 20
        options.checkpointDirtyBytes = 64 << 20   // only the explicit checkpoint
        options.checkpointLogBytes = 64 << 20
        options.log = LogOptions(segmentSize: 1 << 20, blockSize: 1 << 10, blockCacheBytes: 64 << 10, saltSeed: 1)
        options.checkpointYieldPerStep = yields ? .seconds(600) : .zero
        let engine = try StorageEngine.open(fileSystem: gate.fileSystem, directory: "/store", options: options,
                                            schema: KeyValueSchema.schema)
        var model: [UInt64: UInt64] = [:]
        // Enough dirty 4 KiB pages for several 64 KiB writeback steps.
        for batch in 0..<40 as Range<UInt64> {
            let operations: [KeyValueSchema.Operation] = (0..<1000).map { .put(batch * 1000 + $0, $0) }
            try KeyValueSchema.commit(operations, to: engine)
            KeyValueSchema.apply(operations, to: &model)
        }
        let held: [KeyValueSchema.Operation] = [.put(1 << 40, 1)]
        let committed = DispatchSemaphore(value: 0)
        let commitError = Lock<(any Error)?>(nil)
        // Opens the gate once the checkpoint has yielded, noting the writebacks issued by then.
        let writeBacksWhenYielded = Lock<Int?>(nil)
        if yields {
            startThread {
                var waited = 0
                while engine.checkpointStepsYielded == 0, waited < 60_000 {
                    usleep(1000)
                    waited += 1
                }
                // The step is counted before the wait: watch the wait for a while (50 ms; a
                // step that went out meanwhile would show), then let the commit finish.
                var mostWriteBacks = gate.pageWriteBacks
                for _ in 0..<50 {
                    usleep(1000)
                    mostWriteBacks = max(mostWriteBacks, gate.pageWriteBacks)
                }
                writeBacksWhenYielded.withLock { $0 = mostWriteBacks }
                gate.openGate()
            }
        }
        try engine.checkpoint(paced: true) {
            gate.closeGate()
            startThread {
                do { try KeyValueSchema.commit(held, to: engine) } catch { commitError.withLock { $0 = error } }
                committed.signal()
            }
            #expect(gate.waitForHeldSync(), "the commit never reached its log sync")
            // The commit's group sync, not a sync of the log's own (a segment roll, in `append`):
            // that one would stay held with the commit never reaching its group sync.
            var waited = 0
            while !engine.isSyncingLog, waited < 60_000 {
                usleep(1000)
                waited += 1
            }
            #expect(engine.isSyncingLog, "the commit's log sync is not in flight")
        }
        if yields {
            #expect(engine.checkpointStepsYielded >= 1)
            #expect(writeBacksWhenYielded.withLock { $0 } == 0, "a writeback step went out while the commit synced")
        } else {
            #expect(engine.checkpointStepsYielded == 0)
            #expect(gate.heldSyncs == 1, "the checkpoint finished while the commit's sync was held")
            gate.openGate()
        }
        #expect(gate.pageWriteBacks > 1, "the paced checkpoint wrote its pages back in steps")
        committed.wait()
        #expect(commitError.withLock { $0 } == nil)
        KeyValueSchema.apply(held, to: &model)
        #expect(try KeyValueSchema.contents(of: engine) == model)
        #expect(engine.verify() == [])
        #expect(!engine.isPoisoned, "\(engine.poisonCause ?? "")")
        try engine.close()
        let reopened = try StorageEngine.open(fileSystem: gate.base, directory: "/store", options: options, schema: KeyValueSchema.schema)
        #expect(try KeyValueSchema.contents(of: reopened) == model)
        try reopened.close()
    }
}

/// An in-memory file system whose syncs of one kind of file can be held at a gate — the page
/// file's (`SyncGate.pages`), so a test can keep a checkpoint inside its I/O, or the log's
/// (`SyncGate.log`), to keep a commit inside its sync — counting the page file's writeback
/// steps (`fileSystem` is what the engine opens).
final class SyncGate: @unchecked Sendable {
    let base = MemoryFileSystem()
    private let holds: @Sendable (String) -> Bool
    private let monitor = ConditionMutex()
    private var closed = false
    private var waiting = 0
    private var writeBacks = 0
    private(set) lazy var fileSystem = SlowSyncFileSystem(base: base, beforeWriteBack: { [unowned self] path in
        if path.hasSuffix("/pages") { self.monitor.withLock { self.writeBacks += 1 } }
    }, beforeSync: { [unowned self] path in
        if self.holds(path) { self.sync() }
    })

    private init(holding holds: @escaping @Sendable (String) -> Bool) { self.holds = holds }

    /// Holds the page file's syncs.
    static func pages() -> SyncGate { SyncGate { $0.hasSuffix("/pages") } }

    /// Holds the log segments' syncs.
    static func log() -> SyncGate { SyncGate { $0.hasSuffix(LogSegmentLayout.fileSuffix) } }

    func closeGate() { monitor.withLock { closed = true } }

    func openGate() {
        monitor.withLock {
            closed = false
            monitor.broadcast()
        }
    }

    /// Syncs waiting at the gate now.
    var heldSyncs: Int { monitor.withLock { waiting } }

    /// Writeback steps issued on the page file so far.
    var pageWriteBacks: Int { monitor.withLock { writeBacks } }

    /// Waits (at most 60 s) until a sync is held; false if none came.
    func waitForHeldSync() -> Bool {
        for _ in 0..<60_000 {
            if heldSyncs > 0 { return true }
            usleep(1000)
        }
        return false
    }

    private func sync() {
        monitor.withLock {
            waiting += 1
            while closed { monitor.wait() }
            waiting -= 1
        }
    }
}
