import ScrollbackIO
import ScrollbackLog

/// When a commit is durable (the same two modes as SQLite's `synchronous`).
package enum Durability: Sendable, Equatable {
    /// Every commit is `fdatasync`ed (group commit shares one sync among concurrent writers)
    /// before the call returns and before readers can see it.
    case full
    /// Commits are written to the log but synced only at checkpoints, at `sync()` and at
    /// close. A power loss may lose the latest commits; it never corrupts the store.
    case normal
}

/// Configuration of a `StorageEngine`. Every size is in bytes.
package struct StorageOptions: Sendable, Equatable {
    /// Page size of a new page file (4096, 8192 or 16384). An existing file keeps its own.
    package var pageSize: Int = 8192
    /// Budget of the page cache. Dirty pages (committed, not yet checkpointed) count against
    /// it and cannot be evicted; the checkpoint policy keeps them below `checkpointDirtyBytes`.
    package var pageCacheBytes: Int = 64 << 20
    /// Options of the log (segment size, block size, block cache budget).
    package var log: LogOptions = LogOptions()
    package var durability: Durability = .full
    /// Checkpoint after a commit when dirty pages exceed this many bytes.
    package var checkpointDirtyBytes: Int = 16 << 20
    /// Checkpoint after a commit when the log has grown this much since the last checkpoint
    /// (bounds recovery time).
    package var checkpointLogBytes: UInt64 = 64 << 20
    /// The longest a paced checkpoint on the maintenance worker holds back one writeback step
    /// of its pages while a commit group syncs the log; zero never holds one back
    /// (`StorageEngine.yieldToCommitSyncs`).
    package var checkpointYieldPerStep: Duration = .milliseconds(2)
    /// Run the checkpoints the policy above asks for, and the sealing of filled log segments
    /// (`sealFullSegments`), on the engine's own thread beside the commits that follow (which
    /// wait only while a checkpoint is planned), instead of on the thread whose commit crossed
    /// a threshold or filled a segment. Off by default (deterministic I/O order for tests and
    /// sweeps); stores turn it on when their file system allows background I/O.
    package var backgroundMaintenance = false
    /// Seal full log segments into sorted runs after commits that filled one.
    package var sealFullSegments: Bool = true
    /// Log kept for the change stream after it is no longer needed otherwise: a log segment
    /// that was sealed into a run or retired stays while the segments after it hold fewer
    /// than this many bytes (0, the engine's default: segments go as soon as nothing else
    /// needs them; `StoreOptions` asks for 16 MiB).
    package var changeRetentionBytes: UInt64 = 0
    /// Budget of the cache of decoded run blocks.
    package var runCacheBytes: Int = 32 << 20
    /// Names the writer in the store lock's record, so a refused second writer can say who
    /// holds the store (e.g. "scrollback exec"); the program's name by default.
    package var lockLabel: String = ProcessIdentity.programName
    /// Receives commits, checkpoints, compactions and the refusal of writes (for logs and
    /// metrics); none by default.
    package var observer = StorageObserverSlot()

    package init() {}
}
