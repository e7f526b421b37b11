import ScrollbackFormat
import ScrollbackIO

/// What a read-only pager reads: the page-file states (meta pages) its snapshots start from,
/// oldest first. Each is a *generation*: the snapshots whose id is at or above `start` (and
/// below the next generation's start) read pages of `base` from the file.
struct ReadOnlyPagerState {
    struct Generation {
        /// The first transaction id (local to this pager) of the generation.
        var start: UInt64
        var base: MetaPage
    }

    var generations: [Generation]

    init(base: MetaPage) {
        generations = [Generation(start: base.state.transactionID, base: base)]
    }
}

/// A read-only pager reads a page file another process writes (spec/reader-table.md):
///
/// - It opens the file read-only and never writes, truncates or syncs it. It does not read
///   the free list (the writer may reuse the pages of an older free list at any time).
/// - Its write transactions live in memory only: their pages are numbered from
///   `firstMemoryPage` up (never a page-file page number, so a memory page never hides a
///   page of a newer page-file state), are never evicted and never checkpointed. The layer
///   above replays the log into them.
/// - `beginRebase(to:)` starts a write transaction from a newer meta page; once it commits,
///   new snapshots read the newer state while older snapshots keep reading theirs.
/// - What keeps the file's pages valid is the caller's reader slot, which must hold the
///   oldest state in use (`oldestBaseInUse()`); when it moves forward, the caller first drops
///   the cached page-file pages (`dropCachedFilePages()`): the writer may reuse any page the
///   older states could reach and the newer ones cannot.
extension Pager {
    /// The first page number of memory pages (2^40: far above any page-file page, which is
    /// below 2^31).
    static let firstMemoryPage: PageNumber = 1 << 40

    /// Opens the page file at `path` read-only. `register` receives a function that reads
    /// both meta pages and returns the newest valid one; it returns the meta page to read
    /// (the reader registers it in the reader table between two reads, following the race
    /// rule). Errors as `open`; the file is never written.
    package static func openReadOnly(
        fileSystem: any FileSystem, path: String, cacheBytes: Int,
        register: (_ readNewest: () throws -> MetaPage) throws -> MetaPage
    ) throws -> Pager {
        let file = try fileSystem.open(path, mode: .readOnly)
        do {
            let meta = try register { try readMeta(file: file, path: path) }
            return Pager(
                fileSystem: fileSystem, path: path, file: file, meta: meta, freeListPages: [], freePages: [],
                cacheBytes: cacheBytes, readOnly: true)
        } catch {
            try? file.close()
            throw error
        }
    }

    /// The newest valid meta page in the file now (both are read; a torn one is skipped).
    package func readNewestMeta() throws -> MetaPage {
        try Self.readMeta(file: file, path: path)
    }

    /// The page-file state the newest generation reads (read-only pagers); the durable meta
    /// page otherwise.
    package var baseMeta: MetaPage { core.withLock { $0.durable } }

    /// A write transaction (in memory) that starts from `meta`'s state instead of the
    /// committed one; when it commits, `meta` becomes the newest generation. Older snapshots
    /// keep reading their own state; the memory pages of the older generations are dropped
    /// once no snapshot reads them. REQUIRES: a read-only pager; `meta` is newer than every
    /// generation; as `beginWrite`.
    package func beginRebase(to meta: MetaPage) throws -> PageTransaction {
        let (state, slots): (CommittedState, PinSlots?) = try core.withLock { core in
            try Self.checkUsable(core)
            guard core.readOnly != nil else { throw StorageError.invalidArgument("beginRebase on a writable pager") }
            guard meta.pageSize == pageSize else {
                throw StorageError.corrupted(
                    file: path, offset: 0, reason: "the newest meta page has page size \(meta.pageSize), the file \(pageSize)")
            }
            if core.writer != nil { throw StorageError.invalidArgument("a write transaction is already open") }
            // The transaction reads the newer state's pages: they pass the file's bounds and
            // write-sequence checks from now on (the checks only grow; a rollback leaves them).
            raiseFileChecks(to: meta)
            let id = core.committed.transactionID + 1
            core.writer = WriterRecord(id: id, startPageCount: core.pageCount, rebase: meta)
            cache.drop(core.releaseFreedPages())
            var state = meta.state
            state.transactionID = id
            return (state, core.freePinSlots.popLast())
        }
        return PageTransaction(pager: self, writing: state, pinSlots: slots ?? cache.makePinSlots())
    }

