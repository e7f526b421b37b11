import ScrollbackBTree
import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import ScrollbackPager
import Synchronization

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
/// Thread-safety: all methods may be called from any thread. Readers never wait for writers.
package final class StorageEngine: @unchecked Sendable {
    package let directory: String
    package let options: StorageOptions
    package let schema: StorageSchema
    package let pager: Pager
    package let log: Log
    let fileSystem: any FileSystem

    /// The writer queue (guarded by `queueLock`).
    private let queueLock = ConditionMutex()
    private var queue: [PendingWrite] = []
    /// Held by whoever is committing a group or checkpointing. Only the queue leader and
    /// `checkpoint()`/`close()` take it, so it is never contended for long.
    private let writerLock = Lock(())
    private let poison = Lock<String?>(nil)
    private let isClosed = Atomic<Bool>(false)
    /// Log end at the last checkpoint (for the log-growth checkpoint policy).
    private let logEndAtCheckpoint = Lock<UInt64>(0)
    private let counters = Lock(Counters())

    struct Counters {
        var commits: UInt64 = 0
        var groups: UInt64 = 0
        var checkpoints: UInt64 = 0
        var replayedTransactions: UInt64 = 0
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

    private init(directory: String, options: StorageOptions, schema: StorageSchema, pager: Pager, log: Log,
                 fileSystem: any FileSystem, replayed: UInt64) {
        self.directory = directory
        self.options = options
        self.schema = schema
        self.pager = pager
        self.log = log
        self.fileSystem = fileSystem
        logEndAtCheckpoint.withLock { $0 = pager.committedState.logPosition }
        counters.withLock { $0.replayedTransactions = replayed }
    }

    // MARK: Open

    /// Opens the store in `directory`, creating it if the directory is missing or empty.
    ///
    /// Creation is crash-safe: the page file appears atomically (written under a temporary
    /// name, synced, renamed, directory synced) and holds empty trees; a crash before that
    /// leaves no page file and the next open simply creates again. A directory that has log
    /// segments but no page file is damaged and is reported, never recreated over.
    ///
    /// Recovery: the pager picks the newest valid meta page; the log replays every complete
    /// transaction after the meta page's log position through `schema.apply`, and cuts off a
    /// torn tail. If anything was replayed, a checkpoint follows so the next open is fast.
    package static func open(
        fileSystem: any FileSystem, directory: String, options: StorageOptions = StorageOptions(),
        schema: StorageSchema
    ) throws -> StorageEngine {
        try validate(schema)
        try fileSystem.createDirectory(directory)
        try fileSystem.syncDirectory(Path.directory(of: directory))
        let pagesPath = Path.join(directory, PageFileLayout.fileName)
        let pager: Pager
        if fileSystem.fileExists(pagesPath) {
            do {
                pager = try Pager.open(fileSystem: fileSystem, path: pagesPath, cacheBytes: options.pageCacheBytes)
            } catch StorageError.notAStore {
                // Neither meta page has the magic. Next to a log this is a damaged page file
                // (e.g. truncated or zeroed), not a foreign file.
                let names = try fileSystem.listDirectory(directory)
                if let segment = names.first(where: { $0.hasPrefix("log-") }) {
                    throw StorageError.corrupted(
                        file: pagesPath, offset: 0,
                        reason: "neither meta page of the page file is valid but the log exists (\(segment))")
                }
                throw StorageError.notAStore(path: pagesPath)
            }
        } else {
            let names = try fileSystem.listDirectory(directory)
            if let segment = names.first(where: { $0.hasPrefix("log-") }) {
                throw StorageError.corrupted(
                    file: pagesPath, offset: 0,
                    reason: "page file is missing but the log exists (\(segment)); refusing to recreate the store")
            }
            pager = try Pager.create(
                fileSystem: fileSystem, path: pagesPath, pageSize: options.pageSize, cacheBytes: options.pageCacheBytes)
        }

        var replayed: UInt64 = 0
        let log: Log
        let transaction = try pager.beginWrite()
        do {
            let createdTrees = try prepareTrees(schema, in: transaction, file: pagesPath)
            let startState = transaction.state
            // A checkpoint's log position always lies in a segment that exists (compaction
            // removes segments only after a later checkpoint): a missing one means the state in
            // use is older than the log (e.g. a damaged newest meta page), never a skip to allow.
            var logOptions = options.log
            logOptions.requireReplaySegment = true
            log = try Log.open(
                fileSystem: fileSystem, directory: directory, options: logOptions,
                replayFrom: startState.logPosition
            ) { logged in
                try schema.apply(transaction, logged)
                transaction.state.logPosition = logged.end
                replayed += 1
            }
            let changed = createdTrees || replayed > 0
            try transaction.commit()
            if changed {
                try pager.checkpoint()
            }
            // The names found here (page file, log segments) may be left by a run whose
            // directory sync failed or never came: make them durable before any write into
            // them is acknowledged.
            try fileSystem.syncDirectory(directory)
        } catch {
            if !transaction.isFinished { transaction.rollback() }
            try? pager.close()
            throw error
        }
        return StorageEngine(
            directory: directory, options: options, schema: schema, pager: pager, log: log,
            fileSystem: fileSystem, replayed: replayed)
    }

    private static func validate(_ schema: StorageSchema) throws {
        var seen = Set<Int>()
        for tree in schema.trees {
            guard (0..<Pager.treeSlotCount).contains(tree.slot), seen.insert(tree.slot).inserted else {
                throw StorageError.invalidArgument("tree slot \(tree.slot) is out of range or used twice")
            }
        }
    }

    /// Creates the schema's trees that do not exist yet; checks the shape of those that do.
    private static func prepareTrees(_ schema: StorageSchema, in transaction: PageTransaction, file: String) throws -> Bool {
        var created = false
        for tree in schema.trees {
            let root = transaction.state.trees[tree.slot]
            if root.keyWords == 0 {
                _ = try BTree.create(in: transaction, slot: tree.slot, keyWords: tree.keyWords, valueSize: tree.valueSize)
                created = true
            } else if Int(root.keyWords) != tree.keyWords || Int(root.valueSize) != tree.valueSize {
                throw StorageError.corrupted(
                    file: file, offset: 0,
                    reason: "tree slot \(tree.slot) has \(root.keyWords) key words and \(root.valueSize)-byte values; "
                        + "this build expects \(tree.keyWords) and \(tree.valueSize)")
            }
        }
        return created
    }

    // MARK: Reads

    /// A read snapshot of the latest published state. It never waits for writers and stays
    /// unchanged while it is alive; end it with `rollback()` (or let it go) so the pages it
    /// pins can be reused. Use it from one thread at a time.
    package func snapshot() throws -> PageTransaction {
        if isClosed.load(ordering: .acquiring) { throw StorageError.closed }
        return pager.beginRead()
    }

    /// Runs `body` on a fresh snapshot and ends the snapshot afterwards.
    package func read<R>(_ body: (PageTransaction) throws -> R) throws -> R {
        let snapshot = try snapshot()
        defer { snapshot.rollback() }
        return try body(snapshot)
    }

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
            if let error = write.error { throw error }
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
                    try schema.apply(transaction, logged)
                }
                transaction.state.logPosition = result.end
                lastEnd = result.end
                committedMembers += 1
            }
            if let lastEnd, options.durability == .full {
                try log.sync(through: lastEnd)
            }
            try transaction.commit()
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
        do {
            try maintainAfterCommit()
        } catch {
            // The group is durable and published; a failed checkpoint or seal poisons later
            // writes but does not fail these commits.
            poisonWith(error)
        }
    }

    /// Checkpoint and sealing policy, run by the leader after a group. REQUIRES: writerLock.
    private func maintainAfterCommit() throws {
        if options.sealFullSegments {
            _ = try log.sealFullSegments()
        }
        let dirty = pager.statistics.dirtyBytes
        let logEnd = pager.committedState.logPosition
        let grown = logGrowth(since: logEndAtCheckpoint.withLock { $0 }, to: logEnd)
        if dirty >= options.checkpointDirtyBytes || grown >= options.checkpointLogBytes {
            try checkpointLocked()
        }
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
    package func checkpoint() throws {
        if isClosed.load(ordering: .acquiring) { throw StorageError.closed }
        try writerLock.withLock { _ in
            if let failure = refusal() { throw failure }
            do {
                try checkpointLocked()
            } catch {
                poisonWith(error)
                throw error
            }
        }
    }

    private func checkpointLocked() throws {
        let position = pager.committedState.logPosition
        if position > log.durablePosition {
            try log.sync(through: position)
        }
        try pager.checkpoint()
        logEndAtCheckpoint.withLock { $0 = position }
        counters.withLock { $0.checkpoints += 1 }
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
    }

    /// Checkpoints (when healthy) and closes the files. Later calls throw `.closed`.
    package func close() throws {
        try writerLock.withLock { _ in
            guard !isClosed.exchange(true, ordering: .acquiringAndReleasing) else { return }
            var firstError: (any Error)?
            if !isPoisoned {
                do { try checkpointLocked() } catch { firstError = error }
            }
            do { try log.close() } catch { firstError = firstError ?? error }
            do { try pager.close() } catch { firstError = firstError ?? error }
            if let firstError { throw firstError }
        }
    }

    /// Runs `body` while no group commit or checkpoint is in progress.
    func withWriterRole<R>(_ body: () throws -> R) rethrows -> R {
        try writerLock.withLock { _ in try body() }
    }

    /// Runs write I/O that happens outside a commit (e.g. compaction rolling and sealing the
    /// log) under the commit rule: refused while the engine refuses writes, and a failure
    /// poisons the engine (a failed write or fsync is never retried; spec/README.md, A6).
    package func withWriteFailurePoisoning<R>(_ body: () throws -> R) throws -> R {
        if let failure = refusal() { throw failure }
        do {
            return try body()
        } catch {
            poisonWith(error)
            throw error
        }
    }

    // MARK: Health

    private func refusal() -> StorageError? {
        if isClosed.load(ordering: .acquiring) { return .closed }
        if let cause = poison.withLock({ $0 }) { return .poisoned(cause: cause) }
        return nil
    }

    private func poisonWith(_ error: any Error) {
        poison.withLock { cause in
            if cause == nil { cause = "\(error)" }
        }
    }

    /// True after a failed write or sync: the engine refuses writes until reopened.
    package var isPoisoned: Bool { poison.withLock { $0 != nil } }

    /// Why the engine refuses writes, if it does.
    package var poisonCause: String? { poison.withLock { $0 } }

    package struct Statistics: Sendable, Equatable {
        package var commits: UInt64
        package var commitGroups: UInt64
        package var checkpoints: UInt64
        package var replayedTransactions: UInt64
        package var pager: PagerStatistics
        package var log: LogStatistics
    }

    package var statistics: Statistics {
        let c = counters.withLock { $0 }
        return Statistics(
            commits: c.commits, commitGroups: c.groups, checkpoints: c.checkpoints,
            replayedTransactions: c.replayedTransactions, pager: pager.statistics, log: log.statistics)
    }
}
