import ScrollbackBTree
import ScrollbackStorage

/// The search index's postings as blocks in the postings tree (slot 13): each entry is a
/// block keyed by its first posting, holding the postings after it up to the next block's key
/// (`PostingBlock`). Blocks may hold postings of several terms (a rare term shares a block
/// with its neighbours).
///
/// A single posting (a send, an edit) goes into the block it falls in (the last whose key is
/// not above it) in place when it fits under the block's parameters (`PostingBlock.inserting`,
/// one descent, no re-encoding). Otherwise writes decode that block, change its list and
/// write it back: one block when the list fits, else split after the last
/// posting added (appends in order fill blocks; the postings after them keep their own
/// block), each part packed greedily into full blocks. Removing a block's first posting
/// re-keys the block. Blocks are never merged: removals leave them as full as they were
/// minus what was removed (an empty block goes).
///
/// Cost: an insert, remove or membership test is one descent plus the decoding of one block
/// (at most `PostingBlock.maxFollowers` postings, typically 60–250); a scan of a term decodes
/// its blocks in order. Not thread-safe beyond its transaction's rules (as `BTree`).
struct SearchPostings {
    let tree: BTree
    var file: String { tree.file }

    init(_ transaction: PageTransaction) throws {
        tree = try BTree(transaction, .searchPostingBlocks)
    }

    /// Over `tree` (3 key words, `PostingBlock.valueSize`-byte values).
    init(tree: BTree) { self.tree = tree }

    // MARK: Reading

    /// Calls `body` with a reader of the block holding `posting`'s position (the last block
    /// whose first posting is not above it) and the block's key; false when every block starts
    /// above it (or there is none).
    private func withBlock<R>(atMost posting: Posting, _ body: (inout PostingBlockReader, BTreeKey) throws -> R) throws -> R? {
        var cursor = tree.cursor()
        guard try cursor.seek(atMost: posting.blockKey) else { return nil }
        var result: R? = nil
        _ = try cursor.withCurrent { key, value in
            var reader = try PostingBlockReader(key: key, value: value, file: file)
            result = try body(&reader, key)
        }
        return result
    }

    /// Whether `posting` is in the index.
    func contains(_ posting: Posting) throws -> Bool {
        try withBlock(atMost: posting) { reader, _ in
            while let p = try reader.next() {
                if p == posting { return true }
                if posting < p { return false }
            }
            return false
        } ?? false
    }

    /// A membership test that keeps the blocks it read last (up to `slotCount`): the checks of
    /// one term against candidates — in each of a scope's conversations, newest first — fall
    /// in a few blocks, often the same one for many conversations. A kept block knows where the
    /// next block starts, so a posting in its range is answered without a descent; it is
    /// decoded lazily, only as far as the highest posting asked for (a copy of its bytes and a
    /// reader paused there), so each block is descended to and decoded at most once per probe.
    struct Probe {
        let postings: SearchPostings
        /// Slot i holds the block that starts with `firsts[i]` and answers for postings in
        /// [firsts[i], limits[i]) (limits[i]: the next block's first posting, or above every
        /// posting); `lists[i]` are its postings decoded so far, `readers[i]` reads the rest
        /// (nil once the block is decoded to its end).
        private var firsts: [Posting] = []
        private var limits: [Posting] = []
        private var lists: [[Posting]] = []
        private var readers: [PostingBlockReader?] = []
        private let bytes: BlockBytes
        private var hand = 0
        static let slotCount = 24

        /// The copies of the kept blocks' bytes (`slotCount` blocks; readers point into them).
        final class BlockBytes {
            let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: Probe.slotCount * PostingBlock.valueSize, alignment: 8)
            deinit { bytes.deallocate() }
        }

        /// Above every posting: the limit of the last block.
        private static let end = Posting(term: .max, conversation: .max, createdAt: .max, seq: .max)

        init(_ postings: SearchPostings) {
            self.postings = postings
            bytes = BlockBytes()
        }

