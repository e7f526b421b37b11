import ScrollbackMessaging

/// When a write is durable (the same two modes as SQLite's `synchronous`).
public enum Durability: Sendable, Hashable {
    /// Every write is synced (`fdatasync`) before it returns and before readers see it;
    /// concurrent writers share syncs (group commit). The default.
    case full
    /// Writes are synced at checkpoints, by `sync()` and at close. A power loss may lose the
    /// latest writes; it never corrupts the store or splits a batch.
    case normal
}

/// Options of `MessageStore`. Sizes are in bytes.
public struct StoreOptions: Sendable, Hashable {
    /// Memory for caches: B+tree pages (three quarters) and the decoded blocks of the sorted
    /// runs that hold sealed history (a quarter) share it; `StoreStatistics` reports both.
    /// Default 64 MiB. Range 1 MiB … 1 TiB.
    public var cacheBytes: Int = 64 << 20
    /// When a write is durable: `.full` (the default) or `.normal`.
    public var durability: Durability = .full
    /// Largest message body accepted, in UTF-8 bytes. Default 64 KiB. Range 0 … 16 MiB.
    public var maxBodyBytes: Int = ArgumentLimits.defaultBodyBytes
    /// Checkpoint when this many bytes of tree pages are dirty. Default 16 MiB.
    public var checkpointDirtyBytes: Int = 16 << 20
    /// Checkpoint when the log has grown this much since the last checkpoint (bounds the
    /// replay after a crash). Default 64 MiB.
    public var checkpointLogBytes: Int = 64 << 20
    /// Compact automatically when the log's garbage ratio (bytes of deleted or replaced
    /// records over all record bytes in sealed segments) exceeds this. nil disables automatic
    /// compaction. Default 0.5.
    public var autoCompactGarbageRatio: Double? = 0.5
    /// Page size of a new store (4096, 8192 or 16384); an existing store keeps its own.
    public var pageSize: Int = 8192
    /// Target size of a log segment. Default 16 MiB. Range 64 KiB … 1 GiB.
    public var segmentBytes: Int = 16 << 20
    /// Tests only: a scoped search walks its rarest term's postings forward through the
    /// scope's conversations (rounds of the newest, checked a round at once) instead of seeking
    /// each conversation's newest when the term has at most this many postings per seek (0:
    /// always seek).
    package var searchPostingsScannedPerSeek: Int = 128
    /// Tests only: a search checks its candidates by a merge of its two rarest terms' postings
    /// when that decodes fewer postings than this many per probe saved (0: always probe).
    package var searchDecodesPerProbe: Double = 70
    /// Log kept for the change stream (`MessageStore.changes`): a log segment that nothing
    /// else needs any more stays while the log written after it is smaller than this, so a
    /// consumer that falls up to this far behind can still continue from its position.
    /// Default 16 MiB (about one segment). Range 0 … 1 TiB; 0 keeps no log beyond what the
    /// store needs (a consumer then has at least the log of the current segment).
    public var changeRetentionBytes: Int = 16 << 20
    /// Names this writer to other processes: a second writer refused with `.storeLocked`
    /// is told "in use by another writer (pid …, LABEL, since …)". nil: the program's name.
    public var lockLabel: String? = nil
    /// Most threads the store starts to run its `async` methods (created on first use, parked
    /// when idle, ended by `close()`). Concurrent durable writes share a group commit only
    /// while they wait in it on threads of their own: keep it at least the number of tasks
    /// that write at once. Default 16. Range 1 … 256.
    public var asyncThreads: Int = 16
    /// Where the store logs and reports metrics (`logger`, `metrics`; StoreLogging.swift,
    /// StoreMetrics.swift). Not part of the options' equality.
    var observability = StoreObservability()

    public init() {}
}

/// Counters and sizes of an open store (`MessageStore.statistics`).
public struct StoreStatistics: Sendable, Hashable {
    /// A cache's counters since open and its size.
    public struct Cache: Sendable, Hashable {
        /// Lookups answered from the cache.
        public var hits: UInt64
        /// Lookups that read the disk.
        public var misses: UInt64
        /// Entries dropped to make room.
        public var evictions: UInt64
        /// Bytes cached now.
        public var bytes: Int
        /// The cache's budget.
        public var capacityBytes: Int
        public init(hits: UInt64, misses: UInt64, evictions: UInt64, bytes: Int, capacityBytes: Int) {
            self.hits = hits
            self.misses = misses
            self.evictions = evictions
            self.bytes = bytes
            self.capacityBytes = capacityBytes
        }
    }

    /// Live messages.
    public var messages: Int
    /// Conversations with at least one live message.
    public var conversations: Int
    /// The page file (pages × page size).
    public var pageFileBytes: UInt64
    /// Active and not-yet-sealed log segments.
    public var rawLogBytes: UInt64
    /// Sealed (compressed) log segments.
    public var sealedLogBytes: UInt64
    /// Bytes of dead records (deleted or replaced) over all record bytes, 0…1.
    public var garbageRatio: Double
    /// B+tree pages (three quarters of `cacheBytes`).
    public var pageCache: Cache
    /// Decoded blocks of the sorted runs (sealed history; a quarter of `cacheBytes`).
    public var blockCache: Cache
    /// Write transactions committed since open.
    public var commits: UInt64
    /// Checkpoints since open.
    public var checkpoints: UInt64
    /// Compactions that rewrote segments, over the store's life.
    public var compactions: UInt64
    /// Log bytes on disk before and after the most recent compaction (0 if none ran).
    public var lastCompactionBytesBefore: UInt64
    public var lastCompactionBytesAfter: UInt64

