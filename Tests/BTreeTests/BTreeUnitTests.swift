import ScrollbackBTree
import ScrollbackFormat
import ScrollbackPager
import Testing

/// Unit tests of the counted B+tree. Shape used unless said otherwise: 1-word keys, 8-byte
/// values, 4096-byte pages: leaf capacity (4096 - 32) / 16 = 254, minimum fill 15 (what a
/// sequential-run split may leave), underflow below 63 (a delete then merges or refills);
/// branch capacity 4064 / 24 = 169.
@Suite struct BTreeUnitTests {
    static let leafCapacity = 254
    static let leafMinimum = 15
    static let leafUnderflow = 63

    func keys(_ tree: BTree) throws -> [UInt64] {
        var result: [UInt64] = []
        var cursor = tree.cursor()
        var valid = try cursor.seekFirst()
        while valid {
            result.append(try cursor.key()!.w0)
            valid = try cursor.next()
        }
        return result
    }

    func childCounts(_ tree: BTree) throws -> [UInt64] {
        let ref = try tree.transaction.page(tree.root.rootPage)
        return try BTree.decodePage(ref.bytes, pageNumber: tree.root.rootPage).subtreeCounts
    }

    /// The absolute offset of the `.corrupted` error `body` throws; -1 if none, -2 for another error.
    func corruptionOffset(_ body: () throws -> Void) -> Int64 {
        do {
            try body()
        } catch let StorageError.corrupted(_, offset, _) {
            return Int64(offset)
        } catch {
            return -2
        }
        return -1
    }

    // MARK: insert and split

    @Test func insertFillsLeafThenSplitsAndGrowsRoot() throws {
        let pager = try makePager()
        try buildTree(pager, keys: (0..<UInt64(Self.leafCapacity)).map { $0 * 2 })
        do {
            let snapshot = pager.beginRead()
            let tree = try BTree(snapshot, slot: 0)
            #expect(tree.height == 1 && tree.count == Self.leafCapacity)
        }
        let txn = try pager.beginWrite()
        let tree = try BTree(txn, slot: 0)
        try tree.insert(BTreeKey(1), value: smallValue(1))  // one more than fits: split
        #expect(tree.height == 2 && tree.count == Self.leafCapacity + 1)
        #expect(try childCounts(tree) == [127, 128])
        #expect(try tree.key(atRank: 127) == BTreeKey(252))
        try tree.checkInvariants()
        try txn.commit()
        try checkCommitted(pager)
        // Grow to height 3: ascending inserts split the last leaf each time it fills.
        let txn2 = try pager.beginWrite()
        let tree2 = try BTree(txn2, slot: 0)
        var k: UInt64 = 1_000
        while tree2.height < 3 {
            try tree2.insert(BTreeKey(k), value: smallValue(k))
            k += 1
        }
        try tree2.checkInvariants()
        #expect(try tree2.count(in: BTreeKey(1_000)..<BTreeKey(k)) == Int(k - 1_000))
        try txn2.commit()
        try checkCommitted(pager)
    }

    @Test func newSmallestKeyRewritesSeparatorsUpTheLeftSpine() throws {
        let pager = try makePager()
        try buildTree(pager, keys: (0..<60_000).map { UInt64($0) * 10 + 100 })
        let txn = try pager.beginWrite()
        let tree = try BTree(txn, slot: 0)
        #expect(tree.height == 3)
        try tree.insert(BTreeKey(5), value: smallValue(5))
        try tree.checkInvariants()  // verifies every separator equals its subtree's minimum
        #expect(try tree.key(atRank: 0) == BTreeKey(5))
        #expect(try tree.delete(BTreeKey(5)))
        #expect(try tree.delete(BTreeKey(100)))
        try tree.checkInvariants()
        #expect(try tree.key(atRank: 0) == BTreeKey(110))
        try txn.commit()
        try checkCommitted(pager)
    }

    // MARK: duplicates

