import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog

/// Wakes the readers that follow the committed log (the change stream) when a group commit is
/// published. A waiter registers with the generation it has seen; a signal after that
/// generation wakes it exactly once. Never blocks a committer: `signal` takes one short lock
/// and calls the wake-ups outside it.
///
/// Thread-safety: any thread.
package final class CommitSignal: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var closed = false
        var nextToken: UInt64 = 0
        var waiters: [UInt64: @Sendable () -> Void] = [:]
    }
    private let state = Lock(State())

    package init() {}

    /// Counts published commits (and the close); a waiter compares it before and after a read.
    package var generation: UInt64 { state.withLock { $0.generation } }

    /// Calls `wake` once the generation passes `seen` (at once, on this thread, when it has
    /// already, or when the engine is closed) and returns a token for `cancel`, or nil when
    /// `wake` was called already.
    package func wait(after seen: UInt64, _ wake: @escaping @Sendable () -> Void) -> UInt64? {
        let token: UInt64? = state.withLock { state in
            if state.generation != seen || state.closed { return nil }
            state.nextToken &+= 1
            state.waiters[state.nextToken] = wake
            return state.nextToken
        }
        if token == nil { wake() }
        return token
    }

    /// Forgets the waiter `token` and calls its wake-up if it was still waiting.
    package func cancel(_ token: UInt64) {
        let wake = state.withLock { $0.waiters.removeValue(forKey: token) }
        wake?()
    }

    func signal() {
        let woken = state.withLock { state -> [@Sendable () -> Void] in
            state.generation &+= 1
            defer { state.waiters.removeAll(keepingCapacity: true) }
            return Array(state.waiters.values)
        }
        for wake in woken { wake() }
    }

    func close() {
        let woken = state.withLock { state -> [@Sendable () -> Void] in
            state.closed = true
            state.generation &+= 1
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for wake in woken { wake() }
    }
}

/// What a follower of the committed log reads per transaction: the schema's records (the
/// engine's own are skipped, as for `apply`) and the runs they name.
package typealias CommittedTransaction = SchemaRecords

/// Reading the committed log in order (the change stream, spec/change-stream.md): every
/// transaction published to readers, from a position, with the log segments kept for the
/// retention window (`StorageOptions.changeRetentionBytes`).
extension StorageEngine {
    /// The end of the newest published transaction: every transaction before it is committed
    /// (durable in `full` durability) and applied to the trees of a snapshot taken now. In a
    /// read-only engine, as of the last `refresh()`.
    package var committedLogEnd: LogPosition { pager.committedState.logPosition }

    /// Calls `body` for each committed transaction from `from` (a transaction boundary: a
    /// value this method returned, or `committedLogEnd` read earlier) through `limit` (at most
    /// `committedLogEnd`), until `body` returns false; returns where the next read continues.
    /// `cache` keeps the bytes of a segment read from its file between calls (one per reader).
    ///
    /// Throws `LogPositionRemoved` when the segment of `from` is gone (the retention window
    /// has passed it), `.corrupted` for damage, `.closed`.
    package func readCommittedTransactions(from: LogPosition, through limit: LogPosition, cache: inout LogTailCache,
                                           _ body: (CommittedTransaction) throws -> Bool) throws -> LogPosition {
        let context = SchemaApplyContext(runs: runs)
        let layout = schema.liveness
        return try log.readTransactions(from: from, through: min(limit, committedLogEnd), cache: &cache) { logged in
            try body(SchemaRecords(logged: logged, layout: layout, context: context))
        }
    }

    /// The first segment the retention window keeps: every segment from it on is kept (once
    /// nothing else needs a segment, it goes when it is older than this). The segments after a
    /// kept one hold fewer than `changeRetentionBytes` bytes.
    func retentionFloorSegment() -> UInt32 {
        guard let segments = try? log.listSegments(), let last = segments.last else { return 0 }
        let retention = options.changeRetentionBytes
        var after: UInt64 = 0
        var floor = last.id
        for segment in segments.reversed() {
            if segment.id == last.id {
                after = segment.fileBytes
                continue
            }
            if after >= retention { break }
            floor = segment.id
            after += segment.fileBytes
        }
        return floor
    }
}

extension StorageEngine {
    /// The runs attached (bulk loads) by transactions in the log the retention window keeps:
    /// a follower of the change stream reads a load's messages from its run, so such a run is
    /// neither merged by compaction nor removed while its attachment is retained. Cost: one
    /// scan of the retained log (at most about `changeRetentionBytes` plus the active segment).
    package func runsAttachedInRetainedLog() throws -> Set<UInt32> {
        let attach = schema.liveness.attachRecordType
        var result = Set<UInt32>()
        for _ in 0..<4 {
            let floor = retentionFloorSegment()
            var cache = LogTailCache()
            result.removeAll()
            do {
                _ = try log.readTransactions(from: LogPositions.make(segment: floor, offset: UInt32(LogSegmentLayout.headerSize)),
                                             through: committedLogEnd, cache: &cache) { logged in
                    try logged.forEachRecord { position, type, payload in
                        if type == attach { result.insert(try RunBindingRecord.decode(payload, position: position).run.id) }
                    }
                    return true
                }
                return result
            } catch is LogPositionRemoved {
                continue   // the floor segment went meanwhile: look again
            }
        }
        return result
    }
}

extension SchemaRecords {
    /// The transaction's first position (a transaction boundary: a reader resumes here).
    package var start: LogPosition { logged.start }
}

extension SchemaApplyContext {
    /// Whether the run `id` is present (a bulk load's run may have been merged away since).
    package func containsRun(_ id: UInt32) -> Bool { runs.contains(id) }
}
