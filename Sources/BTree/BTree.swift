import ScrollbackFormat
import ScrollbackPager

/// A counted copy-on-write B+tree stored in one catalog slot of the page file
/// (spec/btree-page.md).
///
/// A `BTree` is a cheap handle: the transaction it works on, the slot, and the tree's shape
/// (fixed-size keys of `keyWords` words, fixed-size values of `valueSize` bytes). The root,
/// entry count and height live in `transaction.state.trees[slot]`; write operations update
/// them there and `PageTransaction.commit()` publishes them.
///
/// Every branch entry carries the number of entries in its child's subtree, so `rank`,
/// `count(in:)` and `withEntry(atRank:)` cost one descent: O(log n) page visits.
///
/// Copy-on-write: a page is modified in place only if the write transaction owns it
/// (`isOwned`); otherwise it is copied to a new page, the old one is freed, and the parent
/// (recursively up to the root) is pointed at the copy. Readers on older snapshots keep
/// seeing the old pages.
///
/// Operations (all O(log n) page visits unless noted):
/// - reads: `get`, `withValue(for:)`, `contains`, `rank(_:inclusive:)`, `count(in:)` /
///   `count(from:to:inclusive:)`, `withEntry(atRank:)`, `key(atRank:)`, `cursor()` (seek by key
///   or rank, then `next()` / `previous()` in O(1) amortized per step);
/// - writes (write transaction only): `insert` (rejects an existing key), `upsert` (replaces),
///   `update` (existing keys only), `delete`;
/// - integrity: `checkInvariants()` (O(n)), `BTree.checkAllTrees(in:)`,
///   `BTree.checkPageAccounting(_:reachable:pageSize:)`, `BTree.decodePage(_:pageNumber:)`.
/// Damaged pages throw `StorageError.corrupted` (file `file`, offset of the bad field); nothing
/// traps on page bytes.
///
/// Thread-safety: like its `PageTransaction`: not safe to use from two threads at once.
package struct BTree {
    package let transaction: PageTransaction
    package let slot: Int
    package let keyWords: Int
    package let valueSize: Int
    /// File name used in `.corrupted` errors.
    package let file: String
    let leafEntrySize: Int
    let branchEntrySize: Int

    /// Opens the tree in `slot` of the transaction's state.
    /// Throws `.invalidArgument` if the slot is out of range or unused (keyWords 0), and
    /// `.corrupted` if the catalog names a shape this format does not allow.
    package init(_ transaction: PageTransaction, slot: Int, file: String = "pages") throws {
        guard let root = transaction.treeRoot(slot) else {
            throw StorageError.invalidArgument("tree slot \(slot) out of range 0..<\(transaction.state.trees.count)")
        }
        guard root.keyWords != 0 else { throw StorageError.invalidArgument("tree slot \(slot) is unused") }
        guard Self.isValidShape(keyWords: Int(root.keyWords), valueSize: Int(root.valueSize)) else {
            throw StorageError.corrupted(file: file, offset: 0,
                                         reason: "tree slot \(slot) has invalid shape keyWords \(root.keyWords) valueSize \(root.valueSize)")
        }
        guard (root.rootPage == 0) == (root.height == 0), (root.rootPage == 0) == (root.entryCount == 0) else {
            throw StorageError.corrupted(file: file, offset: 0,
                                         reason: "tree slot \(slot): root page \(root.rootPage), height \(root.height), entryCount \(root.entryCount) disagree")
        }
        self.transaction = transaction
        self.slot = slot
        self.keyWords = Int(root.keyWords)
        self.valueSize = Int(root.valueSize)
        self.file = file
        leafEntrySize = BTreePageLayout.leafEntrySize(keyWords: keyWords, valueSize: valueSize)
        branchEntrySize = BTreePageLayout.branchEntrySize(keyWords: keyWords)
    }

    /// Creates an empty tree in an unused `slot` of a write transaction by setting its shape.
    /// Creating a tree whose slot already holds the same shape returns it unchanged.
    /// Throws `.invalidArgument` for a read transaction, a slot in use with another shape,
    /// keyWords outside 1...4 or valueSize outside 0...`BTreePageLayout.maxValueSize`.
    package static func create(in transaction: PageTransaction, slot: Int, keyWords: Int, valueSize: Int,
                               file: String = "pages") throws -> BTree {
        guard transaction.isWritable else { throw StorageError.invalidArgument("creating a tree needs a write transaction") }
        guard slot >= 0, slot < transaction.state.trees.count else {
            throw StorageError.invalidArgument("tree slot \(slot) out of range 0..<\(transaction.state.trees.count)")
        }
        guard isValidShape(keyWords: keyWords, valueSize: valueSize) else {
            throw StorageError.invalidArgument(
                "tree shape keyWords \(keyWords) (1...4), valueSize \(valueSize) (0...\(BTreePageLayout.maxValueSize))")
        }
        var root = transaction.state.trees[slot]
        if root.keyWords != 0 {
            guard Int(root.keyWords) == keyWords, Int(root.valueSize) == valueSize else {
                throw StorageError.invalidArgument("tree slot \(slot) already holds a tree of another shape")
            }
            return try BTree(transaction, slot: slot, file: file)
        }
        root.rootPage = 0
        root.entryCount = 0
        root.height = 0
        root.keyWords = UInt8(keyWords)
        root.valueSize = UInt16(valueSize)
        transaction.state.trees[slot] = root
        return try BTree(transaction, slot: slot, file: file)
    }

    static func isValidShape(keyWords: Int, valueSize: Int) -> Bool {
        (BTreePageLayout.minKeyWords...BTreePageLayout.maxKeyWords).contains(keyWords)
            && (0...BTreePageLayout.maxValueSize).contains(valueSize)
    }

    /// The catalog entry of this tree in the transaction's state.
    /// (`treeRoot` is a call into the pager: reading `state.trees` from this module pays a
    /// dynamic exclusivity check. The slot was checked when the tree was opened.)
    package var root: TreeRoot { transaction.treeRoot(slot) ?? .unused }
    /// Number of entries. O(1).
    package var count: Int { Int(truncatingIfNeeded: root.entryCount) }
    /// Height: 0 for an empty tree, 1 when the root is a leaf.
    package var height: Int { Int(root.height) }

    // MARK: capacities and fill policy (spec/btree-page.md, "Fill and merge policy")

    /// Entries that fit a leaf of a page of `pageSize` bytes.
    @inline(__always)
    func leafCapacity(_ pageSize: Int) -> Int {
        Swift.min((pageSize - Layout.headerSize) / Swift.max(leafEntrySize, 1), Layout.maxEntriesPerPage)
    }

    /// Children that fit a branch of a page of `pageSize` bytes.
    @inline(__always)
    func branchCapacity(_ pageSize: Int) -> Int {
        Swift.min((pageSize - Layout.headerSize) / branchEntrySize, Layout.maxEntriesPerPage)
    }

    /// Fewest entries a non-root page may hold (the invariant `checkInvariants` verifies): a
    /// sixteenth of a leaf's capacity (at least 1), a quarter of a branch's (at least 2). A
    /// sequential run's split at a leaf's end leaves the new right page this sparse, so that
    /// the left keeps 15/16 of its capacity instead of 3/4.
    @inline(__always)
    func minimumFill(isLeaf: Bool, pageSize: Int) -> Int {
        isLeaf ? Swift.max(1, leafCapacity(pageSize) / 16) : Swift.max(2, branchCapacity(pageSize) / 4)
    }

    /// Below this many entries a non-root page is fixed after a delete (merged with or
    /// refilled from a sibling): a quarter of its capacity, at least 1 for a leaf and at least
    /// 2 for a branch.
    @inline(__always)
    func underflowFill(isLeaf: Bool, pageSize: Int) -> Int {
        isLeaf ? Swift.max(1, leafCapacity(pageSize) / 4) : Swift.max(2, branchCapacity(pageSize) / 4)
    }

    @inline(__always)
    func capacity(isLeaf: Bool, pageSize: Int) -> Int {
        isLeaf ? leafCapacity(pageSize) : branchCapacity(pageSize)
    }

    @inline(__always)
    func entrySize(isLeaf: Bool) -> Int { isLeaf ? leafEntrySize : branchEntrySize }

    // MARK: page access

    /// Runs `body` on the read view of page `number`, after checking the header fields this
    /// layer owns: type (leaf iff `level` is 0), tree slot, key shape, level, and an entry
    /// count in 1...capacity. Returns what `body` returns.
    @inline(__always)
    func withPage<R>(_ number: PageNumber, level: Int, _ body: (UnsafeRawBufferPointer, Int) throws -> R) throws -> R {
        let ref = try transaction.page(number)
        let count = try validate(ref.bytes, number, level: level)
        let result = try body(ref.bytes, count)
        _ = consume ref
        return result
    }

    /// Structural header checks of one page; returns its entry count. Never traps.
    /// Fast path: a handful of byte compares, no division; the slow path names the problem.
    func validate(_ bytes: UnsafeRawBufferPointer, _ number: PageNumber, level: Int) throws -> Int {
        let isLeaf = level == 0
        if bytes.count >= Layout.minPageSize {
            let count = Int(bytes.loadLE(UInt16.self, at: Layout.entryCountOffset))
            if bytes[Layout.pageTypeOffset] == (isLeaf ? Layout.leafType : Layout.branchType),
               Int(bytes[Layout.treeSlotOffset]) == slot,
               Int(bytes[Layout.levelOffset]) == level,
               Int(bytes[Layout.keyWordsOffset]) == keyWords,
               Int(bytes.loadLE(UInt16.self, at: Layout.valueSizeOffset)) == (isLeaf ? valueSize : 0),
               count >= 1, Layout.headerSize + count * entrySize(isLeaf: isLeaf) <= bytes.count {
                return count
            }
        }
        throw diagnose(bytes, number, level: level)
    }

    /// Names the first header problem of a page that failed `validate`'s fast path.
    @inline(never)
    func diagnose(_ bytes: UnsafeRawBufferPointer, _ number: PageNumber, level: Int) -> StorageError {
        let pageSize = bytes.count
        guard pageSize >= BTreePageLayout.minPageSize else {
            return corrupted(number, pageSize: pageSize, at: 0, "page of \(pageSize) bytes is smaller than the minimum")
        }
        let isLeaf = level == 0
        let type = bytes[BTreePageLayout.pageTypeOffset]
        let expected = isLeaf ? BTreePageType.leaf.rawValue : BTreePageType.branch.rawValue
        guard type == expected else {
            return corrupted(number, pageSize: pageSize, at: BTreePageLayout.pageTypeOffset,
                             "page type \(type), expected \(expected) (\(isLeaf ? "leaf" : "branch"))")
        }
        guard Int(bytes[BTreePageLayout.treeSlotOffset]) == slot else {
            return corrupted(number, pageSize: pageSize, at: BTreePageLayout.treeSlotOffset,
                             "page belongs to tree slot \(bytes[BTreePageLayout.treeSlotOffset]), expected \(slot)")
        }
        guard Int(bytes[BTreePageLayout.levelOffset]) == level else {
            return corrupted(number, pageSize: pageSize, at: BTreePageLayout.levelOffset,
                             "page level \(bytes[BTreePageLayout.levelOffset]), expected \(level)")
        }
        guard Int(bytes[BTreePageLayout.keyWordsOffset]) == keyWords,
              Int(bytes.loadLE(UInt16.self, at: BTreePageLayout.valueSizeOffset)) == (isLeaf ? valueSize : 0)
        else {
            return corrupted(number, pageSize: pageSize, at: BTreePageLayout.keyWordsOffset, "page key/value shape differs from the tree's")
        }
        let count = Int(bytes.loadLE(UInt16.self, at: BTreePageLayout.entryCountOffset))
        return corrupted(number, pageSize: pageSize, at: BTreePageLayout.entryCountOffset,
                         "entry count \(count) outside 1...\(capacity(isLeaf: isLeaf, pageSize: pageSize))")
    }

    func corrupted(_ page: PageNumber, pageSize: Int, at offset: Int, _ reason: String) -> StorageError {
        .corrupted(file: file, offset: page &* UInt64(pageSize) &+ UInt64(offset), reason: "B+tree page \(page): \(reason)")
    }

    // MARK: entry codec (offsets from spec/btree-page.md)

    @inline(__always)
    func leafOffset(_ index: Int) -> Int { Layout.headerSize + index * leafEntrySize }

    @inline(__always)
    func branchOffset(_ index: Int) -> Int { Layout.headerSize + index * branchEntrySize }

    @inline(__always)
    func entryOffset(_ index: Int, isLeaf: Bool) -> Int { isLeaf ? leafOffset(index) : branchOffset(index) }

    @inline(__always)
    func keyOffset(_ index: Int, isLeaf: Bool) -> Int {
        isLeaf ? leafOffset(index) : branchOffset(index) + Layout.branchKeyOffset
    }

    /// The value of leaf entry `index`: a view of `bytes`.
    @inline(__always)
    func leafValue(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> UnsafeRawBufferPointer {
        let offset = leafOffset(index) + keyWords * 8
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + valueSize)])
    }

    /// Loads the key stored at byte `offset`.
    @inline(__always)
    func loadKey(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> BTreeKey {
        var key = BTreeKey(bytes.loadLE(UInt64.self, at: offset))
        if keyWords > 1 { key.w1 = bytes.loadLE(UInt64.self, at: offset + 8) }
        if keyWords > 2 { key.w2 = bytes.loadLE(UInt64.self, at: offset + 16) }
        if keyWords > 3 { key.w3 = bytes.loadLE(UInt64.self, at: offset + 24) }
        return key
    }

    @inline(__always)
    func storeKey(_ key: BTreeKey, _ bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        for w in 0..<keyWords { bytes.storeLE(key[word: w], at: offset + w * 8) }
    }

    /// True iff the key stored at `offset` is less than `key`.
    @inline(__always)
    func storedKey(_ bytes: UnsafeRawBufferPointer, at offset: Int, isLessThan key: BTreeKey) -> Bool {
        let a0 = bytes.loadLE(UInt64.self, at: offset)
        if a0 != key.w0 || keyWords == 1 { return a0 < key.w0 }
        let a1 = bytes.loadLE(UInt64.self, at: offset + 8)
        if a1 != key.w1 || keyWords == 2 { return a1 < key.w1 }
        let a2 = bytes.loadLE(UInt64.self, at: offset + 16)
        if a2 != key.w2 || keyWords == 3 { return a2 < key.w2 }
        return bytes.loadLE(UInt64.self, at: offset + 24) < key.w3
    }

    /// True iff the key stored at `offset` is less than or equal to `key`.
    @inline(__always)
    func storedKey(_ bytes: UnsafeRawBufferPointer, at offset: Int, isAtMost key: BTreeKey) -> Bool {
        let a0 = bytes.loadLE(UInt64.self, at: offset)
        if a0 != key.w0 { return a0 < key.w0 }
        if keyWords == 1 { return true }
        let a1 = bytes.loadLE(UInt64.self, at: offset + 8)
        if a1 != key.w1 { return a1 < key.w1 }
        if keyWords == 2 { return true }
        let a2 = bytes.loadLE(UInt64.self, at: offset + 16)
        if a2 != key.w2 { return a2 < key.w2 }
        if keyWords == 3 { return true }
        return bytes.loadLE(UInt64.self, at: offset + 24) <= key.w3
    }

    /// First index in a leaf whose key is >= `key` (== count if none). Binary search over the page bytes.
    @inline(__always)
    func leafLowerBound(_ bytes: UnsafeRawBufferPointer, count: Int, _ key: BTreeKey) -> Int {
        var low = 0
        var high = count
        while low < high {
            let mid = (low &+ high) >> 1
            if storedKey(bytes, at: leafOffset(mid), isLessThan: key) { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// First index in `start ..< count` of a leaf whose key is >= `key` (== count if none),
    /// REQUIRES: the key at `start - 1`, if any, is < `key`. Gallops from `start` (1, 2, 4, …
    /// entries) before a binary search, so a bound a few entries after `start` — the end of
    /// an ordinary room's keys — costs a few comparisons.
    @inline(__always)
    func leafLowerBound(_ bytes: UnsafeRawBufferPointer, from start: Int, count: Int, _ key: BTreeKey) -> Int {
        var low = start
        var step = 1
        while low + step <= count, storedKey(bytes, at: leafOffset(low + step - 1), isLessThan: key) {
            low += step
            step <<= 1
        }
        var high = min(count, low + step - 1)
        while low < high {
            let mid = (low &+ high) >> 1
            if storedKey(bytes, at: leafOffset(mid), isLessThan: key) { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// True iff leaf entry `index` (< count) holds exactly `key`.
    @inline(__always)
    func leafKey(_ bytes: UnsafeRawBufferPointer, _ index: Int, equals key: BTreeKey) -> Bool {
        loadKey(bytes, at: leafOffset(index)) == key
    }

    /// The child to descend into for `key`: the last entry whose separator is <= `key`, or 0.
    @inline(__always)
    func branchChildIndex(_ bytes: UnsafeRawBufferPointer, count: Int, _ key: BTreeKey) -> Int {
        var low = 0
        var high = count
        while low < high {
            let mid = (low &+ high) >> 1
            if storedKey(bytes, at: branchOffset(mid) + Layout.branchKeyOffset, isAtMost: key) {
                low = mid + 1
            } else {
                high = mid
            }
        }
        return low == 0 ? 0 : low - 1
    }

    @inline(__always)
    func childPage(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> PageNumber {
        bytes.loadLE(UInt64.self, at: branchOffset(index) + Layout.branchChildOffset)
    }

    @inline(__always)
    func childCount(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> UInt64 {
        bytes.loadLE(UInt64.self, at: branchOffset(index) + Layout.branchCountOffset)
    }

    /// Sum of the subtree counts of branch entries `range`.
    @inline(__always)
    func sumCounts(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> UInt64 {
        var total: UInt64 = 0
        var offset = branchOffset(range.lowerBound) + Layout.branchCountOffset
        for _ in range {
            total &+= bytes.loadLE(UInt64.self, at: offset)
            offset += branchEntrySize
        }
        return total
    }

    /// Number of entries before child `index` of a branch whose subtree holds `total` entries,
    /// summing from whichever end is shorter.
    @inline(__always)
    func countBefore(_ bytes: UnsafeRawBufferPointer, count: Int, child index: Int, total: UInt64) -> UInt64 {
        if index <= count / 2 { return sumCounts(bytes, 0..<index) }
        return total &- sumCounts(bytes, index..<count)
    }
}

/// The B+tree page format's constants (`BTreePageLayout`: inlinable literals).
typealias Layout = BTreePageLayout

extension BTreePageLayout {
    /// `BTreePageType` raw values.
    @inline(__always) static var leafType: UInt8 { BTreePageType.leaf.rawValue }
    @inline(__always) static var branchType: UInt8 { BTreePageType.branch.rawValue }
}