    @Test func duplicateInsertIsRejectedUpsertReplacesUpdateNeedsTheKey() throws {
        let pager = try makePager()
        let txn = try pager.beginWrite()
        let tree = try BTree.create(in: txn, slot: 3, keyWords: 2, valueSize: 4)
        #expect(try tree.insert(BTreeKey(1, 1), value: [1, 1, 1, 1]))
        #expect(try !tree.insert(BTreeKey(1, 1), value: [2, 2, 2, 2]))     // rejected, unchanged
        #expect(try tree.get(BTreeKey(1, 1)) == [1, 1, 1, 1])
        #expect(try tree.upsert(BTreeKey(1, 1), value: [3, 3, 3, 3]))       // replaced
        #expect(try tree.get(BTreeKey(1, 1)) == [3, 3, 3, 3])
        #expect(try !tree.upsert(BTreeKey(1, 2), value: [4, 4, 4, 4]))      // new key
        #expect(try tree.update(BTreeKey(1, 2), value: [5, 5, 5, 5]))
        #expect(try !tree.update(BTreeKey(9, 9), value: [6, 6, 6, 6]))      // absent: nothing
        // upsert(replacing:) shows the value it replaces, and nothing for a new key.
        var seen: [[UInt8]] = []
        let replacedOld = try ([7, 7, 7, 7] as [UInt8]).withUnsafeBytes { v in try tree.upsert(BTreeKey(1, 2), value: v) { seen.append(Array($0)) } }
        #expect(replacedOld && seen == [[5, 5, 5, 5]])
        #expect(try tree.get(BTreeKey(1, 2)) == [7, 7, 7, 7])
        let replacedNew = try ([8, 8, 8, 8] as [UInt8]).withUnsafeBytes { v in try tree.upsert(BTreeKey(1, 3), value: v) { seen.append(Array($0)) } }
        #expect(!replacedNew && seen.count == 1)
        #expect(try tree.get(BTreeKey(1, 3)) == [8, 8, 8, 8])
        #expect(try tree.delete(BTreeKey(1, 3)))
        // modify changes a value in place; an absent key is not offered.
        #expect(try tree.modify(BTreeKey(1, 2)) { $0[1] = 9 })
        #expect(try tree.get(BTreeKey(1, 2)) == [7, 9, 7, 7])
        var called = false
        let modifiedAbsent = try tree.modify(BTreeKey(1, 3)) { _ in called = true }
        #expect(!modifiedAbsent && !called)
        #expect(try tree.get(BTreeKey(1, 3)) == nil)
        #expect(try tree.get(BTreeKey(9, 9)) == nil)
        #expect(tree.count == 2)
        #expect(try !tree.delete(BTreeKey(9, 9)))
        #expect(throws: StorageError.self) { try tree.insert(BTreeKey(1, 1, 1), value: [0, 0, 0, 0]) }  // word past keyWords
        #expect(throws: StorageError.self) { try tree.insert(BTreeKey(2, 2), value: [0, 0]) }            // wrong value size
        #expect(throws: StorageError.self) { try BTree.create(in: txn, slot: 3, keyWords: 1, valueSize: 4) }
        #expect(throws: StorageError.self) { try BTree.create(in: txn, slot: 4, keyWords: 1, valueSize: 985) }
        #expect(throws: StorageError.self) { try BTree.create(in: txn, slot: 4, keyWords: 5, valueSize: 0) }
        #expect(throws: StorageError.self) { try BTree(txn, slot: 4) }   // unused slot
        try tree.checkInvariants()
        try txn.commit()
        let reader = pager.beginRead()
        #expect(throws: StorageError.self) { try BTree(reader, slot: 3).insert(BTreeKey(7, 7), value: [0, 0, 0, 0]) }
        reader.rollback()
        try checkCommitted(pager)
    }

    /// `modify` in a tree of three levels: copy on write, so a snapshot from before keeps the
    /// old value and a snapshot after the commit sees the new one; the tree stays valid.
    @Test func modifyCopiesOnWriteInATallTree() throws {
        let pager = try makePager()
        let load = try pager.beginWrite()
        let tree = try BTree.create(in: load, slot: 3, keyWords: 1, valueSize: 8)
        for k in 0..<UInt64(60_000) { try tree.insert(BTreeKey(k), value: withUnsafeBytes(of: k.littleEndian) { Array($0) }) }
        #expect(tree.root.height == 3)
        try load.commit()
        let before = pager.beginRead()
        let write = try pager.beginWrite()
        let writable = try BTree(write, slot: 3)
        for k in [UInt64(0), 31_337, 59_999] {
            #expect(try writable.modify(BTreeKey(k)) { $0.storeBytes(of: (k + 1_000_000).littleEndian, as: UInt64.self) })
        }
        try writable.checkInvariants()
        try write.commit()
        let after = pager.beginRead()
        for k in [UInt64(0), 31_337, 59_999] {
            #expect(try BTree(before, slot: 3).get(BTreeKey(k)) == withUnsafeBytes(of: k.littleEndian) { Array($0) })
            #expect(try BTree(after, slot: 3).get(BTreeKey(k)) == withUnsafeBytes(of: (k + 1_000_000).littleEndian) { Array($0) })
        }
        #expect(try BTree(after, slot: 3).get(BTreeKey(1)) == withUnsafeBytes(of: UInt64(1).littleEndian) { Array($0) })
        before.rollback()
        after.rollback()
        try checkCommitted(pager)
    }

