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
            try body(leafValue(bytes, index))
            return true
        }
    }

    /// Calls `body` with the last entry whose key is at most `key` — its key and its value (a
    /// view valid only inside `body`) — and `limit`: nil, or a key at most the next entry's
    /// (the next entry's own when it is in the same leaf, else the separator above the leaf on
    /// the path), so that no other entry's key lies in [the entry's key, limit). Returns false,
    /// without calling `body`, when every key is above `key` (or the tree is empty). Cost: one
    /// descent, no allocation; a cursor's seek and a copy of the value when the entry is the
    /// last of the leaf before the one `key` descends to (a separator left below that leaf's
    /// first key by a delete).
    @discardableResult
    package func withLast(atMost key: BTreeKey, _ body: (BTreeKey, UnsafeRawBufferPointer, BTreeKey?) throws -> Void) throws -> Bool {
        let root = self.root
        guard root.rootPage != 0 else { return false }
        var page = root.rootPage
        var level = Int(root.height) - 1
        var upper: BTreeKey? = nil
        while level > 0 {
            page = try withPage(page, level: level) { bytes, count in
                let index = branchChildIndex(bytes, count: count, key)
                if index + 1 < count { upper = loadKey(bytes, at: branchOffset(index + 1) + Layout.branchKeyOffset) }
                return childPage(bytes, index)
            }
            level -= 1
        }
        let found = try withPage(page, level: 0) { bytes, count -> Bool in
            var index = leafLowerBound(bytes, count: count, key)
            if index == count || !leafKey(bytes, index, equals: key) {
                guard index > 0 else { return false }
                index -= 1
            }
            let limit = index + 1 < count ? loadKey(bytes, at: leafOffset(index + 1)) : upper
            try body(loadKey(bytes, at: leafOffset(index)), leafValue(bytes, index), limit)
            return true
        }
        if found { return true }
        // Every key of the leaf is above `key` (a separator below the leaf's first key): the
        // entry, if any, is the last of an earlier leaf.
        var cursor = self.cursor()
        guard try cursor.seek(atMost: key) else { return false }
        var entry: (BTreeKey, [UInt8])? = nil
        _ = try cursor.withCurrent { k, value in entry = (k, Array(value)) }
        guard let (entryKey, value) = entry else { return false }
        let limit = try cursor.next() ? try cursor.key() : nil
        try value.withUnsafeBytes { try body(entryKey, $0, limit) }
        return true
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
        return Int(truncatingIfNeeded: try rank(key, inclusive: inclusive, inSubtree: root.rootPage,
                                                level: Int(root.height) - 1, total: root.entryCount))
    }

    /// Entries `< key` (`<= key` if `inclusive`) in the subtree of `page` (at `level`, holding
    /// `total` entries).
    func rank(_ key: BTreeKey, inclusive: Bool, inSubtree start: PageNumber, level startLevel: Int, total startTotal: UInt64) throws -> UInt64 {
        var page = start
        var level = startLevel
        var total = startTotal
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
            return before &+ UInt64(index)
        }
    }

    /// Number of entries with keys in the half-open `range`. O(log n): the two bounds descend
    /// together while they share a child, so a narrow range costs about one descent.
    package func count(in range: Range<BTreeKey>) throws -> Int {
        try count(from: range.lowerBound, to: range.upperBound, inclusive: false)
    }

    /// Number of entries with keys in the closed `range`. O(log n), as `count(in:)` above.
    package func count(in range: ClosedRange<BTreeKey>) throws -> Int {
        try count(from: range.lowerBound, to: range.upperBound, inclusive: true)
    }

    /// Number of entries `e` with `lower <= e < upper`, or `lower <= e <= upper` when
    /// `inclusive`; 0 when `lower > upper`. O(log n).
    package func count(from lower: BTreeKey, to upper: BTreeKey, inclusive: Bool) throws -> Int {
        let root = self.root
        guard root.rootPage != 0, !(upper < lower) else { return 0 }
        var page = root.rootPage
        var level = Int(root.height) - 1
        var total = root.entryCount
        while level > 0 {
            // Same child for both bounds: descend; the entries before it cancel out.
            let step: (same: Bool, page: PageNumber, total: UInt64, between: UInt64,
                       lowPage: PageNumber, lowTotal: UInt64, highPage: PageNumber, highTotal: UInt64)
            step = try withPage(page, level: level) { bytes, count in
                let low = branchChildIndex(bytes, count: count, lower)
                // `upper` ≥ `lower`: its child is `low` unless the next separator is ≤ `upper`
                // (one comparison for a narrow range instead of a second search).
                let high = low + 1 < count && storedKey(bytes, at: branchOffset(low + 1) + Layout.branchKeyOffset, isAtMost: upper)
                    ? branchChildIndex(bytes, count: count, upper) : low
                if low >= high {
                    return (true, childPage(bytes, low), childCount(bytes, low), 0, 0, 0, 0, 0)
                }
                return (false, 0, 0, sumCounts(bytes, low..<high),
                        childPage(bytes, low), childCount(bytes, low), childPage(bytes, high), childCount(bytes, high))
            }
            if step.same {
                page = step.page
                total = step.total
                level -= 1
                continue
            }
            let below = try rank(upper, inclusive: inclusive, inSubtree: step.highPage, level: level - 1, total: step.highTotal)
            let skipped = try rank(lower, inclusive: false, inSubtree: step.lowPage, level: level - 1, total: step.lowTotal)
            return Int(truncatingIfNeeded: step.between &+ below &- skipped)
        }
        _ = total
        return try withPage(page, level: 0) { bytes, count in
            let low = leafLowerBound(bytes, count: count, lower)
            var high = leafLowerBound(bytes, from: low, count: count, upper)
            if inclusive, high < count, leafKey(bytes, high, equals: upper) { high += 1 }
            return max(0, high - low)
        }
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
                throw corrupted(page, pageSize: bytes.count, at: Layout.headerSize,
                                "subtree counts add up to less than rank \(remaining)")
            }
            level -= 1
        }
        return try withPage(page, level: 0) { bytes, count -> Bool in
            guard remaining < UInt64(count) else {
                throw corrupted(page, pageSize: bytes.count, at: Layout.entryCountOffset,
                                "leaf holds \(count) entries, parent count implies rank \(remaining)")
            }
            let index = Int(remaining)
            try body(loadKey(bytes, at: leafOffset(index)), leafValue(bytes, index))
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
