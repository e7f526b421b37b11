import ScrollbackFormat
import ScrollbackPager

/// What `checkInvariants` found in a healthy tree.
package struct BTreeCheckSummary: Sendable, Equatable {
    package var entries: UInt64 = 0
    package var pages: Int = 0
    package var height: Int = 0
}

extension BTree {
    /// Walks the whole tree and verifies every structural rule of spec/btree-page.md:
    /// page header fields (type, slot, level, shape, count range, reserved bytes), zeroed
    /// bytes after the last entry, strictly increasing keys within and across pages, every
    /// separator equal to the smallest key of its child's subtree, every per-entry count equal
    /// to the actual subtree size, the minimum fill of non-root pages, a root branch with at
    /// least two children, uniform leaf depth equal to `height`, `entryCount`, and that no
    /// page is reachable twice. Inserts every page of the tree into `pages`.
    /// Throws `.corrupted(file:offset:reason:)` naming the first problem. O(n).
    @discardableResult
    package func checkInvariants(collectingPagesInto pages: inout Set<PageNumber>) throws -> BTreeCheckSummary {
        let root = self.root
        var summary = BTreeCheckSummary(height: Int(root.height))
        guard root.rootPage != 0 else {
            guard root.height == 0, root.entryCount == 0 else {
                throw StorageError.corrupted(file: file, offset: 0,
                                             reason: "tree slot \(slot): empty root with height \(root.height), entryCount \(root.entryCount)")
            }
            return summary
        }
        guard root.height >= 1 else {
            throw StorageError.corrupted(file: file, offset: 0, reason: "tree slot \(slot): root page \(root.rootPage) with height 0")
        }
        var previousKey: BTreeKey? = nil
        let (entries, _) = try checkSubtree(root.rootPage, level: Int(root.height) - 1, isRoot: true, separator: nil,
                                            previousKey: &previousKey, pages: &pages, summary: &summary)
        guard entries == root.entryCount else {
            throw StorageError.corrupted(file: file, offset: 0,
                                         reason: "tree slot \(slot): catalog entryCount \(root.entryCount), tree holds \(entries)")
        }
        summary.entries = entries
        return summary
    }

    /// `checkInvariants(collectingPagesInto:)` without collecting pages.
    @discardableResult
    package func checkInvariants() throws -> BTreeCheckSummary {
        var pages = Set<PageNumber>()
        return try checkInvariants(collectingPagesInto: &pages)
    }

    /// Checks one subtree; returns its entry count and the page size.
    private func checkSubtree(_ number: PageNumber, level: Int, isRoot: Bool, separator: BTreeKey?,
                              previousKey: inout BTreeKey?, pages: inout Set<PageNumber>,
                              summary: inout BTreeCheckSummary) throws -> (UInt64, Int) {
        guard pages.insert(number).inserted else {
            throw StorageError.corrupted(file: file, offset: 0, reason: "tree slot \(slot): page \(number) is reachable twice")
        }
        summary.pages += 1
        let ref = try transaction.page(number)
        let bytes = ref.bytes
        let pageSize = bytes.count
        let count = try validate(bytes, number, level: level)
        let isLeaf = level == 0
        guard bytes.loadLE(UInt16.self, at: Layout.reservedOffset) == 0 else {
            throw corrupted(number, pageSize: pageSize, at: Layout.reservedOffset, "reserved header bytes are not zero")
        }
        let end = Layout.headerSize + count * entrySize(isLeaf: isLeaf)
        if let offset = firstNonzeroByte(bytes, from: end) {
            throw corrupted(number, pageSize: pageSize, at: offset, "nonzero byte after the last entry")
        }
        if !isRoot {
            let minimum = minimumFill(isLeaf: isLeaf, pageSize: pageSize)
            guard count >= minimum else {
                throw corrupted(number, pageSize: pageSize, at: Layout.entryCountOffset,
                                "\(count) entries, below the minimum fill \(minimum)")
            }
        } else if !isLeaf, count < 2 {
            throw corrupted(number, pageSize: pageSize, at: Layout.entryCountOffset, "root branch with \(count) child")
        }
        let first = loadKey(bytes, at: keyOffset(0, isLeaf: isLeaf))
        if let separator, separator != first {
            throw corrupted(number, pageSize: pageSize, at: keyOffset(0, isLeaf: isLeaf),
                            "first key \(first) differs from the parent's separator \(separator)")
        }
        if isLeaf {
            for index in 0..<count {
                let key = loadKey(bytes, at: leafOffset(index))
                if let previousKey, !(previousKey < key) {
                    throw corrupted(number, pageSize: pageSize, at: leafOffset(index),
                                    "key \(key) not greater than the previous key \(previousKey)")
                }
                previousKey = key
            }
            return (UInt64(count), pageSize)
        }
        var total: UInt64 = 0
        var previousSeparator: BTreeKey? = nil
        for index in 0..<count {
            let offset = branchOffset(index)
            let key = loadKey(bytes, at: offset + Layout.branchKeyOffset)
            if let previousSeparator, !(previousSeparator < key) {
                throw corrupted(number, pageSize: pageSize, at: offset + Layout.branchKeyOffset,
                                "separator \(key) not greater than the previous separator")
            }
            previousSeparator = key
            let child = childPage(bytes, index)
            let stated = childCount(bytes, index)
            let (actual, _) = try checkSubtree(child, level: level - 1, isRoot: false, separator: key,
                                               previousKey: &previousKey, pages: &pages, summary: &summary)
            guard stated == actual else {
                throw corrupted(number, pageSize: pageSize, at: offset + Layout.branchCountOffset,
                                "entry \(index) states \(stated) entries below, child page \(child) holds \(actual)")
            }
            total &+= actual
        }
        _ = consume ref
        return (total, pageSize)
    }

