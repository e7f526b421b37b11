import ScrollbackFormat
import ScrollbackPager

/// Builds a tree bottom-up from entries given in strictly increasing key order: leaves are
/// filled to capacity (or to `leafFill` of it), then each branch level is filled to capacity,
/// so the tree takes the fewest pages its entries allow (bulk loads, rebuilds). The result
/// satisfies every rule of
/// spec/btree-page.md (the last two pages of a level share their entries when the last one
/// would fall below the minimum fill).
///
/// Cost: O(n) entry copies, one page allocation per page, no descent. Memory: one page of
/// pending entries per level plus the list of the pages of the level being built.
///
/// REQUIRES: an empty tree in a write transaction. Not thread-safe (like the transaction).
package struct BTreeBuilder {
    let tree: BTree
    let pageSize: Int
    /// Entries per leaf before the next leaf starts: the leaf capacity times `leafFill`, at
    /// least the minimum fill.
    let leafTarget: Int
    /// Entries of the leaf being filled and of the leaf before it (kept unwritten so the last
    /// two can be balanced at `finish`).
    private var current: [UInt8]
    private var currentCount = 0
    private var previous: [UInt8]
    private var previousCount = 0
    private var lastKey: BTreeKey?
    private var total: UInt64 = 0
    /// The written leaves: (page, first key, entry count).
    private var children: [(page: PageNumber, key: BTreeKey, count: UInt64)] = []

    /// `leafFill` (0 < leafFill ≤ 1, `.invalidArgument` otherwise): the share of a leaf's
    /// capacity the builder fills. Below 1 it leaves room in every leaf for keys inserted
    /// later between the built ones (a leaf built full splits at the first insert into it:
    /// after a bulk load into full leaves, each of the first random inserts costs a new page).
    package init(_ tree: BTree, leafFill: Double = 1) throws {
        guard tree.transaction.isWritable else { throw StorageError.invalidArgument("BTreeBuilder needs a write transaction") }
        guard tree.count == 0 else { throw StorageError.invalidArgument("BTreeBuilder builds an empty tree; tree \(tree.slot) holds \(tree.count) entries") }
        guard leafFill > 0, leafFill <= 1 else { throw StorageError.invalidArgument("BTreeBuilder: leafFill \(leafFill) is not in (0, 1]") }
        self.tree = tree
        pageSize = tree.transaction.pageSize
        let leafCapacity = tree.leafCapacity(pageSize)
        leafTarget = min(leafCapacity, max(tree.underflowFill(isLeaf: true, pageSize: pageSize), Int(Double(leafCapacity) * leafFill)))
        let capacity = leafCapacity * tree.leafEntrySize
        current = [UInt8](repeating: 0, count: capacity)
        previous = [UInt8](repeating: 0, count: capacity)
    }

    /// Entries appended so far.
    package var count: UInt64 { total }

    /// Appends one entry. REQUIRES: `key` greater than every key before (`.invalidArgument`
    /// otherwise, nothing appended); `value` exactly the tree's value size.
    package mutating func append(_ key: BTreeKey, value: UnsafeRawBufferPointer) throws {
        if let lastKey, !(lastKey < key) {
            throw StorageError.invalidArgument("BTreeBuilder: key \(key) does not follow \(lastKey)")
        }
        guard value.count == tree.valueSize, key.fits(keyWords: tree.keyWords) else {
            throw StorageError.invalidArgument("BTreeBuilder: entry of \(value.count) value bytes or key \(key) does not fit tree \(tree.slot)")
        }
        if currentCount == leafTarget {
            if previousCount > 0 { try writeLeaf(previous, count: previousCount) }
            swap(&previous, &current)
            previousCount = currentCount
            currentCount = 0
        }
        let offset = currentCount * tree.leafEntrySize
        current.withUnsafeMutableBytes { bytes in
            tree.storeKey(key, bytes, at: offset)
            if tree.valueSize > 0 {
                UnsafeMutableRawBufferPointer(rebasing: bytes[(offset + tree.keyWords * 8)..<(offset + tree.leafEntrySize)])
                    .copyMemory(from: value)
            }
        }
        currentCount += 1
        lastKey = key
        total += 1
    }

    package mutating func append(_ key: BTreeKey, value: [UInt8]) throws {
        try value.withUnsafeBytes { try append(key, value: $0) }
    }

    /// Writes the last leaves and every branch level and publishes the root, count and height
    /// in the transaction's state.
    package mutating func finish() throws {
        let minimum = tree.underflowFill(isLeaf: true, pageSize: pageSize)
        if previousCount > 0 && currentCount < minimum {
            // Balance the last two leaves: all their entries, split in half.
            let size = tree.leafEntrySize
            let all = previousCount + currentCount
            var combined = Array(previous[0..<(previousCount * size)])
            combined += current[0..<(currentCount * size)]
            let left = all / 2
            try writeLeaf(Array(combined[0..<(left * size)]), count: left)
            try writeLeaf(Array(combined[(left * size)...]), count: all - left)
        } else {
            if previousCount > 0 { try writeLeaf(previous, count: previousCount) }
            if currentCount > 0 { try writeLeaf(current, count: currentCount) }
        }
        previousCount = 0
        currentCount = 0
        var level = 1
        var nodes = children
        while nodes.count > 1 {
            nodes = try buildBranchLevel(nodes, level: level)
            level += 1
        }
        var root = tree.transaction.state.trees[tree.slot]
        root.rootPage = nodes.first?.page ?? 0
        root.entryCount = total
        root.height = nodes.isEmpty ? 0 : UInt8(level)
        tree.transaction.state.trees[tree.slot] = root
    }

    private mutating func writeLeaf(_ entries: [UInt8], count: Int) throws {
        let page = try tree.transaction.allocatePage()
        let ref = try tree.transaction.mutablePage(page)
        tree.initializeHeader(ref.bytes, isLeaf: true, level: 0)
        ref.bytes.storeLE(UInt16(count), at: Layout.entryCountOffset)
        let bytes = count * tree.leafEntrySize
        entries.withUnsafeBytes { source in
            (ref.bytes.baseAddress! + Layout.headerSize).copyMemory(from: source.baseAddress!, byteCount: bytes)
        }
        let first = tree.loadKey(UnsafeRawBufferPointer(ref.bytes), at: Layout.headerSize)
        children.append((page, first, UInt64(count)))
    }

    /// One branch level over `nodes`: full branches, the last two balanced.
    private func buildBranchLevel(_ nodes: [(page: PageNumber, key: BTreeKey, count: UInt64)], level: Int) throws
        -> [(page: PageNumber, key: BTreeKey, count: UInt64)] {
        let capacity = tree.branchCapacity(pageSize)
        let minimum = tree.minimumFill(isLeaf: false, pageSize: pageSize)
        var sizes: [Int] = []
        var remaining = nodes.count
        while remaining > 0 {
            let size = min(capacity, remaining)
            sizes.append(size)
            remaining -= size
        }
        if sizes.count >= 2, let last = sizes.last, last < minimum {
            let all = sizes[sizes.count - 2] + last
            sizes[sizes.count - 2] = all / 2
            sizes[sizes.count - 1] = all - all / 2
        }
        var parents: [(page: PageNumber, key: BTreeKey, count: UInt64)] = []
        var start = 0
        for size in sizes {
            let page = try tree.transaction.allocatePage()
            let ref = try tree.transaction.mutablePage(page)
            tree.initializeHeader(ref.bytes, isLeaf: false, level: level)
            ref.bytes.storeLE(UInt16(size), at: Layout.entryCountOffset)
            var sum: UInt64 = 0
            for i in 0..<size {
                let child = nodes[start + i]
                tree.writeBranchEntry(ref.bytes, at: tree.branchOffset(i), child: child.page, count: child.count, key: child.key)
                sum += child.count
            }
            parents.append((page, nodes[start].key, sum))
            start += size
        }
        return parents
    }
}

