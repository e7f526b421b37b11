import ScrollbackFormat
import ScrollbackIO

/// What one checkpoint writes, decided under the core lock (`Pager.beginCheckpoint`).
package struct CheckpointPlan: Sendable {
    var sequence: UInt64
    var state: CommittedState
    var pageCount: UInt64
    /// Committed pages allocated since the last checkpoint, sorted.
    var pagesToWrite: [PageNumber]
    /// The free list of the new state.
    var freeRanges: [FreeRange]
    var freePageCount: UInt64
    /// Pages that will hold the new free list (taken from the reusable pool or appended).
    var listPages: [PageNumber]
    /// The page count before the free tail was cut off: the file is truncated to `pageCount`
    /// pages once the new meta page is durable.
    var previousPageCount: UInt64
}

extension Pager {
    /// Writes the committed state to the page file and makes it durable.
    ///
    /// Steps (spec/page-file.md, "Checkpoint"): (1) write every committed page allocated since
    /// the last checkpoint, with its checksum and this checkpoint's sequence; (2) write the new
    /// free list into pages the durable state does not use; (3) extend the file to the page
    /// count; (4) fdatasync; (5) write the meta page in the other slot; (6) fdatasync. Nothing
    /// the durable meta page references is written before step 6 completes, so a crash at any
    /// point leaves the previous meta page and everything it references intact.
    ///
    /// Afterwards the written frames are clean (evictable), the previous free-list pages are
    /// reusable, and pages freed before the checkpoint become reusable once no snapshot can
    /// see them.
    ///
    /// REQUIRES: no open write transaction (throws `.invalidArgument`). Readers keep running.
    /// A failed write or sync poisons the pager and rethrows the I/O error.
    package func checkpoint() throws {
        try writeCheckpoint(try beginCheckpoint())
    }

    /// The first half of `checkpoint()`: decides what the checkpoint writes (the committed
    /// state now) and reserves its free-list pages. Cheap (no I/O). REQUIRES: no open write
    /// transaction and no other checkpoint running (throws `.invalidArgument`).
    ///
    /// Write transactions may begin and commit while `writeCheckpoint` runs: the checkpoint
    /// writes only the pages of the state it planned, whose frames stay dirty (unevictable)
    /// until it is durable; a page of that state freed meanwhile waits for the checkpoint
    /// after it (the new durable state references it), and the plan's free-list pages are out
    /// of the reusable pool. The writers' own new pages are left to the next checkpoint.
    package func beginCheckpoint() throws -> CheckpointPlan {
        if isReadOnly { throw StorageError.invalidArgument("checkpoint of a read-only page file") }
        let plan = try core.withLock { core in try planCheckpoint(&core) }
        // Stale clean frames of the new list pages must not outlive their rewrite.
        cache.drop(plan.listPages)
        return plan
    }

    /// The second half of `checkpoint()`: the I/O of `plan` (steps 1–6), then the new durable
    /// state is adopted. Commits may run meanwhile (see `beginCheckpoint`). A failed write or
    /// sync poisons the pager and rethrows the I/O error.
    ///
    /// `beforeMetaPage` runs first (before any I/O; the storage engine syncs the log through
    /// the planned state's position there): its error takes the same path as an I/O error.
    ///
    /// `paced`: write the pages back in steps of `pacingBytes`, waiting for each
    /// (`FileHandle.writeBack`), so that the step-5 sync has little left and the log's syncs
    /// of the commits running meanwhile do not queue behind one large flush. For checkpoints
    /// that run beside commits; it makes the checkpoint itself take longer. `beforeWriteBack`
    /// runs before each of those steps (the storage engine holds a step back there while a
    /// commit syncs the log).
    package func writeCheckpoint(_ plan: CheckpointPlan, paced: Bool = false, beforeMetaPage: () throws -> Void = {},
                                 beforeWriteBack: () -> Void = {}) throws {
        do {
            try beforeMetaPage()
            try writePages(plan, paced: paced, beforeWriteBack: beforeWriteBack)
            try writeFreeList(plan)
            if try file.size() < plan.pageCount * UInt64(pageSize) {
                try file.truncate(to: plan.pageCount * UInt64(pageSize))
            }
            try file.syncData()
            let meta = MetaPage(
                pageSize: pageSize, checkpointSequence: plan.sequence, pageCount: plan.pageCount,
                freeListHead: plan.listPages.first ?? 0, freeListPageCount: UInt64(plan.listPages.count),
                freePageCount: plan.freePageCount, state: plan.state)
            try meta.encoded().withUnsafeBytes { bytes in
                try file.write(bytes, at: meta.slot * UInt64(pageSize))
            }
            try file.syncData()
            finishCheckpoint(plan, meta: meta)
            returnFreeTail(plan)
        } catch {
            core.withLock { core in
                core.checkpointRunning = false
                for page in plan.listPages { core.reusable.push(page) }
                core.checkpointListPages = []
                // The pages stay unwritten (the pager is poisoned: no later checkpoint).
                core.unwritten.formUnion(core.checkpointWriting)
                core.checkpointWriting.removeAll()
                core.poison.latch("checkpoint \(plan.sequence) failed: \(error)")
            }
            throw error
        }
    }

