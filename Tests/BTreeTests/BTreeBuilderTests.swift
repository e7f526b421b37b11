import ScrollbackBTree
import ScrollbackFormat
import ScrollbackIO
import ScrollbackPager
import Testing

/// Bottom-up building: every size around the page boundaries gives a valid tree with the
/// right contents and the fewest pages; builds are rebuildable after freeing.
@Suite struct BTreeBuilderTests {
    /// 1-word keys, 8-byte values, 4096-byte pages: leaf capacity 254, branch capacity 169.
    static let leafCapacity = 254
    static let branchCapacity = 169

    func build(_ pager: Pager, count: Int, keyWords: Int = 1, valueSize: Int = 8, slot: Int = 0) throws {
        let txn = try pager.beginWrite()
        let tree = try BTree.create(in: txn, slot: slot, keyWords: keyWords, valueSize: valueSize)
        var builder = try BTreeBuilder(tree)
        for i in 0..<UInt64(count) {
            let key = keyWords == 1 ? BTreeKey(i * 3 + 1) : BTreeKey(i / 7, i * 3, i)
            try builder.append(key, value: valueBytes(key, version: 0, size: valueSize))
        }
        try builder.finish()
        try tree.checkInvariants()
        try txn.commit()
    }

    func expectContents(_ pager: Pager, count: Int, keyWords: Int = 1, valueSize: Int = 8) throws {
        let snapshot = pager.beginRead()
        defer { snapshot.rollback() }
        let tree = try BTree(snapshot, slot: 0)
        #expect(tree.count == count)
        var cursor = tree.cursor()
        var valid = try cursor.seekFirst()
        var i: UInt64 = 0
        while valid {
            let expected = keyWords == 1 ? BTreeKey(i * 3 + 1) : BTreeKey(i / 7, i * 3, i)
            try cursor.withCurrent { key, value in
                #expect(key == expected && Array(value) == valueBytes(expected, version: 0, size: valueSize), "entry \(i)")
            }
            i += 1
            valid = try cursor.next()
        }
        #expect(Int(i) == count)
        if count > 0 && keyWords == 1 {
            #expect(try tree.rank(BTreeKey(UInt64(count / 2) * 3 + 1)) == count / 2)
        }
    }

    @Test func everySizeAroundThePageBoundariesIsValid() throws {
        let c = Self.leafCapacity
        let sizes = [0, 1, 2, c - 1, c, c + 1, c + 62, c + 63, 2 * c, 2 * c + 1, 3 * c + 10,
                     c * Self.branchCapacity, c * Self.branchCapacity + 1, c * Self.branchCapacity + 63]
        for size in sizes {
            let pager = try makePager()
            try build(pager, count: size)
            try checkCommitted(pager)
            try expectContents(pager, count: size)
        }
    }

    @Test func pagesAreFull() throws {
        let pager = try makePager()
        let count = 100_000
        try build(pager, count: count, keyWords: 3, valueSize: 8)
        let snapshot = pager.beginRead()
        defer { snapshot.rollback() }
        let summary = try BTree(snapshot, slot: 0).checkInvariants()
        let leafCapacity = (4096 - 32) / 32
        let leaves = (count + leafCapacity - 1) / leafCapacity
        #expect(summary.pages <= leaves + leaves / 100 + 3, "\(summary.pages) pages for \(leaves) full leaves")
        try expectContents(pager, count: count, keyWords: 3, valueSize: 8)
    }

    /// Leaves built 90% full hold the same entries in about 1/0.9 as many pages, and the room
    /// left takes later inserts between the built keys without a split (with full leaves,
    /// every one of them splits a leaf).
    @Test func leavesBuiltWithRoomTakeInsertsWithoutSplits() throws {
        for fill in [1.0, 0.9] {
            let pager = try makePager()
            let count = 50_000
            let txn = try pager.beginWrite()
            let tree = try BTree.create(in: txn, slot: 0, keyWords: 1, valueSize: 8)
            var builder = try BTreeBuilder(tree, leafFill: fill)
            for i in 0..<UInt64(count) { try builder.append(BTreeKey(i * 3 + 1), value: smallValue(i * 3 + 1)) }
            try builder.finish()
            let built = try tree.checkInvariants().pages
            let fullLeaves = (count + Self.leafCapacity - 1) / Self.leafCapacity
            if fill == 1 {
                #expect(built <= fullLeaves + fullLeaves / 100 + 3, "fill 1: \(built) pages for \(fullLeaves) full leaves")
            } else {
                let leaves = Int((Double(count) / Double(Int(Double(Self.leafCapacity) * fill))).rounded(.up))
                #expect(built >= leaves && built <= leaves + leaves / 100 + 3, "fill \(fill): \(built) pages for \(leaves) leaves")
            }
            // One insert between built keys in each of 100 leaves spread over the tree.
            for n in 0..<UInt64(100) {
                let key = (n * UInt64(count) / 100) * 3 + 2
                #expect(try tree.insert(BTreeKey(key), value: smallValue(key)), "fill \(fill) key \(key)")
            }
            let after = try tree.checkInvariants().pages
            if fill == 1 {
                #expect(after >= built + 90, "fill 1: 100 inserts into full leaves split them: \(built) → \(after) pages")
            } else {
                #expect(after == built, "fill \(fill): inserts into leaves with room split none: \(built) → \(after) pages")
            }
            try txn.commit()
        }
        // Out of range fills are refused.
        let pager = try makePager()
        let txn = try pager.beginWrite()
        let tree = try BTree.create(in: txn, slot: 0, keyWords: 1, valueSize: 8)
        #expect(throws: StorageError.self) { _ = try BTreeBuilder(tree, leafFill: 0) }
        #expect(throws: StorageError.self) { _ = try BTreeBuilder(tree, leafFill: 1.5) }
        txn.rollback()
    }

