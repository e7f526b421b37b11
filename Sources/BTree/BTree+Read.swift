import ScrollbackFormat
import ScrollbackPager

extension BTree {
    /// Calls `body` with the value stored under `key` (a view valid only inside `body`) and
    /// returns its result, or returns nil if the key is absent. O(log n); no allocation.
    package func withValue<R>(for key: BTreeKey, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        let root = self.root
        guard root.rootPage != 0 else { return nil }
        var page = root.rootPage
        var level = Int(root.height) - 1
        while level > 0 {
            page = try withPage(page, level: level) { bytes, count in
                childPage(bytes, branchChildIndex(bytes, count: count, key))
            }
            level -= 1
        }
        return try withPage(page, level: 0) { bytes, count -> R? in
            let index = leafLowerBound(bytes, count: count, key)
            guard index < count, leafKey(bytes, index, equals: key) else { return nil }
            let offset = leafOffset(index) + keyWords * 8
            return try body(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + valueSize)]))
        }
    }

    /// A copy of the value stored under `key`, or nil. O(log n).
    package func get(_ key: BTreeKey) throws -> [UInt8]? {
        try withValue(for: key) { Array($0) }
    }

    /// True iff `key` is in the tree. O(log n).
    package func contains(_ key: BTreeKey) throws -> Bool {
        try withValue(for: key) { _ in true } ?? false
    }

    /// Number of entries whose key is < `key` (or <= `key` when `inclusive`). O(log n).
    package func rank(_ key: BTreeKey, inclusive: Bool = false) throws -> Int {
        let root = self.root
        guard root.rootPage != 0 else { return 0 }
        var page = root.rootPage
        var level = Int(root.height) - 1
        var total = root.entryCount
        var before: UInt64 = 0
        while level > 0 {
            (page, before, total) = try withPage(page, level: level) { bytes, count in
                let index = branchChildIndex(bytes, count: count, key)
                return (childPage(bytes, index), before &+ countBefore(bytes, count: count, child: index, total: total),
                        childCount(bytes, index))
            }
            level -= 1
        }
        return try withPage(page, level: 0) { bytes, count in
            var index = leafLowerBound(bytes, count: count, key)
            if inclusive, index < count, leafKey(bytes, index, equals: key) { index += 1 }
            return Int(truncatingIfNeeded: before) + index
        }
    }

    /// Number of entries with keys in the half-open `range`. O(log n).
    package func count(in range: Range<BTreeKey>) throws -> Int {
        try rank(range.upperBound) - rank(range.lowerBound)
    }

    /// Number of entries with keys in the closed `range`. O(log n).
    package func count(in range: ClosedRange<BTreeKey>) throws -> Int {
        try rank(range.upperBound, inclusive: true) - rank(range.lowerBound)
    }

    /// Calls `body` with the key and value of the entry of rank `rank` (0-based, ascending
    /// key order) and returns its result, or nil if `rank` is outside 0..<count. O(log n).
    /// Throws `.corrupted` if the per-entry counts do not add up.
    package func withEntry<R>(atRank rank: Int, _ body: (BTreeKey, UnsafeRawBufferPointer) throws -> R) throws -> R? {
        let root = self.root
        guard rank >= 0, UInt64(rank) < root.entryCount else { return nil }
        var page = root.rootPage
        var level = Int(root.height) - 1
        var remaining = UInt64(rank)
        while level > 0 {
            (page, remaining) = try withPage(page, level: level) { bytes, count in
                var rest = remaining
                for index in 0..<count {
                    let c = childCount(bytes, index)
                    if rest < c { return (childPage(bytes, index), rest) }
                    rest -= c
                }
                throw corrupted(page, pageSize: bytes.count, at: BTreePageLayout.headerSize,
                                "subtree counts add up to less than rank \(remaining)")
            }
            level -= 1
        }
        return try withPage(page, level: 0) { bytes, count -> R in
            guard remaining < UInt64(count) else {
                throw corrupted(page, pageSize: bytes.count, at: BTreePageLayout.entryCountOffset,
                                "leaf holds \(count) entries, parent count implies rank \(remaining)")
            }
            let offset = leafOffset(Int(remaining))
            let key = loadKey(bytes, at: offset)
            let valueOffset = offset + keyWords * 8
            return try body(key, UnsafeRawBufferPointer(rebasing: bytes[valueOffset..<(valueOffset + valueSize)]))
        }
    }

    /// The key of the entry of rank `rank`, or nil. O(log n).
    package func key(atRank rank: Int) throws -> BTreeKey? {
        try withEntry(atRank: rank) { key, _ in key }
    }
}