        mutating func contains(_ posting: Posting) throws -> Bool {
            for i in firsts.indices where !(posting < firsts[i]) && posting < limits[i] {
                if let last = lists[i].last, !(last < posting) { return lists[i].sortedContains(posting) }
                return try read(i, until: posting)
            }
            let slot = firsts.count < Self.slotCount ? firsts.count : hand
            if slot < firsts.count {
                // The slot's bytes are about to change: it answers for nothing until refilled.
                readers[slot] = nil
                limits[slot] = firsts[slot]
            }
            let copy = UnsafeMutableRawBufferPointer(rebasing: bytes.bytes[(slot * PostingBlock.valueSize)...].prefix(PostingBlock.valueSize))
            let file = postings.file
            var key = BTreeKey(0)
            var limit = Self.end
            let found = try postings.tree.withLast(atMost: posting.blockKey) { k, value, next in
                guard value.count == copy.count else {
                    throw StorageError.corrupted(file: file, offset: 0, reason: "search posting block of \(value.count) bytes")
                }
                key = k
                copy.copyMemory(from: value)
                if let next { limit = Posting(blockKey: next) }
            }
            guard found else { return false }
            if slot == firsts.count {
                firsts.append(posting)
                limits.append(posting)
                lists.append([])
                readers.append(nil)
            } else {
                hand = (hand + 1) % Self.slotCount
            }
            firsts[slot] = Posting(blockKey: key)
            readers[slot] = try PostingBlockReader(key: key, value: UnsafeRawBufferPointer(copy), file: file)
            limits[slot] = limit
            lists[slot].removeAll(keepingCapacity: true)
            return try read(slot, until: posting)
        }

