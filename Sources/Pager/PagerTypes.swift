import ScrollbackFormat

/// A page number. Page `n` lives at file offset `n * pageSize`. Pages 0 and 1 are the meta
/// pages, so 0 is never a tree or free-list page and means "no page" in tree roots.
package typealias PageNumber = UInt64

/// Shape and root of one tree, kept in the meta page's 8-slot catalog (spec/page-file.md).
package struct TreeRoot: Sendable, Equatable {
    /// Root page; 0 = empty tree.
    package var rootPage: PageNumber
    package var entryCount: UInt64
    /// 0 = empty, 1 = the root is a leaf.
    package var height: UInt8
    /// Key = `keyWords` little-endian UInt64 words (1...4); 0 = slot unused.
    package var keyWords: UInt8
    /// Fixed value size in bytes (0...1024).
    package var valueSize: UInt16

    package init(rootPage: PageNumber = 0, entryCount: UInt64 = 0, height: UInt8 = 0, keyWords: UInt8 = 0, valueSize: UInt16 = 0) {
        self.rootPage = rootPage
        self.entryCount = entryCount
        self.height = height
        self.keyWords = keyWords
        self.valueSize = valueSize
    }

    /// An unused catalog slot.
    package static let unused = TreeRoot()
}

/// What a snapshot sees: the committed trees and the opaque values of the layers above.
/// Value type, cheap to copy (two small arrays).
package struct CommittedState: Sendable, Equatable {
    /// Id of the last committed write transaction (0 for a new file).
    package var transactionID: UInt64
    /// Exactly `Pager.treeSlotCount` (8) entries.
    package var trees: [TreeRoot]
    /// The trees are complete through this log position (opaque to the pager).
    package var logPosition: UInt64
    /// Exactly 8 opaque counters for the layers above.
    package var counters: [UInt64]

    package init(transactionID: UInt64, trees: [TreeRoot], logPosition: UInt64, counters: [UInt64]) {
        self.transactionID = transactionID
        self.trees = trees
        self.logPosition = logPosition
        self.counters = counters
    }

    /// The state of a newly created page file.
    package static let initial = CommittedState(
        transactionID: 0,
        trees: Array(repeating: .unused, count: PageFileLayout.treeSlotCount),
        logPosition: 0,
        counters: Array(repeating: 0, count: PageFileLayout.counterCount))
}

/// Counters of a pager. Each group of fields is read under its own lock, so the snapshot is
/// consistent per group, not across groups.
package struct PagerStatistics: Sendable, Equatable {
    /// `page(_:)` calls answered from the cache (a writer's reads of its own new pages are
    /// not counted: they bypass the cache).
    package var hits: UInt64 = 0
    /// `page(_:)` calls that read the page file.
    package var misses: UInt64 = 0
    /// Clean frames dropped to make room.
    package var evictions: UInt64 = 0
    /// Frames the cache's CLOCK hand has passed looking for one to evict (its cost).
    package var sweptFrames: UInt64 = 0
    /// Bytes of frames holding pages not yet written by a checkpoint (not evictable).
    package var dirtyBytes: Int = 0
    /// Bytes of page frames allocated by the cache. Exceeds the capacity only while dirty or
    /// pinned frames need the room; trimmed back after a checkpoint.
    package var cachedBytes: Int = 0
    /// The cache capacity, in whole pages (at least `Pager.minimumCacheFrames`).
    package var cacheCapacityBytes: Int = 0
    /// Page numbers 0..<pageCount exist in the page space.
    package var pageCount: UInt64 = 0
    /// Pages free in the committed state (reusable now or later).
    package var freePages: Int = 0
    /// Checkpoints completed since open.
    package var checkpoints: UInt64 = 0

    package init() {}
}

