import ScrollbackPager
import ScrollbackFormat
import ScrollbackIO
import Testing

/// Copy-on-write transactions, snapshots, the page reuse rule, rollback, the free list.
@Suite struct TransactionTests {
    @Test func writerRulesAreEnforced() throws {
        let fs = try makeFileSystem()
        let pager = try makePager(fs)
        let reader = pager.beginRead()
        #expect(throws: StorageError.self) { try reader.allocatePage() }
        #expect(throws: StorageError.self) { try reader.commit() }
        let writer = try pager.beginWrite()
        #expect(throws: StorageError.self) { try pager.beginWrite() }
        #expect(throws: StorageError.self) { try pager.checkpoint() }
        let page = try writer.allocatePage()
        #expect(writer.isOwned(page))
        #expect(!reader.isOwned(page))
        #expect(throws: StorageError.self) { _ = try reader.mutablePage(page) }
        // The new page is zero-filled except its page number.
        do {
            let ref = try writer.page(page)
            #expect(ref.bytes.count == 4096)
            #expect(ref.bytes.loadLE(UInt64.self, at: PageHeader.pageNumber) == page)
            #expect(ref.bytes.enumerated().allSatisfy { $0.offset >= 8 && $0.offset < 16 || $0.element == 0 })
        }
        try fill(writer, page, stamp: 7)
        setState(writer, root: page, version: 1)
        writer.state.trees[1] = TreeRoot(rootPage: 99_999, entryCount: 1, height: 1, keyWords: 1, valueSize: 0)
        #expect(throws: StorageError.self) { try writer.commit() }  // root outside the page space
        writer.state.trees[1] = .unused
        try writer.commit()
        #expect(throws: StorageError.self) { try writer.commit() }
        #expect(throws: StorageError.self) { try writer.allocatePage() }
        // A committed page is not owned by the next writer; a double free is refused.
        let next = try pager.beginWrite()
        #expect(!next.isOwned(page))
        #expect(throws: StorageError.self) { _ = try next.mutablePage(page) }
        try next.freePage(page)
        #expect(throws: StorageError.self) { try next.freePage(page) }
        #expect(throws: StorageError.self) { try next.freePage(0) }
        next.rollback()
        reader.rollback()
        #expect(throws: StorageError.self) { _ = try reader.page(page) }
    }

    @Test func writerSeesItsOwnPagesReadersDoNot() throws {
        let fs = try makeFileSystem()
        let pager = try makePager(fs)
        let writer = try pager.beginWrite()
        let pages = try allocateFilled(writer, count: 3, stampBase: 10)
        let reader = pager.beginRead()
        #expect(reader.state == .initial)
        #expect(try stamp(writer, pages[2]) == 12)
        setState(writer, root: pages[0], version: 1)
        try writer.commit()
        #expect(reader.state == .initial)
        let fresh = pager.beginRead()
        #expect(fresh.state.counters[0] == 1)
        #expect(try stamp(fresh, pages[1]) == 11)
        #expect(pager.committedState == fresh.state)
    }