    /// Commit of a rebase (under the core lock): the memory pages of the generations before
    /// it wait for their snapshots, and `meta` is the newest generation.
    func adoptBase(_ meta: MetaPage, transaction id: UInt64, _ core: inout PagerCore) {
        for page in core.unwritten.sorted() {
            core.awaitingSnapshots.append(PendingFree(transaction: id, page: page, memoryOnly: true))
        }
        core.unwritten.removeAll()
        core.awaitingCheckpoint.removeAll()
        core.durable = meta
        raiseFileChecks(to: meta)
        core.readOnly?.generations.append(ReadOnlyPagerState.Generation(start: id, base: meta))
    }

    /// Page-file pages of `meta`'s state may be read: below its page count, written by a
    /// checkpoint up to its sequence. REQUIRES: the core lock (the values only grow).
    private func raiseFileChecks(to meta: MetaPage) {
        if meta.checkpointSequence > durableSequence.load(ordering: .relaxed) {
            durableSequence.store(meta.checkpointSequence, ordering: .releasing)
        }
        if meta.pageCount > fileBound.load(ordering: .relaxed) { fileBound.store(meta.pageCount, ordering: .releasing) }
    }

    /// The oldest page-file state a snapshot of this pager (or its committed state) still
    /// reads; older generations are forgotten. Read-only pagers; the durable meta page
    /// otherwise.
    package func oldestBaseInUse() -> MetaPage {
        core.withLock { core in
            guard var state = core.readOnly else { return core.durable }
            let oldest = min(core.oldestSnapshot ?? .max, core.committed.transactionID)
            var keep = 0
            while keep + 1 < state.generations.count, state.generations[keep + 1].start <= oldest { keep += 1 }
            if keep > 0 {
                state.generations.removeFirst(keep)
                core.readOnly = state
            }
            return state.generations[0].base
        }
    }

    /// Drops every cached page-file page (memory pages stay). Pinned frames are orphaned and
    /// freed once unpinned.
    package func dropCachedFilePages() {
        cache.drop(cache.cachedPages.filter { $0 < Self.firstMemoryPage })
    }

    /// A read snapshot of the newest generation's page-file state itself (without what was
    /// replayed into memory), for verify and backup. End it like any snapshot.
    package func beginReadOfBase() -> PageTransaction {
        let (state, slots): (CommittedState, PinSlots?) = core.withLock { core in
            let start = core.readOnly?.generations.last?.start ?? core.durable.state.transactionID
            core.snapshots.add(start)
            var state = core.durable.state
            state.transactionID = start
            return (state, core.freePinSlots.popLast())
        }
        return PageTransaction(pager: self, reading: state, pinSlots: slots ?? cache.makePinSlots())
    }

    /// The free list of the newest generation's meta page, read and verified now: its chain's
    /// pages and the free pages (sorted). (The writer reuses the pages of a free list only
    /// after the reader floor is past the checkpoint that replaced it.)
    package func readBaseFreeList() throws -> (listPages: [PageNumber], freePages: [PageNumber]) {
        let meta = baseMeta
        return try Self.readFreeList(file: file, path: path, meta: meta)
    }

    /// Reads `count` bytes of the page file at `offset` (backup of a live page file).
    package func readFileBytes(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        try file.read(into: buffer, at: offset)
    }
}

extension Pager {
    /// The newest valid meta page of the page file at `path`, read without opening a pager
    /// (both meta pages; the file is only read). Throws as `open`: `.notAStore` when neither
    /// meta page has the magic.
    package static func readNewestMeta(fileSystem: any FileSystem, path: String) throws -> MetaPage {
        let file = try fileSystem.open(path, mode: .readOnly)
        defer { try? file.close() }
        return try readMeta(file: file, path: path)
    }
}
