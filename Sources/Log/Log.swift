import ScrollbackFormat
import ScrollbackIO
import Synchronization

/// The write-ahead log: append-only segments of checksummed record frames, grouped into
/// transactions, with group commit, crash recovery, LZ4 sealing and random reads by position.
/// Format: spec/log-segment.md and spec/sealed-segment.md.
///
/// Thread-safety:
/// - `append` and `rollSegment` are serialized internally (one appender at a time; a second
///   caller waits). Appends never wait for a sync in progress.
/// - `sync(through:)`, `withRecord(at:_:)`, `listSegments`, `statistics` may be called from
///   any thread at any time, concurrently with appends and with each other.
/// - `sealFullSegments()` and `removeSegment(_:)` are serialized with each other and run
///   concurrently with appends, syncs and reads.
/// - `close()`: REQUIRES no concurrent calls (readers/appenders finished).
///
/// Resources: the active segment and the one filled just before it are held in memory
/// (`options.segmentSize` bytes each, allocated up front, touched as written); each sealed
/// or full segment keeps one open file handle; decompressed blocks are bounded by
/// `options.blockCacheBytes`.
///
/// Failure model: a failed write or fdatasync of a segment poisons the log: every later
/// `append`/`sync` throws `.poisoned`, because the kernel may have dropped the data; reopen
/// the log (recovery decides what is durable). Reads keep working.
package final class Log: @unchecked Sendable {
    typealias L = LogSegmentLayout

    package let directory: String
    package let options: LogOptions
    let fileSystem: any FileSystem
    let cache: BlockCache
    /// Single records of sealed segments; nil when `options.recordCacheBytes` is 0.
    let recordCache: RecordCache?

    /// Every segment by id, and which one is active. Guarded by its mutex; entries are
    /// immutable objects, so readers copy a reference out and use it without the lock.
    struct Table {
        var segments: [UInt32: SegmentEntry] = [:]
        var activeID: UInt32 = 0
    }
    let table: Lock<Table>

    /// The appender's state. Holding this mutex is what serializes appends.
    struct AppendState {
        var active: RawSegment
        /// The active segment's file size as this writer made it: appends below it overwrite
        /// preallocated zeros (see `preallocationBytes`).
        var allocatedEnd: Int
        /// The end offset of the active segment's last transaction that has records (the
        /// recovered end after open, the header after a roll).
        var lastRecordsEnd: Int
        /// The largest `durable through` that a commit frame in the active segment carries:
        /// how far the segment itself proves its synced prefix (see `appendSyncWitness`).
        var provenThrough: Int
        var closed = false
    }

    /// How far ahead of its end the active segment's file is allocated (zeros, disk space
    /// reserved): an `fdatasync` after an append that changes the file's size also commits
    /// the size (a file-system journal transaction); one inside the allocated size does not.
    /// Measured on this project's ext4 VM, 80-byte appends each followed by `fdatasync`:
    /// 180–190 µs p50 growing the file, 110–145 µs inside an allocated one. The file is cut
    /// back to its end when the segment is rolled or the log closed; recovery reads the zero
    /// tail of a crashed writer's segment as a torn tail (spec/log-segment.md, "Writing").
    package static let preallocationBytes = 64 << 10
    /// Allocation ahead (`LogOptions.allocateAhead`): when fewer than `allocationLowWater`
    /// allocated bytes are left past the active segment's end, a background thread extends
    /// the allocation to `allocationAheadBytes` past the end and syncs the file, so that the
    /// size change is durable before any commit's own `fdatasync` would have to commit it.
    /// The commit path then extends only when it outruns that thread. Measured on this
    /// project's ext4 VM (one durable send per commit, 200 commits): a commit that extends the
    /// file pays the size change in its sync, one in 160 sends with 64 KiB steps (the p99).
    package static let allocationAheadBytes = 256 << 10
    package static let allocationLowWater = 128 << 10

    /// The commit path's extension step: `preallocationBytes`, or a quarter of a smaller
    /// segment (at least 4 KiB), so small segments (tests, the crash sweep's 64 KiB) are
    /// allocated in several steps too.
    var preallocationStep: Int { min(Self.preallocationBytes, max(options.segmentSize / 4, 4096)) }
    /// How far ahead `allocateAhead` allocates: `allocationAheadBytes`, or a quarter of a
    /// smaller segment (at least 4 KiB); it runs when less than half of that is left.
    var allocationAheadStep: Int { min(Self.allocationAheadBytes, max(options.segmentSize / 4, 4096)) }
    let appendState: Lock<AppendState>
    /// The allocation-ahead thread, started by the first append that wants it; stopped by
    /// `close()` (or the log's deinit).
    let allocator = Lock<BackgroundWorker?>(nil)
    /// Extensions made by `allocateAhead()`.
    let allocationsAhead = Atomic<UInt64>(0)

    // Group-commit state, guarded by `syncMonitor`.
    let syncMonitor = ConditionMutex()
    /// Everything before this position is durable (synced).
    var syncedThrough: LogPosition
    /// End of the last completed append (every position below it is written).
    var writtenEnd: LogPosition
    /// True while a leader's `fdatasync` runs: written under `syncMonitor` (`leadSync`), read
    /// under it by the group commit and without it by `isSyncing`.
    let syncInProgress = Atomic<Bool>(false)
    var poisonLatch = PoisonLatch()
    /// The active segment's file, which a sync leader syncs.
    var syncFile: SegmentFile

    /// Serializes sealing and segment removal.
    let maintenanceLock = Lock(())
    let isClosed = Atomic<Bool>(false)

    let bytesAppended = Atomic<UInt64>(0)
    let transactionsAppended = Atomic<UInt64>(0)
    let recordsAppended = Atomic<UInt64>(0)
    let syncCount = Atomic<UInt64>(0)
    let syncWitnesses = Atomic<UInt64>(0)
    let segmentsSealed = Atomic<UInt64>(0)

    init(fileSystem: any FileSystem, directory: String, options: LogOptions, segments: [UInt32: SegmentEntry],
         active: RawSegment) {
        self.fileSystem = fileSystem
        self.directory = directory
        self.options = options
        cache = BlockCache(capacity: options.blockCacheBytes)
        recordCache = options.recordCacheBytes > 0 ? RecordCache(capacity: options.recordCacheBytes) : nil
        var table = Table(segments: segments, activeID: active.id)
        table.segments[active.id] = .raw(active)
        self.table = Lock(table)
        appendState = Lock(AppendState(active: active, allocatedEnd: active.length, lastRecordsEnd: active.length,
                                       provenThrough: active.length))
        let end = LogPositions.make(segment: active.id, offset: UInt32(active.length))
        syncedThrough = end
        writtenEnd = end
        syncFile = active.file
    }

    deinit { allocator.withLock { $0 }?.stop() }

    func path(_ id: UInt32, _ kind: SegmentFileName.Kind) -> String {
        Path.join(directory, SegmentFileName.name(id, kind))
    }

    // MARK: Append

    /// Appends `batch`'s records followed by a commit record, with one write to the active
    /// segment (rolling to a new segment first when the transaction does not fit; a
    /// transaction larger than `options.segmentSize` gets a segment of its own).
    /// Returns where the records went. Not durable until `sync(through: result.end)`.
    /// An empty batch writes nothing and returns `start == end ==` the current end.
    ///
    /// Throws `.limitExceeded` if the transaction exceeds `LogSegmentLayout.maximumTransactionBytes`
    /// (1 GiB), `.poisoned` after an earlier write/sync failure, `.closed`, or `.io` (which
    /// poisons the log). Cost: one memcpy of the batch, one pwrite; no allocation.
    package func append(_ batch: LogBatch) throws -> AppendResult {
        try appendState.withLock { state throws -> AppendResult in
            if state.closed { throw StorageError.closed }
            try throwIfPoisoned()
            let size = batch.encodedTransactionSize
            guard size <= L.maximumTransactionBytes else {
                throw StorageError.limitExceeded("transaction of \(size) bytes exceeds \(L.maximumTransactionBytes)")
            }
            var active = state.active
            if batch.isEmpty {
                let end = LogPositions.make(segment: active.id, offset: UInt32(active.length))
                return AppendResult(start: end, end: end, recordCount: 0)
            }
            var start = active.length
            if start > L.headerSize && start + size > options.segmentSize {
                active = try roll(&state, transactionSize: size)
                start = active.length
            }
            guard var image = active.image else {
                throw StorageError.invalidArgument("active segment has no image")   // unreachable by construction
            }
            if start + size > image.capacity {
                // The active segment is empty and this transaction is larger than its buffer.
                active = growImage(&state, to: start + size)
                image = active.image!
            }
            let durable = syncMonitor.withLock { syncedThrough }
            let durableOffset = LogPositions.segment(durable) == active.id
                ? max(Int(LogPositions.offset(durable)), L.headerSize) : L.headerSize
            let target = image.writable(from: start)
            let salt = active.salt
            batch.bytes.withUnsafeBytes { source in
                target.baseAddress!.copyMemory(from: source.baseAddress!, byteCount: source.count)
            }
            for offset in batch.recordOffsets {
                let o = Int(offset) + L.frameChecksumOffset
                target.storeLE(target.loadLE(UInt32.self, at: o) ^ salt, at: o)
            }
            LogFrame.writeCommit(target, at: batch.bytes.count, salt: salt, CommitPayload(
                durableThrough: UInt32(durableOffset), transactionStart: UInt32(start),
                recordCount: UInt32(batch.recordCount)))
            do {
                try writeAllocating(&state, UnsafeRawBufferPointer(rebasing: target[0..<size]), at: start)
            } catch {
                poison("write to \(active.file.path) failed: \(error)")
                throw error
            }
            image.publish(start + size)
            state.lastRecordsEnd = start + size
            state.provenThrough = max(state.provenThrough, durableOffset)
            let end = LogPositions.make(segment: active.id, offset: UInt32(start + size))
            syncMonitor.withLock { writtenEnd = end }
            bytesAppended.add(UInt64(size), ordering: .relaxed)
            transactionsAppended.add(1, ordering: .relaxed)
            recordsAppended.add(UInt64(batch.recordCount), ordering: .relaxed)
            return AppendResult(start: LogPositions.make(segment: active.id, offset: UInt32(start)), end: end,
                                recordCount: batch.recordCount)
        }
    }

    /// Writes `bytes` at `start` of the active segment, first extending the file's allocation
    /// in `preallocationStep` steps (never past the segment size) when the write would pass
    /// it. REQUIRES: appendState held. Errors are the caller's to poison.
    private func writeAllocating(_ state: inout AppendState, _ bytes: UnsafeRawBufferPointer, at start: Int) throws {
        let end = start + bytes.count
        if end > state.allocatedEnd {
            let chunk = preallocationStep
            let wanted = min((end + chunk - 1) / chunk * chunk, max(options.segmentSize, end))
            try state.active.file.handle.allocate(upTo: UInt64(wanted))
            state.allocatedEnd = wanted
        }
        try state.active.file.handle.write(bytes, at: UInt64(start))
        if options.allocateAhead, state.allocatedEnd - end < allocationAheadStep / 2,
           state.allocatedEnd < options.segmentSize {
            wakeAllocator()
        }
    }

    /// Wakes the allocation-ahead thread, starting it on first use. A thread the system
    /// refuses leaves the allocation to the commit path (as without `allocateAhead`).
    private func wakeAllocator() {
        allocator.withLock { worker in
            if worker == nil {
                worker = try? BackgroundWorker(name: "scrollback-alloc") { [weak self] in
                    _ = try? self?.allocateAhead()
                }
            }
            worker?.wake()
        }
    }

    /// Extends the active segment's allocation to `allocationAheadBytes` past its end (never
    /// past the segment size; `allocationAheadStep` for small segments) when fewer than
    /// `allocationLowWater` allocated bytes are left,
    /// then syncs the file: the new size is durable before a commit reaches it, and the
    /// commits' own syncs have no metadata to commit. Returns whether it extended.
    ///
    /// Run by the allocation-ahead thread, off the commit path; the crash sweep calls it
    /// between commits (spec/log-segment.md, "Writing"). Appends wait only for the
    /// `fallocate` (under the append lock), not for the sync, which is an ordinary group sync
    /// led by this caller (it may make appended transactions durable early, and then appends
    /// their witness like any sync leader). A failed `fallocate` changes nothing and returns
    /// false (the commit path will extend, or fail and poison, itself); a failed sync poisons
    /// the log and throws. Throws `.poisoned` after an earlier failure.
    @discardableResult
    package func allocateAhead() throws -> Bool {
        let extended = try appendState.withLock { state throws -> Bool in
            if state.closed { return false }
            try throwIfPoisoned()
            let end = state.active.length
            let limit = max(options.segmentSize, end)
            guard state.allocatedEnd < limit, state.allocatedEnd - end < allocationAheadStep / 2 else { return false }
            let chunk = preallocationStep
            let wanted = min((end + allocationAheadStep + chunk - 1) / chunk * chunk, limit)
            do {
                try state.active.file.handle.allocate(upTo: UInt64(wanted))
            } catch {
                // Nothing was written; the commit path extends (or fails and poisons) itself.
                return false
            }
            state.allocatedEnd = wanted
            return true
        }
        guard extended else { return false }
        allocationsAhead.add(1, ordering: .relaxed)
        if isClosed.load(ordering: .acquiring) { return true }
        if let synced = try syncNow() { appendSyncWitness(synced) }
        return true
    }

    /// Ends the active segment now (if it holds any record) so it can be sealed; the next
    /// append goes to a new segment. Same errors and poisoning as `append`.
    package func rollSegment() throws {
        try appendState.withLock { state throws in
            if state.closed { throw StorageError.closed }
            try throwIfPoisoned()
            if state.active.length > L.headerSize { _ = try roll(&state, transactionSize: 0) }
        }
    }

    /// Makes the active segment durable, then creates the next one. REQUIRES: appendState held.
    /// Order matters for recovery: segment N is synced before N+1 exists, so the existence of
    /// a later segment proves every earlier one complete (spec/log-segment.md, "Recovery").
    private func roll(_ state: inout AppendState, transactionSize: Int) throws -> RawSegment {
        let old = state.active
        guard old.id < UInt32.max else {
            throw StorageError.limitExceeded("segment id space exhausted")
        }
        do {
            // Cut the preallocated zeros first: a segment that is not the last must end with
            // its last commit, and this sync makes the cut durable before the next exists.
            if state.allocatedEnd > old.length { try old.file.handle.truncate(to: UInt64(old.length)) }
            try old.file.handle.syncData()
        } catch {
            poison("fdatasync of \(old.file.path) failed: \(error)")
            throw error
        }
        syncCount.add(1, ordering: .relaxed)
        let oldEnd = LogPositions.make(segment: old.id, offset: UInt32(old.length))
        syncMonitor.withLock {
            if oldEnd > syncedThrough { syncedThrough = oldEnd }
            syncMonitor.broadcast()
        }
        let new: RawSegment
        do {
            new = try createSegment(old.id + 1, capacity: max(options.segmentSize, L.headerSize + transactionSize))
        } catch {
            poison("creating segment \(old.id + 1) failed: \(error)")
            throw error
        }
        syncCount.add(1, ordering: .relaxed)
        table.withLock { table in
            // Keep the image of the segment just filled (it is read most, until sealed);
            // older full segments fall back to file reads.
            for (id, entry) in table.segments {
                if case .raw(let raw) = entry, raw.image != nil, id != old.id {
                    table.segments[id] = .raw(RawSegment(id: id, file: raw.file, salt: raw.salt, image: nil,
                                                         fixedLength: raw.length))
                }
            }
            table.segments[old.id] = .raw(RawSegment(id: old.id, file: old.file, salt: old.salt, image: old.image,
                                                     fixedLength: old.length))
            table.segments[new.id] = .raw(new)
            table.activeID = new.id
        }
        let newStart = LogPositions.make(segment: new.id, offset: UInt32(L.headerSize))
        syncMonitor.withLock {
            syncFile = new.file
            if newStart > syncedThrough { syncedThrough = newStart }
            writtenEnd = newStart
            syncMonitor.broadcast()
        }
        state.active = new
        state.allocatedEnd = new.length
        state.lastRecordsEnd = new.length
        state.provenThrough = new.length
        return new
    }

    /// Replaces the (empty) active segment's image by a larger one. REQUIRES: appendState held.
    private func growImage(_ state: inout AppendState, to capacity: Int) -> RawSegment {
        let old = state.active
        let image = SegmentImage(capacity: capacity)
        image.base.copyMemory(from: old.image!.base, byteCount: old.length)
        image.publish(old.length)
        let grown = RawSegment(id: old.id, file: old.file, salt: old.salt, image: image, fixedLength: 0)
        table.withLock { $0.segments[old.id] = .raw(grown) }
        state.active = grown
        return grown
    }

    /// Creates segment `id`: header written and synced, directory synced, before any record
    /// is written to it.
    func createSegment(_ id: UInt32, capacity: Int) throws -> RawSegment {
        try Self.createSegmentFile(fileSystem: fileSystem, directory: directory, options: options, id: id, capacity: capacity)
    }

    static func createSegmentFile(fileSystem: any FileSystem, directory: String, options: LogOptions, id: UInt32,
                                  capacity: Int) throws -> RawSegment {
        let path = Path.join(directory, SegmentFileName.name(id, .raw))
        let handle = try fileSystem.open(path, mode: .createNew)
        let file = SegmentFile(handle)
        let salt = options.salt(forSegment: id)
        let header = SegmentFileHeader(segmentID: id, salt: salt).encode(magic: L.magic, version: L.formatVersion)
        try handle.write(header, at: 0)
        try handle.syncData()
        try fileSystem.syncDirectory(directory)
        let image = SegmentImage(capacity: max(capacity, L.headerSize))
        header.withUnsafeBytes { image.base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        image.publish(L.headerSize)
        return RawSegment(id: id, file: file, salt: salt, image: image, fixedLength: 0)
    }

    // MARK: Group commit

    /// Returns once every transaction ending at or before `position` is durable.
    ///
    /// Group commit: one caller at a time (the leader) runs fdatasync for everything written
    /// so far; callers arriving meanwhile wait, and the next leader's single fdatasync covers
    /// all of them. Throws `.invalidArgument` for a position past the written end,
    /// `.poisoned` after a failed sync (the failing leader throws the `.io` error itself).
    ///
    /// A caller that led a sync then appends a *sync witness* when the segment does not yet
    /// prove it (`appendSyncWitness`): one unsynced 21-byte write, after the data is durable.
    package func sync(through position: LogPosition) throws {
        if isClosed.load(ordering: .acquiring) { throw StorageError.closed }
        if let synced = try syncInternal(through: position) { appendSyncWitness(synced) }
    }

    /// True while a group-commit sync of the active segment runs (a commit's, or
    /// `allocateAhead`'s). Lock-free; a hint, stale as soon as it is read.
    package var isSyncing: Bool { syncInProgress.load(ordering: .acquiring) }

    /// Returns the position this caller synced through as the leader of the last sync it
    /// ran, or nil when others' syncs covered `position`.
    @discardableResult
    func syncInternal(through position: LogPosition) throws -> LogPosition? {
        syncMonitor.lock()
        defer { syncMonitor.unlock() }
        var led: LogPosition? = nil
        while true {
            try poisonLatch.check()
            if position <= syncedThrough { return led }
            guard position <= writtenEnd else {
                throw StorageError.invalidArgument(
                    "sync through \(LogPositions.describe(position)) past the log end \(LogPositions.describe(writtenEnd))")
            }
            if syncInProgress.load(ordering: .relaxed) {
                syncMonitor.wait()
                continue
            }
            led = try leadSync()
        }
    }

    /// Runs one sync of the active segment's file as its leader, even when everything written
    /// is already durable (`allocateAhead` syncs a size change). Returns the position synced
    /// through, or nil when it had nothing new to prove.
    func syncNow() throws -> LogPosition? {
        syncMonitor.lock()
        defer { syncMonitor.unlock() }
        while true {
            try poisonLatch.check()
            if !syncInProgress.load(ordering: .relaxed) { break }
            syncMonitor.wait()
        }
        let before = syncedThrough
        let target = try leadSync()
        return target > before ? target : nil
    }

    /// One `fdatasync` of the active segment's file, through everything written when it
    /// starts. REQUIRES: syncMonitor held, no sync in progress (it is released meanwhile).
    /// A failure poisons the log and is rethrown.
    private func leadSync() throws -> LogPosition {
        syncInProgress.store(true, ordering: .releasing)
        let target = writtenEnd
        let file = syncFile
        syncMonitor.unlock()
        var failure: (any Error)?
        do { try file.handle.syncData() } catch { failure = error }
        syncMonitor.lock()
        syncInProgress.store(false, ordering: .releasing)
        syncCount.add(1, ordering: .relaxed)
        if let failure {
            poisonLatch.latch("fdatasync of \(file.path) failed: \(failure)")
            syncMonitor.broadcast()
            throw failure
        }
        if target > syncedThrough { syncedThrough = target }
        syncMonitor.broadcast()
        return target
    }

    /// Appends a **sync witness** after a sync through `synced`: an empty transaction (a
    /// commit frame with no records) whose `durable through` is `synced`'s offset, when the
    /// active segment holds a transaction with records that no commit frame yet proves
    /// durable (spec/log-segment.md, "Sync witnesses"). Without it, damage to the last synced
    /// window — the transactions the last sync covered, when nothing was appended after them —
    /// would read at recovery as a torn tail and be cut silently; with it, recovery finds a
    /// commit after the damage that proves the bytes were synced and reports corruption.
    ///
    /// The witness is written after the sync returned and is not synced itself (the next
    /// sync, or the close, makes it durable); it is skipped when the sync was of an older
    /// segment, when it would not fit in the segment, and after close. A failed write
    /// poisons the log like any append (the synced data stays durable).
    func appendSyncWitness(_ synced: LogPosition) {
        appendState.withLock { state in
            if state.closed || syncMonitor.withLock({ poisonLatch.isLatched }) { return }
            let active = state.active
            let syncedOffset = Int(LogPositions.offset(synced))
            guard LogPositions.segment(synced) == active.id, state.provenThrough < state.lastRecordsEnd,
                  state.lastRecordsEnd <= syncedOffset, let image = active.image else { return }
            let start = active.length
            let size = L.commitFrameSize
            guard start + size <= min(image.capacity, max(options.segmentSize, start)) else { return }
            let target = image.writable(from: start)
            LogFrame.writeCommit(target, at: 0, salt: active.salt, CommitPayload(
                durableThrough: UInt32(syncedOffset), transactionStart: UInt32(start), recordCount: 0))
            do {
                try writeAllocating(&state, UnsafeRawBufferPointer(rebasing: target[0..<size]), at: start)
            } catch {
                poison("write of a sync witness to \(active.file.path) failed: \(error)")
                return
            }
            image.publish(start + size)
            state.provenThrough = syncedOffset
            let end = LogPositions.make(segment: active.id, offset: UInt32(start + size))
            syncMonitor.withLock { if end > writtenEnd { writtenEnd = end } }
            bytesAppended.add(UInt64(size), ordering: .relaxed)
            transactionsAppended.add(1, ordering: .relaxed)
            syncWitnesses.add(1, ordering: .relaxed)
        }
    }

    /// The end of the log: where the next transaction would start in the active segment.
    package var endPosition: LogPosition { syncMonitor.withLock { writtenEnd } }
    /// Everything before this position is durable.
    package var durablePosition: LogPosition { syncMonitor.withLock { syncedThrough } }

    func poison(_ cause: String) {
        syncMonitor.withLock {
            poisonLatch.latch(cause)
            syncMonitor.broadcast()
        }
    }

    func throwIfPoisoned() throws {
        try syncMonitor.withLock { try poisonLatch.check() }
    }

    // MARK: Close

    /// Syncs what was appended (unless poisoned) and closes every file. Idempotent.
    /// REQUIRES: no concurrent use. Later calls throw `.closed`.
    package func close() throws {
        // First the allocation-ahead thread (it must not extend a file being cut back).
        allocator.withLock { $0 }?.stop()
        let (poisoned, end) = syncMonitor.withLock { (poisonLatch.isLatched, writtenEnd) }
        let wasOpen = appendState.withLock { !$0.closed }
        guard wasOpen else { return }
        isClosed.store(true, ordering: .releasing)
        var failure: (any Error)?
        // Sync what was appended and prove it with a witness (before appends stop), so that
        // the last synced window of a cleanly closed log is witnessed by a durable commit.
        if !poisoned {
            do {
                if let synced = try syncInternal(through: end) { appendSyncWitness(synced) }
            } catch { failure = error }
        }
        let preallocated = appendState.withLock { state -> RawSegment? in
            defer { state.closed = true }
            return state.allocatedEnd > state.active.length ? state.active : nil
        }
        // The preallocated zeros go (the sync below makes the cut durable); if the cut fails
        // they stay, which recovery reads as a torn tail.
        if let active = preallocated { try? active.file.handle.truncate(to: UInt64(active.length)) }
        let (stillHealthy, finalEnd) = syncMonitor.withLock { (!poisonLatch.isLatched, writtenEnd) }
        if failure == nil, stillHealthy {
            do { try syncInternal(through: finalEnd) } catch { failure = error }
        }
        let entries = table.withLock { Array($0.segments.values) }
        for entry in entries {
            switch entry {
            case .raw(let raw): raw.file.close()
            case .sealed(let sealed): sealed.file.close()
            }
        }
        if let failure { throw failure }
    }
}
