import ScrollbackFormat
import ScrollbackIO
import Synchronization

/// A page freed by a committed transaction, waiting until it may be handed out again.
struct PendingFree {
    /// The transaction that freed it: reusable once every live snapshot has an id >= this.
    var transaction: UInt64
    var page: PageNumber
    /// The page was allocated after the last checkpoint and never written: its only copy is
    /// its (dirty) cache frame, which must stay until no snapshot can read it.
    var memoryOnly: Bool
}

/// The open write transaction, as the pager sees it.
struct WriterRecord {
    var id: UInt64
    /// Page count when the transaction began: pages at or above it were created by the
    /// transaction and disappear on rollback.
    var startPageCount: UInt64
    /// Every page handed out by `allocatePage` in this transaction.
    var allocated: [PageNumber] = []
}

/// Everything the pager knows about pages and transactions, guarded by one mutex.
struct PagerCore {
    var committed: CommittedState
    /// Page numbers 0..<pageCount exist (including pages the open writer created).
    var pageCount: UInt64
    /// The meta page last made durable by open or a checkpoint.
    var durable: MetaPage
    /// Pages holding the durable free list; they become free in the next checkpoint's state.
    var durableFreeListPages: [PageNumber]
    /// Pages that may be handed out now.
    var reusable = FreePageHeap()
    /// Freed pages not referenced by the durable state, waiting for old snapshots to end
    /// (sorted by transaction).
    var awaitingSnapshots: [PendingFree] = []
    /// Freed pages the durable state still references, waiting for a checkpoint (sorted).
    var awaitingCheckpoint: [PendingFree] = []
    /// Committed, reachable pages allocated since the last checkpoint: the next checkpoint
    /// writes them.
    var unwritten = Set<PageNumber>()
    /// Live snapshots: snapshot id → number of read transactions holding it.
    var snapshots: [UInt64: Int] = [:]
    var writer: WriterRecord?
    var checkpointRunning = false
    /// Pages a running checkpoint is writing the new free list into.
    var checkpointListPages: [PageNumber] = []
    var poison = PoisonLatch()
    var closed = false
    var checkpoints: UInt64 = 0

    /// Moves every pending free that no live snapshot can see to `reusable`. Returns the
    /// memory-only pages among them, whose frames the caller drops.
    mutating func releaseFreedPages() -> [PageNumber] {
        guard !awaitingSnapshots.isEmpty else { return [] }
        let oldest = snapshots.keys.min() ?? .max
        var released = 0
        var dropFrames: [PageNumber] = []
        while released < awaitingSnapshots.count, awaitingSnapshots[released].transaction <= oldest {
            let pending = awaitingSnapshots[released]
            reusable.push(pending.page)
            if pending.memoryOnly { dropFrames.append(pending.page) }
            released += 1
        }
        awaitingSnapshots.removeFirst(released)
        return dropFrames
    }

    /// Every page free for the committed state (unsorted).
    var freePages: [PageNumber] {
        var pages = reusable.items
        pages.append(contentsOf: awaitingSnapshots.map(\.page))
        pages.append(contentsOf: awaitingCheckpoint.map(\.page))
        if let writer { pages.append(contentsOf: writer.allocated) }
        return pages
    }
}

