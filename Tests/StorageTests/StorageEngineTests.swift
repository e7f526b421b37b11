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

@Suite struct StorageEngineTests {
    static func smallOptions(_ durability: Durability = .full) -> StorageOptions {
        var options = StorageOptions()
        options.pageSize = 4096
        options.pageCacheBytes = 1 << 20
        options.durability = durability
        options.log = LogOptions(segmentSize: 8 << 10, blockSize: 1 << 10, blockCacheBytes: 64 << 10, saltSeed: 1)
        options.checkpointDirtyBytes = 64 << 10
        options.checkpointLogBytes = 32 << 10
        return options
    }

    @Test func commitReadReopen() throws {
        let fs = MemoryFileSystem()
        var model: [UInt64: UInt64] = [:]
        do {
            let engine = try StorageEngine.open(
                fileSystem: fs, directory: "/store", options: Self.smallOptions(), schema: KeyValueSchema.schema)
            for i in 0..<800 as Range<UInt64> {
                let operations: [KeyValueSchema.Operation] = [.put(i, i * 10), .put(i + 1000, i)] + (i % 3 == 0 ? [.delete(i / 2)] : [])
                try KeyValueSchema.commit(operations, to: engine)
                KeyValueSchema.apply(operations, to: &model)
            }
            #expect(try KeyValueSchema.contents(of: engine) == model)
            #expect(engine.verify() == [])
            #expect(!engine.isPoisoned, "\(engine.poisonCause ?? "")")
            #expect(engine.statistics.checkpoints > 0, "the small checkpoint policy must have fired")
            // Full segments hold no record this schema keeps live: they were retired, and removed
            // once a checkpoint replayed from a later one.
            // At most checkpointLogBytes / segmentSize = 4 segments since the last checkpoint, and the active one.
            #expect(engine.statistics.log.segmentCount <= 5, "old segments must have been removed: \(engine.statistics.log)")
            try engine.close()
        }
        // A clean close checkpoints: reopening replays nothing.
        let reopened = try StorageEngine.open(
            fileSystem: fs, directory: "/store", options: Self.smallOptions(), schema: KeyValueSchema.schema)
        #expect(reopened.statistics.replayedTransactions == 0)
        #expect(try KeyValueSchema.contents(of: reopened) == model)
        #expect(reopened.verify() == [])
        try reopened.close()
    }

    /// A schema that grew a tree (as the message layer's search trees did) reads a store written
    /// without it: a read-only open reports the new tree as empty (spaceUsage, verify) instead
    /// of failing on the unused slot; a writer's open then creates it.
    @Test func aTreeTheSchemaAddedReadsAsEmptyUntilAWriterCreatesIt() throws {
        let fs = MemoryFileSystem()
        let engine = try StorageEngine.open(fileSystem: fs, directory: "/store", options: Self.smallOptions(), schema: KeyValueSchema.schema)
        try KeyValueSchema.commit([.put(1, 10), .put(2, 20)], to: engine)
        try engine.close()
        var grown = KeyValueSchema.schema
        grown.trees.append(.init(slot: 11, keyWords: 3, valueSize: 0))
        let reader = try StorageEngine.openReadOnly(fileSystem: fs, directory: "/store", options: Self.smallOptions(), schema: grown)
        let usage = try reader.spaceUsage()
        #expect(usage.treePages[11] == 0 && (usage.treePages[KeyValueSchema.slot] ?? 0) > 0)
        #expect(reader.verify() == [])
        try reader.close()
        let writer = try StorageEngine.open(fileSystem: fs, directory: "/store", options: Self.smallOptions(), schema: grown)
        #expect(try writer.spaceUsage().treePages[11] == 0)   // created, empty
        #expect(try KeyValueSchema.contents(of: writer) == [1: 10, 2: 20])
        #expect(writer.verify() == [])
        try writer.close()
    }