    /// `modifyLast(atMost:)` finds the last entry whose key is at most the key asked for (in
    /// its leaf, or the last of the leaf before after a delete left a separator behind),
    /// writes the new value only when the body says so, copies on write, and offers nothing
    /// when every key is above.
    @Test func modifyLastRewritesTheEntryAtMostTheKey() throws {
        let pager = try makePager()
        let all = (0..<UInt64(1_000)).map { $0 * 10 }
        try buildTree(pager, keys: all)
        let before = pager.beginRead()
        let txn = try pager.beginWrite()
        let tree = try BTree(txn, slot: 0)
        #expect(tree.height == 2)
        var current: [UInt64: UInt64] = [:]   // values rewritten so far
        func rewrite(_ key: UInt64, to value: UInt64, store: Bool = true) throws -> (found: UInt64?, result: Bool?) {
            var found: UInt64? = nil
            let result = try tree.modifyLast(atMost: BTreeKey(key)) { entry, old, out in
                #expect(Array(old) == smallValue(current[entry.w0] ?? entry.w0))
                if store { current[entry.w0] = value }
                found = entry.w0
                smallValue(value).withUnsafeBytes { out.copyMemory(from: $0) }
                return store
            }
            return (found, result)
        }
        #expect(try rewrite(15, to: 7_001) == (10, true))
        #expect(try rewrite(20, to: 7_002) == (20, true))
        #expect(try rewrite(99_999, to: 7_003) == (9_990, true))
        #expect(try rewrite(5, to: 7_004, store: false) == (0, false))
        #expect(try tree.get(BTreeKey(10)) == smallValue(7_001))
        #expect(try tree.get(BTreeKey(20)) == smallValue(7_002))
        #expect(try tree.get(BTreeKey(9_990)) == smallValue(7_003))
        #expect(try tree.get(BTreeKey(0)) == smallValue(0))
        // The first key of the second leaf removed: what is at most it is the first leaf's last.
        let firstLeaf = Int(try childCounts(tree)[0])
        #expect(try tree.delete(BTreeKey(all[firstLeaf])))
        for probe in [all[firstLeaf], all[firstLeaf] + 5] {
            #expect(try rewrite(probe, to: 7_005) == (all[firstLeaf - 1], true))
        }
        #expect(try tree.get(BTreeKey(all[firstLeaf - 1])) == smallValue(7_005))
        try tree.checkInvariants()
        try txn.commit()
        #expect(try BTree(before, slot: 0).get(BTreeKey(10)) == smallValue(10))   // the snapshot kept the old value
        before.rollback()
        try checkCommitted(pager)
        // Every key above (and an empty tree): nil, and the body is not called.
        let other = try pager.beginWrite()
        let small = try BTree.create(in: other, slot: 5, keyWords: 1, valueSize: 8)
        var called = false
        #expect(try small.modifyLast(atMost: BTreeKey(5)) { _, _, _ in called = true; return true } == nil)
        try small.insert(BTreeKey(100), value: smallValue(100))
        #expect(try small.modifyLast(atMost: BTreeKey(50)) { _, _, _ in called = true; return true } == nil)
        #expect(!called)
        other.rollback()
    }

    /// `withLast(atMost:)` gives the last entry whose key is at most the key asked for (as a
    /// cursor's `seek(atMost:)` finds it), its value, and a limit that no other key lies
    /// between: the next key in the leaf, or a separator at most the next leaf's first key
    /// (nil only for the tree's last entry) — also after deletes left separators below their
    /// leaves' first keys; nothing when every key is above.
    @Test func withLastGivesTheEntryAtMostTheKeyAndALimit() throws {
        let pager = try makePager()
        let all = (0..<UInt64(3_000)).map { $0 * 10 }
        try buildTree(pager, keys: all)
        let txn = try pager.beginWrite()
        let tree = try BTree(txn, slot: 0)
        var rng = SeededRandomShuffle(seed: 7)
        var present = Set(all)
        // Deletes, among them leaves' first keys (their separators stay).
        var firsts: [UInt64] = []
        var offset = 0
        for count in try childCounts(tree) { firsts.append(all[offset]); offset += Int(count) }
        for key in firsts.dropFirst() + rng.shuffled(all).prefix(400) where present.contains(key) {
            #expect(try tree.delete(BTreeKey(key)))
            present.remove(key)
        }
        let sorted = present.sorted()
        var limited = 0
        for probe in (0..<2_000).map({ _ in rng.next() % 30_100 }) + firsts + firsts.map({ $0 + 1 }) {
            var got: (key: UInt64, value: [UInt8], limit: BTreeKey?)? = nil
            let found = try tree.withLast(atMost: BTreeKey(probe)) { key, value, limit in got = (key.w0, Array(value), limit) }
            var cursor = tree.cursor()
            let expected = try cursor.seek(atMost: BTreeKey(probe)) ? try cursor.key()?.w0 : nil
            #expect(found == (expected != nil), "probe \(probe)")
            guard let got, let expected else { continue }
            #expect(got.key == expected && got.value == smallValue(expected), "probe \(probe)")
            let index = sorted.firstIndex(of: expected)!
            if let limit = got.limit {
                limited += 1
                #expect(limit.w0 > probe, "probe \(probe): limit \(limit.w0)")
                #expect(index + 1 < sorted.count && limit.w0 <= sorted[index + 1], "probe \(probe): limit \(limit.w0)")
            } else {
                #expect(index + 1 == sorted.count, "probe \(probe): no limit before the last key")
            }
        }
        #expect(limited > 1_000)
        // Every key above, and an empty tree: false, and the body is not called.
        let small = try BTree.create(in: txn, slot: 5, keyWords: 1, valueSize: 8)
        var called = false
        #expect(try !small.withLast(atMost: BTreeKey(5)) { _, _, _ in called = true })
        try small.insert(BTreeKey(100), value: smallValue(100))
        #expect(try !small.withLast(atMost: BTreeKey(50)) { _, _, _ in called = true })
        #expect(!called)
        txn.rollback()
    }