extension BTree {
    /// Frees every page of the tree and empties it (for rebuilding it). O(pages).
    package func freeAllPages() throws {
        let root = transaction.state.trees[slot]
        guard root.rootPage != 0 else { return }
        var stack: [(PageNumber, Int)] = [(root.rootPage, Int(root.height) - 1)]
        while let (page, level) = stack.popLast() {
            if level > 0 {
                let children: [PageNumber] = try withPage(page, level: level) { bytes, count in
                    (0..<count).map { childPage(bytes, $0) }
                }
                for child in children { stack.append((child, level - 1)) }
            }
            try transaction.freePage(page)
        }
        var empty = root
        empty.rootPage = 0
        empty.entryCount = 0
        empty.height = 0
        transaction.state.trees[slot] = empty
    }
}

extension BTree {
    /// The number of pages the tree uses: its branch pages, read, plus the leaves they point
    /// at, counted without reading them. O(branch pages).
    package func pageCount() throws -> Int {
        let root = transaction.state.trees[slot]
        guard root.rootPage != 0 else { return 0 }
        if root.height <= 1 { return 1 }
        var pages = 0
        var stack: [(PageNumber, Int)] = [(root.rootPage, Int(root.height) - 1)]
        while let (page, level) = stack.popLast() {
            pages += 1
            let children: [PageNumber] = try withPage(page, level: level) { bytes, count in
                (0..<count).map { childPage(bytes, $0) }
            }
            if level == 1 {
                pages += children.count
            } else {
                for child in children { stack.append((child, level - 1)) }
            }
        }
        return pages
    }
}