        /// Decodes slot `i` on up to the first posting not below `posting`; whether that is it.
        private mutating func read(_ i: Int, until posting: Posting) throws -> Bool {
            guard var reader = readers[i] else { return false }
            readers[i] = nil
            var list: [Posting] = []
            swap(&list, &lists[i])
            defer { swap(&list, &lists[i]) }
            while let p = try reader.next() {
                list.append(p)
                if !(p < posting) {
                    readers[i] = reader
                    return p == posting
                }
            }
            return false
        }
    }

    /// Calls `visit` with each posting of `term` in order while it returns true.
    func forEach(term: UInt64, _ visit: (Posting) throws -> Bool) throws {
        let start = Posting(term: term, conversation: 0, createdAt: 0, seq: 0)
        var cursor = tree.cursor()
        var valid = try cursor.seek(atMost: start.blockKey)
        if !valid { valid = try cursor.seekFirst() }
        while valid {
            var done = false
            _ = try cursor.withCurrent { key, value in
                var reader = try PostingBlockReader(key: key, value: value, file: file)
                while let p = try reader.next() {
                    if p.term < term { continue }
                    if try p.term > term || !visit(p) { done = true; return }
                }
            }
            if done { return }
            valid = try cursor.next()
        }
    }

    /// Calls `visit` with every posting in order (all terms).
    func forEachPosting(_ visit: (Posting) throws -> Void) throws {
        var cursor = tree.cursor()
        var valid = try cursor.seekFirst()
        while valid {
            _ = try cursor.withCurrent { key, value in
                var reader = try PostingBlockReader(key: key, value: value, file: file)
                while let p = try reader.next() { try visit(p) }
            }
            valid = try cursor.next()
        }
    }

    /// The postings of the block at the cursor, in order, into `list` (replacing its content).
    static func decode(_ cursor: BTreeCursor, into list: inout [Posting], file: String) throws {
        list.removeAll(keepingCapacity: true)
        _ = try cursor.withCurrent { key, value in
            var reader = try PostingBlockReader(key: key, value: value, file: file)
            while let p = try reader.next() { list.append(p) }
        }
    }

    // MARK: Writing

    /// Adds `posting`; false when it is there already. The block it falls in takes it in
    /// place when it fits under the block's own parameters (`PostingBlock.inserting`: one
    /// decoding and a copy of bits, no re-encoding); else as `insert(sorted:)` (new
    /// parameters, or a split).
    func insert(_ posting: Posting) throws -> Bool {
        var splice = PostingBlock.Splice.doesNotFit
        try tree.modifyLast(atMost: posting.blockKey) { key, value, out in
            splice = try PostingBlock.inserting(posting, key: key, value: value, into: out, file: file)
            return splice == .inserted
        }
        switch splice {
        case .present: return false
        case .inserted: return true
        case .doesNotFit: break
        }
        var added = false
        try insert(sorted: [posting]) { _ in added = true }
        return added
    }

    /// Adds `postings` (sorted, distinct), calling `added` for each that was not there
    /// already. Each block the new postings fall in is decoded and written once.
    func insert(sorted postings: [Posting], added: (Posting) -> Void) throws {
        var i = postings.startIndex
        var list: [Posting] = []
        while i < postings.endIndex {
            var cursor = tree.cursor()
            var oldKey: BTreeKey? = nil
            list.removeAll(keepingCapacity: true)
            // The block the posting falls in; before every block: the first block (re-keyed).
            if try cursor.seek(atMost: postings[i].blockKey) || cursor.seekFirst() {
                oldKey = try cursor.key()
                try Self.decode(cursor, into: &list, file: file)
                if !(try cursor.next()) { cursor = tree.cursor() }
            }
            // The new postings that fall in this block: those below the next block's key.
            let upper = try cursor.key().map { Posting(blockKey: $0) }
            var j = i
            while j < postings.endIndex, upper.map({ postings[j] < $0 }) ?? true { j += 1 }
            // Merge.
            var merged: [Posting] = []
            merged.reserveCapacity(list.count + (j - i))
            var a = 0, b = i, lastNew = -1
            while a < list.count || b < j {
                if b == j || (a < list.count && list[a] < postings[b]) {
                    merged.append(list[a]); a += 1
                } else if a < list.count && list[a] == postings[b] {
                    merged.append(list[a]); a += 1; b += 1
                } else {
                    merged.append(postings[b])
                    added(postings[b])
                    b += 1
                    lastNew = merged.count - 1
                }
            }
            if lastNew >= 0 { try write(merged, replacing: oldKey, splitAfter: lastNew) }
            i = j
        }
    }

    /// Removes `posting`; false when it is not there.
    func remove(_ posting: Posting) throws -> Bool {
        var cursor = tree.cursor()
        guard try cursor.seek(atMost: posting.blockKey), let key = try cursor.key() else { return false }
        var list: [Posting] = []
        try Self.decode(cursor, into: &list, file: file)
        guard let index = list.firstIndex(of: posting) else { return false }
        list.remove(at: index)
        try write(list, replacing: key, splitAfter: nil)
        return true
    }

    /// Writes `list` (sorted) in place of the block `oldKey` (nil: none): one block when it
    /// fits; else the postings up to `splitAfter` and those after it are packed separately
    /// (greedily, into full blocks).
    private func write(_ list: [Posting], replacing oldKey: BTreeKey?, splitAfter: Int?) throws {
        var blocks: [(key: BTreeKey, value: [UInt8])] = []
        if let first = list.first, let value = PostingBlock.encode(list[...]) {
            blocks.append((first.blockKey, value))
        } else if let splitAfter, splitAfter + 1 < list.count {
            // Added in the middle: what follows the last posting added keeps a block of its own.
            try Self.pack(list[...splitAfter], into: &blocks)
            try Self.pack(list[(splitAfter + 1)...], into: &blocks)
        } else if !list.isEmpty {
            try Self.pack(list[...], into: &blocks)
        }
        var rest = blocks[...]
        if let oldKey {
            if let first = rest.first, first.key == oldKey {
                _ = try tree.modify(oldKey) { out in first.value.withUnsafeBytes { out.copyMemory(from: $0) } }
                rest = rest.dropFirst()
            } else {
                _ = try tree.delete(oldKey)
            }
        }
        for block in rest {
            guard try tree.insert(block.key, value: block.value) else {
                throw StorageError.corrupted(file: file, offset: 0,
                                             reason: "search posting block \(Posting(blockKey: block.key)) exists twice")
            }
        }
    }

    /// `list` as full blocks: each about the longest prefix of what is left that fits.
    private static func pack(_ list: ArraySlice<Posting>, into blocks: inout [(key: BTreeKey, value: [UInt8])]) throws {
        try list.withUnsafeBufferPointer { all in
            var start = 0
            while start < all.count {
                let (count, value) = try packOne(UnsafeBufferPointer(rebasing: all[start...]))
                blocks.append((all[start].blockKey, value))
                start += count
            }
        }
    }

    /// The first block of `rest` (not empty): about the longest prefix that fits in `bits` of
    /// the stream — the prefix that fits under the parameters of the whole of `rest`,
    /// shortened until it encodes with its own. O(n) plus an encode or two.
    private static func packOne(_ rest: UnsafeBufferPointer<Posting>, bits: Int = PostingBlock.streamBits) throws
        -> (count: Int, value: [UInt8]) {
        let limited = UnsafeBufferPointer(rebasing: rest[..<min(rest.count, 2 * (PostingBlock.maxFollowers + 1))])
        var count = limited.count == 1 ? 1 : PostingBlock.prefixThatFits(limited, PostingBlock.parameters(limited), bits: bits)
        var value = PostingBlock.encode(UnsafeBufferPointer(rebasing: limited[..<count]))
        while value == nil && count > 1 {
            count = max(1, count - max(1, count / 16))
            value = PostingBlock.encode(UnsafeBufferPointer(rebasing: limited[..<count]))
        }
        guard let value else { throw StorageError.invalidArgument("posting \(rest[0]) does not encode as a block") }
        return (count, value)
    }

    /// Rewrites the tree bottom-up (`BTreeBuilder`): every posting, in order, in blocks filled
    /// to `repackFill` of their bits, in full leaves. The end of an index build calls it, so a
    /// built index takes few pages (blocks split by inserts are partly empty, and so are
    /// leaves split by inserts of blocks) and still takes the next postings of most blocks
    /// without a split (a split adds an entry to a full leaf: a leaf split). Cost: one decoding of every block, one encoding of every
    /// new block, every page of the tree written; memory: the new blocks (about the tree's
    /// size) before they are written.
    static let repackFill = 7.0 / 8

    func repack() throws {
        var keys: [BTreeKey] = []
        var values: [UInt8] = []
        var pending: [Posting] = []
        var start = 0
        let window = 2 * (PostingBlock.maxFollowers + 1)
        func emit(final: Bool) throws {
            while pending.count - start >= (final ? 1 : window) {
                let (count, value) = try pending.withUnsafeBufferPointer {
                    try Self.packOne(UnsafeBufferPointer(rebasing: $0[start...]), bits: Int(Double(PostingBlock.streamBits) * Self.repackFill))
                }
                keys.append(pending[start].blockKey)
                values += value
                start += count
            }
            if start >= 4 * window || final {
                pending.removeFirst(start)
                start = 0
            }
        }
        try forEachPosting { posting in
            pending.append(posting)
            if pending.count - start >= 2 * window { try emit(final: false) }
        }
        try emit(final: true)
        try tree.freeAllPages()
        var builder = try BTreeBuilder(tree)
        try values.withUnsafeBytes { raw in
            for (i, key) in keys.enumerated() {
                let offset = i * PostingBlock.valueSize
                try builder.append(key, value: UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + PostingBlock.valueSize)]))
            }
        }
        try builder.finish()
    }

    /// Frees every page of the tree.
    func freeAllPages() throws { try tree.freeAllPages() }
}

