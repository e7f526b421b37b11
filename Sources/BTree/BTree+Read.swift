import ScrollbackFormat
import ScrollbackPager

extension BTree {
    /// Calls `body` with the value stored under `key` (a view valid only inside `body`).
    /// Returns false, without calling `body`, if the key is absent. O(log n); no allocation.
    /// (Non-generic on purpose: generic members of `package` types are not specialized
    /// across modules, so a generic form would pay for runtime generic metadata per call.)
    @discardableResult
    package func withValue(for key: BTreeKey, _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        let root = self.root
        guard root.rootPage != 0 else { return false }
        var page = root.rootPage
        var level = Int(root.height) - 1
        while level > 0 {
            page = try withPage(page, level: level) { bytes, count in
                childPage(bytes, branchChildIndex(bytes, count: count, key))
            }
            level -= 1
        }
        return try withPage(page, level: 0) { bytes, count -> Bool in
            let index = leafLowerBound(bytes, count: count, key)
            guard index < count, leafKey(bytes, index, equals: key) else { return false }
            let offset = leafOffset(index) + keyWords * 8
            try body(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + valueSize)]))
            return true
        }
    }

    /// A copy of the value stored under `key`, or nil. O(log n).
    package func get(_ key: BTreeKey) throws -> [UInt8]? {
        var result: [UInt8]? = nil
        try withValue(for: key) { result = Array($0) }
        return result
    }

    /// True iff `key` is in the tree. O(log n).
    package func contains(_ key: BTreeKey) throws -> Bool {
        try withValue(for: key) { _ in }
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
    /// key order). Returns false, without calling `body`, if `rank` is outside 0..<count. O(log n).
    /// Throws `.corrupted` if the per-entry counts do not add up.
    @discardableResult
    package func withEntry(atRank rank: Int, _ body: (BTreeKey, UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        let root = self.root
        guard rank >= 0, UInt64(rank) < root.entryCount else { return false }
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
                throw corrupted(page, pageSize: bytes.count, at: layout.headerSize,
                                "subtree counts add up to less than rank \(remaining)")
            }
            level -= 1
        }
        return try withPage(page, level: 0) { bytes, count -> Bool in
            guard remaining < UInt64(count) else {
                throw corrupted(page, pageSize: bytes.count, at: layout.entryCountOffset,
                                "leaf holds \(count) entries, parent count implies rank \(remaining)")
            }
            let offset = leafOffset(Int(remaining))
            let key = loadKey(bytes, at: offset)
            let valueOffset = offset + keyWords * 8
            try body(key, UnsafeRawBufferPointer(rebasing: bytes[valueOffset..<(valueOffset + valueSize)]))
            return true
        }
    }

    /// The key of the entry of rank `rank`, or nil. O(log n).
    package func key(atRank rank: Int) throws -> BTreeKey? {
        var result: BTreeKey? = nil
        try withEntry(atRank: rank) { key, _ in result = key }
        return result
    }
}