    @Test func rollbackRestoresState() throws {
        let fs = try makeFileSystem()
        let pager = try makePager(fs)
        let first = try pager.beginWrite()
        let pages = try allocateFilled(first, count: 4, stampBase: 0)
        setState(first, root: pages[0], version: 1)
        try first.commit()
        let committed = pager.committedState
        let accountingBefore = pager.pageAccounting()

        let writer = try pager.beginWrite()
        try allocateFilled(writer, count: 10, stampBase: 100)
        try writer.freePage(pages[1])
        try writer.freePage(pages[2])
        setState(writer, root: pages[3], version: 2)
        #expect(pager.pageAccounting().pageCount > accountingBefore.pageCount)
        writer.rollback()
        #expect(pager.committedState == committed)
        #expect(pager.pageAccounting() == accountingBefore)
        try pager.pageAccounting().check(reachable: pages)
        // A writer dropped without commit rolls back too.
        do {
            let dropped = try pager.beginWrite()
            try allocateFilled(dropped, count: 3, stampBase: 200)
            try dropped.freePage(pages[0])
        }
        #expect(pager.pageAccounting() == accountingBefore)
        let reader = pager.beginRead()
        for (i, page) in pages.enumerated() { #expect(try stamp(reader, page) == UInt64(i)) }
    }

    @Test func pagesAllocatedAndFreedInOneTransactionAreReusedAtOnce() throws {
        let fs = try makeFileSystem()
        let pager = try makePager(fs)
        let writer = try pager.beginWrite()
        let a = try writer.allocatePage()
        try fill(writer, a, stamp: 1)
        try writer.freePage(a)
        #expect(!writer.isOwned(a))
        let b = try writer.allocatePage()
        #expect(b == a)
        do {
            let ref = try writer.page(b)
            #expect(ref.bytes.loadLE(UInt64.self, at: PageHeader.userWord) == 0)  // zeroed again
        }
        let c = try writer.allocatePage()
        try writer.freePage(c)
        setState(writer, root: b, version: 1)
        try writer.commit()
        try pager.pageAccounting().check(reachable: [b])
        #expect(pager.pageAccounting().freePages == [c])
    }

    @Test func snapshotIsolationAcrossManyCommitsAndFrees() throws {
        // A reader holds its snapshot while the writer rewrites every page (copy on write)
        // many times, with checkpoints in between; it keeps reading its original bytes.
        let fs = try makeFileSystem()
        let pager = try makePager(fs, cacheBytes: 64 * 4096)
        let setup = try pager.beginWrite()
        var live = try allocateFilled(setup, count: 20, stampBase: 1000)
        setState(setup, root: live[0], version: 1)
        try setup.commit()
        try pager.checkpoint()
        let original = live
        let reader = pager.beginRead()

        var stampOf: [PageNumber: UInt64] = [:]
        for (i, page) in live.enumerated() { stampOf[page] = 1000 + UInt64(i) }
        for round in 0..<30 {
            let writer = try pager.beginWrite()
            for i in live.indices {
                let fresh = try writer.allocatePage()
                #expect(!original.contains(fresh), "page \(fresh) of the held snapshot was reused")
                let newStamp = UInt64(round + 1) * 10_000 + UInt64(i)
                try fill(writer, fresh, stamp: newStamp)
                try writer.freePage(live[i])
                live[i] = fresh
                stampOf[fresh] = newStamp
            }
            setState(writer, root: live[0], version: UInt64(round + 2))
            try writer.commit()
            if round % 3 == 0 { try pager.checkpoint() }
            try pager.pageAccounting().check(reachable: live)
            for (i, page) in original.enumerated() { #expect(try stamp(reader, page) == 1000 + UInt64(i)) }
        }
        #expect(reader.state.counters[0] == 1)
        let latest = pager.beginRead()
        for page in live { #expect(try stamp(latest, page) == stampOf[page]) }
        latest.rollback()
        reader.rollback()
        // With the snapshot gone (and a checkpoint for the pages on disk), the original pages
        // are handed out again.
        try pager.checkpoint()
        let writer = try pager.beginWrite()
        var reused: Set<PageNumber> = []
        for _ in 0..<(original.count + 5) { reused.insert(try writer.allocatePage()) }
        // All of them, except what the checkpoint took for the new free-list pages.
        let expected = Set(original).subtracting(pager.pageAccounting().freeListPages)
        #expect(expected.count >= original.count - 1)
        #expect(expected.isSubset(of: reused))
        writer.rollback()
    }

    @Test func noReuseWhileSnapshotHoldsPageReuseAfterRelease() throws {
        let fs = try makeFileSystem()
        let pager = try makePager(fs)
        // Memory-only page (never checkpointed).
        let setup = try pager.beginWrite()
        let page = try setup.allocatePage()
        try fill(setup, page, stamp: 42)
        setState(setup, root: page, version: 1)
        try setup.commit()
        let reader = pager.beginRead()

        let freer = try pager.beginWrite()
        try freer.freePage(page)
        setState(freer, root: nil, version: 2)
        try freer.commit()
        // Checkpoints do not write the freed page, and eviction must not drop its only copy.
        try pager.checkpoint()
        let filler = try pager.beginWrite()
        let others = try allocateFilled(filler, count: 3, stampBase: 0)
        #expect(!others.contains(page))
        filler.rollback()
        #expect(try stamp(reader, page) == 42)
        reader.rollback()

        let after = try pager.beginWrite()
        #expect(try after.allocatePage() == page)
        after.rollback()
    }

    @Test func durablePageIsNotReusedBeforeACheckpoint() throws {
        let fs = try makeFileSystem()
        let pager = try makePager(fs)
        let setup = try pager.beginWrite()
        let pages = try allocateFilled(setup, count: 2, stampBase: 1)
        setState(setup, root: pages[0], version: 1)
        try setup.commit()
        try pager.checkpoint()

        let freer = try pager.beginWrite()
        try freer.freePage(pages[1])
        setState(freer, root: pages[0], version: 2)
        try freer.commit()
        // No snapshot holds it, but the durable meta still references it.
        let writer = try pager.beginWrite()
        let fresh = try writer.allocatePage()
        #expect(fresh != pages[1])
        writer.rollback()
        try pager.checkpoint()
        let later = try pager.beginWrite()
        var got: Set<PageNumber> = []
        for _ in 0..<3 { got.insert(try later.allocatePage()) }
        #expect(got.contains(pages[1]))
        later.rollback()
        try pager.pageAccounting().check(reachable: [pages[0]])
    }

    @Test func freeListSurvivesReopenAndNothingLeaks() throws {
        let fs = try makeFileSystem()
        let pager = try makePager(fs)
        let setup = try pager.beginWrite()
        var live = try allocateFilled(setup, count: 1200, stampBase: 0)
        setState(setup, root: live[0], version: 1)
        try setup.commit()
        try pager.checkpoint()
        // Free every third page and a block, so the free list has many runs (more than one
        // free-list page holds: 254 runs per 4 KiB page).
        let freer = try pager.beginWrite()
        var freed: [PageNumber] = []
        for (i, page) in live.enumerated() where i % 3 == 1 || (i >= 900 && i < 1000) {
            try freer.freePage(page)
            freed.append(page)
        }
        let freedSet = Set(freed)
        live.removeAll { freedSet.contains($0) }
        setState(freer, root: live[0], version: 2)
        try freer.commit()
        try pager.checkpoint()
        let accounting = pager.pageAccounting()
        #expect(accounting.freeListPages.count >= 2)
        try accounting.check(reachable: live)
        try pager.close()

        let reopened = try Pager.open(fileSystem: fs, path: pagesPath, cacheBytes: 1 << 20)
        let after = reopened.pageAccounting()
        #expect(after == accounting)
        try after.check(reachable: live)
        #expect(Set(after.freePages) == Set(freed))
        // Reusing them all, checkpointing and reopening again keeps the books balanced:
        // the old free-list pages become free pages of the new state.
        let writer = try reopened.beginWrite()
        for _ in 0..<freed.count {
            let page = try writer.allocatePage()
            try fill(writer, page, stamp: page)
            live.append(page)
        }
        setState(writer, root: live[0], version: 3)
        try writer.commit()
        try reopened.checkpoint()
        try reopened.pageAccounting().check(reachable: live)
        try reopened.close()
        let third = try Pager.open(fileSystem: fs, path: pagesPath, cacheBytes: 1 << 20)
        try third.pageAccounting().check(reachable: live)
        #expect(third.pageAccounting().freePages == after.freeListPages)
    }

    @Test func checkpointWithoutChangesKeepsAccounting() throws {
        let fs = try makeFileSystem()
        let pager = try makePager(fs)
        let setup = try pager.beginWrite()
        let pages = try allocateFilled(setup, count: 3, stampBase: 0)
        try setup.freePage(pages[1])  // allocated and freed in one transaction
        setState(setup, root: pages[0], version: 1)
        try setup.commit()
        for _ in 0..<5 {
            try pager.checkpoint()
            try pager.pageAccounting().check(reachable: [pages[0], pages[2]])
        }
        #expect(pager.statistics.checkpoints == 5)
        try pager.close()
        let reopened = try Pager.open(fileSystem: fs, path: pagesPath, cacheBytes: 1 << 20)
        try reopened.pageAccounting().check(reachable: [pages[0], pages[2]])
    }

    @Test func closeDoesNotCheckpoint() throws {
        let fs = try makeFileSystem()
        let pager = try makePager(fs)
        let first = try pager.beginWrite()
        let kept = try allocateFilled(first, count: 2, stampBase: 1)
        setState(first, root: kept[0], version: 1)
        try first.commit()
        try pager.checkpoint()
        let second = try pager.beginWrite()
        try allocateFilled(second, count: 5, stampBase: 50)
        try second.freePage(kept[1])
        setState(second, root: kept[0], version: 2)
        try second.commit()
        let stats = pager.statistics
        #expect(stats.pageCount == 9)
        #expect(stats.checkpoints == 1)
        try pager.close()
        #expect(throws: StorageError.closed) { try pager.beginWrite() }
        #expect(throws: StorageError.closed) { try pager.checkpoint() }
        let reopened = try Pager.open(fileSystem: fs, path: pagesPath, cacheBytes: 1 << 20)
        #expect(reopened.committedState.counters[0] == 1)
        try reopened.pageAccounting().check(reachable: kept)
        let reader = reopened.beginRead()
        #expect(try stamp(reader, kept[1]) == 2)
    }

    /// `endRead` gives a reader no one else references back to the pager, and the next
    /// `beginRead` reuses it: after a commit with the new state (registered under the lock),
    /// without one with its own state (registered without the lock); either way its snapshot
    /// counts for page reuse until it ends. A reader referenced elsewhere ends as a rollback
    /// and is not reused; the pool keeps the pager no longer than its owner does.
    @Test func endedReadersAreReusedOnlyWhenUnreferenced() throws {
        let fs = try makeFileSystem()
        weak var weakPager: Pager?
        do {
            let pager = try makePager(fs)
            weakPager = pager
            let setup = try pager.beginWrite()
            let first = try allocateFilled(setup, count: 1, stampBase: 10)[0]
            setState(setup, root: first, version: 1)
            try setup.commit()

            var reader: PageTransaction? = pager.beginRead()
            let identity = ObjectIdentifier(reader!)
            #expect(reader!.state.counters[0] == 1)
            #expect(try stamp(reader!, first) == 10)
            pager.endRead(&reader)
            #expect(reader == nil)
            #expect(pager.oldestSnapshotID == nil)

            // A commit between: reused, with the new snapshot, registered.
            let writer = try pager.beginWrite()
            let second = try allocateFilled(writer, count: 1, stampBase: 20)[0]
            try writer.freePage(first)
            setState(writer, root: second, version: 2)
            try writer.commit()
            var again: PageTransaction? = pager.beginRead()
            #expect(ObjectIdentifier(again!) == identity)
            #expect(!again!.isFinished)
            #expect(again!.state.counters[0] == 2)
            #expect(again!.id == pager.committedState.transactionID)
            #expect(try stamp(again!, second) == 20)
            #expect(pager.oldestSnapshotID == again!.id)
            pager.endRead(&again)
            #expect(pager.oldestSnapshotID == nil, "the pooled reader's lock-free end unregisters it")

            // No commit between: the lock-free begin, same object and state, registered.
            var third: PageTransaction? = pager.beginRead()
            #expect(ObjectIdentifier(third!) == identity)
            #expect(third!.state.counters[0] == 2 && !third!.isFinished)
            #expect(pager.oldestSnapshotID == third!.id)
            #expect(try stamp(third!, second) == 20)
            // While it is open, the page freed by the commit after it stays unused.
            let rewrite = try pager.beginWrite()
            let replacement = try allocateFilled(rewrite, count: 1, stampBase: 30)[0]
            try rewrite.freePage(second)
            setState(rewrite, root: replacement, version: 3)
            try rewrite.commit()
            let probe = try pager.beginWrite()
            let fresh = try probe.allocatePage()
            #expect(fresh != second, "a page the open pooled snapshot reads was handed out")
            probe.rollback()
            #expect(try stamp(third!, second) == 20)
            pager.endRead(&third)
            #expect(pager.oldestSnapshotID == nil)

            // Referenced elsewhere: ended, not pooled, so the kept reference can never see
            // another snapshot.
            var referenced: PageTransaction? = pager.beginRead()
            let kept = referenced!
            pager.endRead(&referenced)
            #expect(referenced == nil && kept.isFinished)
            #expect(pager.oldestSnapshotID == nil)
            #expect(throws: StorageError.self) { _ = try kept.page(replacement) }
            var other: PageTransaction? = pager.beginRead()
            #expect(ObjectIdentifier(other!) != ObjectIdentifier(kept))
            pager.endRead(&other)
            try pager.close()
        }
        // Pooled readers hold no strong reference to their pager.
        #expect(weakPager == nil)
    }
}
