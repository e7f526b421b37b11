import ScrollbackFormat
import ScrollbackIO
@testable import ScrollbackPager
import Testing

/// The reader floor (pages a reader in another process may read are not reused) and the
/// read-only pager (a reader's view of a page file another process writes).
@Suite struct ReaderFloorTests {
    /// Commits `count` filled pages as the state (slot 0 → the first) and checkpoints.
    @discardableResult
    func commitPages(_ pager: Pager, count: Int, stamp: UInt64, freeing old: [PageNumber] = []) throws -> [PageNumber] {
        let txn = try pager.beginWrite()
        let pages = try allocateFilled(txn, count: count, stampBase: stamp)
        for page in old { try txn.freePage(page) }
        setState(txn, root: pages.first, version: stamp)
        try txn.commit()
        try pager.checkpoint()
        return pages
    }

    @Test func pagesFreedAboveTheFloorWaitAndAreReusedOnceItRises() throws {
        let fs = try makeFileSystem()
        let pager = try makePager(fs)
        let first = try commitPages(pager, count: 8, stamp: 100)
        let freeingTransaction = pager.committedState.transactionID + 1
        // A reader in another process reads the state of `first`: the floor stays below the
        // transaction that frees them.
        pager.setReaderFloor(freeingTransaction - 1)
        let second = try commitPages(pager, count: 8, stamp: 200, freeing: first)
        try pager.checkpoint()   // the frees are durable: only the floor holds them now
        #expect(pager.pagesAwaitingReaders >= 8)   // and the pages of replaced free lists
        let countBefore = pager.pageCount
        let third = try commitPages(pager, count: 8, stamp: 300, freeing: second)
        #expect(Set(third).isDisjoint(with: first), "a page the reader may read was reused")
        #expect(pager.pageCount > countBefore, "the file grows instead")

        // The reader moves on: the pages are reused.
        pager.setReaderFloor(.max)
        #expect(pager.pagesAwaitingReaders == 0)
        let fourth = try commitPages(pager, count: 8, stamp: 400, freeing: third)
        #expect(!Set(fourth).isDisjoint(with: first))
        let reader = pager.beginRead()
        #expect(try stamp(reader, fourth[0]) == 400)
        reader.rollback()
    }

    @Test func freePagesFoundAtOpenWaitForTheFloor() throws {
        let fs = try makeFileSystem()
        do {
            let pager = try makePager(fs)
            let first = try commitPages(pager, count: 6, stamp: 1)
            try commitPages(pager, count: 6, stamp: 2, freeing: first)
            try pager.checkpoint()
            try pager.close()
        }
        let pager = try Pager.open(fileSystem: fs, path: pagesPath, cacheBytes: 1 << 20)
        let free = Set(pager.freePageNumbers())
        #expect(free.count >= 6)
        #expect(pager.pagesAwaitingReaders == free.count)
        // A reader of an older checkpoint: nothing found free at open is reused.
        pager.setReaderFloor(pager.durableTransactionID - 1)
        let txn = try pager.beginWrite()
        let fresh = try allocateFilled(txn, count: 4, stampBase: 9)
        #expect(Set(fresh).isDisjoint(with: free))
        txn.rollback()
        // No such reader: they are reused.
        pager.setReaderFloor(pager.durableTransactionID)
        let again = try pager.beginWrite()
        #expect(free.contains(try again.allocatePage()))
        again.rollback()
    }

    @Test func memoryPagesAreNotHeldByTheFloor() throws {
        let fs = try makeFileSystem()
        let pager = try makePager(fs)
        try commitPages(pager, count: 2, stamp: 1)
        pager.setReaderFloor(0)
        // Pages allocated and freed between checkpoints never reach the file.
        let a = try pager.beginWrite()
        let pages = try allocateFilled(a, count: 4, stampBase: 5)
        setState(a, root: pages[0], version: 5)
        try a.commit()
        let b = try pager.beginWrite()
        for page in pages { try b.freePage(page) }
        let replacement = try allocateFilled(b, count: 1, stampBase: 6)
        setState(b, root: replacement[0], version: 6)
        try b.commit()
        let c = try pager.beginWrite()
        #expect(Set(pages).contains(try c.allocatePage()))
        c.rollback()
    }

    @Test func aReadOnlyPagerReadsTheFileAndKeepsItsWritesInMemory() throws {
        let fs = try makeFileSystem()
        let writer = try makePager(fs)
        let pages = try commitPages(writer, count: 4, stamp: 10)
        let fileBefore = fs.contents(of: pagesPath)
        var metas: [MetaPage] = []
        let reader = try Pager.openReadOnly(fileSystem: fs, path: pagesPath, cacheBytes: 1 << 20) { readNewest in
            let meta = try readNewest()
            metas.append(meta)
            return meta
        }
        #expect(reader.isReadOnly)
        #expect(metas.count == 1 && metas[0].state == writer.committedState)
        #expect(reader.committedState == writer.committedState)
        #expect(reader.pageCount == writer.pageCount)

        // An in-memory write: pages far above the file's, visible to new snapshots.
        let txn = try reader.beginWrite()
        let memory = try allocateFilled(txn, count: 3, stampBase: 50)
        #expect(memory.allSatisfy { $0 >= Pager.firstMemoryPage })
        try txn.freePage(pages[3])
        setState(txn, root: memory[0], version: 50)
        try txn.commit()
        let snapshot = reader.beginRead()
        #expect(try stamp(snapshot, memory[0]) == 50)
        #expect(try stamp(snapshot, pages[1]) == 11)
        snapshot.rollback()
        #expect(throws: StorageError.self) { try reader.checkpoint() }
        #expect(fs.contents(of: pagesPath) == fileBefore, "a read-only pager wrote the file")

        // The writer checkpoints a newer state; the reader rebases onto it while an older
        // snapshot keeps reading its own state.
        let old = reader.beginRead()
        let newer = try commitPages(writer, count: 4, stamp: 20)
        let meta = try reader.readNewestMeta()
        #expect(meta.state == writer.committedState)
        let rebase = try reader.beginRebase(to: meta)
        #expect(rebase.state.trees == meta.state.trees)
        #expect(newer.allSatisfy { $0 >= metas[0].pageCount }, "the newer state has pages past the older one's file")
        #expect(try stamp(rebase, newer[0]) == 20, "the rebase reads the newer state's pages before it commits")
        try rebase.commit()
        let fresh = reader.beginRead()
        #expect(fresh.state.counters[0] == 20)
        #expect(try stamp(fresh, newer[0]) == 20)
        #expect(old.state.counters[0] == 50)
        #expect(try stamp(old, memory[1]) == 51, "the older generation's memory pages live while it is read")
        #expect(reader.oldestBaseInUse().checkpointSequence < meta.checkpointSequence)
        old.rollback()
        #expect(reader.oldestBaseInUse() == meta)
        fresh.rollback()

        // The base itself, and its free list as the writer left it.
        let base = reader.beginReadOfBase()
        #expect(base.state.trees == meta.state.trees)
        base.rollback()
        let free = try reader.readBaseFreeList()
        #expect(free.freePages.count == Int(meta.freePageCount))

        // A page number past the file's pages that no memory page holds is damage.
        let probe = reader.beginRead()
        #expect(throws: StorageError.self) { _ = try probe.page(meta.pageCount + 5) }
        probe.rollback()
        reader.dropCachedFilePages()
        #expect(reader.cachedPageNumbers.allSatisfy { $0 >= Pager.firstMemoryPage })
        try reader.close()
        try writer.close()
    }
}