    /// Decides what the checkpoint writes and reserves the new free-list pages.
    private func planCheckpoint(_ core: inout PagerCore) throws -> CheckpointPlan {
        try Self.checkUsable(core)
        if core.writer != nil {
            throw StorageError.invalidArgument("checkpoint requires that no write transaction is open")
        }
        if core.checkpointRunning { throw StorageError.invalidArgument("a checkpoint is already running") }
        core.checkpointRunning = true
        cache.drop(core.releaseFreedPages())
        let previousPageCount = core.pageCount
        cutFreeTail(&core)

        // Free in the new state: everything free now, plus the old free-list pages.
        var free = core.freePages
        free.append(contentsOf: core.durableFreeListPages)
        free.sort()
        // Take list pages from the reusable pool (never referenced by the durable state, never
        // readable by a snapshot) or from the end of the file, until the rest fits in them.
        // Taking page p changes the number of runs by +1 (p split a run), -1 (p was a run of
        // its own) or 0, which is tracked without rebuilding the runs: O(k log n) for k pages.
        var listPages: [PageNumber] = []
        var taken = Set<PageNumber>()
        var rangeCount = FreeListPage.ranges(ofSorted: free).count
        func isFree(_ page: PageNumber) -> Bool { !taken.contains(page) && binarySearch(free, page) != nil }
        while listPages.count < FreeListPage.pagesNeeded(rangeCount: rangeCount, pageSize: pageSize) {
            if let page = core.reusable.popMin() {
                let left = page > 0 && isFree(page - 1)
                let right = isFree(page + 1)
                taken.insert(page)
                if left && right { rangeCount += 1 } else if !left && !right { rangeCount -= 1 }
                listPages.append(page)
            } else {
                guard core.pageCount < UInt64(Int32.max) else {
                    core.checkpointRunning = false
                    for page in listPages { core.reusable.push(page) }
                    throw StorageError.limitExceeded("page file holds at most \(Int32.max) pages")
                }
                listPages.append(core.pageCount)
                core.pageCount += 1
                pageCountBound.store(core.pageCount, ordering: .releasing)
            }
        }
        if !taken.isEmpty { free.removeAll { taken.contains($0) } }
        let ranges = FreeListPage.ranges(ofSorted: free)
        assert(ranges.count == rangeCount)
        core.checkpointListPages = listPages
        // The planned pages leave `unwritten`: a writer that frees one while the checkpoint
        // runs must treat it as on disk (it will be, in the new durable state).
        let pagesToWrite = core.unwritten.sorted()
        core.checkpointWriting = core.unwritten
        core.unwritten.removeAll(keepingCapacity: true)
        return CheckpointPlan(
            sequence: core.durable.checkpointSequence + 1, state: core.committed, pageCount: core.pageCount,
            pagesToWrite: pagesToWrite, freeRanges: ranges, freePageCount: UInt64(free.count),
            listPages: listPages, previousPageCount: previousPageCount)
    }

