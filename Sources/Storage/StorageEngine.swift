import ScrollbackBTree
import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import ScrollbackPager
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The storage core as one crash-safe unit: the write-ahead log, the page file and the
/// trees built from it (spec/README.md, "A store on disk").
///
/// Commit protocol (the order is what makes recovery correct):
/// 1. the writer's `prepare` validates against the current trees and encodes log records;
/// 2. the records are appended to the log (one `pwrite` per transaction);
/// 3. the schema's `apply` turns them into tree changes in the pager's write transaction;
/// 4. the log is synced through the group's last record (`full` durability) — one
///    `fdatasync` for every writer in the group;
/// 5. the pager transaction commits, publishing the new trees to readers.
/// Readers therefore never see a write that is not yet durable. Recovery replays the log
/// after the meta page's log position through the same `apply` (spec/log-segment.md,
/// "Recovery").
///
/// Group commit follows LevelDB's writer queue: writers enqueue; the writer at the front
/// becomes the leader, runs the prepare step of every queued writer in order (each sees the
/// changes of those before it), syncs once, publishes, and wakes them.
///
/// Failure: an error from a writer's own `prepare` fails only that writer, and nothing of it
/// is written. Any error after a record reached the log (I/O, apply) poisons the engine: every
/// later commit throws `.poisoned` until the store is reopened, because the log may hold a
/// transaction the trees do not reflect. Reads keep working on the last published state.
///
/// The engine is a closed façade: its page file and log are private, and the layers above
/// use named operations — snapshots and commits, record reads by position, the segment
/// lifecycle and its liveness accounting (StorageEngine+Segments.swift), backup, verify.
///
/// Thread-safety: all methods may be called from any thread. Readers never wait for writers.
package final class StorageEngine: @unchecked Sendable {
    package let directory: String
    package let options: StorageOptions
    package let schema: StorageSchema
    // The engine's two handles: internal to this module (its files share them), never
    // `package`. `log` is usable from inlinable code only so that `withRecord`, the hot read
    // path, inlines into the layer above; no other module can name it.
    let pager: Pager
    @usableFromInline let log: Log
    /// The sorted runs and which segment each one holds (spec/storage-records.md).
    let runs: RunStore
    let aliases: SegmentAliases
    let fileSystem: any FileSystem
    /// The store lock, the reader table and, for read-only engines, their state
    /// (StorageEngine+Readers.swift, StorageEngine+ReadOnly.swift).
    let coordination: ProcessCoordination

    /// The writer queue (guarded by `queueLock`).
    private let queueLock = ConditionMutex()
    private var queue: [PendingWrite] = []
    /// Held by whoever is committing a group or checkpointing. Only the queue leader and
    /// `checkpoint()`/`close()`/`compactPageFile()` take it, so it is never contended for long.
    let writerLock = Lock(())
    /// Why the engine refuses writes (the store's verdict; the log and the pager keep their
    /// own latches for their own failures, and every one of those reaches this one too).
    private let poison = Lock(PoisonLatch())
    private let isClosed = Atomic<Bool>(false)
    /// Log end at the last checkpoint (for the log-growth checkpoint policy).
    private let logEndAtCheckpoint = Lock<UInt64>(0)
    /// Held for a whole checkpoint (plan, I/O, publication), so checkpoints run one at a time
    /// and backup and verify can hold them off. Lock order: `checkpointRole` before
    /// `writerLock`; a thread holding `writerLock` never takes it.
    let checkpointRole = Lock(())
    /// Runs the checkpoints the commit policy asks for and the sealing of filled log segments,
    /// off the commit path (`StorageOptions.backgroundMaintenance`); nil when they run on the
    /// committing thread.
    private let maintenanceWorker = Lock<BackgroundWorker?>(nil)
    let counters = Lock(Counters())
    /// Serializes the operations that create or remove files outside commits (sealing,
    /// merging, retiring, removing) with each other and with backup, which copies them.
    let maintenanceRole = Lock(())
    /// Backups in progress; file removals run under this lock and do nothing while any
    /// backup runs (they stay pending).
    let backupsRunning = Lock<Int>(0)
    /// Files that wait until nothing can read them (`removeUnreadableFiles`).
    let pendingFileRemovals = Lock<[PendingFileRemoval]>([])
    /// The next run id and the lowest virtual segment id handed out in this process (the
    /// committed counters may be behind while a run is being written).
    let nextRunID = Lock<UInt32>(0)
    let nextVirtualSegment = Lock<UInt32>(0)
    /// The active segment when maintenance last looked: a new one means a segment filled.
    private let activeSegmentSeen = Atomic<UInt32>(0)
    /// Calls of `withRaisedDirtyPageThreshold` running now (the threshold is raised while > 0).
    private let dirtyThresholdRaisers = Atomic<Int>(0)
    /// Checkpoints and seals begun and ended since open (`backgroundActivity`), counted from
    /// before a checkpoint's plan (which holds the writer lock) to after its meta page, and
    /// around each segment's sealing into a run.
    private let checkpointsBegun = Atomic<UInt64>(0)
    private let checkpointsEnded = Atomic<UInt64>(0)
    let sealsBegun = Atomic<UInt64>(0)
    let sealsEnded = Atomic<UInt64>(0)
    /// Writeback steps held back for log syncs (`yieldToCommitSyncs`).
    private let stepsYielded = Atomic<UInt64>(0)
    /// Signalled after every published group commit and at close (StorageEngine+Changes.swift).
    package let commitSignal = CommitSignal()

    struct Counters {
        var commits: UInt64 = 0
        var groups: UInt64 = 0
        var checkpoints: UInt64 = 0
        var replayedTransactions: UInt64 = 0
        var segmentsSealed: UInt64 = 0
    }

    /// One queued writer. Its `prepare` is run by the leader while its own thread waits,
    /// which is why a non-escaping closure may be stored here (see `commit`).
    private final class PendingWrite: @unchecked Sendable {
        /// Set to nil by the leader before the writer is woken: `withoutActuallyEscaping`
        /// requires that no reference to the closure outlives the writer's `commit` call.
        var prepare: ((PageTransaction, inout LogBatch) throws -> Void)?
        var done = false
        var error: (any Error)?
        init(prepare: @escaping (PageTransaction, inout LogBatch) throws -> Void) { self.prepare = prepare }
    }

    init(directory: String, options: StorageOptions, schema: StorageSchema, pager: Pager, log: Log, runs: RunStore,
         aliases: SegmentAliases, fileSystem: any FileSystem, replayed: UInt64, coordination: ProcessCoordination) {
        self.coordination = coordination
        self.directory = directory
        self.options = options
        self.schema = schema
        self.pager = pager
        self.log = log
        self.runs = runs
        self.aliases = aliases
        self.fileSystem = fileSystem
        activeSegmentSeen.store(LogPositions.segment(log.endPosition), ordering: .relaxed)
        logEndAtCheckpoint.withLock { $0 = pager.committedState.logPosition }
        counters.withLock { $0.replayedTransactions = replayed }
    }

    deinit { maintenanceWorker.withLock { $0 }?.stop() }

    // MARK: Reads

    /// A read snapshot of the latest published state. It never waits for writers and stays
    /// unchanged while it is alive; end it with `rollback()` (or let it go) so the pages it
    /// pins can be reused. Use it from one thread at a time.
    package func snapshot() throws -> PageTransaction {
        if isClosed.load(ordering: .acquiring) { throw StorageError.closed }
        return pager.beginRead()
    }

    /// Runs `body` on a fresh snapshot and ends the snapshot afterwards.
    /// The snapshot object is reused by a later `read` when `body` kept no reference to it.
    package func read<R>(_ body: (PageTransaction) throws -> R) throws -> R {
        var snapshot: PageTransaction? = try snapshot()
        defer { pager.endRead(&snapshot) }
        return try body(snapshot.unsafelyUnwrapped)
    }

    /// Calls `body` with the type and payload of the record at `position` (as a snapshot's
    /// trees point at it) and returns its result. The payload view is valid only during
    /// `body`. Throws `.invalidArgument` when no record is there, `.corrupted` for damaged
    /// bytes, `.closed` after `close()`. Thread-safety and cost: `Log.withRecord(at:_:)`.
    @inlinable
    package func withRecord<R>(at position: LogPosition, _ body: (UInt8, UnsafeRawBufferPointer) throws -> R) throws -> R {
        try log.withRecord(at: position, body)
    }

    /// Bytes a record with a payload of `payloadCount` bytes takes in the log (its frame).
    package static func frameBytes(payloadCount: Int) -> Int { LogSegmentLayout.frameHeaderSize + payloadCount }

    /// Path of the page file, for errors that name it.
    package var pageFilePath: String { pager.path }

    /// The latest committed state (what a new snapshot would see).
    package var committedState: CommittedState { pager.committedState }

    // MARK: Writes

    /// Commits one transaction. `prepare` runs with a write view of the trees (it sees every
    /// earlier commit, including those of its group) and encodes the transaction's log
    /// records into the batch; it must not modify the trees — `schema.apply` does that, from
    /// the records, exactly as recovery will. Throwing from `prepare` cancels this write only
    /// and writes nothing. An empty batch commits nothing (a no-op such as a duplicate).
    ///
    /// Returns once the transaction is durable (`full`) or written (`normal`) and visible to
    /// new snapshots. `prepare` may run on another committing thread (the group leader) while
    /// this thread waits; it must not depend on thread-local state.
    package func commit(_ prepare: (PageTransaction, inout LogBatch) throws -> Void) throws {
        try withoutActuallyEscaping(prepare) { prepare in
            // Safe: this thread blocks below until the leader has finished with `prepare`
            // (the queue lock orders the leader's last use before this thread's wake-up).
            let write = PendingWrite(prepare: prepare)
            queueLock.lock()
            queue.append(write)
            while !write.done && queue.first !== write {
                queueLock.wait()
            }
            if write.done {
                queueLock.unlock()
                if let error = write.error { throw error }
                return
            }
            // Leader: take the whole queue as one group.
            let group = queue
            queueLock.unlock()

            writerLock.withLock { _ in
                commitGroup(group)
            }

            queueLock.lock()
            queue.removeFirst(group.count)
            for member in group {
                member.prepare = nil
                member.done = true
            }
            queueLock.broadcast()
            queueLock.unlock()
            checkpointIfDue()
            maintainAfterGroup()
            if let error = write.error { throw error }
        }
    }

    /// After a group, outside the writer lock (sealing commits itself): when the active
    /// segment changed, the full segments are sealed into runs and files nothing reads are
    /// removed — by the maintenance worker when there is one (the leader only wakes it), else
    /// by the leader. A failure poisons the engine (the group's commits stand).
    private func maintainAfterGroup() {
        guard options.sealFullSegments else { return }
        let active = LogPositions.segment(log.endPosition)
        guard activeSegmentSeen.load(ordering: .relaxed) != active else { return }
        if let worker = maintenanceWorker.withLock({ $0 }) {
            worker.wake()
            return
        }
        sealFilledSegments()
    }

    /// Seals the full segments into runs when the active segment changed since the last look,
    /// then removes files nothing reads. One thread at a time: skipped while another thread
    /// (or this one, committing a sealing) holds the maintenance role; the next group that
    /// finds the active segment moved on tries again. A failure poisons the engine.
    private func sealFilledSegments() {
        guard options.sealFullSegments else { return }
        let active = LogPositions.segment(log.endPosition)
        guard activeSegmentSeen.load(ordering: .relaxed) != active else { return }
        _ = maintenanceRole.withLockIfAvailable { _ in
            activeSegmentSeen.store(active, ordering: .relaxed)
            do {
                try sealFullSegmentsLocked()
                try removeUnreadableFiles()
            } catch {
                poisonWith(error)
            }
        }
    }

    /// Runs every member's prepare/append/apply in one pager transaction, then one sync,
    /// then publishes. Records each member's outcome in `member.error`. REQUIRES: writerLock.
    private func commitGroup(_ group: [PendingWrite]) {
        if let failure = refusal() {
            for member in group { member.error = failure }
            return
        }
        let transaction: PageTransaction
        do {
            transaction = try pager.beginWrite()
        } catch {
            for member in group { member.error = error }
            return
        }
        var batch = LogBatch()
        var lastEnd: LogPosition?
        var committedMembers = 0
        var syncDuration: Duration?
        do {
            for member in group {
                batch.removeAll()
                do {
                    guard let prepare = member.prepare else { continue }
                    try prepare(transaction, &batch)
                } catch {
                    member.error = error   // this writer only; nothing of it was written
                    continue
                }
                if batch.isEmpty { continue }
                let result = try log.append(batch)
                try batch.withLoggedTransaction(result) { logged in
                    try Self.apply(logged, to: transaction, schema: schema, runs: runs)
                }
                lastEnd = result.end
                committedMembers += 1
            }
            if let lastEnd, options.durability == .full {
                syncDuration = try timedSync(through: lastEnd)
            }
            try transaction.commit()
            // Readers in other processes may now read the group (before anyone is told).
            if lastEnd != nil, options.durability == .full { publishDurableState() }
            if lastEnd != nil { commitSignal.signal() }
        } catch {
            if !transaction.isFinished { transaction.rollback() }
            poisonWith(error)
            for member in group where member.error == nil { member.error = error }
            return
        }
        counters.withLock {
            $0.commits += UInt64(committedMembers)
            $0.groups += 1
        }
        if committedMembers > 0 { observer?.groupCommitted(transactions: committedMembers, syncDuration: syncDuration) }
    }

    /// Checkpoint policy, run by a group's leader after its members are released (outside
    /// the writer lock): a checkpoint is due when dirty pages reach `checkpointDirtyBytes` or
    /// the log has grown `checkpointLogBytes` since the last one. With a checkpoint worker the
    /// leader only wakes it — unless twice those amounts have piled up (the worker is behind):
    /// then the leader waits for the running checkpoint to finish, or checkpoints itself when
    /// none is running; that wait is the back-pressure. Without a worker the leader
    /// checkpoints. The group's commits stand either way; a failed checkpoint poisons later
    /// writes.
    private func checkpointIfDue() {
        let backlog = checkpointBacklog()
        guard backlog >= 1 else { return }
        guard let worker = maintenanceWorker.withLock({ $0 }) else {
            // Without a worker nobody else is behind: a checkpoint in progress (another
            // thread's, or this thread's own `checkpoint(during:)`) is not waited for.
            _ = checkpointRole.withLockIfAvailable { _ in checkpointIfStillDue(onWorker: false) }
            return
        }
        if backlog < 2 {
            worker.wake()
            return
        }
        // Overdue: run the checkpoint here if none is running (the worker is busy sealing or
        // has not started it yet); else wait for the running one to finish, which frees its
        // pages' share of the dirty budget, and leave the next to the worker.
        if checkpointRole.withLockIfAvailable({ _ in checkpointIfStillDue(onWorker: false) }) == nil {
            checkpointRole.withLock { _ in }
            worker.wake()
        }
    }

    /// How far the store is into its checkpoint thresholds: the larger of dirty page bytes
    /// over `checkpointDirtyBytes` (or the raised threshold in force) and log growth since the
    /// last checkpoint over `checkpointLogBytes` (1 = a checkpoint is due). Cheap: two short
    /// lock holds.
    private func checkpointBacklog() -> Double {
        let grown = logGrowth(since: logEndAtCheckpoint.withLock { $0 }, to: pager.committedState.logPosition)
        let raised = dirtyThresholdRaisers.load(ordering: .relaxed) > 0
        let dirtyThreshold = raised ? max(options.checkpointDirtyBytes, options.pageCacheBytes / 2) : options.checkpointDirtyBytes
        return max(Double(pager.dirtyBytes) / Double(max(1, dirtyThreshold)),
                   Double(grown) / Double(max(1, options.checkpointLogBytes)))
    }

    /// Runs `body` with checkpoints due at half the page cache of dirty pages instead of
    /// `checkpointDirtyBytes`, when that is more (the log-growth threshold stays): for a run of
    /// commits that each dirty pages all over a tree — a search index build dirties a leaf of
    /// most of its terms at every step, and checkpoints at the usual threshold would write each
    /// leaf again and again (measured on a 195,512-message CJK build: 209 checkpoints and 34 s
    /// at 16 MiB, 2 and 13 s at 64 MiB). Other writers meanwhile see the raised threshold too:
    /// fewer, larger checkpoints. The dirty pages are pinned: with the background worker a
    /// commit waits only at twice the threshold, so they may approach the whole page cache;
    /// and the first commit after the threshold drops back may find that backlog and run the
    /// large checkpoint itself. Thread-safe; nested or concurrent calls keep it raised until
    /// the last returns.
    package func withRaisedDirtyPageThreshold<T>(_ body: () throws -> T) rethrows -> T {
        dirtyThresholdRaisers.add(1, ordering: .relaxed)
        defer { dirtyThresholdRaisers.subtract(1, ordering: .relaxed) }
        return try body()
    }

    /// A paced checkpoint if one is (still) due and the engine takes writes; a failure
    /// poisons. On the maintenance worker it yields to commit syncs (`yieldToCommitSyncs`); on
    /// a committing thread it does not (that thread's caller is waiting for it). REQUIRES:
    /// checkpointRole (re-checked under it: a checkpoint this thread waited for may have done it).
    private func checkpointIfStillDue(onWorker: Bool) {
        guard refusal() == nil, checkpointBacklog() >= 1 else { return }
        do { try checkpointBesideCommits(paced: true, yieldsToCommits: onWorker) } catch { poisonWith(error) }
    }

    /// Starts the maintenance worker (`StorageOptions.backgroundMaintenance`); a thread the
    /// system refuses leaves checkpoints and sealing to the committing threads. Called once,
    /// after open.
    func startMaintenanceWorker() {
        guard options.backgroundMaintenance, !isReadOnly else { return }
        let worker = try? BackgroundWorker(name: "scrollback-maintenance") { [weak self] in
            self?.maintainInBackground()
        }
        maintenanceWorker.withLock { $0 = worker }
    }

    /// The maintenance worker's step: seal the segments that filled (if any), then a
    /// checkpoint if one is still due.
    private func maintainInBackground() {
        sealFilledSegments()
        checkpointRole.withLock { _ in checkpointIfStillDue(onWorker: true) }
    }

    /// Approximate log bytes between two positions (segment boundaries count a full segment).
    private func logGrowth(since start: LogPosition, to end: LogPosition) -> UInt64 {
        let startSegment = UInt64(LogPositions.segment(start)), endSegment = UInt64(LogPositions.segment(end))
        if endSegment <= startSegment {
            return UInt64(LogPositions.offset(end)) &- UInt64(LogPositions.offset(start))
        }
        return (endSegment - startSegment) * UInt64(options.log.segmentSize) + UInt64(LogPositions.offset(end))
    }

    // MARK: Checkpoint, sync, close

    /// Writes the trees to the page file so recovery need not replay the log written so far.
    /// The log is synced through the checkpoint's position first: the meta page never claims
    /// trees built from records that are not durable.
    ///
    /// Commits wait only while the checkpoint is planned (under the writer lock, no I/O);
    /// they run during its I/O (`Pager.beginCheckpoint`). Another checkpoint in progress is
    /// waited for first.
    package func checkpoint() throws {
        if isClosed.load(ordering: .acquiring) { throw StorageError.closed }
        try checkpointRole.withLock { _ in
            if let failure = refusal() { throw failure }
            do {
                try checkpointBesideCommits()
            } catch {
                poisonWith(error)
                throw error
            }
        }
    }

    /// A checkpoint whose I/O runs while `body` runs on this thread between the plan and the
    /// I/O: what the background checkpoint does beside commits, in a deterministic order (the
    /// crash sweep commits in `body`). The checkpoint makes the state before `body` durable.
    /// `paced`: its pages are written back in steps, yielding to commit syncs, as the
    /// maintenance worker's checkpoints are.
    package func checkpoint(paced: Bool = false, during body: () throws -> Void) throws {
        if isClosed.load(ordering: .acquiring) { throw StorageError.closed }
        try checkpointRole.withLock { _ in
            try countingCheckpoint {
                let (plan, position) = try planBesideCommits()
                var bodyError: (any Error)?
                do { try body() } catch { bodyError = error }
                do {
                    try writeCheckpoint(plan, through: position, paced: paced, yieldsToCommits: paced)
                } catch {
                    poisonWith(error)
                    throw error
                }
                if let bodyError { throw bodyError }
            }
        }
    }

    /// A checkpoint planned under the writer lock and written beside the commits that follow;
    /// `paced` (the policy's checkpoints) writes its pages back in steps (`Pager.writeCheckpoint`),
    /// `yieldsToCommits` holds each step back while a commit syncs (`yieldToCommitSyncs`).
    /// REQUIRES: checkpointRole, not writerLock. Errors are the caller's to poison.
    private func checkpointBesideCommits(paced: Bool = false, yieldsToCommits: Bool = false) throws {
        try countingCheckpoint {
            let (plan, position) = try planBesideCommits()
            try writeCheckpoint(plan, through: position, paced: paced, yieldsToCommits: yieldsToCommits)
        }
    }

    /// Runs `body` (one checkpoint) counted in `backgroundActivity`, ended whether it
    /// succeeds or throws.
    private func countingCheckpoint<T>(_ body: () throws -> T) rethrows -> T {
        checkpointsBegun.add(1, ordering: .sequentiallyConsistent)
        defer { checkpointsEnded.add(1, ordering: .sequentiallyConsistent) }
        return try body()
    }

    /// Before each writeback step of a paced checkpoint on the maintenance worker: while the
    /// log is syncing (`Log.isSyncing`: a commit group's sync, or `allocateAhead`'s), and the
    /// checkpoint is not behind (backlog under 1.5; with the worker, commits wait for a
    /// checkpoint at 2), waits until that sync is done,
    /// polling with `usleep(20)` (about every 60–80 µs with Linux's timer slack), for at most
    /// `checkpointYieldPerStep`. A commit's sync flushes the device's write cache, and with it
    /// every page write that reached the device before it: writeback steps issued between a
    /// stream of commits made those commits pay for the checkpoint's pages (measured at the
    /// reference size: spread sends beside a checkpoint p50 589 µs against 184 µs without).
    /// Held back, the steps go out in the gaps; under a steady stream of commits the
    /// checkpoint writes at least one 64 KiB step per `checkpointYieldPerStep` (32 MiB/s at
    /// 2 ms) until it falls behind, then at full speed.
    private func yieldToCommitSyncs() {
        let limit = options.checkpointYieldPerStep
        guard limit > .zero, log.isSyncing, checkpointBacklog() < 1.5 else { return }
        stepsYielded.add(1, ordering: .relaxed)
        let clock = ContinuousClock()
        let deadline = clock.now + limit
        while log.isSyncing, clock.now < deadline { usleep(20) }
    }

    /// Writeback steps of paced checkpoints held back for a commit's log sync since open
    /// (`yieldToCommitSyncs`). Lock-free.
    package var checkpointStepsYielded: UInt64 { stepsYielded.load(ordering: .relaxed) }

    /// True while a sync of the log runs (`Log.isSyncing`). Lock-free.
    package var isSyncingLog: Bool { log.isSyncing }

    /// Checkpoints and seals begun and ended since open: lock-free reads of four counters.
    package var backgroundActivity: BackgroundActivityCounts {
        // Ended before begun: a checkpoint that ends between the two reads is never seen as
        // ended without having begun.
        let checkpointsEnded = checkpointsEnded.load(ordering: .sequentiallyConsistent)
        let sealsEnded = sealsEnded.load(ordering: .sequentiallyConsistent)
        return BackgroundActivityCounts(
            checkpointsBegun: checkpointsBegun.load(ordering: .sequentiallyConsistent), checkpointsEnded: checkpointsEnded,
            sealsBegun: sealsBegun.load(ordering: .sequentiallyConsistent), sealsEnded: sealsEnded)
    }

    /// Plans a checkpoint of the committed state under the writer lock (no I/O) and returns it
    /// with the log position that state reaches. REQUIRES: checkpointRole, not writerLock.
    private func planBesideCommits() throws -> (CheckpointPlan, LogPosition) {
        try writerLock.withLock { _ in
            if let failure = refusal() { throw failure }
            return (try pager.beginCheckpoint(), pager.committedState.logPosition)
        }
    }

    /// A checkpoint with the writer lock held throughout (close). REQUIRES: checkpointRole and
    /// writerLock.
    private func checkpointLocked() throws {
        try countingCheckpoint {
            let position = pager.committedState.logPosition
            try writeCheckpoint(try pager.beginCheckpoint(), through: position)
        }
    }

    /// Writes a planned checkpoint whose state reaches `position` in the log. The log is synced
    /// through `position` first: the meta page never claims trees built from records that are
    /// not durable. REQUIRES: checkpointRole.
    private func writeCheckpoint(_ plan: CheckpointPlan, through position: LogPosition, paced: Bool = false,
                                 yieldsToCommits: Bool = false) throws {
        try observingCheckpoint {
            try pager.writeCheckpoint(plan, paced: paced, beforeMetaPage: {
                if position > log.durablePosition { try log.sync(through: position) }
            }, beforeWriteBack: { if yieldsToCommits { yieldToCommitSyncs() } })
        }
        // Publish the new checkpoint, then scan the readers for the reuse decisions that
        // follow (spec/reader-table.md, "The race rule": the scan begins after the checkpoint).
        publishDurableState()
        updateReaderFloor()
        logEndAtCheckpoint.withLock { $0 = position }
        counters.withLock { $0.checkpoints += 1 }
        try removeUnreadableFiles()
    }

    /// The log's allocation-ahead step (`Log.allocateAhead`), which its background thread runs
    /// when the store's file system allows background I/O; the crash sweep calls it between
    /// commits. Returns whether it extended the active segment. A failed sync poisons.
    @discardableResult
    package func allocateLogAhead() throws -> Bool {
        if let failure = refusal() { throw failure }
        do {
            return try log.allocateAhead()
        } catch {
            poisonWith(error)   // only a failed sync throws (or an earlier failure's .poisoned)
            throw error
        }
    }

    /// Makes every commit so far durable (useful in `normal` durability).
    package func sync() throws {
        if isClosed.load(ordering: .acquiring) { throw StorageError.closed }
        if let failure = refusal() { throw failure }
        do {
            try log.sync(through: log.endPosition)
        } catch {
            poisonWith(error)
            throw error
        }
        publishDurableState()
    }

    /// Removes what retired segments no snapshot reads any more, checkpoints (when healthy)
    /// and closes the files. Later calls throw `.closed`.
    package func close() throws {
        defer { commitSignal.close() }
        if isReadOnly { return try closeReadOnly() }
        // The worker first: it must not start a checkpoint of a closing engine.
        maintenanceWorker.withLock { $0 }?.stop()
        try? removeUnreadableFiles()
        try checkpointRole.withLock { _ in try writerLock.withLock { _ in
            guard !isClosed.exchange(true, ordering: .acquiringAndReleasing) else { return }
            var firstError: (any Error)?
            if !isPoisoned {
                do { try checkpointLocked() } catch { firstError = error }
            }
            do { try log.close() } catch { firstError = firstError ?? error }
            do { try pager.close() } catch { firstError = firstError ?? error }
            // Last: the store lock (another writer may open the store once it is released).
            do { try coordination.close() } catch { firstError = firstError ?? error }
            if let firstError { throw firstError }
        } }
    }

    /// Marks the engine closed; false if it already was.
    func markClosed() -> Bool { !isClosed.exchange(true, ordering: .acquiringAndReleasing) }

    /// Runs `body` while no group commit is in progress (a checkpoint's I/O may be).
    func withWriterRole<R>(_ body: () throws -> R) rethrows -> R {
        try writerLock.withLock { _ in try body() }
    }

    /// Runs `body` while no group commit and no checkpoint is in progress.
    func withWritersAndCheckpointsHeld<R>(_ body: () throws -> R) rethrows -> R {
        try checkpointRole.withLock { _ in try writerLock.withLock { _ in try body() } }
    }

    /// Runs write I/O that happens outside a commit (e.g. rolling and sealing the log) under
    /// the commit rule: refused while the engine refuses writes, and a failure poisons the
    /// engine (a failed write or fsync is never retried; spec/README.md, A6).
    func withWriteFailurePoisoning<R>(_ body: () throws -> R) throws -> R {
        if let failure = refusal() { throw failure }
        do {
            return try body()
        } catch {
            poisonWith(error)
            throw error
        }
    }

    // MARK: Health

    func refusal() -> StorageError? {
        if isClosed.load(ordering: .acquiring) { return .closed }
        if isReadOnly { return .readOnly(path: directory) }
        if let cause = poisonCause { return .poisoned(cause: cause) }
        return nil
    }

    func poisonWith(_ error: any Error) {
        let first = poison.withLock { latch in
            defer { latch.latch("\(error)") }
            return !latch.isLatched
        }
        if first { observer?.refusesWrites(cause: "\(error)") }
    }

    /// True after a failed write or sync: the engine refuses writes until reopened.
    package var isPoisoned: Bool { poison.withLock { $0.isLatched } }

    /// Why the engine refuses writes, if it does.
    package var poisonCause: String? { poison.withLock { $0.cause } }

    package struct Statistics: Sendable, Equatable {
        package var commits: UInt64
        package var commitGroups: UInt64
        package var checkpoints: UInt64
        package var replayedTransactions: UInt64
        package var segmentsSealed: UInt64
        package var runs: RunStatistics
        package var pager: PagerStatistics
        package var log: LogStatistics
        /// Bytes of the page space (page count × page size).
        package var pageFileBytes: UInt64
    }

    package var statistics: Statistics {
        let c = counters.withLock { $0 }
        return Statistics(
            commits: c.commits, commitGroups: c.groups, checkpoints: c.checkpoints,
            replayedTransactions: c.replayedTransactions, segmentsSealed: c.segmentsSealed, runs: runs.statistics,
            pager: pager.statistics, log: log.statistics,
            pageFileBytes: pager.pageCount &* UInt64(pager.pageSize))
    }
}