    /// Bytes on disk: the page file and the log.
    public var totalBytes: UInt64 { pageFileBytes + rawLogBytes + sealedLogBytes }

    /// True for a store opened read-only (`MessageStore(readingAt:)`).
    public var isReadOnly: Bool = false
    /// The readers of the store other than this open (read-only opens in any process), from
    /// the reader table now; nil when there is none. A reader holding an old snapshot delays
    /// the reuse of pages and log segments (never correctness): see `pagesAwaitingReaders`.
    public var oldestReader: ReaderStatistics? = nil
    /// Writers: page-file pages free in the committed state that wait for readers (of this
    /// process or others) before they are reused: the page file grows instead meanwhile.
    public var pagesAwaitingReaders: Int = 0

    public init(
        messages: Int, conversations: Int, pageFileBytes: UInt64, rawLogBytes: UInt64, sealedLogBytes: UInt64,
        garbageRatio: Double, pageCache: Cache, blockCache: Cache, commits: UInt64, checkpoints: UInt64,
        compactions: UInt64, lastCompactionBytesBefore: UInt64, lastCompactionBytesAfter: UInt64
    ) {
        self.messages = messages
        self.conversations = conversations
        self.pageFileBytes = pageFileBytes
        self.rawLogBytes = rawLogBytes
        self.sealedLogBytes = sealedLogBytes
        self.garbageRatio = garbageRatio
        self.pageCache = pageCache
        self.blockCache = blockCache
        self.commits = commits
        self.checkpoints = checkpoints
        self.compactions = compactions
        self.lastCompactionBytesBefore = lastCompactionBytesBefore
        self.lastCompactionBytesAfter = lastCompactionBytesAfter
    }
}

/// Checkpoints and seals a store has begun and ended since it opened
/// (`MessageStore.backgroundActivity`): `begun − ended` of a kind are running now.
public struct BackgroundActivity: Sendable, Hashable {
    public var checkpointsBegun: UInt64
    public var checkpointsEnded: UInt64
    public var sealsBegun: UInt64
    public var sealsEnded: UInt64

    public init(checkpointsBegun: UInt64, checkpointsEnded: UInt64, sealsBegun: UInt64, sealsEnded: UInt64) {
        self.checkpointsBegun = checkpointsBegun
        self.checkpointsEnded = checkpointsEnded
        self.sealsBegun = sealsBegun
        self.sealsEnded = sealsEnded
    }

    /// Checkpoints running now.
    public var checkpointsRunning: UInt64 { checkpointsBegun &- checkpointsEnded }
    /// Seals running now.
    public var sealsRunning: UInt64 { sealsBegun &- sealsEnded }

    /// The checkpoints and seals that ran at some moment between `start` (read at the
    /// interval's start) and this reading (at its end): those begun by now and not ended by
    /// then. Both readings must come from the same open store.
    public func overlapped(since start: BackgroundActivity) -> (checkpoints: UInt64, seals: UInt64) {
        (checkpointsBegun &- min(checkpointsBegun, start.checkpointsEnded), sealsBegun &- min(sealsBegun, start.sealsEnded))
    }
}

/// The live readers of a store and the oldest snapshot one holds (`StoreStatistics.oldestReader`).
public struct ReaderStatistics: Sendable, Hashable {
    /// Live read-only opens of the store, in any process, other than the one asked.
    public var liveReaders: Int
    /// The process holding the oldest snapshot (nil if its slot could not be read).
    public var oldestProcessID: Int?
    /// The transaction id of the checkpoint that oldest snapshot starts from.
    public var oldestTransaction: UInt64
    /// How many transactions that checkpoint is behind the newest one the asking open knows.
    public var transactionsBehind: UInt64

    public init(liveReaders: Int, oldestProcessID: Int?, oldestTransaction: UInt64, transactionsBehind: UInt64) {
        self.liveReaders = liveReaders
        self.oldestProcessID = oldestProcessID
        self.oldestTransaction = oldestTransaction
        self.transactionsBehind = transactionsBehind
    }
}

/// What `MessageStore.compact()` did.
public struct CompactionReport: Sendable, Hashable {
    /// Sealed log segments rewritten and removed.
    public var segmentsRewritten: Int
    /// Live records copied to new segments.
    public var recordsMoved: Int
    /// Log bytes on disk before and after.
    public var logBytesBefore: UInt64
    public var logBytesAfter: UInt64
    /// Page-file bytes before and after: free pages left by copy-on-write between
    /// checkpoints are given back to the file system when they are more than a tenth of it.
    public var pageFileBytesBefore: UInt64
    public var pageFileBytesAfter: UInt64
    public init(segmentsRewritten: Int, recordsMoved: Int, logBytesBefore: UInt64, logBytesAfter: UInt64,
                pageFileBytesBefore: UInt64 = 0, pageFileBytesAfter: UInt64 = 0) {
        self.segmentsRewritten = segmentsRewritten
        self.recordsMoved = recordsMoved
        self.logBytesBefore = logBytesBefore
        self.logBytesAfter = logBytesAfter
        self.pageFileBytesBefore = pageFileBytesBefore
        self.pageFileBytesAfter = pageFileBytesAfter
    }
}