/// A cursor over the postings walking backwards (newest first within a term and
/// conversation), block by block: one block decoded at a time into a buffer it reuses.
struct PostingReverseCursor {
    private var cursor: BTreeCursor
    private var buffer: [Posting] = []
    private var index = -1
    private let file: String

    init(_ postings: SearchPostings) {
        cursor = postings.tree.cursor()
        file = postings.tree.file
    }

    /// Positions at the last posting not above `posting`; false when there is none. The block
    /// is decoded only up to `posting`.
    mutating func seek(atMost posting: Posting) throws -> Bool {
        guard try cursor.seek(atMost: posting.blockKey) else { index = -1; return false }
        buffer.removeAll(keepingCapacity: true)
        _ = try cursor.withCurrent { key, value in
            var reader = try PostingBlockReader(key: key, value: value, file: file)
            while let p = try reader.next(), !(posting < p) { buffer.append(p) }
        }
        index = buffer.count - 1
        return index >= 0
    }

    /// The posting at the cursor. REQUIRES: a successful `seek` or `previous`.
    var current: Posting { buffer[index] }

    /// Moves to the posting before; false when there is none.
    mutating func previous() throws -> Bool {
        if index > 0 { index -= 1; return true }
        guard try cursor.previous() else { index = -1; return false }
        try SearchPostings.decode(cursor, into: &buffer, file: file)
        index = buffer.count - 1
        return index >= 0
    }
}

