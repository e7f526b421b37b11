import ScrollbackBTree
import ScrollbackFormat
import ScrollbackPager
import TestSupport
import Testing

/// Random damage to tree-owned page bytes: every read and write operation either succeeds or
/// throws `StorageError`; nothing traps. (A trap would crash the test process.)
@Suite struct BTreeDamageTests {
    #if DEBUG
    static let iterations = 300
    #else
    static let iterations = 1_500
    #endif

    @Test(arguments: TestSeeds.seeds(default: [21, 22, 23]))
    func randomByteDamageNeverTraps(_ seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        let pager = try makePager()
        let txn = try pager.beginWrite()
        let shapes = [(1, 8), (2, 0), (3, 16), (4, 984)]
        let shape = shapes[Int(seed % 4)]
        let tree = try BTree.create(in: txn, slot: 1, keyWords: shape.0, valueSize: shape.1)
        func key(_ i: UInt64) -> BTreeKey {
            var k = BTreeKey(0)
            for w in 0..<shape.0 { k[word: w] = (i &* 0x9E37_79B9_7F4A_7C15) >> UInt64(8 * w) }
            return k
        }
        for i in UInt64(0)..<3_000 { try tree.insert(key(i), value: [UInt8](repeating: 7, count: shape.1)) }
        try txn.commit()
        let snapshot = pager.beginRead()
        let pages = Array(try BTree.checkAllTrees(in: snapshot)).sorted()
        var thrown = 0, survived = 0
        for iteration in 0..<Self.iterations {
            let page = pages[Int(rng.next() % UInt64(pages.count))]
            let ref = try snapshot.page(page)
            let raw = UnsafeMutableRawBufferPointer(mutating: ref.bytes)
            let owned = Array(4..<8) + Array(24..<min(raw.count, 24 + 64 * 48))
            let offset = owned[Int(rng.next() % UInt64(owned.count))]
            let saved = raw[offset]
            raw[offset] = rng.next() % 4 == 0 ? saved ^ 0x80 : UInt8(truncatingIfNeeded: rng.next())
            do {
                let reader = try BTree(snapshot, slot: 1)
                let probe = key(rng.next() % 3_200)
                _ = try reader.get(probe)
                _ = try reader.rank(probe, inclusive: iteration % 2 == 0)
                _ = try reader.count(in: probe...BTreeKey.max(keyWords: shape.0))
                _ = try reader.key(atRank: Int(rng.next() % 3_100))
                var cursor = reader.cursor()
                try cursor.seek(atMost: probe)
                for _ in 0..<40 { _ = try cursor.key(); try cursor.previous() }
                try cursor.seek(toRank: Int(rng.next() % 3_000))
                for _ in 0..<40 { _ = try cursor.value(); try cursor.next() }
                try reader.checkInvariants()
                survived += 1
            } catch is StorageError {
                thrown += 1
            }
            // Writes over the damaged snapshot, then rolled back.
            let writer = try pager.beginWrite()
            do {
                let w = try BTree(writer, slot: 1)
                for _ in 0..<20 {
                    let k = key(rng.next() % 3_200)
                    if rng.next() % 2 == 0 {
                        try w.delete(k)
                    } else {
                        try w.upsert(k, value: [UInt8](repeating: 1, count: shape.1))
                    }
                }
            } catch is StorageError {
                thrown += 1
            }
            writer.rollback()
            raw[offset] = saved
        }
        try BTree(snapshot, slot: 1).checkInvariants()
        snapshot.rollback()
        try checkCommitted(pager)
        #expect(thrown > Self.iterations / 20, "seed \(seed): damage was detected \(thrown) times, \(survived) reads survived")
    }
}