/// The page file: two alternating meta pages, copy-on-write pages, the free-page list and
/// the page cache (spec/page-file.md).
///
/// Transactions: any number of read snapshots (`beginRead`) and one write transaction
/// (`beginWrite`) at a time. A committed write is visible to new snapshots at once (in
/// memory); `checkpoint()` makes the committed state durable by writing its new pages and
/// then the other meta page. Durability of commits between checkpoints is the log's job.
///
/// Page reuse rule: a page freed by transaction T is handed out again only when every live
/// snapshot has an id >= T and, if the durable state references it, after a checkpoint that
/// does not reference it is durable. So a snapshot's pages are never overwritten, in memory
/// or on disk, while the snapshot lives.
///
/// Thread-safety: `Pager` is safe to use from many threads. Each `PageTransaction` is used by
/// one thread at a time. Readers never wait for the writer or for a checkpoint's I/O (they
/// take the cache mutex briefly, and the core mutex at begin and end). Writers and
/// checkpoints exclude each other: `beginWrite` during a checkpoint and `checkpoint` during
/// a write transaction throw `.invalidArgument`; the layer above serializes them.
///
/// Failure: a failed write or sync during a checkpoint poisons the pager; later
/// `beginWrite` and `checkpoint` throw `.poisoned`. Reads keep working.
package final class Pager: @unchecked Sendable {
    package static let treeSlotCount = PageFileLayout.treeSlotCount
    /// The cache never has fewer frames than this, whatever `cacheBytes` says.
    package static let minimumCacheFrames = 8

    /// Page size in bytes (4096, 8192 or 16384), fixed at creation.
    package let pageSize: Int
    /// Path of the page file (named in every corruption error).
    package let path: String
    let fileSystem: any FileSystem
    let file: any FileHandle
    let cache: PageCache
    let core: Lock<PagerCore>
    /// Mirror of `core.pageCount` for the lock-free bounds check of `page(_:)`.
    let pageCountBound: Atomic<UInt64>
    /// Mirror of `core.durable.checkpointSequence`: no page read from disk may carry a
    /// newer write sequence.
    let durableSequence: Atomic<UInt64>

    init(fileSystem: any FileSystem, path: String, file: any FileHandle, meta: MetaPage,
         freeListPages: [PageNumber], freePages: [PageNumber], cacheBytes: Int) {
        self.fileSystem = fileSystem
        self.path = path
        self.file = file
        self.pageSize = meta.pageSize
        self.cache = PageCache(
            pageSize: meta.pageSize, capacityFrames: max(Self.minimumCacheFrames, cacheBytes / meta.pageSize))
        var core = PagerCore(
            committed: meta.state, pageCount: meta.pageCount, durable: meta, durableFreeListPages: freeListPages)
        for page in freePages { core.reusable.push(page) }
        self.core = Lock(core)
        self.pageCountBound = Atomic(meta.pageCount)
        self.durableSequence = Atomic(meta.checkpointSequence)
    }

    /// The latest committed state (what a new snapshot would see).
    package var committedState: CommittedState { core.withLock { $0.committed } }

    /// The state of the meta page last made durable (by open or a checkpoint): what recovery
    /// would start from after a crash now.
    package var durableState: CommittedState { core.withLock { $0.durable.state } }

    // MARK: Transactions

    /// A read snapshot of the latest committed state. Never blocks on the writer or on a
    /// checkpoint. End it with `rollback()` (or let it deinit) so its pages can be reused.
    package func beginRead() -> PageTransaction {
        let state: CommittedState = core.withLock { core in
            core.snapshots[core.committed.transactionID, default: 0] += 1
            return core.committed
        }
        return PageTransaction(pager: self, reading: state)
    }

    /// The single write transaction, starting from the latest committed state.
    /// REQUIRES: no other write transaction is open and no checkpoint is running (throws
    /// `.invalidArgument`); the pager is open and not poisoned.
    package func beginWrite() throws -> PageTransaction {
        let state: CommittedState = try core.withLock { core in
            try Self.checkUsable(core)
            if core.writer != nil { throw StorageError.invalidArgument("a write transaction is already open") }
            if core.checkpointRunning { throw StorageError.invalidArgument("a checkpoint is running") }
            let id = core.committed.transactionID + 1
            core.writer = WriterRecord(id: id, startPageCount: core.pageCount)
            cache.drop(core.releaseFreedPages())
            var state = core.committed
            state.transactionID = id
            return state
        }
        return PageTransaction(pager: self, writing: state)
    }

    static func checkUsable(_ core: PagerCore) throws {
        if core.closed { throw StorageError.closed }
        try core.poison.check()
    }

    func endSnapshot(_ id: UInt64) {
        core.withLock { core in
            if let count = core.snapshots[id] {
                if count <= 1 { core.snapshots[id] = nil } else { core.snapshots[id] = count - 1 }
            }
        }
    }

    /// Hands out a page for the writer `id`: the lowest reusable page, or a new one at the end.
    func allocatePageNumber(writer id: UInt64) throws -> PageNumber {
        try core.withLock { core in
            guard core.writer?.id == id else { throw StorageError.invalidArgument("the write transaction has ended") }
            if core.reusable.isEmpty { cache.drop(core.releaseFreedPages()) }
            let page: PageNumber
            if let reused = core.reusable.popMin() {
                page = reused
            } else {
                guard core.pageCount < UInt64(Int32.max) else {
                    throw StorageError.limitExceeded("page file holds at most \(Int32.max) pages")
                }
                page = core.pageCount
                core.pageCount += 1
                pageCountBound.store(core.pageCount, ordering: .releasing)
            }
            core.writer?.allocated.append(page)
            return page
        }
    }

    /// Publishes a write transaction. `freed`: committed pages it freed; `localFree`: pages it
    /// allocated and freed again (never visible to anyone).
    func commitWriter(id: UInt64, state: CommittedState, freed: [PageNumber], localFree: [PageNumber]) throws {
        try core.withLock { core in
            guard let writer = core.writer, writer.id == id else {
                throw StorageError.invalidArgument("the write transaction has ended")
            }
            core.committed = state
            let localSet = Set(localFree)
            for page in writer.allocated where !localSet.contains(page) { core.unwritten.insert(page) }
            for page in localFree { core.reusable.push(page) }
            for page in freed {
                if core.unwritten.remove(page) != nil {
                    core.awaitingSnapshots.append(PendingFree(transaction: id, page: page, memoryOnly: true))
                } else {
                    core.awaitingCheckpoint.append(PendingFree(transaction: id, page: page, memoryOnly: false))
                }
            }
            core.writer = nil
            cache.drop(localFree)
            cache.drop(core.releaseFreedPages())
        }
    }

    /// Discards a write transaction: its pages go back (pages it created disappear), its
    /// frees never happened.
    func rollbackWriter(id: UInt64) {
        core.withLock { core in
            guard let writer = core.writer, writer.id == id else { return }
            for page in writer.allocated where page < writer.startPageCount { core.reusable.push(page) }
            core.pageCount = writer.startPageCount
            pageCountBound.store(core.pageCount, ordering: .releasing)
            core.writer = nil
            cache.drop(writer.allocated)
        }
        cache.trim()
    }

    // MARK: Reading pages

    /// The page `number`, pinned (in `slots` when one is free); reads and verifies it on a
    /// cache miss.
    @inline(__always)
    func readPage(_ number: PageNumber, slots: PinSlots) throws -> PageRef {
        guard number >= PageFileLayout.metaPageCount, number < pageCountBound.load(ordering: .relaxed) else {
            throw outOfRange(number)
        }
        if let (base, pin) = cache.pinCached(number, slots: slots) {
            return PageRef(frame: base, pageSize: pageSize, pin: pin)
        }
        return try readPageFromDisk(number)
    }

    @inline(never)
    func readPageFromDisk(_ number: PageNumber) throws -> PageRef {
        let maxSequence = durableSequence.load(ordering: .acquiring)
        let base = try cache.load(number) { buffer in
            try file.readExactly(into: buffer, at: number * UInt64(pageSize))
            try Self.verifyPage(UnsafeRawBufferPointer(buffer), number: number, maxSequence: maxSequence, file: path)
        }
        return PageRef(frame: base, pageSize: pageSize, pin: .counter(base, pageSize: pageSize))
    }

    @inline(never)
    func outOfRange(_ number: PageNumber) -> StorageError {
        let (offset, overflow) = number.multipliedReportingOverflow(by: UInt64(pageSize))
        return .corrupted(
            file: path, offset: overflow ? .max : offset,
            reason: "page number \(number) outside the page space 2..<\(pageCountBound.load(ordering: .relaxed))")
    }

    /// Checks a page read from disk: checksum of bytes 4..<pageSize, the page number in the
    /// header, and a write sequence no newer than the durable checkpoint. Damage throws
    /// `.corrupted(file:, offset: number * pageSize, reason:)`.
    package static func verifyPage(_ page: UnsafeRawBufferPointer, number: PageNumber, maxSequence: UInt64, file: String) throws {
        let offset = number &* UInt64(page.count)  // wrapping: only names a place in an error; never traps
        let stored = page.loadLE(UInt32.self, at: PageHeader.checksum)
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: page[PageHeader.checksummedStart...]))
        guard stored == computed else {
            throw StorageError.corrupted(
                file: file, offset: offset,
                reason: "page \(number): checksum mismatch (stored \(hex(stored)), computed \(hex(computed)))")
        }
        let named = page.loadLE(UInt64.self, at: PageHeader.pageNumber)
        guard named == number else {
            throw StorageError.corrupted(
                file: file, offset: offset, reason: "page \(number): header names page \(named) (misplaced page)")
        }
        let sequence = page.loadLE(UInt64.self, at: PageHeader.writeSequence)
        guard sequence <= maxSequence else {
            throw StorageError.corrupted(
                file: file, offset: offset,
                reason: "page \(number): written by checkpoint \(sequence), newer than the durable checkpoint \(maxSequence)")
        }
    }

    // MARK: Introspection

    /// Counters of the cache and the page space.
    package var statistics: PagerStatistics {
        let counters = cache.counters
        var result = PagerStatistics()
        result.hits = counters.hits
        result.misses = counters.misses
        result.evictions = counters.evictions
        result.dirtyBytes = counters.dirtyBytes
        result.cachedBytes = counters.cachedBytes
        result.cacheCapacityBytes = cache.capacityFrames * pageSize
        core.withLock { core in
            result.pageCount = core.pageCount
            result.freePages = core.reusable.count + core.awaitingSnapshots.count + core.awaitingCheckpoint.count
            result.checkpoints = core.checkpoints
        }
        return result
    }

    /// Where every page of the committed state is (see `PageAccounting`). Pages allocated
    /// by an open write transaction count as free (the committed state does not use them);
    /// pages it freed still count as reachable. While a checkpoint runs, the pages it writes
    /// the new free list into count as free-list pages. Complexity: O(free pages · log).
    package func pageAccounting() -> PageAccounting {
        core.withLock { core in
            PageAccounting(
                pageCount: core.pageCount, freePages: core.freePages.sorted(),
                freeListPages: (core.durableFreeListPages + core.checkpointListPages).sorted())
        }
    }

    /// Sorted free pages of the committed state (as in `pageAccounting()`).
    package func freePageNumbers() -> [PageNumber] { pageAccounting().freePages }

    /// The page space: page numbers 0..<pageCount exist.
    package var pageCount: UInt64 { core.withLock { $0.pageCount } }

    /// The checkpoint sequence of the durable meta page.
    package var checkpointSequence: UInt64 { durableSequence.load(ordering: .acquiring) }

    /// The transaction id of the oldest live read snapshot, or nil when none is open. A layer
    /// above uses it to defer freeing resources (e.g. log segments) that older snapshots may
    /// still read: every snapshot begun later sees at least the then-committed state.
    package var oldestSnapshotID: UInt64? { core.withLock { $0.snapshots.keys.min() } }

    /// Pages currently held by the cache, sorted (tests).
    package var cachedPageNumbers: [PageNumber] { cache.cachedPages }

    /// Closes the page file. Does not checkpoint: the layer above decides. Later
    /// `beginWrite`/`checkpoint` throw `.closed`; open snapshots fail on cache misses.
    package func close() throws {
        let wasOpen: Bool = core.withLock { core in
            defer { core.closed = true }
            return !core.closed
        }
        if wasOpen { try file.close() }
    }
}
