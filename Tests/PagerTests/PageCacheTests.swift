import ScrollbackPager
import ScrollbackFormat
import ScrollbackIO
import Testing

/// The page cache: capacity, CLOCK eviction, pins, dirty frames, counters.
@Suite struct PageCacheTests {
    /// A checkpointed, reopened file with `count` filled pages and a cold cache of
    /// `cacheFrames` frames.
    func coldPager(count: Int, cacheFrames: Int) throws -> (Pager, [PageNumber]) {
        let fs = try makeFileSystem()
        let pager = try makePager(fs)
        let txn = try pager.beginWrite()
        let pages = try allocateFilled(txn, count: count, stampBase: 0)
        setState(txn, root: pages[0], version: 1)
        try txn.commit()
        try pager.checkpoint()
        try pager.close()
        return (try Pager.open(fileSystem: fs, path: pagesPath, cacheBytes: cacheFrames * 4096), pages)
    }

    @Test func cacheBoundIsRespectedAndEvictionsCounted() throws {
        let (pager, pages) = try coldPager(count: 100, cacheFrames: 16)
        #expect(pager.statistics.cacheCapacityBytes == 16 * 4096)
        let reader = pager.beginRead()
        for round in 0..<3 {
            for (i, page) in pages.enumerated() {
                #expect(try stamp(reader, page) == UInt64(i))
                #expect(pager.statistics.cachedBytes <= 16 * 4096, "round \(round) page \(page)")
            }
        }
        let stats = pager.statistics
        #expect(stats.misses >= 100)
        #expect(stats.evictions >= 100 - 16)
        #expect(stats.dirtyBytes == 0)
        #expect(pager.cachedPageNumbers.count <= 16)
    }

