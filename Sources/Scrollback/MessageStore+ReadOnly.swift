import ScrollbackIO
import ScrollbackMessaging
import ScrollbackStorage

/// Reading a store that another process writes (spec/reader-table.md).
///
/// One writer per store: `MessageStore(path:)` takes the store's lock, and a second writer —
/// in another process, or another `MessageStore` in this one — is refused with
/// `.storeLocked` naming the holder. Any number of readers, in any processes, open it with
/// `MessageStore(readingAt:)` while the writer runs:
///
/// ```swift
/// let reader = try MessageStore(readingAt: "/var/lib/chat/store")
/// defer { try? reader.close() }
/// let newest = try reader.latest(in: "general", limit: 20)   // what was durable at open
/// try reader.refresh()                                       // move to the newest state
/// ```
///
/// What a reader sees: every write the writer had acknowledged (made durable) when the open
/// or the last `refresh()` began, and nothing that is not durable; each query reads one
/// consistent state. In `.normal` durability a write reaches readers once it is synced (by
/// `sync()`, a checkpoint or the writer's close). Readers never wait for the writer, and the
/// writer never waits for a reader: it keeps the pages and log segments a reader's snapshot
/// may read (LMDB's reader table). A reader that keeps an old snapshot for long delays that
/// reuse — the page file and the log grow meanwhile (see `StoreStatistics.oldestReader` and
/// `pagesAwaitingReaders`) — and never breaks anything; a reader process that dies releases
/// its snapshot at once.
extension MessageStore {
    /// Opens the store at `path` read-only, on a live store or one nobody writes. It never
    /// creates a store: a missing or empty directory, a regular file or a directory of other
    /// files is `.notAStore`. It writes nothing of the store (it registers its snapshot in
    /// the store's `readers` file, which it creates if missing). Every write method, and
    /// `checkpoint()`, `sync()` and `compact()`, throw `.readOnly`; `backup(to:)` and
    /// `verify()` work on the state it reads. `options`: `cacheBytes` sizes the caches; the
    /// other options concern writers and are ignored.
    ///
    /// Cost: the log written since the store's newest checkpoint is replayed into memory.
    public convenience init(readingAt path: String, options: StoreOptions = StoreOptions()) throws {
        try self.init(path: path, options: options, fileSystem: PosixFileSystem(), readOnly: true)
    }

    /// True for a store opened with `init(readingAt:)`.
    public var isReadOnly: Bool { database.isReadOnly }

    /// Read-only stores: moves to the newest state the writer has made durable, and returns
    /// whether anything changed. Queries started afterwards see it; cursors stay valid.
    /// Cost: three small reads when nothing changed; otherwise reading what the log gained
    /// (after a checkpoint of the writer, the cache starts cold). A writer's store always
    /// reads its newest state: `refresh()` does nothing and returns false.
    @discardableResult
    public func refresh() throws -> Bool {
        try mapErrors { try database.refresh() }
    }

    static func addReaders(_ processes: ProcessStatus, to statistics: inout StoreStatistics) {
        statistics.isReadOnly = processes.isReadOnly
        statistics.pagesAwaitingReaders = processes.pagesAwaitingReaders
        if let oldest = processes.oldestReader {
            statistics.oldestReader = ReaderStatistics(
                liveReaders: oldest.liveReaders, oldestProcessID: oldest.pid.map { Int(truncatingIfNeeded: $0) },
                oldestTransaction: oldest.transactionID,
                transactionsBehind: processes.checkpointTransaction &- min(processes.checkpointTransaction, oldest.transactionID))
        }
    }
}