    @Test func refusesBadInput() throws {
        let pager = try makePager()
        let txn = try pager.beginWrite()
        let tree = try BTree.create(in: txn, slot: 0, keyWords: 1, valueSize: 8)
        var builder = try BTreeBuilder(tree)
        try builder.append(BTreeKey(5), value: smallValue(5))
        #expect(throws: StorageError.self) { try builder.append(BTreeKey(5), value: smallValue(5)) }
        #expect(throws: StorageError.self) { try builder.append(BTreeKey(9), value: [1, 2]) }
        try builder.finish()
        try txn.commit()
        // A non-empty tree is refused.
        let again = try pager.beginWrite()
        #expect(throws: StorageError.self) { _ = try BTreeBuilder(try BTree(again, slot: 0)) }
        again.rollback()
    }

    /// Freeing every page and building again gives a valid file with no leaked page.
    @Test func freeAllPagesThenRebuild() throws {
        let pager = try makePager()
        try build(pager, count: 5000)
        try pager.checkpoint()
        let txn = try pager.beginWrite()
        let tree = try BTree(txn, slot: 0)
        try tree.freeAllPages()
        #expect(tree.count == 0)
        var builder = try BTreeBuilder(tree)
        for i in 0..<UInt64(3000) { try builder.append(BTreeKey(i * 3 + 1), value: valueBytes(BTreeKey(i * 3 + 1), version: 0, size: 8)) }
        try builder.finish()
        try txn.commit()
        try checkCommitted(pager)
        try pager.checkpoint()
        try checkCommitted(pager)
        try expectContents(pager, count: 3000)
    }
}

/// The free tail of the page file goes back to the file system at checkpoint.
@Suite struct PageFileShrinkTests {
    @Test func freeTailIsReturnedAndTheFileReopens() throws {
        let fs = MemoryFileSystem()
        let pager = try Pager.create(fileSystem: fs, path: "/pages", pageSize: 4096, cacheBytes: 64 << 20)
        let txn = try pager.beginWrite()
        let small = try BTree.create(in: txn, slot: 1, keyWords: 1, valueSize: 8)
        for k in 0..<UInt64(100) { try small.insert(BTreeKey(k), value: smallValue(k)) }
        let big = try BTree.create(in: txn, slot: 0, keyWords: 1, valueSize: 8)
        var builder = try BTreeBuilder(big)
        for k in 0..<UInt64(50_000) { try builder.append(BTreeKey(k), value: smallValue(k)) }
        try builder.finish()
        try txn.commit()
        try pager.checkpoint()
        let grown = try #require(fs.contents(of: "/pages")).count
        #expect(grown > 200 * 4096)
        // Drop the big tree (its pages are at the end). The first checkpoint frees them on
        // disk (and puts its free list at the end), the second moves the list to a low page,
        // the third cuts the tail.
        let drop = try pager.beginWrite()
        try BTree(drop, slot: 0).freeAllPages()
        try drop.commit()
        try pager.checkpoint()
        try pager.checkpoint()
        try pager.checkpoint()
        try checkCommitted(pager)
        let shrunk = try #require(fs.contents(of: "/pages")).count
        #expect(shrunk < 10 * 4096, "page file of \(shrunk) bytes after freeing the tail")
        let accounting = pager.pageAccounting()
        #expect(accounting.pageCount * 4096 == UInt64(shrunk))
        // It reopens, reads, and grows again from the low pages.
        let reopened = try Pager.open(fileSystem: fs, path: "/pages", cacheBytes: 1 << 20)
        try checkCommitted(reopened)
        let again = try reopened.beginWrite()
        let tree = try BTree(again, slot: 1)
        #expect(tree.count == 100)
        for k in 100..<UInt64(2000) { try tree.insert(BTreeKey(k), value: smallValue(k)) }
        try again.commit()
        try reopened.checkpoint()
        try checkCommitted(reopened)
    }
}