    /// New pages beyond the cache's capacity stay dirty (the cache grows); allocating them
    /// must not sweep the whole frame table each time (it did: quadratic in the dirty frames),
    /// and reads that evict among them pass at most the sweep limit of dirty frames per miss.
    @Test func evictionSweepsStayBoundedAmongDirtyFrames() throws {
        let (pager, pages) = try coldPager(count: 40, cacheFrames: 16)
        let reader = pager.beginRead()
        for page in pages { _ = try stamp(reader, page) }
        let before = pager.statistics.sweptFrames
        let txn = try pager.beginWrite()
        _ = try allocateFilled(txn, count: 6000, stampBase: 1000)
        #expect(pager.statistics.dirtyBytes >= 6000 * 4096)
        let allocating = pager.statistics.sweptFrames - before
        #expect(allocating <= 16 * 2 * 16, "swept \(allocating) frames for 6000 new pages")
        let beforeReads = pager.statistics.sweptFrames
        let missesBefore = pager.statistics.misses
        for _ in 0..<3 {
            for (i, page) in pages.enumerated() { #expect(try stamp(reader, page) == UInt64(i)) }
        }
        let misses = pager.statistics.misses - missesBefore
        let reading = pager.statistics.sweptFrames - beforeReads
        #expect(misses > 0)
        #expect(reading <= misses * UInt64(2 * 1024 + 2 * 16 + 40), "swept \(reading) frames for \(misses) misses")
        txn.rollback()
    }

    @Test func hitsAndMisses() throws {
        let (pager, pages) = try coldPager(count: 4, cacheFrames: 16)
        let reader = pager.beginRead()
        _ = try stamp(reader, pages[0])
        var stats = pager.statistics
        #expect(stats.misses == 1)
        #expect(stats.hits == 0)
        for _ in 0..<5 { _ = try stamp(reader, pages[0]) }
        stats = pager.statistics
        #expect(stats.misses == 1)
        #expect(stats.hits == 5)
    }

    @Test func pinnedPagesAreNotEvicted() throws {
        let (pager, pages) = try coldPager(count: 60, cacheFrames: 8)
        let reader = pager.beginRead()
        let pinned = try reader.page(pages[0])
        let pinnedAddress = pinned.bytes.baseAddress
        let pinned2 = try reader.page(pages[1])
        for page in pages.dropFirst(2) { _ = try stamp(reader, page) }
        #expect(pager.statistics.evictions > 0)
        // Still mapped and the same memory, with the same bytes.
        #expect(pager.cachedPageNumbers.contains(pages[0]))
        #expect(pager.cachedPageNumbers.contains(pages[1]))
        #expect(pinned.bytes.loadLE(UInt64.self, at: PageHeader.userWord) == 0)
        #expect(pinned2.bytes.loadLE(UInt64.self, at: PageHeader.userWord) == 1)
        let again = try reader.page(pages[0])
        #expect(again.bytes.baseAddress == pinnedAddress)
    }

    @Test func everyFramePinnedGrowsTheCacheInsteadOfFailing() throws {
        let (pager, pages) = try coldPager(count: 30, cacheFrames: 8)
        let reader = pager.beginRead()
        var refs: [Int] = []
        // Hold 20 pins at once (more than the 8 frames, and more than the 16 pin slots of a
        // transaction) through nested scopes; read each page twice (miss, then hit).
        func hold(_ index: Int) throws {
            guard index < 20 else {
                #expect(pager.statistics.cachedBytes >= 20 * 4096)
                for (i, page) in pages.prefix(20).enumerated() { #expect(try stamp(reader, page) == UInt64(i)) }
                return
            }
            let miss = try reader.page(pages[index])
            let ref = try reader.page(pages[index])
            refs.append(Int(ref.bytes.loadLE(UInt64.self, at: PageHeader.userWord)))
            #expect(miss.bytes.baseAddress == ref.bytes.baseAddress)
            try hold(index + 1)
        }
        try hold(0)
        #expect(refs == Array(0..<20))
        // Once unpinned, reading more pages brings it back under the bound.
        for page in pages { _ = try stamp(reader, page) }
        reader.rollback()
        try pager.checkpoint()
        #expect(pager.statistics.cachedBytes <= 8 * 4096)
    }

    @Test func dirtyPagesStayUntilCheckpointThenBecomeEvictable() throws {
        let fs = try makeFileSystem()
        let pager = try makePager(fs, cacheBytes: 8 * 4096)
        let writer = try pager.beginWrite()
        let pages = try allocateFilled(writer, count: 40, stampBase: 0)
        setState(writer, root: pages[0], version: 1)
        try writer.commit()
        var stats = pager.statistics
        #expect(stats.dirtyBytes == 40 * 4096)
        #expect(stats.cachedBytes >= 40 * 4096)  // dirty frames may exceed the bound
        // Reading them all (and more) evicts none of them: their only copy is in memory.
        let reader = pager.beginRead()
        for (i, page) in pages.enumerated() { #expect(try stamp(reader, page) == UInt64(i)) }
        #expect(pager.statistics.evictions == 0)
        reader.rollback()
        try pager.checkpoint()
        stats = pager.statistics
        #expect(stats.dirtyBytes == 0)
        #expect(stats.cachedBytes <= 8 * 4096)
        let again = pager.beginRead()
        for (i, page) in pages.enumerated() { #expect(try stamp(again, page) == UInt64(i)) }
        #expect(pager.statistics.cachedBytes <= 8 * 4096)
    }

    @Test func frameMapHandlesManyKeysAndRemovals() {
        var map = PageMap<Int32>()
        // Empty (nothing allocated yet): finds and removes nothing; emptied again, the same.
        #expect(map.find(0) == nil && map.find(12) == nil && map.remove(12) == nil && map.count == 0 && map.allKeys.isEmpty)
        map.insert(12, 1)
        #expect(map.find(12) == 1 && map.remove(12) == 1 && map.find(12) == nil && map.remove(12) == nil)
        map.removeAll()
        #expect(map.find(12) == nil && map.count == 0)
        var model: [UInt64: Int32] = [:]
        var rng = SplitMix(seed: 3)
        for step in 0..<20_000 {
            let key = rng.next() % 3000
            if rng.next() % 3 == 0 {
                #expect(map.remove(key) == model.removeValue(forKey: key))
            } else {
                map.insert(key, Int32(step))
                model[key] = Int32(step)
            }
            if step % 997 == 0 {
                for probe in UInt64(0)..<3000 where map.find(probe) != model[probe] {
                    Issue.record("key \(probe) at step \(step)")
                    return
                }
            }
        }
        #expect(map.count == model.count)
        #expect(Set(map.allKeys) == Set(model.keys))
    }

    @Test func freePageHeapPopsInOrder() {
        var heap = FreePageHeap()
        var rng = SplitMix(seed: 9)
        var values: [UInt64] = []
        for _ in 0..<500 {
            let value = rng.next() % 1000
            values.append(value)
            heap.push(value)
        }
        var popped: [UInt64] = []
        while let value = heap.popMin() { popped.append(value) }
        #expect(popped == values.sorted())
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
