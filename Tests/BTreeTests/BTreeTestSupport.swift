import ScrollbackBTree
import ScrollbackFormat
import ScrollbackIO
import ScrollbackPager
import Testing

/// A pager over an in-memory file system for B+tree tests.
func makePager(pageSize: Int = 4096) throws -> Pager {
    try Pager.create(fileSystem: MemoryFileSystem(), path: "/pages", pageSize: pageSize, cacheBytes: 64 << 20)
}

/// A deterministic value of `size` bytes for (key, version).
func valueBytes(_ key: BTreeKey, version: UInt64, size: Int) -> [UInt8] {
    var state = key.w0 &* 0x9E37_79B9_7F4A_7C15 ^ key.w1 &* 31 ^ key.w2 &* 131 ^ key.w3 &* 1313 ^ version &* 0xBF58_476D_1CE4_E5B9
    var bytes = [UInt8](repeating: 0, count: size)
    for i in 0..<size {
        if i % 8 == 0 { state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407 }
        bytes[i] = UInt8(truncatingIfNeeded: state >> UInt64((i % 8) * 8))
    }
    return bytes
}

/// Checks every tree of the committed state and that every page is reachable or free exactly once.
func checkCommitted(_ pager: Pager) throws {
    let snapshot = pager.beginRead()
    defer { snapshot.rollback() }
    let reachable = try BTree.checkAllTrees(in: snapshot)
    try BTree.checkPageAccounting(pager.pageAccounting(), reachable: reachable, pageSize: pager.pageSize)
}

/// 8-byte little-endian encoding of `k`, padded or cut to `size`.
func smallValue(_ k: UInt64, size: Int = 8) -> [UInt8] {
    var value = [UInt8](repeating: 0, count: size)
    for i in 0..<min(8, size) { value[i] = UInt8(truncatingIfNeeded: k >> UInt64(8 * i)) }
    return value
}

/// Builds a tree in slot 0 holding 1-word keys `keys`, values = `smallValue(key)`.
func buildTree(_ pager: Pager, keys: some Sequence<UInt64>, valueSize: Int = 8) throws {
    let txn = try pager.beginWrite()
    let tree = try BTree.create(in: txn, slot: 0, keyWords: 1, valueSize: valueSize)
    for k in keys {
        #expect(try tree.insert(BTreeKey(k), value: smallValue(k, size: valueSize)))
    }
    try txn.commit()
}

struct ModelFailure: Error, CustomStringConvertible {
    var description: String
}