    /// Shrinks the page space by its free tail: the longest run of last pages that are
    /// reusable (no snapshot sees them, the durable state does not reference them). They leave
    /// the reusable pool and the new state's free list; the file is cut once the new meta page
    /// is durable (`returnFreeTail`). A page the durable state still uses (its free-list pages
    /// included: a crash before the new meta page is durable falls back to that state) or a
    /// snapshot can read stops the tail; it is cut by a later checkpoint. The space the cut
    /// frees may hold this checkpoint's own free list (the page count grows back for it).
    private func cutFreeTail(_ core: inout PagerCore) {
        let candidates = Set(core.reusable.items)
        var newCount = core.pageCount
        while newCount > PageFileLayout.metaPageCount, candidates.contains(newCount - 1) { newCount -= 1 }
        guard newCount < core.pageCount else { return }
        var kept = FreePageHeap()
        for page in core.reusable.items where page < newCount { kept.push(page) }
        core.reusable = kept
        cache.drop(Array(newCount..<core.pageCount))
        core.pageCount = newCount
    }

    /// After the checkpoint: gives the cut tail back to the file system. The durable meta page
    /// no longer counts those pages, so a crash before (or a lost) truncation only leaves a
    /// longer file than needed, which is allowed (spec/page-file.md, "Pages").
    /// A failed truncation is ignored for the same reason.
    private func returnFreeTail(_ plan: CheckpointPlan) {
        guard plan.pageCount < plan.previousPageCount else { return }
        pageCountBound.store(core.withLock { $0.pageCount }, ordering: .releasing)
        if let size = try? file.size(), size > plan.pageCount * UInt64(pageSize) {
            try? file.truncate(to: plan.pageCount * UInt64(pageSize))
        }
    }

    /// Step 1: every unwritten page, stamped with checksum and sequence, runs of consecutive
    /// pages coalesced into one write. The frames are only read (copied, then stamped in the
    /// copy): writers may be copying them at the same time.
    private func writePages(_ plan: CheckpointPlan, paced: Bool, beforeWriteBack: () -> Void) throws {
        let maxRun = 32
        let staging = UnsafeMutableRawBufferPointer.allocate(byteCount: maxRun * pageSize, alignment: pageSize)
        defer { staging.deallocate() }
        var runStart: PageNumber = 0
        var runLength = 0
        // Written since the last pacing step: bytes, and the file range they fall in.
        var unpaced = 0
        var unpacedRange: Range<UInt64>?
        func flush() throws {
            guard runLength > 0 else { return }
            let offset = runStart * UInt64(pageSize), count = runLength * pageSize
            try file.write(UnsafeRawBufferPointer(rebasing: staging[0..<count]), at: offset)
            runLength = 0
            guard paced else { return }
            let range = offset..<(offset + UInt64(count))
            unpacedRange = unpacedRange.map { min($0.lowerBound, range.lowerBound)..<max($0.upperBound, range.upperBound) } ?? range
            unpaced += count
            if unpaced >= Self.pacingBytes, let pending = unpacedRange {
                beforeWriteBack()
                try file.writeBack(offset: pending.lowerBound, count: pending.upperBound - pending.lowerBound)
                unpaced = 0
                unpacedRange = nil
            }
        }
        for page in plan.pagesToWrite {
            guard let base = cache.dirtyFrame(page) else {
                throw StorageError.invalidArgument("internal: unwritten page \(page) has no dirty frame")
            }
            if runLength > 0, runStart + UInt64(runLength) != page || runLength == maxRun { try flush() }
            if runLength == 0 { runStart = page }
            let copy = staging.baseAddress! + runLength * pageSize
            copy.copyMemory(from: base, byteCount: pageSize)
            Self.seal(UnsafeMutableRawBufferPointer(start: copy, count: pageSize), sequence: plan.sequence)
            runLength += 1
        }
        try flush()
    }

