/// Receives the storage engine's events, for logs and metrics in the layers above (the public
/// layer turns them into swift-log lines and swift-metrics values; the engine itself depends
/// on neither).
///
/// Each method is called on the thread that caused the event, some while the engine holds its
/// writer lock (`groupCommitted`, `checkpointed`, `refusesWrites`): an implementation must be
/// quick and must not call back into the engine. The default implementations do nothing.
///
/// Thread-safety: called from any thread, concurrently.
package protocol StorageObserver: AnyObject, Sendable {
    /// A group commit published `transactions` transactions (≥ 1). `syncDuration` is the time of
    /// the group's one `fdatasync` (nil in `normal` durability, where commits are not synced).
    func groupCommitted(transactions: Int, syncDuration: Duration?)
    /// A checkpoint wrote about `pages` dirty pages (the dirty bytes before it over the page
    /// size) and took `duration`, including its syncs.
    func checkpointed(pages: Int, duration: Duration)
    /// The engine started refusing writes (an I/O error or failed sync after a record reached
    /// the log; until the store is reopened). Called once per engine.
    func refusesWrites(cause: String)
    /// A compaction finished (reported by the message layer, which runs compaction over the
    /// engine's segment lifecycle). `automatic`: started by the garbage-ratio policy.
    func compacted(_ report: CompactionEvent)
}

/// What one compaction did (`StorageObserver.compacted`).
package struct CompactionEvent: Sendable, Equatable {
    package var automatic: Bool
    package var segmentsRewritten: Int
    package var recordsMoved: Int
    package var logBytesBefore: UInt64
    package var logBytesAfter: UInt64
    package var duration: Duration

    package init(automatic: Bool, segmentsRewritten: Int, recordsMoved: Int, logBytesBefore: UInt64, logBytesAfter: UInt64,
                 duration: Duration) {
        self.automatic = automatic
        self.segmentsRewritten = segmentsRewritten
        self.recordsMoved = recordsMoved
        self.logBytesBefore = logBytesBefore
        self.logBytesAfter = logBytesAfter
        self.duration = duration
    }
}

extension StorageObserver {
    package func groupCommitted(transactions: Int, syncDuration: Duration?) {}
    package func checkpointed(pages: Int, duration: Duration) {}
    package func refusesWrites(cause: String) {}
    package func compacted(_ report: CompactionEvent) {}
}

/// The observer slot of `StorageOptions`: options compare equal whatever observer they carry
/// (an observer is a sink, not a setting of the store).
package struct StorageObserverSlot: Sendable, Equatable {
    package var observer: (any StorageObserver)?

    package init(_ observer: (any StorageObserver)? = nil) {
        self.observer = observer
    }

    package static func == (lhs: Self, rhs: Self) -> Bool { true }
}

extension StorageEngine {
    /// The observer of `options`, if any.
    @inline(__always)
    package var observer: (any StorageObserver)? { options.observer.observer }

    /// Syncs the log through `position` and returns how long the `fdatasync` took.
    func timedSync(through position: LogPosition) throws -> Duration {
        let clock = ContinuousClock()
        let start = clock.now
        try log.sync(through: position)
        return clock.now - start
    }

    /// Runs a checkpoint step and reports it to the observer (pages: the dirty pages before it).
    func observingCheckpoint(_ checkpoint: () throws -> Void) rethrows {
        guard let observer else { return try checkpoint() }
        let pages = pager.dirtyBytes / max(1, pager.pageSize)
        let clock = ContinuousClock()
        let start = clock.now
        try checkpoint()
        observer.checkpointed(pages: pages, duration: clock.now - start)
    }
}

/// Checkpoints and seals begun and ended since the engine opened (`StorageEngine.backgroundActivity`).
/// `begun − ended` are running now; the ones that overlapped an interval are
/// `begun(at its end) − ended(at its start)`.
package struct BackgroundActivityCounts: Sendable, Equatable {
    package var checkpointsBegun: UInt64
    package var checkpointsEnded: UInt64
    package var sealsBegun: UInt64
    package var sealsEnded: UInt64
}
