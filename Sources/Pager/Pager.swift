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
    /// Read-only pagers: the transaction moves to this newer page-file state
    /// (`beginRebase`).
    var rebase: MetaPage? = nil
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
    /// Memory-only pages freed by committed transactions (allocated after the last
    /// checkpoint, never written), waiting for this process's older snapshots to end (sorted
    /// by transaction). Other processes never read them.
    var awaitingSnapshots: [PendingFree] = []
    /// Page-file pages no longer referenced by the durable state, waiting for older snapshots
    /// of this process *and* of reader processes (`readerFloor`) to end (sorted by transaction).
    var awaitingReaders: [PendingFree] = []
    /// Pages freed by a transaction <= this may be read by no reader in another process
    /// (spec/reader-table.md, "The race rule"); `.max` when no other process reads the file.
    var readerFloor: UInt64 = .max
    /// Freed pages the durable state still references, waiting for a checkpoint (sorted).
    var awaitingCheckpoint: [PendingFree] = []
    /// Committed, reachable pages allocated since the last checkpoint: the next checkpoint
    /// writes them.
    var unwritten = Set<PageNumber>()
    /// Live snapshots: snapshot id → number of read transactions holding it.
    var snapshots = SnapshotCounts()
    /// Pin-slot blocks of ended transactions, ready for the next one (taken and returned
    /// under this lock; a reader's in the same hold as its snapshot's registration). A pooled
    /// reader keeps its block while pooled; it comes back here when the reader retires. Every
    /// block ever made is also in the cache's `slotBlocks`.
    var freePinSlots: [PinSlots] = []
    /// Registration words and pool of the pooled readers (`ReaderRegistry`): live snapshots
    /// besides `snapshots`.
    let registry: ReaderRegistry
    /// Registration indexes no reader owns yet (a reader gets one when `endRead` pools it
    /// and gives it back when it deinits).
    var freeRegistryIndexes = Array((0..<ReaderRegistry.capacity).reversed())
    var writer: WriterRecord?
    var checkpointRunning = false
    /// The pages a running checkpoint writes (they were `unwritten` when it was planned).
    var checkpointWriting = Set<PageNumber>()
    /// Pages a running checkpoint is writing the new free list into.
    var checkpointListPages: [PageNumber] = []
    var poison = PoisonLatch()
    var closed = false
    var checkpoints: UInt64 = 0
    /// Read-only pagers (`Pager+ReadOnly.swift`): the page-file states this process reads.
    var readOnly: ReadOnlyPagerState?

    /// Moves every pending free that no live snapshot can see to `reusable`: memory-only pages
    /// once this process's snapshots are past them, page-file pages once reader processes are
    /// past them too. Returns the memory-only pages among them, whose frames the caller drops.
    mutating func releaseFreedPages() -> [PageNumber] {
        if awaitingSnapshots.isEmpty && awaitingReaders.isEmpty { return [] }
        let oldest = oldestSnapshot ?? .max
        var released = 0
        var dropFrames: [PageNumber] = []
        while released < awaitingSnapshots.count, awaitingSnapshots[released].transaction <= oldest {
            let pending = awaitingSnapshots[released]
            reusable.push(pending.page)
            if pending.memoryOnly { dropFrames.append(pending.page) }
            released += 1
        }
        awaitingSnapshots.removeFirst(released)
        let floor = min(oldest, readerFloor)
        released = 0
        while released < awaitingReaders.count, awaitingReaders[released].transaction <= floor {
            reusable.push(awaitingReaders[released].page)
            released += 1
        }
        awaitingReaders.removeFirst(released)
        return dropFrames
    }

    /// The oldest live snapshot of this process: registered in `snapshots` or in `registry`.
    var oldestSnapshot: UInt64? {
        switch (snapshots.oldest, registry.oldest) {
        case let (a?, b?): min(a, b)
        case let (a, b): a ?? b
        }
    }

    /// Every page free for the committed state (unsorted).
    var freePages: [PageNumber] {
        var pages = reusable.items
        pages.append(contentsOf: awaitingSnapshots.map(\.page))
        pages.append(contentsOf: awaitingReaders.map(\.page))
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
/// does not reference it is durable, and the reader floor (`setReaderFloor`: what readers in
/// other processes may still read) is >= T. So a snapshot's pages are never overwritten, in
/// memory or on disk, while the snapshot lives, in this process or another. The free pages
/// found at open count as freed by the meta page's transaction.
///
/// Thread-safety: `Pager` is safe to use from many threads. Each `PageTransaction` is used by
/// one thread at a time. Readers never wait for the writer or for a checkpoint's I/O: a pooled
/// reader (`endRead`) begins without a lock while no commit came since its last snapshot
/// (`ReaderRegistry`) and ends without one; its first end, and a begin after a commit, take
/// the core mutex briefly, as do readers that are not pooled; a page the cache has hinted is
/// pinned without a lock (`PageCache`, "Lock-free hits"), else the cache mutex is taken
/// briefly. A checkpoint is
/// planned while no write transaction is open (`beginCheckpoint` throws `.invalidArgument`
/// otherwise; the layer above serializes them); write transactions may then run during its
/// I/O (`writeCheckpoint`).
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
    /// True for a read-only pager (`Pager+ReadOnly.swift`): never writes the file.
    package let isReadOnly: Bool
    /// Read-only pagers: page numbers below this may be read from the file (the largest page
    /// count of the page-file states in use); above it only memory pages exist.
    let fileBound: Atomic<UInt64>
    /// Pooled readers' registration words and pool (lock-free snapshot begin and end).
    let registry: ReaderRegistry
    /// Mirror of `core.committed.transactionID`, stored (sequentially consistent) by the
    /// commit that publishes the state: the pooled readers' lock-free begin checks it.
    let committedID: Atomic<UInt64>

    init(fileSystem: any FileSystem, path: String, file: any FileHandle, meta: MetaPage,
         freeListPages: [PageNumber], freePages: [PageNumber], cacheBytes: Int, readOnly: Bool = false) {
        self.fileSystem = fileSystem
        self.path = path
        self.file = file
        self.pageSize = meta.pageSize
        self.cache = PageCache(
            pageSize: meta.pageSize, capacityFrames: max(Self.minimumCacheFrames, cacheBytes / meta.pageSize))
        let pageCount = readOnly ? Self.firstMemoryPage : meta.pageCount
        let registry = ReaderRegistry()
        var core = PagerCore(
            committed: meta.state, pageCount: pageCount, durable: meta, durableFreeListPages: freeListPages,
            registry: registry)
        // Free at open, but a reader in another process may still read a state older than
        // this meta page: they wait for the reader floor like pages freed by its transaction.
        core.awaitingReaders = freePages.map { PendingFree(transaction: meta.state.transactionID, page: $0, memoryOnly: false) }
        if readOnly { core.readOnly = ReadOnlyPagerState(base: meta) }
        self.core = Lock(core)
        self.pageCountBound = Atomic(pageCount)
        self.durableSequence = Atomic(meta.checkpointSequence)
        self.isReadOnly = readOnly
        self.fileBound = Atomic(meta.pageCount)
        self.registry = registry
        self.committedID = Atomic(meta.state.transactionID)
    }

    /// The latest committed state (what a new snapshot would see).
    package var committedState: CommittedState { core.withLock { $0.committed } }

    /// The state of the durable meta page (the last checkpoint).
    package var durableState: CommittedState { core.withLock { $0.durable.state } }

    // MARK: Transactions

    /// A read snapshot of the latest committed state. Never blocks on the writer or on a
    /// checkpoint. End it with `endRead` (the object may then be reused), `rollback()`, or let
    /// it deinit, so its pages can be reused.
    /// Cost: a pooled reader (`endRead`) whose state is still the committed one begins
    /// without a lock (`ReaderRegistry`: an atomic exchange, a sequentially consistent store
    /// and two loads); after a commit, one acquisition of the pager's lock and a copy of the
    /// state. Without a pooled reader: the lock (registration and a pin-slot block) and the
    /// transaction object; when no block is free either, the cache's lock and a new block.
    package func beginRead() -> PageTransaction {
        if let reader = registry.pop() {
            let index = reader.registryIndex
            let current = committedID.load(ordering: .sequentiallyConsistent)
            if reader.state.transactionID == current {
                registry.register(index, current)
                if committedID.load(ordering: .sequentiallyConsistent) == current {
                    reader.reopen(pager: self)
                    return reader
                }
            }
            let state: CommittedState = core.withLock { core in
                core.registry.register(index, core.committed.transactionID)
                return core.committed
            }
            reader.reopen(pager: self, state: state)
            return reader
        }
        let (state, slots): (CommittedState, PinSlots?) = core.withLock { core in
            core.snapshots.add(core.committed.transactionID)
            return (core.committed, core.freePinSlots.popLast())
        }
        return PageTransaction(pager: self, reading: state, pinSlots: slots ?? cache.makePinSlots(), poolable: true)
    }

    /// Ends a read snapshot from `beginRead` (or any transaction: a writer, a finished one or
    /// another kind of snapshot is rolled back as by `rollback()`). When `transaction` is the
    /// only reference to it, the object goes to the pager's pool of readers with its pin
    /// slots and the next `beginRead` reuses it instead of allocating (a pooled reader ends
    /// without a lock; one not pooled before gets a registration index under the pager's
    /// lock, while the pool has room); a reference kept elsewhere (a tree or cursor that
    /// escaped the read) makes it end as `rollback()` does. `transaction` is nil afterwards
    /// (the pager may hand the object out again).
    package func endRead(_ transaction: inout PageTransaction?) {
        guard transaction != nil else { return }
        let unique = isKnownUniquelyReferenced(&transaction)
        let reader = transaction.unsafelyUnwrapped
        transaction = nil
        guard unique, !reader.isWritable, !reader.isFinished, reader.isPoolable, reader.pager === self else {
            reader.rollback()
            return
        }
        if reader.registryIndex >= 0 {
            registry.unregister(reader.registryIndex)
            reader.finishForPool()
            if !registry.push(reader) {
                retireRegisteredReader(reader.registryIndex, pinSlots: reader.pinSlots)
                reader.registryIndex = -1
            }
            return
        }
        reader.finishForPool()
        core.withLock { core in
            core.snapshots.remove(reader.id)
            if let index = core.freeRegistryIndexes.popLast() {
                reader.registryIndex = index
                if !core.registry.push(reader) {
                    reader.registryIndex = -1
                    core.freeRegistryIndexes.append(index)
                    core.freePinSlots.append(reader.pinSlots)
                }
            } else {
                core.freePinSlots.append(reader.pinSlots)
            }
        }
    }

    /// A pooled reader that is not coming back (it deinits): its registration index and pin
    /// slots are free again.
    func retireRegisteredReader(_ index: Int, pinSlots: PinSlots) {
        core.withLock { core in
            core.freeRegistryIndexes.append(index)
            core.freePinSlots.append(pinSlots)
        }
    }

    /// The single write transaction, starting from the latest committed state.
    /// REQUIRES: no other write transaction is open (throws `.invalidArgument`); the pager is
    /// open and not poisoned. A checkpoint may be running (`beginCheckpoint`).
    package func beginWrite() throws -> PageTransaction {
        let (state, slots): (CommittedState, PinSlots?) = try core.withLock { core in
            try Self.checkUsable(core)
            if core.writer != nil { throw StorageError.invalidArgument("a write transaction is already open") }
            let id = core.committed.transactionID + 1
            core.writer = WriterRecord(id: id, startPageCount: core.pageCount)
            cache.drop(core.releaseFreedPages())
            var state = core.committed
            state.transactionID = id
            return (state, core.freePinSlots.popLast())
        }
        return PageTransaction(pager: self, writing: state, pinSlots: slots ?? cache.makePinSlots())
    }

    /// Sets the reader floor: the oldest transaction a reader in another process may read
    /// (spec/reader-table.md, "What the engine does with the oldest reader"), `.max` for none.
    /// Page-file pages freed by a transaction above it are not reused. REQUIRES of the caller:
    /// the floor comes from a scan of the reader table that began after the newest checkpoint
    /// completed, and is at most that checkpoint's transaction id (so pages a later checkpoint
    /// frees wait for the next scan).
    package func setReaderFloor(_ floor: UInt64) {
        core.withLock { core in
            core.readerFloor = floor
            cache.drop(core.releaseFreedPages())
        }
    }

    /// The reader floor in force (`setReaderFloor`).
    package var readerFloor: UInt64 { core.withLock { $0.readerFloor } }

    /// Page-file pages free in the committed state that wait for readers (of this process or
    /// another) before they can be reused.
    package var pagesAwaitingReaders: Int { core.withLock { $0.awaitingReaders.count } }

    /// The transaction id of the durable meta page.
    package var durableTransactionID: UInt64 { core.withLock { $0.durable.state.transactionID } }

    /// Write transactions and checkpoints need an open, healthy pager on a current-format file
    /// (an older file is only read, by `scrollback upgrade`; writing would mix formats).
    static func checkUsable(_ core: PagerCore) throws {
        if core.closed { throw StorageError.closed }
        try core.poison.check()
        if core.durable.formatVersion < PageFileLayout.formatVersion {
            throw StorageError.needsUpgrade(file: "pages", found: core.durable.formatVersion, current: PageFileLayout.formatVersion)
        }
    }

    /// Format version of the page file as opened (the durable meta page's).
    package var fileFormatVersion: UInt32 { core.withLock { $0.durable.formatVersion } }

    /// Ends a read snapshot and takes back its pin-slot block. Slots still set (a reference
    /// that outlived its transaction) keep their frames pinned until that reference clears
    /// them; the next owner of the block claims only empty slots.
    func endSnapshot(_ id: UInt64, pinSlots: PinSlots) {
        core.withLock { core in
            core.snapshots.remove(id)
            core.freePinSlots.append(pinSlots)
        }
    }

    /// Takes back a write transaction's pin-slot block (see `endSnapshot`).
    func returnPinSlots(_ pinSlots: PinSlots) {
        core.withLock { $0.freePinSlots.append(pinSlots) }
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
                guard core.pageCount < UInt64(Int32.max) || core.readOnly != nil else {
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
            committedID.store(state.transactionID, ordering: .sequentiallyConsistent)
            if let base = writer.rebase { adoptBase(base, transaction: id, &core) }
            let localSet = Set(localFree)
            for page in writer.allocated where !localSet.contains(page) { core.unwritten.insert(page) }
            for page in localFree { core.reusable.push(page) }
            for page in freed {
                if core.unwritten.remove(page) != nil {
                    core.awaitingSnapshots.append(PendingFree(transaction: id, page: page, memoryOnly: true))
                } else if core.readOnly == nil {
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

    /// The page `number`, pinned (in `slots` when one is free): its frame and pin, for the
    /// caller to wrap in a `PageRef`. Reads and verifies it on a cache miss.
    @inline(__always)
    func pinPage(_ number: PageNumber, slots: PinSlots) throws -> (UnsafeMutableRawPointer, PinToken) {
        guard number >= PageFileLayout.metaPageCount, number < pageCountBound.load(ordering: .relaxed) else {
            throw outOfRange(number)
        }
        if let hit = cache.pinCached(number, slots: slots) { return hit }
        return try readPageFromDisk(number)
    }

    @inline(never)
    func readPageFromDisk(_ number: PageNumber) throws -> (UnsafeMutableRawPointer, PinToken) {
        if isReadOnly, number >= fileBound.load(ordering: .acquiring) { throw outOfRange(number) }
        let maxSequence = durableSequence.load(ordering: .acquiring)
        let base = try cache.load(number) { buffer in
            try file.readExactly(into: buffer, at: number * UInt64(pageSize))
            try Self.verifyPage(UnsafeRawBufferPointer(buffer), number: number, maxSequence: maxSequence, file: path)
        }
        return (base, .counter(base, pageSize: pageSize))
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

    /// Bytes of dirty (committed, not yet checkpointed) frames: one short lock of the cache,
    /// for the checkpoint policy after every group (`statistics` takes the core lock too).
    package var dirtyBytes: Int { cache.counters.dirtyBytes }

    /// Counters of the cache and the page space.
    package var statistics: PagerStatistics {
        let counters = cache.counters
        var result = PagerStatistics()
        result.hits = counters.hits
        result.misses = counters.misses
        result.evictions = counters.evictions
        result.sweptFrames = counters.sweptFrames
        result.dirtyBytes = counters.dirtyBytes
        result.cachedBytes = counters.cachedBytes
        result.cacheCapacityBytes = cache.capacityFrames * pageSize
        core.withLock { core in
            result.pageCount = core.readOnly == nil ? core.pageCount : core.durable.pageCount
            result.freePages = core.reusable.count + core.awaitingSnapshots.count + core.awaitingReaders.count
                + core.awaitingCheckpoint.count
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

    /// The page space: page numbers 0..<pageCount exist (read-only pagers: the page count of
    /// the page-file state they read).
    package var pageCount: UInt64 { core.withLock { $0.readOnly == nil ? $0.pageCount : $0.durable.pageCount } }

    /// The checkpoint sequence of the durable meta page.
    package var checkpointSequence: UInt64 { durableSequence.load(ordering: .acquiring) }

    /// The transaction id of the oldest live read snapshot, or nil when none is open. A layer
    /// above uses it to defer freeing resources (e.g. log segments) that older snapshots may
    /// still read: every snapshot begun later sees at least the then-committed state.
    package var oldestSnapshotID: UInt64? { core.withLock { $0.oldestSnapshot } }

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