    /// Offset of the first nonzero byte at or after `start`, or nil. Word at a time.
    private func firstNonzeroByte(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        var offset = start
        while offset < bytes.count, offset & 7 != 0 {
            if bytes[offset] != 0 { return offset }
            offset += 1
        }
        while offset + 8 <= bytes.count {
            if bytes.loadLE(UInt64.self, at: offset) != 0 { break }
            offset += 8
        }
        while offset < bytes.count {
            if bytes[offset] != 0 { return offset }
            offset += 1
        }
        return nil
    }

    /// Checks every tree in `transaction.state` (slots with keyWords != 0) and returns the set
    /// of pages reachable from them. Throws `.corrupted` on the first problem, including a page
    /// reachable from two trees.
    package static func checkAllTrees(in transaction: PageTransaction, file: String = "pages") throws -> Set<PageNumber> {
        var pages = Set<PageNumber>()
        for slot in transaction.state.trees.indices where transaction.state.trees[slot].keyWords != 0 {
            try BTree(transaction, slot: slot, file: file).checkInvariants(collectingPagesInto: &pages)
        }
        return pages
    }

    /// Verifies "every page is either reachable or free, exactly once": metas {0, 1}, free-list
    /// pages, free pages and `reachable` must be pairwise disjoint and together equal
    /// 0..<pageCount. `reachable` comes from `checkAllTrees` on a snapshot of the same
    /// committed state as `accounting`. Throws `.corrupted` naming the first bad page.
    package static func checkPageAccounting(_ accounting: PageAccounting, reachable: Set<PageNumber>,
                                            pageSize: Int, file: String = "pages") throws {
        var owner = [UInt8](repeating: 0, count: Int(accounting.pageCount))
        func claim(_ page: PageNumber, _ tag: UInt8, _ what: String) throws {
            guard page < accounting.pageCount else {
                throw StorageError.corrupted(file: file, offset: page &* UInt64(pageSize),
                                             reason: "\(what) page \(page) is past the page count \(accounting.pageCount)")
            }
            guard owner[Int(page)] == 0 else {
                let names = ["", "meta", "free-list", "free", "tree"]
                throw StorageError.corrupted(file: file, offset: page &* UInt64(pageSize),
                                             reason: "page \(page) is both \(names[Int(owner[Int(page)])]) and \(what)")
            }
            owner[Int(page)] = tag
        }
        try claim(0, 1, "meta")
        try claim(1, 1, "meta")
        for page in accounting.freeListPages { try claim(page, 2, "free-list") }
        for page in accounting.freePages { try claim(page, 3, "free") }
        for page in reachable { try claim(page, 4, "tree") }
        if let leaked = owner.firstIndex(of: 0) {
            throw StorageError.corrupted(file: file, offset: UInt64(leaked) &* UInt64(pageSize),
                                         reason: "page \(leaked) is neither reachable nor free (leaked)")
        }
    }
}
