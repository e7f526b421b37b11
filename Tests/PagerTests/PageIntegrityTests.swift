@testable import ScrollbackPager
import ScrollbackFormat
import ScrollbackIO
import Testing

/// Every page read from disk is checked: checksum, page number, write sequence.
@Suite struct PageIntegrityTests {
    /// A checkpointed file with `count` filled pages (pages 2..<2+count), closed.
    func checkpointedFile(count: Int, pageSize: Int = 4096) throws -> (MemoryFileSystem, [PageNumber]) {
        let fs = try makeFileSystem()
        let pager = try makePager(fs, pageSize: pageSize)
        let txn = try pager.beginWrite()
        let pages = try allocateFilled(txn, count: count, stampBase: 1000)
        setState(txn, root: pages[0], version: 1)
        try txn.commit()
        try pager.checkpoint()
        try pager.close()
        return (fs, pages)
    }

    @Test(arguments: [4096, 16384])
    func checksumDamageIsCorruptionAtThePageOffset(pageSize: Int) throws {
        let (fs, pages) = try checkpointedFile(count: 4, pageSize: pageSize)
        let victim = pages[2]
        for byteInPage in [0, 3, 4, 7, 24, 100, pageSize - 1] {
            let copy = try fileSystem(withPageFile: fs.contents(of: pagesPath)!)
            damage(copy, at: Int(victim) * pageSize + byteInPage)
            let pager = try Pager.open(fileSystem: copy, path: pagesPath, cacheBytes: 1 << 20)
            let reader = pager.beginRead()
            #expect(try stamp(reader, pages[1]) == 1001)
            do {
                _ = try reader.page(victim)
                Issue.record("damage at byte \(byteInPage) of page \(victim) not detected")
            } catch {
                expectCorrupted(error, offset: victim * UInt64(pageSize))
            }
            // Still an error on a retry: nothing bad was cached.
            #expect(throws: StorageError.self) { try reader.page(victim) }
        }
    }

    @Test func swappedPagesAreDetectedByPageNumber() throws {
        let (fs, pages) = try checkpointedFile(count: 4)
        var bytes = fs.contents(of: pagesPath)!
        let a = Int(pages[1]) * 4096
        let b = Int(pages[3]) * 4096
        let pageA = Array(bytes[a..<(a + 4096)])
        bytes.replaceSubrange(a..<(a + 4096), with: bytes[b..<(b + 4096)])
        bytes.replaceSubrange(b..<(b + 4096), with: pageA)
        let copy = try fileSystem(withPageFile: bytes)
        let pager = try Pager.open(fileSystem: copy, path: pagesPath, cacheBytes: 1 << 20)
        let reader = pager.beginRead()
        for page in [pages[1], pages[3]] {
            do {
                _ = try reader.page(page)
                Issue.record("misplaced page \(page) not detected")
            } catch {
                expectCorrupted(error, offset: page * 4096)
                #expect("\(error)".contains("misplaced"))
            }
        }
        #expect(try stamp(reader, pages[0]) == 1000)
    }

    @Test func truncatedFileIsCorruption() throws {
        let (fs, pages) = try checkpointedFile(count: 4)
        let bytes = fs.contents(of: pagesPath)!
        let copy = try fileSystem(withPageFile: Array(bytes[0..<(Int(pages[3]) * 4096 + 1000)]))
        let pager = try Pager.open(fileSystem: copy, path: pagesPath, cacheBytes: 1 << 20)
        let reader = pager.beginRead()
        #expect(try stamp(reader, pages[2]) == 1002)
        #expect(throws: StorageError.self) { try reader.page(pages[3]) }
    }

    @Test func pageNumbersOutsideThePageSpaceAreCorruption() throws {
        let fs = try makeFileSystem()
        let pager = try makePager(fs)
        let reader = pager.beginRead()
        for page: PageNumber in [0, 1, 2, 1000, .max] {
            do {
                _ = try reader.page(page)
                Issue.record("page \(page) outside the page space was returned")
            } catch {
                expectCorrupted(error)
            }
        }
    }

    @Test func pageFromALaterCheckpointIsRejected() throws {
        // A page whose write sequence is newer than the meta page in use (e.g. the newest meta
        // was lost and the older one is used) is not trusted.
        let fs = try makeFileSystem()
        let pager = try makePager(fs)
        let txn = try pager.beginWrite()
        let pages = try allocateFilled(txn, count: 1, stampBase: 5)
        setState(txn, root: pages[0], version: 1)
        try txn.commit()
        try pager.checkpoint()  // sequence 2, slot 0
        try pager.close()
        var bytes = fs.contents(of: pagesPath)!
        let offset = Int(pages[0]) * 4096
        bytes.withUnsafeMutableBytes { raw in
            let page = UnsafeMutableRawBufferPointer(rebasing: raw[offset..<(offset + 4096)])
            Pager.seal(page, sequence: 99)
        }
        let copy = try fileSystem(withPageFile: bytes)
        let reopened = try Pager.open(fileSystem: copy, path: pagesPath, cacheBytes: 1 << 20)
        do {
            _ = try reopened.beginRead().page(pages[0])
            Issue.record("page with a future write sequence accepted")
        } catch {
            expectCorrupted(error, offset: pages[0] * 4096)
        }
    }

    @Test func checkpointStampsSequenceAndChecksum() throws {
        let (fs, pages) = try checkpointedFile(count: 2)
        let bytes = fs.contents(of: pagesPath)!
        for page in pages {
            try bytes.withUnsafeBytes { raw in
                let view = UnsafeRawBufferPointer(rebasing: raw[(Int(page) * 4096)..<(Int(page) * 4096 + 4096)])
                #expect(view.loadLE(UInt64.self, at: PageHeader.writeSequence) == 2)
                #expect(view.loadLE(UInt64.self, at: PageHeader.pageNumber) == page)
                try Pager.verifyPage(view, number: page, maxSequence: 2, file: pagesPath)
            }
        }
    }

    @Test func damagedFreeListIsCorruptionOnOpen() throws {
        // Build a file with a free list, then damage its page.
        let fs = try makeFileSystem()
        let pager = try makePager(fs)
        let txn = try pager.beginWrite()
        let pages = try allocateFilled(txn, count: 6, stampBase: 1)
        setState(txn, root: pages[0], version: 1)
        try txn.commit()
        let txn2 = try pager.beginWrite()
        try txn2.freePage(pages[3])
        try txn2.freePage(pages[4])
        try txn2.commit()
        try pager.checkpoint()
        let listPages = pager.pageAccounting().freeListPages
        #expect(listPages.count == 1)
        try pager.close()
        let clean = fs.contents(of: pagesPath)!
        for byteInPage in [0, 4, 6, 8, 24, 32, 40, 4095] {
            let copy = try fileSystem(withPageFile: clean)
            damage(copy, at: Int(listPages[0]) * 4096 + byteInPage)
            do {
                _ = try Pager.open(fileSystem: copy, path: pagesPath, cacheBytes: 1 << 20)
                Issue.record("damaged free-list byte \(byteInPage) not detected")
            } catch {
                expectCorrupted(error, offset: listPages[0] * 4096)
            }
        }
    }
}