    @Test func uncheckpointedCommitsAreReplayed() throws {
        let fs = MemoryFileSystem()
        var options = Self.smallOptions()
        options.checkpointDirtyBytes = .max
        options.checkpointLogBytes = .max
        var model: [UInt64: UInt64] = [:]
        let engine = try StorageEngine.open(fileSystem: fs, directory: "/s", options: options, schema: KeyValueSchema.schema)
        for i in 0..<50 as Range<UInt64> {
            try KeyValueSchema.commit([.put(i, i)], to: engine)
            KeyValueSchema.apply([.put(i, i)], to: &model)
        }
        // Abandon the engine without closing (as a crash would: the process's locks go with
        // it), then reopen the same files.
        fs.releaseAllLocks()
        let reopened = try StorageEngine.open(fileSystem: fs, directory: "/s", options: options, schema: KeyValueSchema.schema)
        #expect(reopened.statistics.replayedTransactions == 50)
        #expect(try KeyValueSchema.contents(of: reopened) == model)
        #expect(reopened.verify() == [])
        _ = engine
    }

    @Test func rejectedWriterWritesNothingAndOthersCommit() throws {
        let fs = MemoryFileSystem()
        let engine = try StorageEngine.open(fileSystem: fs, directory: "/s", options: Self.smallOptions(), schema: KeyValueSchema.schema)
        try KeyValueSchema.commit([.put(1, 1)], to: engine)
        let appendedBefore = engine.statistics.log.transactionsAppended
        #expect(throws: KeyValueSchema.Rejected.self) {
            try KeyValueSchema.commit([.put(2, 2), .put(3, KeyValueSchema.forbiddenValue)], to: engine)
        }
        #expect(engine.statistics.log.transactionsAppended == appendedBefore)
        #expect(try KeyValueSchema.contents(of: engine) == [1: 1])
        #expect(!engine.isPoisoned)
        try KeyValueSchema.commit([.put(4, 4)], to: engine)
        #expect(try KeyValueSchema.contents(of: engine) == [1: 1, 4: 4])
    }

    /// Many threads committing at once share fsyncs: with a slow sync, commits must arrive
    /// while one is in progress and join the next group.
    @Test func concurrentWritersShareSyncs() throws {
        let fs = SlowSyncFileSystem(base: MemoryFileSystem(), syncDelayMicroseconds: 2000)
        var options = Self.smallOptions()
        options.log = LogOptions(segmentSize: 1 << 20, saltSeed: 2)
        let engine = try StorageEngine.open(fileSystem: fs, directory: "/s", options: options, schema: KeyValueSchema.schema)
        let threads = 8, perThread = 40
        let failures = Atomic<Int>(0)
        runOnThreads(threads) { thread in
            for i in 0..<perThread {
                let key = UInt64(thread * 1000 + i)
                do { try KeyValueSchema.commit([.put(key, key &* 3)], to: engine) } catch { failures.add(1, ordering: .relaxed) }
            }
        }
        #expect(failures.load(ordering: .relaxed) == 0)
        let contents = try KeyValueSchema.contents(of: engine)
        #expect(contents.count == threads * perThread)
        for (key, value) in contents { #expect(value == key &* 3) }
        let statistics = engine.statistics
        #expect(statistics.commits == UInt64(threads * perThread))
        #expect(statistics.commitGroups < statistics.commits, "no two commits shared a group")
        #expect(statistics.log.syncs < statistics.commits, "every commit paid its own fdatasync")
        #expect(engine.verify() == [])
    }

    @Test func failedSyncPoisonsUntilReopenAndLosesNoAcknowledgedWrite() throws {
        let fs = CrashSimulatingFileSystem(seed: 5)
        let engine = try StorageEngine.open(fileSystem: fs, directory: "/s", options: Self.smallOptions(), schema: KeyValueSchema.schema)
        var model: [UInt64: UInt64] = [:]
        for i in 0..<20 as Range<UInt64> {
            try KeyValueSchema.commit([.put(i, i)], to: engine)
            KeyValueSchema.apply([.put(i, i)], to: &model)
        }
        fs.injectFault(.syncFails(pathSuffix: ".seg"))
        #expect(throws: StorageError.self) { try KeyValueSchema.commit([.put(100, 1)], to: engine) }
        #expect(engine.isPoisoned)
        #expect(throws: StorageError.self) { try KeyValueSchema.commit([.put(101, 1)], to: engine) }
        // Readers keep working on the last published state, which excludes the failed commit.
        #expect(try KeyValueSchema.contents(of: engine) == model)
        fs.crash(mode: .dropAllUnsynced)
        let reopened = try StorageEngine.open(fileSystem: fs, directory: "/s", options: Self.smallOptions(), schema: KeyValueSchema.schema)
        #expect(try KeyValueSchema.contents(of: reopened) == model)
        #expect(reopened.verify() == [])
    }

    @Test func missingPageFileWithALogIsReportedNotRecreated() throws {
        let fs = MemoryFileSystem()
        let engine = try StorageEngine.open(fileSystem: fs, directory: "/s", options: Self.smallOptions(), schema: KeyValueSchema.schema)
        try KeyValueSchema.commit([.put(1, 1)], to: engine)
        try engine.close()
        try fs.removeFile("/s/pages")
        #expect(throws: StorageError.self) {
            _ = try StorageEngine.open(fileSystem: fs, directory: "/s", options: Self.smallOptions(), schema: KeyValueSchema.schema)
        }
        #expect(!fs.fileExists("/s/pages"))
    }

    @Test func closedEngineRefusesWork() throws {
        let engine = try StorageEngine.open(
            fileSystem: MemoryFileSystem(), directory: "/s", options: Self.smallOptions(), schema: KeyValueSchema.schema)
        try engine.close()
        #expect(throws: StorageError.closed) { try KeyValueSchema.commit([.put(1, 1)], to: engine) }
        #expect(throws: StorageError.closed) { try engine.snapshot() }
    }
}