    // MARK: delete, merge, redistribute, collapse

    /// A sequential run followed by other keys in its page (a conversation's appends before
    /// the next conversation's messages, a search term's postings before the next term's): the
    /// split puts the keys after the run into the right page and the run goes on in the left
    /// page's free space; at the page's end it splits at 15/16. The run's pages end full.
    @Test func aRunBeforeOtherKeysFillsItsPages() throws {
        let pager = try makePager()
        try buildTree(pager, keys: (0..<100).map { 1_000_000 + UInt64($0) })   // the keys that follow
        let txn = try pager.beginWrite()
        let tree = try BTree(txn, slot: 0)
        for k in UInt64(0)..<1000 { try tree.insert(BTreeKey(k), value: smallValue(k)) }
        #expect(try childCounts(tree) == [240, 240, 240, 240, 40, 100])
        try tree.checkInvariants()
        #expect(try keys(tree) == Array(0..<1000) + (0..<100).map { 1_000_000 + UInt64($0) })
        try txn.commit()
        try checkCommitted(pager)
    }

    @Test func deleteRedistributesThenMergesAndCollapsesRoot() throws {
        let pager = try makePager()
        // Ascending inserts split the full leaf at the insertion point (sequential run):
        // left [0, 240), right [240, 255) holds the minimum fill 15. Then fill the right leaf.
        try buildTree(pager, keys: 0..<255)
        let txn = try pager.beginWrite()
        let tree = try BTree(txn, slot: 0)
        #expect(try childCounts(tree) == [UInt64(254 + 1 - Self.leafMinimum), UInt64(Self.leafMinimum)])
        try tree.checkInvariants()
        for k in UInt64(255)..<494 { try tree.insert(BTreeKey(k), value: smallValue(k)) }
        #expect(try childCounts(tree) == [240, 254])
        // Delete from the left leaf until it falls below the underflow fill (63): 62 + 254 >
        // 254, so entries are redistributed: 158 / 158.
        for k in UInt64(0)..<178 { #expect(try tree.delete(BTreeKey(k))) }
        #expect(try childCounts(tree) == [158, 158])
        #expect(tree.height == 2)
        try tree.checkInvariants()
        #expect(try tree.key(atRank: 158) == BTreeKey(178 + 158))
        // Delete from the right leaf until it falls below the underflow fill: 158 + 62 fit one
        // page, so the leaves merge and the root collapses.
        var k: UInt64 = 493
        while tree.height == 2 {
            #expect(try tree.delete(BTreeKey(k)))
            k -= 1
        }
        #expect(tree.height == 1 && tree.count == 158 + Self.leafUnderflow - 1)
        try tree.checkInvariants()
        #expect(try keys(tree) == Array(178...k))
        try txn.commit()
        try checkCommitted(pager)
    }

    @Test func deleteEverythingEmptiesTheTreeAndFreesEveryPage() throws {
        let pager = try makePager()
        let all = (0..<20_000).map { UInt64($0) &* 0x9E37_79B9_7F4A_7C15 }
        try buildTree(pager, keys: all)
        var rng = SeededRandomShuffle(seed: 11)
        let order = rng.shuffled(all)
        for chunk in stride(from: 0, to: order.count, by: 1_000) {
            let txn = try pager.beginWrite()
            let tree = try BTree(txn, slot: 0)
            for k in order[chunk..<min(chunk + 1_000, order.count)] { #expect(try tree.delete(BTreeKey(k))) }
            try tree.checkInvariants()
            try txn.commit()
            try checkCommitted(pager)
        }
        let snapshot = pager.beginRead()
        let root = snapshot.state.trees[0]
        #expect(root.rootPage == 0 && root.height == 0 && root.entryCount == 0 && root.keyWords == 1)
        snapshot.rollback()
        #expect(pager.pageAccounting().freePages.count == Int(pager.pageAccounting().pageCount) - 2)
    }

    // MARK: rank, count, select

    @Test func rankCountAndSelectAtTheEdges() throws {
        let pager = try makePager()
        let n = 5_000
        try buildTree(pager, keys: (1...n).map { UInt64($0) * 10 })  // 10, 20, ..., 50000
        let snapshot = pager.beginRead()
        let tree = try BTree(snapshot, slot: 0)
        #expect(tree.height == 2)
        #expect(try tree.rank(BTreeKey(0)) == 0)
        #expect(try tree.rank(BTreeKey(10)) == 0)
        #expect(try tree.rank(BTreeKey(10), inclusive: true) == 1)
        #expect(try tree.rank(BTreeKey(15)) == 1)
        #expect(try tree.rank(BTreeKey(50_000)) == n - 1)
        #expect(try tree.rank(BTreeKey(50_000), inclusive: true) == n)
        #expect(try tree.rank(BTreeKey(.max)) == n)
        #expect(try tree.count(in: BTreeKey(10)..<BTreeKey(10)) == 0)
        #expect(try tree.count(in: BTreeKey(10)...BTreeKey(10)) == 1)
        #expect(try tree.count(in: BTreeKey(0)...BTreeKey(.max)) == n)
        #expect(try tree.count(in: BTreeKey(11)..<BTreeKey(20)) == 0)
        #expect(try tree.count(in: BTreeKey(11)...BTreeKey(20)) == 1)
        #expect(try tree.count(in: BTreeKey(25_000)..<BTreeKey(25_010)) == 1)
        #expect(try tree.count(from: BTreeKey(20), to: BTreeKey(10), inclusive: true) == 0)
        #expect(try tree.count(from: BTreeKey(10), to: BTreeKey(40), inclusive: false) == 3)
        #expect(try tree.count(from: BTreeKey(10), to: BTreeKey(40), inclusive: true) == 4)
        #expect(try tree.key(atRank: -1) == nil)
        #expect(try tree.key(atRank: 0) == BTreeKey(10))
        #expect(try tree.key(atRank: n - 1) == BTreeKey(50_000))
        #expect(try tree.key(atRank: n) == nil)
        for r in stride(from: 0, to: n, by: 97) {
            #expect(try tree.key(atRank: r) == BTreeKey(UInt64(r + 1) * 10))
            #expect(try tree.rank(BTreeKey(UInt64(r + 1) * 10)) == r)
        }
        // Unsigned order: the top bit sorts last.
        snapshot.rollback()
        let txn = try pager.beginWrite()
        let writer = try BTree(txn, slot: 0)
        try writer.insert(BTreeKey(1 << 63), value: smallValue(1))
        #expect(try writer.key(atRank: n) == BTreeKey(1 << 63))
        #expect(try writer.rank(BTreeKey(1 << 63)) == n)
        txn.rollback()
        // Empty tree.
        let txn2 = try pager.beginWrite()
        let empty = try BTree.create(in: txn2, slot: 7, keyWords: 4, valueSize: 0)
        #expect(try empty.rank(BTreeKey(5)) == 0)
        #expect(try empty.count(in: BTreeKey(0)...BTreeKey(.max)) == 0)
        #expect(try empty.key(atRank: 0) == nil)
        #expect(try empty.get(BTreeKey(1)) == nil)
        var cursor = empty.cursor()
        #expect(try !cursor.seekFirst())
        #expect(try !cursor.next())
        #expect(try !cursor.previous())
        #expect(try cursor.key() == nil)
        try txn2.commit()
    }

    // MARK: cursors

    /// A committed tree of `entries` entries with 4-word keys and 984-byte values (4 entries
    /// per leaf: deep), and a snapshot reading it.
    func deepTree(entries: Int) throws -> (PageTransaction, BTree) {
        let pager = try makePager()
        let txn = try pager.beginWrite()
        let tree = try BTree.create(in: txn, slot: 0, keyWords: 4, valueSize: 984)
        for i in 0..<entries {
            let k = BTreeKey(UInt64(i % 7) + 1, UInt64(i), 0, UInt64(i) * 3)
            try tree.insert(k, value: valueBytes(k, version: 1, size: 984))
        }
        try txn.commit()
        let snapshot = pager.beginRead()
        let reader = try BTree(snapshot, slot: 0)
        #expect(reader.height >= 3)
        return (snapshot, reader)
    }

    @Test func cursorsAtBothEndsAndAcrossLeafBoundaries() throws {
        let n = 600
        let (snapshot, reader) = try deepTree(entries: n)
        var all: [BTreeKey] = []
        var cursor = reader.cursor()
        var valid = try cursor.seekFirst()
        while valid {
            all.append(try cursor.key()!)
            #expect(try cursor.value() == valueBytes(all.last!, version: 1, size: 984))
            #expect(cursor.rank == all.count - 1)
            valid = try cursor.next()
        }
        #expect(all.count == n && all == all.sorted())
        // After the last: next stays off the end, previous comes back to the last entry.
        #expect(!cursor.isValid && cursor.rank == n)
        #expect(try !cursor.next())
        #expect(try cursor.previous() && cursor.key() == all[n - 1])
        // Backward across every leaf boundary.
        var i = n - 1
        valid = true
        while valid {
            #expect(try cursor.key() == all[i] && cursor.rank == i)
            i -= 1
            valid = try cursor.previous()
        }
        #expect(i == -1 && cursor.rank == -1 && !cursor.isValid)
        #expect(try !cursor.previous())
        #expect(try cursor.next() && cursor.key() == all[0])
        // Seeks: exact, between, before all, after all.
        #expect(try cursor.seek(atLeast: all[10]) && cursor.key() == all[10] && cursor.rank == 10)
        var between = all[10]
        between.w3 += 1
        #expect(try cursor.seek(atLeast: between) && cursor.key() == all[11])
        #expect(try cursor.seek(atMost: between) && cursor.key() == all[10])
        #expect(try !cursor.seek(atMost: BTreeKey(0)) && cursor.rank == -1)
        #expect(try cursor.next() && cursor.key() == all[0])
        #expect(try !cursor.seek(atLeast: BTreeKey(.max, .max, .max, .max)) && cursor.rank == n)
        #expect(try cursor.previous() && cursor.key() == all[n - 1])
        #expect(try cursor.seek(atMost: BTreeKey(.max, .max, .max, .max)) && cursor.key() == all[n - 1])
        #expect(try cursor.seek(toRank: 123) && cursor.key() == all[123])
        #expect(try !cursor.seek(toRank: n) && cursor.rank == n)
        #expect(try !cursor.seek(toRank: -5) && cursor.rank == -1)
        // Reverse scan of 20 after a seek (the "latest 20" query).
        var latest: [BTreeKey] = []
        valid = try cursor.seek(atMost: all[300])
        while valid, latest.count < 20 {
            latest.append(try cursor.key()!)
            valid = try cursor.previous()
        }
        #expect(latest == Array(all[281...300].reversed()))
        // Walks (one page access per leaf): every entry in both directions, values included.
        var walked: [BTreeKey] = []
        var wrongValues = 0
        #expect(try cursor.seekFirst())
        let ranOff = try cursor.walk(forward: true) { key, value in
            walked.append(key)
            if Array(value) != valueBytes(key, version: 1, size: 984) { wrongValues += 1 }
            return true
        }
        #expect(!ranOff && wrongValues == 0)
        #expect(walked == all && cursor.rank == n && !cursor.isValid)
        walked = []
        #expect(try cursor.seekLast())
        #expect(try !cursor.walk(forward: false) { key, _ in walked.append(key); return true })
        #expect(walked == all.reversed() && cursor.rank == -1 && !cursor.isValid)
        // Stopping: the cursor stands on the entry the body refused, rank included, at every
        // offset within a leaf and across leaves; next/previous go on from there.
        for (start, steps) in [(0, 0), (0, 3), (1, 4), (5, 17), (300, 1), (589, 9)] {
            #expect(try cursor.seek(toRank: start))
            var seen = 0
            #expect(try cursor.walk(forward: true) { _, _ in
                guard seen < steps else { return false }
                seen += 1
                return true
            })
            #expect(try cursor.rank == start + steps && cursor.key() == all[start + steps])
            #expect(try cursor.next() && cursor.key() == all[start + steps + 1] && cursor.rank == start + steps + 1)
            #expect(try cursor.seek(toRank: n - 1 - start))
            seen = 0
            #expect(try cursor.walk(forward: false) { _, _ in
                guard seen < steps else { return false }
                seen += 1
                return true
            })
            #expect(try cursor.rank == n - 1 - start - steps && cursor.key() == all[n - 1 - start - steps])
            #expect(try cursor.previous() && cursor.rank == n - 2 - start - steps)
        }
        // An unpositioned cursor walks nothing; a thrown error leaves the cursor where it was.
        var fresh = reader.cursor()
        var called = false
        #expect(try !fresh.walk(forward: true) { _, _ in called = true; return true })
        #expect(!called)
        struct Stop: Error {}
        #expect(try cursor.seek(toRank: 42))
        #expect(throws: Stop.self) { try cursor.walk(forward: true) { key, _ in if key == all[45] { throw Stop() }; return true } }
        #expect(try cursor.rank == 45 && cursor.key() == all[45])
        snapshot.rollback()
    }

    @Test func scanCursorsSeekAsRankingCursorsAndRejectAnImpossibleHeight() throws {
        // A deep tree (4 entries per leaf): the scan cursor skips the subtree counts on its way
        // down, and must still land on exactly the entries a rank-tracking cursor lands on.
        let n = 600
        let (snapshot, reader) = try deepTree(entries: n)
        var ranking = reader.cursor()
        var scanning = reader.scanCursor()
        var probes: [BTreeKey] = [BTreeKey(0), BTreeKey(.max, .max, .max, .max)]
        var all: [BTreeKey] = []
        #expect(try ranking.seekFirst())
        _ = try ranking.walk(forward: true) { key, _ in all.append(key); return true }
        for i in stride(from: 0, to: n, by: 37) {
            var between = all[i]
            between.w3 += 1
            probes += [all[i], between]
        }
        for probe in probes {
            #expect(try ranking.seek(atLeast: probe) == scanning.seek(atLeast: probe))
            #expect(try ranking.key() == scanning.key())
            #expect(try ranking.seek(atMost: probe) == scanning.seek(atMost: probe))
            #expect(try ranking.key() == scanning.key())
            // Both walk the same entries from there, across leaves.
            var fromRanking: [BTreeKey] = [], fromScanning: [BTreeKey] = []
            _ = try ranking.walk(forward: false) { key, _ in fromRanking.append(key); return fromRanking.count < 9 }
            _ = try scanning.walk(forward: false) { key, _ in fromScanning.append(key); return fromScanning.count < 9 }
            #expect(fromRanking == fromScanning)
        }
        // A catalog entry taller than any valid tree (17 levels) is corruption, not a trap.
        snapshot.state.trees[0].height = 17
        let tall = try BTree(snapshot, slot: 0)
        for seek in [{ (c: inout BTreeCursor) in _ = try c.seek(atLeast: BTreeKey(1)) },
                     { (c: inout BTreeCursor) in _ = try c.seek(atMost: BTreeKey(1)) },
                     { (c: inout BTreeCursor) in _ = try c.seek(toRank: 1) }] {
            var cursor = tall.scanCursor()
            let error = #expect(throws: StorageError.self) { try seek(&cursor) }
            if case .corrupted? = error {} else { Issue.record("expected .corrupted, got \(String(describing: error))") }
        }
        snapshot.rollback()
    }

    // MARK: snapshots

    @Test func snapshotStaysStableWhileTheWriterRewritesAndFreesItsPages() throws {
        let pager = try makePager()
        try buildTree(pager, keys: 0..<3_000)
        let old = pager.beginRead()
        let oldTree = try BTree(old, slot: 0)
        var cursor = oldTree.cursor()
        #expect(try cursor.seek(atLeast: BTreeKey(1_500)))
        // Rewrite everything: delete all, insert other keys, many commits.
        for round in 0..<6 {
            let txn = try pager.beginWrite()
            let tree = try BTree(txn, slot: 0)
            for k in UInt64(round * 500)..<UInt64(round * 500 + 500) { #expect(try tree.delete(BTreeKey(k))) }
            for k in UInt64(0)..<200 { try tree.upsert(BTreeKey(100_000 + k), value: smallValue(UInt64(round))) }
            try txn.commit()
            try checkCommitted(pager)
        }
        // The old snapshot still sees exactly its data, cursor included.
        #expect(oldTree.count == 3_000)
        for _ in 0..<1_000 { #expect(try cursor.next()) }
        #expect(try cursor.key() == BTreeKey(2_500) && cursor.rank == 2_500)
        #expect(try oldTree.get(BTreeKey(7)) == smallValue(7))
        try oldTree.checkInvariants()
        let newState = pager.beginRead()
        #expect(try BTree(newState, slot: 0).count == 200)
        newState.rollback()
        old.rollback()
        try checkCommitted(pager)
    }

    @Test func rollbackDiscardsEverything() throws {
        let pager = try makePager()
        try buildTree(pager, keys: 0..<1_000)
        let before = pager.pageAccounting()
        let txn = try pager.beginWrite()
        let tree = try BTree(txn, slot: 0)
        for k in UInt64(0)..<1_000 where k % 3 == 0 { try tree.delete(BTreeKey(k)) }
        for k in UInt64(5_000)..<6_000 { try tree.insert(BTreeKey(k), value: smallValue(k)) }
        txn.rollback()
        let snapshot = pager.beginRead()
        #expect(try keys(BTree(snapshot, slot: 0)) == Array(0..<1_000))
        snapshot.rollback()
        try checkCommitted(pager)
        #expect(pager.pageAccounting().pageCount >= before.pageCount)
    }

    // MARK: damage

    @Test func damagedTreePagesThrowCorrupted() throws {
        let pager = try makePager()
        try buildTree(pager, keys: 0..<2_000)
        let snapshot = pager.beginRead()
        let tree = try BTree(snapshot, slot: 0)
        let rootPage = tree.root.rootPage
        let (leftLeaf, rightLeaf) = try {
            let ref = try snapshot.page(rootPage)
            let d = try BTree.decodePage(ref.bytes, pageNumber: rootPage)
            return (d.children[0], d.children[1])
        }()
        // Damage helpers write through the read view (test only).
        func poke(_ page: PageNumber, _ offset: Int, _ bytes: [UInt8]) throws -> [UInt8] {
            let ref = try snapshot.page(page)
            let raw = UnsafeMutableRawBufferPointer(mutating: ref.bytes)
            let saved = Array(raw[offset..<(offset + bytes.count)])
            for (i, b) in bytes.enumerated() { raw[offset + i] = b }
            return saved
        }
        let base = rootPage * 4096
        // Entry count too large for the page.
        var saved = try poke(rootPage, 6, [0xFF, 0x7F])
        let o1 = corruptionOffset { _ = try tree.get(BTreeKey(5)) }
        #expect(o1 == Int64(base + 6))
        _ = try poke(rootPage, 6, saved)
        // Wrong page type.
        saved = try poke(leftLeaf, 4, [1])
        let o2 = corruptionOffset { _ = try tree.get(BTreeKey(5)) }
        #expect(o2 == Int64(leftLeaf * 4096 + 4))
        let o3 = corruptionOffset { var c = tree.cursor(); try c.seekFirst() }
        #expect(o3 == Int64(leftLeaf * 4096 + 4))
        _ = try poke(leftLeaf, 4, saved)
        // Page of another tree.
        saved = try poke(rightLeaf, 5, [6])
        let o4 = corruptionOffset { try tree.checkInvariants() }
        #expect(o4 == Int64(rightLeaf * 4096 + 5))
        _ = try poke(rightLeaf, 5, saved)
        // Subtree count mismatch: checkInvariants names the entry's count field; select does not trap.
        saved = try poke(rootPage, 32 + 8, [0x00, 0x00])
        let o5 = corruptionOffset { try tree.checkInvariants() }
        #expect(o5 == Int64(base + 32 + 8))
        _ = try? tree.key(atRank: 1_999)
        _ = try? tree.rank(BTreeKey(1_999))
        var c = tree.cursor()
        _ = try? c.seek(toRank: 1_999)
        _ = try poke(rootPage, 32 + 8, saved)
        // Keys out of order inside a leaf.
        saved = try poke(leftLeaf, 32, [0xFF, 0xFF])
        let o6 = corruptionOffset { try tree.checkInvariants() }
        #expect(o6 >= 0)
        _ = try poke(leftLeaf, 32, saved)
        // Child pointer to a page outside the file.
        saved = try poke(rootPage, 32, [0xFF, 0xFF, 0xFF, 0x00])
        let o7 = corruptionOffset { _ = try tree.get(BTreeKey(5)) }
        #expect(o7 >= 0)
        _ = try poke(rootPage, 32, saved)
        try tree.checkInvariants()
        // A damaged catalog entry: root without entries, or a wrong entry count / height.
        snapshot.state.trees[0].entryCount = 0
        let o10 = corruptionOffset { _ = try BTree(snapshot, slot: 0) }
        #expect(o10 == 0)
        snapshot.state.trees[0].entryCount = 1_999
        let o11 = corruptionOffset { try BTree(snapshot, slot: 0).checkInvariants() }
        #expect(o11 == 0)
        snapshot.state.trees[0].entryCount = 2_000
        snapshot.state.trees[0].height = 3
        let o12 = corruptionOffset { _ = try BTree(snapshot, slot: 0).get(BTreeKey(5)) }
        #expect(o12 == Int64(rootPage * 4096 + 24))
        snapshot.rollback()
    }

    @Test func pageAccountingDetectsLeaksAndDoubleUse() throws {
        let pager = try makePager()
        try buildTree(pager, keys: 0..<2_000)
        let snapshot = pager.beginRead()
        let reachable = try BTree.checkAllTrees(in: snapshot)
        let accounting = pager.pageAccounting()
        try BTree.checkPageAccounting(accounting, reachable: reachable, pageSize: 4096)
        var leaked = reachable
        let victim = leaked.removeFirst()
        let o8 = corruptionOffset { try BTree.checkPageAccounting(accounting, reachable: leaked, pageSize: 4096) }
        #expect(o8 == Int64(victim * 4096))
        var doubled = accounting
        doubled.freePages.append(reachable.first!)
        let o9 = corruptionOffset { try BTree.checkPageAccounting(doubled, reachable: reachable, pageSize: 4096) }
        #expect(o9 >= 0)
        snapshot.rollback()
    }
}

/// Fisher-Yates with a fixed seed.
struct SeededRandomShuffle {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func shuffled<T>(_ array: [T]) -> [T] {
        var a = array
        for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, Int(next() % UInt64(i + 1))) }
        return a
    }
}