/// Where every page of the page space is, for leak checks (see `Pager.pageAccounting()`).
/// Invariant: {0, 1} ∪ freeListPages ∪ freePages ∪ reachable(committed trees) == 0..<pageCount,
/// pairwise disjoint.
package struct PageAccounting: Sendable, Equatable {
    /// Page numbers 0..<pageCount exist in the page space.
    package var pageCount: UInt64
    /// Sorted; free for the committed state, including pages still held by old snapshots,
    /// pages awaiting a checkpoint, and pages allocated by the open write transaction.
    package var freePages: [PageNumber]
    /// Sorted; the pages holding the durable free list.
    package var freeListPages: [PageNumber]

    package init(pageCount: UInt64, freePages: [PageNumber], freeListPages: [PageNumber]) {
        self.pageCount = pageCount
        self.freePages = freePages
        self.freeListPages = freeListPages
    }

    /// Checks the accounting invariant against the pages the caller knows are reachable.
    /// Throws `.corrupted` naming the first page that is leaked, out of range or counted twice.
    /// Complexity: O(pageCount).
    package func check(reachable: some Sequence<PageNumber>, file: String = PageFileLayout.fileName) throws {
        guard pageCount >= PageFileLayout.metaPageCount, pageCount <= UInt64(Int32.max) else {
            throw StorageError.corrupted(file: file, offset: 0, reason: "page count \(pageCount) out of range")
        }
        var owner = [UInt8](repeating: 0, count: Int(pageCount))
        owner[0] = 1
        owner[1] = 1
        let names = ["none", "meta", "free-list", "free", "reachable"]
        func mark(_ page: PageNumber, _ role: UInt8) throws {
            guard page < pageCount else {
                throw StorageError.corrupted(file: file, offset: 0, reason: "\(names[Int(role)]) page \(page) >= page count \(pageCount)")
            }
            let previous = owner[Int(page)]
            if previous != 0 {
                throw StorageError.corrupted(
                    file: file, offset: 0,
                    reason: "\(names[Int(role)]) page \(page) is also counted as \(names[Int(previous)])")
            }
            owner[Int(page)] = role
        }
        for page in freeListPages { try mark(page, 2) }
        for page in freePages { try mark(page, 3) }
        for page in reachable { try mark(page, 4) }
        if let leaked = owner.firstIndex(of: 0) {
            throw StorageError.corrupted(file: file, offset: 0, reason: "page \(leaked) is leaked (neither reachable nor free)")
        }
    }
}

/// This process's live read snapshots: snapshot id → how many read transactions hold it,
/// as entries sorted by id in one array.
///
/// Every read takes `add` and `remove` under the pager's lock, so they are kept cheaper than
/// a hashed dictionary: a new snapshot takes the newest committed id, so `add` usually bumps
/// or appends the last entry; `remove` finds its entry by binary search. Cost: O(1) for the
/// newest id, O(log k + k) otherwise for k distinct live ids (few: snapshots are short).
struct SnapshotCounts {
    private var entries: [(id: UInt64, count: Int)] = []

    /// The oldest live snapshot id, or nil when none is open.
    var oldest: UInt64? { entries.first?.id }

    /// True when no snapshot is open.
    var isEmpty: Bool { entries.isEmpty }

    /// One more read transaction holds snapshot `id`.
    mutating func add(_ id: UInt64) {
        if let last = entries.last, last.id >= id {
            let index = position(of: id)
            if index < entries.count, entries[index].id == id {
                entries[index].count += 1
            } else {
                entries.insert((id, 1), at: index)
            }
        } else {
            entries.append((id, 1))
        }
    }

    /// A read transaction holding `id` ended (nothing happens for an id not held).
    mutating func remove(_ id: UInt64) {
        let index = entries.last?.id == id ? entries.count - 1 : position(of: id)
        guard index < entries.count, entries[index].id == id else { return }
        if entries[index].count > 1 {
            entries[index].count -= 1
        } else {
            entries.remove(at: index)
        }
    }

    /// Read transactions holding `id` (0 when none).
    func count(of id: UInt64) -> Int {
        let index = position(of: id)
        return index < entries.count && entries[index].id == id ? entries[index].count : 0
    }

    /// Index of the first entry whose id is >= `id`.
    private func position(of id: UInt64) -> Int {
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].id < id { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