/// Delegates to another file system, running a hook before every `syncData` with the file's
/// path: sleeping (to make group commit observable, not to measure time) or holding a sync
/// at a gate; and another before every `writeBack` (a paced checkpoint's steps).
final class SlowSyncFileSystem: FileSystem {
    let base: any FileSystem
    let beforeSync: @Sendable (String) -> Void
    let beforeWriteBack: @Sendable (String) -> Void
    init(base: any FileSystem, beforeWriteBack: @escaping @Sendable (String) -> Void = { _ in },
         beforeSync: @escaping @Sendable (String) -> Void) {
        self.base = base
        self.beforeSync = beforeSync
        self.beforeWriteBack = beforeWriteBack
    }
    convenience init(base: any FileSystem, syncDelayMicroseconds: UInt32) {
        self.init(base: base) { _ in usleep(syncDelayMicroseconds) }
    }
    func open(_ path: String, mode: OpenMode) throws -> any FileHandle {
        SlowSyncHandle(base: try base.open(path, mode: mode), beforeSync: beforeSync, beforeWriteBack: beforeWriteBack)
    }
    func fileExists(_ path: String) -> Bool { base.fileExists(path) }
    func listDirectory(_ path: String) throws -> [String] { try base.listDirectory(path) }
    func createDirectory(_ path: String) throws { try base.createDirectory(path) }
    func rename(_ source: String, to destination: String) throws { try base.rename(source, to: destination) }
    func removeFile(_ path: String) throws { try base.removeFile(path) }
    func syncDirectory(_ directory: String) throws { try base.syncDirectory(directory) }
}

final class SlowSyncHandle: FileHandle {
    let base: any FileHandle
    let beforeSync: @Sendable (String) -> Void
    let beforeWriteBack: @Sendable (String) -> Void
    init(base: any FileHandle, beforeSync: @escaping @Sendable (String) -> Void,
         beforeWriteBack: @escaping @Sendable (String) -> Void = { _ in }) {
        self.base = base
        self.beforeSync = beforeSync
        self.beforeWriteBack = beforeWriteBack
    }
    var path: String { base.path }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int { try base.read(into: buffer, at: offset) }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws { try base.write(bytes, at: offset) }
    func truncate(to size: UInt64) throws { try base.truncate(to: size) }
    func allocate(upTo size: UInt64) throws { try base.allocate(upTo: size) }
    func syncData() throws {
        beforeSync(base.path)
        try base.syncData()
    }
    func writeBack(offset: UInt64, count: UInt64) throws {
        beforeWriteBack(base.path)
        try base.writeBack(offset: offset, count: count)
    }
    func size() throws -> UInt64 { try base.size() }
    func close() throws { try base.close() }
    func tryLock(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool { try base.tryLock(range, exclusive: exclusive) }
    func unlock(_ range: Range<UInt64>) throws { try base.unlock(range) }
    func isLockedByOthers(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool { try base.isLockedByOthers(range, exclusive: exclusive) }
}
