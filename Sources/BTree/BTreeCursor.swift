import ScrollbackFormat
import ScrollbackPager

/// A position in a `BTree`, movable forward and backward, that knows its rank.
///
/// The cursor keeps a root-to-leaf path stack (page, index, entry count per level) instead of
/// sibling pointers, which a copy-on-write tree cannot maintain. Moving within a leaf touches
/// no page; crossing to the next or previous leaf re-reads only the levels that change.
///
/// States: positioned on an entry (`isValid`), before the first entry (`rank == -1`) or after
/// the last (`rank == count`). `next()` from before-the-first goes to the first entry,
/// `previous()` from after-the-last goes to the last entry; moving further off an end stays.
///
/// Lifetime: valid for the life of its transaction. On a read snapshot it is stable (the
/// snapshot never changes). On a write transaction any modification of the tree invalidates
/// it: seek again. Not safe to use from two threads at once.
package struct BTreeCursor {
    struct Frame {
        var page: PageNumber
        var index: Int
        var count: Int
    }

    /// The root-to-leaf path, held inline (a cursor allocates nothing).
    struct FrameStack {
        /// The most levels a valid tree has: a non-root branch holds at least 21 children
        /// (a quarter of the 84 entries of the smallest page with the longest keys), the root
        /// at least 2, so a tree of height h has at least 2 * 21^(h - 2) leaves, each with an
        /// entry, and a u64 entry count allows h <= 16. A taller catalog entry is corrupt.
        typealias Storage = InlineArray<16, Frame>
        static var capacity: Int { Storage.count }
        private var storage = Storage(repeating: Frame(page: 0, index: 0, count: 0))
        private(set) var count = 0

        var isEmpty: Bool { count == 0 }
        var last: Frame? { count == 0 ? nil : storage[count - 1] }

        subscript(depth: Int) -> Frame {
            get { storage[depth] }
            set { storage[depth] = newValue }
        }

        mutating func removeAll() { count = 0 }

        /// REQUIRES: `count < capacity` (a descent checks the height first).
        mutating func append(_ frame: Frame) {
            storage[count] = frame
            count += 1
        }
    }

    package let tree: BTree
    var frames = FrameStack()
    /// Whether seeks by key count the entries before the position (see `rank`).
    let tracksRank: Bool
    /// Rank (0-based position in key order) of the current entry; -1 before the first entry,
    /// `tree.count` after the last. Unspecified after a seek by key on a cursor that does not
    /// track it (`BTree.scanCursor()`); seeks by rank always set it.
    package private(set) var rank: Int = -1

    /// A cursor that tracks its rank when `tracksRank` (a seek by key then sums the subtree
    /// counts before the path: up to half of each branch's entries).
    package init(_ tree: BTree, tracksRank: Bool = true) {
        self.tree = tree
        self.tracksRank = tracksRank
    }

    /// True iff the cursor is on an entry.
    package var isValid: Bool {
        guard let leaf = frames.last else { return false }
        return leaf.index >= 0 && leaf.index < leaf.count
    }

    // MARK: seeking (each O(log n))

    /// Positions on the first entry whose key is >= `key`. Returns `isValid`.
    @discardableResult
    package mutating func seek(atLeast key: BTreeKey) throws -> Bool {
        guard try descend(to: key) else { return false }
        let leaf = frames.count - 1
        if frames[leaf].index == frames[leaf].count {
            frames[leaf].index -= 1
            rank -= 1
            return try next()
        }
        return true
    }

    /// Positions on the last entry whose key is <= `key`. Returns `isValid`.
    @discardableResult
    package mutating func seek(atMost key: BTreeKey) throws -> Bool {
        guard try descend(to: key) else { return false }
        let leaf = frames.count - 1
        let index = frames[leaf].index
        if index < frames[leaf].count {
            let equal = try tree.withPage(frames[leaf].page, level: 0) { bytes, _ in tree.leafKey(bytes, index, equals: key) }
            if equal { return true }
        }
        if index == 0 { return try previous() }
        frames[leaf].index -= 1
        rank -= 1
        return true
    }

    /// Positions on the first entry. Returns `isValid` (false for an empty tree).
    @discardableResult
    package mutating func seekFirst() throws -> Bool {
        try seek(toRank: 0)
    }

    /// Positions on the last entry. Returns `isValid` (false for an empty tree).
    @discardableResult
    package mutating func seekLast() throws -> Bool {
        try seek(toRank: tree.count - 1)
    }

    /// Positions on the entry of rank `target` (0-based). A rank past either end leaves the
    /// cursor before the first / after the last entry and returns false.
    @discardableResult
    package mutating func seek(toRank target: Int) throws -> Bool {
        frames.removeAll()
        let root = tree.root
        guard root.rootPage != 0 else { rank = -1; return false }
        let total = Int(truncatingIfNeeded: root.entryCount)
        guard total > 0 else {
            throw StorageError.corrupted(file: tree.file, offset: 0,
                                         reason: "tree slot \(tree.slot): root page \(root.rootPage) with entryCount \(root.entryCount)")
        }
        let clamped = min(max(target, 0), total - 1)
        var page = root.rootPage
        var remaining = UInt64(clamped)
        let height = try checkedHeight(root)
        for depth in 0..<height {
            let level = height - 1 - depth
            let current = page
            let frame: Frame = try tree.withPage(current, level: level) { bytes, count in
                if level == 0 {
                    guard remaining < UInt64(count) else {
                        throw tree.corrupted(current, pageSize: bytes.count, at: Layout.entryCountOffset,
                                             "leaf holds \(count) entries, parent count implies rank \(remaining)")
                    }
                    return Frame(page: current, index: Int(remaining), count: count)
                }
                for index in 0..<count {
                    let c = tree.childCount(bytes, index)
                    if remaining < c {
                        page = tree.childPage(bytes, index)
                        return Frame(page: current, index: index, count: count)
                    }
                    remaining -= c
                }
                throw tree.corrupted(current, pageSize: bytes.count, at: Layout.headerSize,
                                     "subtree counts add up to less than the rank")
            }
            frames.append(frame)
        }
        rank = clamped
        if target < 0 { frames[height - 1].index = -1; rank = -1; return false }
        if target >= total { frames[height - 1].index = frames[height - 1].count; rank = total; return false }
        return true
    }

    // MARK: moving (O(1) within a leaf; O(levels crossed) between leaves)

    /// Moves to the next entry. Returns `isValid`.
    @discardableResult
    package mutating func next() throws -> Bool {
        guard !frames.isEmpty else { return false }
        let leaf = frames.count - 1
        if frames[leaf].index + 1 < frames[leaf].count {
            frames[leaf].index += 1
            rank += 1
            return true
        }
        if frames[leaf].index >= frames[leaf].count { return false }
        var depth = leaf - 1
        while depth >= 0, frames[depth].index + 1 >= frames[depth].count { depth -= 1 }
        guard depth >= 0 else {
            frames[leaf].index = frames[leaf].count
            rank += 1
            return false
        }
        frames[depth].index += 1
        try descendEdge(below: depth, leftmost: true)
        rank += 1
        return true
    }

    /// Moves to the previous entry. Returns `isValid`.
    @discardableResult
    package mutating func previous() throws -> Bool {
        guard !frames.isEmpty else { return false }
        let leaf = frames.count - 1
        if frames[leaf].index > 0 {
            frames[leaf].index -= 1
            rank -= 1
            return true
        }
        if frames[leaf].index < 0 { return false }
        var depth = leaf - 1
        while depth >= 0, frames[depth].index == 0 { depth -= 1 }
        guard depth >= 0 else {
            frames[leaf].index = -1
            rank = -1
            return false
        }
        frames[depth].index -= 1
        try descendEdge(below: depth, leftmost: false)
        rank -= 1
        return true
    }

    // MARK: reading the current entry

    /// The current key, or nil if the cursor is not on an entry.
    package func key() throws -> BTreeKey? {
        var result: BTreeKey? = nil
        try withCurrent { key, _ in result = key }
        return result
    }

    /// A copy of the current value, or nil if the cursor is not on an entry.
    package func value() throws -> [UInt8]? {
        var result: [UInt8]? = nil
        try withCurrent { _, value in result = Array(value) }
        return result
    }

    /// Calls `body` with the current key and value (a view valid only inside `body`).
    /// Returns false, without calling `body`, if the cursor is not on an entry.
    /// One page access; no allocation.
    @discardableResult
    package func withCurrent(_ body: (BTreeKey, UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        guard let leaf = frames.last, leaf.index >= 0, leaf.index < leaf.count else { return false }
        return try tree.withPage(leaf.page, level: 0) { bytes, count in
            guard leaf.index < count else {
                throw tree.corrupted(leaf.page, pageSize: bytes.count, at: Layout.entryCountOffset, "leaf entry count changed under a cursor")
            }
            try body(tree.loadKey(bytes, at: tree.leafOffset(leaf.index)), tree.leafValue(bytes, leaf.index))
            return true
        }
    }

    /// Visits the entries from the current one on, in key order (`forward`) or reverse, with
    /// one page access per leaf (not one per entry, as `withCurrent` and `next` would take):
    /// `body` gets each key and value (a view valid only inside the call) and returns false
    /// to stop. The cursor is then left on the entry for which `body` returned false and the
    /// walk returns true; when the walk runs off the tree's end, the cursor is after the last
    /// (before the first) entry and the walk returns false. Not positioned: returns false
    /// without calling `body`.
    ///
    /// The leaf is pinned while `body` runs; `body` must not modify the tree (on a write
    /// transaction) — it may read anything, including other snapshots. An error thrown by
    /// `body` leaves the cursor on the entry it was called with.
    @discardableResult
    package mutating func walk(forward: Bool, _ body: (BTreeKey, UnsafeRawBufferPointer) throws -> Bool) throws -> Bool {
        let tree = self.tree
        while isValid {
            let last = frames.count - 1
            let leaf = frames[last]
            var index = leaf.index
            let stopped: Bool
            do {
                stopped = try tree.withPage(leaf.page, level: 0) { bytes, count in
                    guard count == leaf.count else {
                        throw tree.corrupted(leaf.page, pageSize: bytes.count, at: Layout.entryCountOffset, "leaf entry count changed under a cursor")
                    }
                    while index >= 0 && index < count {
                        if try !body(tree.loadKey(bytes, at: tree.leafOffset(index)), tree.leafValue(bytes, index)) { return true }
                        index += forward ? 1 : -1
                    }
                    return false
                }
            } catch {
                frames[last].index = index
                rank += index - leaf.index
                throw error
            }
            if stopped {
                frames[last].index = index
                rank += index - leaf.index
                return true
            }
            // Ran off this leaf: stand on its last (first) entry and cross to the neighbour.
            let edge = forward ? leaf.count - 1 : 0
            frames[last].index = edge
            rank += edge - leaf.index
            guard try (forward ? next() : previous()) else { return false }
        }
        return false
    }

    // MARK: descent helpers

    /// The height of a non-empty tree, `.corrupted` when it is more than a valid tree has.
    private func checkedHeight(_ root: TreeRoot) throws -> Int {
        guard Int(root.height) <= FrameStack.capacity else {
            throw StorageError.corrupted(file: tree.file, offset: 0,
                                         reason: "tree slot \(tree.slot): height \(root.height) is more than any valid tree has (\(FrameStack.capacity))")
        }
        return Int(root.height)
    }

    /// Builds the path to the leaf where `key` belongs (leaf index = lower bound, possibly
    /// == count) and sets `rank` to the number of entries before that position.
    private mutating func descend(to key: BTreeKey) throws -> Bool {
        frames.removeAll()
        let root = tree.root
        guard root.rootPage != 0 else { rank = -1; return false }
        var page = root.rootPage
        var total = root.entryCount
        var before: UInt64 = 0
        let height = try checkedHeight(root)
        for depth in 0..<height {
            let level = height - 1 - depth
            let current = page
            let frame: Frame = try tree.withPage(current, level: level) { bytes, count in
                if level == 0 {
                    let index = tree.leafLowerBound(bytes, count: count, key)
                    before &+= UInt64(index)
                    return Frame(page: current, index: index, count: count)
                }
                let index = tree.branchChildIndex(bytes, count: count, key)
                if tracksRank {
                    before &+= tree.countBefore(bytes, count: count, child: index, total: total)
                    total = tree.childCount(bytes, index)
                }
                page = tree.childPage(bytes, index)
                return Frame(page: current, index: index, count: count)
            }
            frames.append(frame)
        }
        rank = Int(truncatingIfNeeded: before)
        return true
    }

    /// Rebuilds the frames below `depth` along the leftmost (or rightmost) edge of the child
    /// selected by `frames[depth].index`.
    private mutating func descendEdge(below depth: Int, leftmost: Bool) throws {
        let leafDepth = frames.count - 1
        var parent = frames[depth]
        for d in (depth + 1)...leafDepth {
            let level = leafDepth - d
            let child = try tree.withPage(parent.page, level: level + 1) { bytes, _ in tree.childPage(bytes, parent.index) }
            let count = try tree.withPage(child, level: level) { _, count in count }
            frames[d] = Frame(page: child, index: leftmost ? 0 : count - 1, count: count)
            parent = frames[d]
        }
    }
}

extension BTree {
    /// A new unpositioned cursor over this tree.
    package func cursor() -> BTreeCursor { BTreeCursor(self) }

    /// A new unpositioned cursor for scans, which do not ask for ranks: its seeks by key do
    /// not count the entries before the position (`rank` is then unspecified).
    package func scanCursor() -> BTreeCursor { BTreeCursor(self, tracksRank: false) }
}