    /// How much a paced checkpoint writes between two waits for its writeback (`writeCheckpoint`).
    static let pacingBytes = 64 << 10

    /// Step 2: the free-list chain, in the order of `plan.listPages`.
    private func writeFreeList(_ plan: CheckpointPlan) throws {
        let capacity = FreeListPageLayout.capacity(pageSize: pageSize)
        var buffer = [UInt8](repeating: 0, count: pageSize)
        for (i, page) in plan.listPages.enumerated() {
            let lower = min(i * capacity, plan.freeRanges.count)
            let upper = min(lower + capacity, plan.freeRanges.count)
            let next = i + 1 < plan.listPages.count ? plan.listPages[i + 1] : 0
            try buffer.withUnsafeMutableBytes { bytes in
                FreeListPage.encode(into: bytes, pageNumber: page, next: next, ranges: plan.freeRanges[lower..<upper])
                Self.seal(bytes, sequence: plan.sequence)
                try file.write(UnsafeRawBufferPointer(bytes), at: page * UInt64(pageSize))
            }
        }
    }

    /// Sets the pager-owned header fields written at checkpoint: write sequence, then the
    /// checksum of bytes 4..<pageSize.
    package static func seal(_ page: UnsafeMutableRawBufferPointer, sequence: UInt64) {
        page.storeLE(sequence, at: PageHeader.writeSequence)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: page[PageHeader.checksummedStart...]))
        page.storeLE(crc, at: PageHeader.checksum)
    }

    /// After the meta page is durable: adopt it as the durable state.
    private func finishCheckpoint(_ plan: CheckpointPlan, meta: MetaPage) {
        core.withLock { core in
            core.durable = meta
            durableSequence.store(meta.checkpointSequence, ordering: .releasing)
            // The old free list's pages are free now; a reader in another process that reads
            // the older meta page may still read its free list (verify), so they wait for the
            // reader floor too, as freed by this checkpoint's transaction.
            core.awaitingReaders += core.durableFreeListPages.sorted().map {
                PendingFree(transaction: plan.state.transactionID, page: $0, memoryOnly: false)
            }
            core.durableFreeListPages = plan.listPages
            core.checkpointListPages = []
            core.checkpointWriting.removeAll(keepingCapacity: true)
            cache.markClean(plan.pagesToWrite)
            // Pages freed up to the planned transaction are not in the new durable state: they
            // wait only for snapshots (of this process and of reader processes). Pages freed by
            // commits that ran during the checkpoint are in it: they wait for the next one.
            // (`awaitingCheckpoint` is in commit order, so sorted by transaction.)
            let planned = plan.state.transactionID
            let split = core.awaitingCheckpoint.firstIndex { $0.transaction > planned } ?? core.awaitingCheckpoint.count
            core.awaitingReaders = merge(core.awaitingReaders, Array(core.awaitingCheckpoint[..<split]))
            core.awaitingCheckpoint.removeFirst(split)
            cache.drop(core.releaseFreedPages())
            core.checkpoints += 1
            core.checkpointRunning = false
        }
        cache.trim()
    }
}

private func binarySearch(_ sorted: [PageNumber], _ value: PageNumber) -> Int? {
    var low = 0
    var high = sorted.count
    while low < high {
        let mid = (low + high) / 2
        if sorted[mid] < value { low = mid + 1 } else { high = mid }
    }
    return low < sorted.count && sorted[low] == value ? low : nil
}

/// Merges two lists sorted by transaction into one.
private func merge(_ a: [PendingFree], _ b: [PendingFree]) -> [PendingFree] {
    if b.isEmpty { return a }
    if a.isEmpty { return b }
    var result: [PendingFree] = []
    result.reserveCapacity(a.count + b.count)
    var i = 0
    var j = 0
    while i < a.count, j < b.count {
        if a[i].transaction <= b[j].transaction { result.append(a[i]); i += 1 } else { result.append(b[j]); j += 1 }
    }
    result.append(contentsOf: a[i...])
    result.append(contentsOf: b[j...])
    return result
}