/// A cursor over the postings walking forwards that skips ahead: it decodes its block lazily
/// (a copy of the block's bytes, read as far as asked), knows where the next block starts,
/// and `advance` reads on inside the block when the target is before the next block, else
/// seeks (one descent, then only the part of that block up to the target). A merge of terms'
/// postings thus skips the blocks between their common messages and decodes little of the
/// blocks it lands in. Copies of a cursor share its block buffer: use one copy.
struct PostingForwardCursor {
    private var cursor: BTreeCursor       // at the block after the one being read (invalid: none)
    private let block: BlockBytes
    private var reader: PostingBlockReader? = nil
    private var nextBlock: Posting? = nil
    private let file: String
    /// The posting at the cursor. Valid after a successful `seek`, `next` or `advance`.
    private(set) var current = Posting(term: 0, conversation: 0, createdAt: 0, seq: 0)

    /// The bytes of the block being read (its reader points into them).
    final class BlockBytes {
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: PostingBlock.valueSize, alignment: 8)
        deinit { bytes.deallocate() }
    }

    init(_ postings: SearchPostings) {
        cursor = postings.tree.cursor()
        file = postings.tree.file
        block = BlockBytes()
    }

    /// Positions at the first posting not below `posting`; false when there is none.
    mutating func seek(atLeast posting: Posting) throws -> Bool {
        if !(try cursor.seek(atMost: posting.blockKey)) {
            guard try cursor.seekFirst() else { return false }
        }
        try load()
        return try read(until: posting)
    }

    /// Moves to the posting after; false when there is none.
    mutating func next() throws -> Bool {
        while true {
            if let p = try reader?.next() {
                current = p
                return true
            }
            guard nextBlock != nil else { return false }
            try load()
        }
    }

    /// Moves to the first posting not below `posting` (the current one when it is not);
    /// false when there is none. A cursor not yet positioned seeks. A target past the block
    /// being read is reached by stepping over up to `maxSteps` blocks by their keys (no
    /// decoding; their leaf pages are mostly the one in hand), else by a seek.
    mutating func advance(to posting: Posting) throws -> Bool {
        guard reader != nil else { return try seek(atLeast: posting) }
        if !(current < posting) { return true }
        guard let nextBlock, !(posting < nextBlock) else { return try read(until: posting) }
        // The B-tree cursor is at the block that starts with `nextBlock` (not above `posting`):
        // the target's block is it or one after it — the last before a key above the target,
        // or the last block.
        for _ in 0..<Self.maxSteps {
            let following = try cursor.next() ? try cursor.key() : nil
            if following.map({ posting < Posting(blockKey: $0) }) ?? true {
                guard try cursor.previous() else { return false }
                try load()
                return try read(until: posting)
            }
        }
        return try seek(atLeast: posting)
    }

    /// Blocks `advance` steps over before it seeks instead.
    static let maxSteps = 8

    private mutating func read(until posting: Posting) throws -> Bool {
        while try next() {
            if !(current < posting) { return true }
        }
        return false
    }

    /// Copies the block at the B-tree cursor, starts reading it, and moves the B-tree cursor
    /// to the next block (noting its first posting).
    private mutating func load() throws {
        var key = BTreeKey(0)
        let bytes = block.bytes
        let file = file
        _ = try cursor.withCurrent { k, value in
            guard value.count == bytes.count else {
                throw StorageError.corrupted(file: file, offset: 0, reason: "search posting block of \(value.count) bytes")
            }
            key = k
            bytes.copyMemory(from: value)
        }
        reader = try PostingBlockReader(key: key, value: UnsafeRawBufferPointer(bytes), file: file)
        nextBlock = try cursor.next() ? try cursor.key().map { Posting(blockKey: $0) } : nil
    }
}

extension Array where Element: Equatable {
    /// The elements in the order `areInIncreasingOrder` gives, each once. O(n log n).
    func sortedDistinct(by areInIncreasingOrder: (Element, Element) -> Bool) -> [Element] {
        var distinct: [Element] = []
        distinct.reserveCapacity(count)
        for element in sorted(by: areInIncreasingOrder) where distinct.last != element { distinct.append(element) }
        return distinct
    }
}

extension Array where Element == [UInt8] {
    /// The byte strings in byte order, each once (the order of the terms tree's keys).
    func sortedDistinct() -> [[UInt8]] { sortedDistinct { $0.lexicographicallyPrecedes($1) } }
}

extension Array where Element: Comparable {
    /// Whether the array, sorted ascending, holds `value`. O(log n).
    func sortedContains(_ value: Element) -> Bool {
        var low = 0, high = count
        while low < high {
            let middle = (low + high) / 2
            if self[middle] < value { low = middle + 1 } else { high = middle }
        }
        return low < count && self[low] == value
    }
}
