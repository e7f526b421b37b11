import ScrollbackFormat
import ScrollbackPager

/// One level of a root-to-leaf path: the page and the entry index taken (for the leaf: the
/// position of the key).
struct PathFrame {
    var page: PageNumber
    var index: Int
}

/// What `put` does when the key is present / absent.
enum PutMode {
    /// Add a new key; an existing key is left unchanged (rejected).
    case insertOnly
    /// Add a new key or replace the value of an existing one.
    case upsert
    /// Replace the value of an existing key; an absent key is left absent.
    case updateOnly
}

enum PutOutcome {
    case inserted, replaced, unchanged
}

/// A root-to-leaf path: frame `d` is depth `d` (0 = root), the last frame is the leaf.
typealias Path = UnsafeMutableBufferPointer<PathFrame>

extension BTree {
    // MARK: public write operations

    /// Inserts `key` → `value` if `key` is absent. If `key` is present the tree is left
    /// unchanged and the call returns false (duplicates are rejected, not replaced).
    /// REQUIRES: a write transaction; `value.count == valueSize`; `key` fits `keyWords`
    /// (throws `.invalidArgument` otherwise). O(log n) pages touched (path copying).
    @discardableResult
    package func insert(_ key: BTreeKey, value: UnsafeRawBufferPointer) throws -> Bool {
        try put(key, value, mode: .insertOnly) == .inserted
    }

    /// Inserts `key` → `value`, replacing the value if `key` is present.
    /// Returns true if an existing value was replaced, false if the key was new.
    @discardableResult
    package func upsert(_ key: BTreeKey, value: UnsafeRawBufferPointer) throws -> Bool {
        try put(key, value, mode: .upsert) == .replaced
    }

    /// `upsert` in one descent that also shows the value it replaces: `replaced` is called with
    /// the old value (a view valid only inside the call) just before it is overwritten, and
    /// not at all when `key` was new. Returns true if a value was replaced. (Non-generic, as
    /// `withValue`.)
    @discardableResult
    package func upsert(_ key: BTreeKey, value: UnsafeRawBufferPointer,
                        replacing replaced: (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        try put(key, value, mode: .upsert, replaced: replaced) == .replaced
    }

    /// Changes the value of an existing `key` in place, in one descent: `body` gets the stored
    /// value (a writable view valid only inside the call; the page is copied on write first,
    /// so snapshots keep the old value). Returns false, without calling `body`, if `key` is
    /// absent. `body` must not use this tree; if it throws, what it wrote so far stays in the
    /// transaction (which the caller then abandons). (Non-generic, as `withValue`.)
    @discardableResult
    package func modify(_ key: BTreeKey, _ body: (UnsafeMutableRawBufferPointer) throws -> Void) throws -> Bool {
        try checkWrite(key)
        guard root.rootPage != 0 else { return false }
        return try withPath { frames in
            guard try descend(to: key, into: frames) else { return false }
            try makeWritable(frames, delta: 0)
            let leaf = frames[frames.count - 1]
            let ref = try transaction.mutablePage(leaf.page)
            let offset = leafOffset(leaf.index) + keyWords * 8
            try body(UnsafeMutableRawBufferPointer(rebasing: ref.bytes[offset..<(offset + valueSize)]))
            return true
        }
    }

    /// Rewrites, in one descent, the value of the last entry whose key is at most `key`: `body`
    /// gets that entry's key, its stored value (read-only) and a buffer of the value's size
    /// (uninitialized), and returns true to store the buffer as the entry's new value (the
    /// page is copied on write only then) or false to leave the entry as it is. Returns nil,
    /// without calling `body`, when no key is at most `key`; else what `body` returned. `body`
    /// must not use this tree. Cost: one descent (two when the entry is the last of a leaf
    /// before the one `key` leads to: a separator left below its subtree by a delete).
    @discardableResult
    package func modifyLast(atMost key: BTreeKey,
                            _ body: (BTreeKey, UnsafeRawBufferPointer, UnsafeMutableRawBufferPointer) throws -> Bool) throws -> Bool? {
        try checkWrite(key)
        guard root.rootPage != 0 else { return nil }
        return try withUnsafeTemporaryAllocation(byteCount: valueSize, alignment: 8) { scratch in
            try withPath { frames -> Bool? in
                let last = frames.count - 1
                if !(try descend(to: key, into: frames)) {
                    if frames[last].index > 0 {
                        frames[last].index -= 1
                    } else {
                        var cursor = self.cursor()
                        guard try cursor.seek(atMost: key), let previous = try cursor.key() else { return nil }
                        guard try descend(to: previous, into: frames) else {
                            throw StorageError.corrupted(file: file, offset: 0,
                                                         reason: "tree slot \(slot): key \(previous) found by a cursor but not by a descent")
                        }
                    }
                }
                let leaf = frames[last]
                let changed = try withPage(leaf.page, level: 0) { bytes, _ in
                    try body(loadKey(bytes, at: leafOffset(leaf.index)), leafValue(bytes, leaf.index), scratch)
                }
                guard changed else { return false }
                try makeWritable(frames, delta: 0)
                let ref = try transaction.mutablePage(frames[last].page)
                let offset = leafOffset(leaf.index) + keyWords * 8
                UnsafeMutableRawBufferPointer(rebasing: ref.bytes[offset..<(offset + valueSize)])
                    .copyMemory(from: UnsafeRawBufferPointer(scratch))
                return true
            }
        }
    }

    /// Replaces the value of an existing `key`; returns false (and changes nothing) if absent.
    @discardableResult
    package func update(_ key: BTreeKey, value: UnsafeRawBufferPointer) throws -> Bool {
        try put(key, value, mode: .updateOnly) == .replaced
    }

    @discardableResult
    package func insert(_ key: BTreeKey, value: [UInt8]) throws -> Bool {
        try value.withUnsafeBytes { try insert(key, value: $0) }
    }

    @discardableResult
    package func upsert(_ key: BTreeKey, value: [UInt8]) throws -> Bool {
        try value.withUnsafeBytes { try upsert(key, value: $0) }
    }

    @discardableResult
    package func update(_ key: BTreeKey, value: [UInt8]) throws -> Bool {
        try value.withUnsafeBytes { try update(key, value: $0) }
    }

    /// Removes `key`; returns false (and changes nothing) if it is absent. Rebalances pages
    /// that fall below the minimum fill and collapses a root branch left with one child.
    /// REQUIRES: a write transaction. O(log n) pages touched.
    @discardableResult
    package func delete(_ key: BTreeKey) throws -> Bool {
        try checkWrite(key)
        guard root.rootPage != 0 else { return false }
        return try withPath { frames in
            guard try descend(to: key, into: frames) else { return false }
            try makeWritable(frames, delta: -1)
            let leafDepth = frames.count - 1
            let leaf = frames[leafDepth]
            let remaining = try removeEntry(page: leaf.page, index: leaf.index, isLeaf: true)
            if leafDepth == 0 {
                if remaining == 0 {
                    try transaction.freePage(leaf.page)
                    transaction.state.trees[slot].rootPage = 0
                    transaction.state.trees[slot].height = 0
                }
                return true
            }
            if leaf.index == 0, remaining > 0 { try refreshSeparators(frames, fromDepth: leafDepth) }
            try rebalance(frames, fromDepth: leafDepth)
            try collapseRoot()
            return true
        }
    }

    // MARK: insert machinery

    func checkWrite(_ key: BTreeKey) throws {
        guard transaction.isWritable else { throw StorageError.invalidArgument("B+tree write in a read transaction") }
        guard key.fits(keyWords: keyWords) else {
            throw StorageError.invalidArgument("key \(key) has nonzero words past keyWords \(keyWords)")
        }
    }

    func put(_ key: BTreeKey, _ value: UnsafeRawBufferPointer, mode: PutMode,
             replaced: (UnsafeRawBufferPointer) throws -> Void = { _ in }) throws -> PutOutcome {
        try checkWrite(key)
        guard value.count == valueSize else {
            throw StorageError.invalidArgument("value of \(value.count) bytes, tree slot \(slot) stores \(valueSize)")
        }
        if root.rootPage == 0 {
            guard mode != .updateOnly else { return .unchanged }
            let page = try transaction.allocatePage()
            do {
                let ref = try transaction.mutablePage(page)
                initializeHeader(ref.bytes, isLeaf: true, level: 0)
                writeLeafEntry(ref.bytes, at: 0, key, value)
                ref.bytes.storeLE(UInt16(1), at: Layout.entryCountOffset)
                ref.bytes.storeLE(UInt16(1), at: Layout.insertHintOffset)
            }
            transaction.state.trees[slot].rootPage = page
            transaction.state.trees[slot].entryCount = 1
            transaction.state.trees[slot].height = 1
            return .inserted
        }
        return try withPath { frames in
            if try descend(to: key, into: frames) {
                guard mode != .insertOnly else { return .unchanged }
                try makeWritable(frames, delta: 0)
                let leaf = frames[frames.count - 1]
                let ref = try transaction.mutablePage(leaf.page)
                let offset = leafOffset(leaf.index) + keyWords * 8
                let stored = UnsafeMutableRawBufferPointer(rebasing: ref.bytes[offset..<(offset + valueSize)])
                try replaced(UnsafeRawBufferPointer(stored))
                stored.copyMemory(from: value)
                return .replaced
            }
            guard mode != .updateOnly else { return .unchanged }
            try makeWritable(frames, delta: 1)
            try withUnsafeTemporaryAllocation(byteCount: leafEntrySize, alignment: 8) { entry in
                writeLeafEntry(entry, at: 0, key, value, entryOffset: 0)
                try insertEntry(UnsafeRawBufferPointer(entry), frames: frames)
            }
            return .inserted
        }
    }

    /// Runs `body` with a path buffer of exactly `height` frames on the stack (no heap
    /// allocation per write).
    func withPath<R>(_ body: (Path) throws -> R) throws -> R {
        let height = Int(root.height)
        return try withUnsafeTemporaryAllocation(of: PathFrame.self, capacity: height) { buffer in
            buffer.initialize(repeating: PathFrame(page: 0, index: 0))
            return try body(buffer)
        }
    }

    /// Fills `frames` (exactly `height` entries) with the root-to-leaf path for `key`
    /// (read-only); the leaf frame's index is the lower bound. Returns whether `key` is present.
    func descend(to key: BTreeKey, into frames: Path) throws -> Bool {
        let root = self.root
        var page = root.rootPage
        var level = Int(root.height) - 1
        var depth = 0
        while level > 0 {
            let (index, child) = try withPage(page, level: level) { bytes, count in
                let index = branchChildIndex(bytes, count: count, key)
                return (index, childPage(bytes, index))
            }
            frames[depth] = PathFrame(page: page, index: index)
            page = child
            level -= 1
            depth += 1
        }
        let (index, found) = try withPage(page, level: 0) { bytes, count in
            let index = leafLowerBound(bytes, count: count, key)
            return (index, index < count && leafKey(bytes, index, equals: key))
        }
        frames[depth] = PathFrame(page: page, index: index)
        return found
    }

    /// Makes every page of the path owned by the transaction (copying unowned pages and
    /// re-pointing their parents or the root), and adds `delta` to the subtree count of every
    /// branch entry on the path and to the tree's entry count.
    func makeWritable(_ frames: Path, delta: Int) throws {
        for depth in 0..<frames.count {
            if !transaction.isOwned(frames[depth].page) {
                let copy = try copyPage(frames[depth].page)
                if depth == 0 {
                    transaction.state.trees[slot].rootPage = copy
                } else {
                    try setChild(frames[depth - 1].page, frames[depth - 1].index, page: copy)
                }
                frames[depth].page = copy
            }
            if delta != 0, depth < frames.count - 1 {
                let ref = try transaction.mutablePage(frames[depth].page)
                let offset = branchOffset(frames[depth].index) + Layout.branchCountOffset
                ref.bytes.storeLE(ref.bytes.loadLE(UInt64.self, at: offset) &+ UInt64(bitPattern: Int64(delta)), at: offset)
            }
        }
        transaction.state.trees[slot].entryCount &+= UInt64(bitPattern: Int64(delta))
    }

    /// Copies page `number` (the bytes this layer owns) to a newly allocated page, frees the
    /// original and returns the copy's number.
    func copyPage(_ number: PageNumber) throws -> PageNumber {
        let copy = try transaction.allocatePage()
        do {
            let source = try transaction.page(number)
            let target = try transaction.mutablePage(copy)
            let pageSize = source.bytes.count
            guard target.bytes.count == pageSize else {
                throw StorageError.invalidArgument("pager returned pages of different sizes")
            }
            let base = target.bytes.baseAddress!
            let from = source.bytes.baseAddress!
            let fields = BTreePageLayout.ownedHeaderFields, tail = BTreePageLayout.ownedHeaderTail.lowerBound
            (base + fields.lowerBound).copyMemory(from: from + fields.lowerBound, byteCount: fields.count)
            (base + tail).copyMemory(from: from + tail, byteCount: pageSize - tail)
        }
        try transaction.freePage(number)
        return copy
    }

    func setChild(_ parent: PageNumber, _ index: Int, page: PageNumber) throws {
        let ref = try transaction.mutablePage(parent)
        ref.bytes.storeLE(page, at: branchOffset(index) + Layout.branchChildOffset)
    }

    func initializeHeader(_ bytes: UnsafeMutableRawBufferPointer, isLeaf: Bool, level: Int) {
        bytes[Layout.pageTypeOffset] = isLeaf ? Layout.leafType : Layout.branchType
        bytes[Layout.treeSlotOffset] = UInt8(slot)
        bytes.storeLE(UInt16(0), at: Layout.entryCountOffset)
        bytes[Layout.levelOffset] = UInt8(level)
        bytes[Layout.keyWordsOffset] = UInt8(keyWords)
        bytes.storeLE(UInt16(isLeaf ? valueSize : 0), at: Layout.valueSizeOffset)
        bytes.storeLE(UInt16(0), at: Layout.insertHintOffset)
        bytes.storeLE(UInt16(0), at: Layout.reservedOffset)
    }

    func writeLeafEntry(_ bytes: UnsafeMutableRawBufferPointer, at index: Int, _ key: BTreeKey, _ value: UnsafeRawBufferPointer,
                        entryOffset: Int? = nil) {
        let offset = entryOffset ?? leafOffset(index)
        storeKey(key, bytes, at: offset)
        if valueSize > 0 {
            UnsafeMutableRawBufferPointer(rebasing: bytes[(offset + keyWords * 8)..<(offset + leafEntrySize)]).copyMemory(from: value)
        }
    }

    func writeBranchEntry(_ bytes: UnsafeMutableRawBufferPointer, at offset: Int, child: PageNumber, count: UInt64, key: BTreeKey) {
        bytes.storeLE(child, at: offset + Layout.branchChildOffset)
        bytes.storeLE(count, at: offset + Layout.branchCountOffset)
        storeKey(key, bytes, at: offset + Layout.branchKeyOffset)
    }

    func firstKey(_ page: PageNumber, isLeaf: Bool) throws -> BTreeKey {
        let ref = try transaction.page(page)
        return loadKey(ref.bytes, at: keyOffset(0, isLeaf: isLeaf))
    }

    /// Total entries below a page: its entry count for a leaf, the sum of its counts for a branch.
    func subtreeCount(_ page: PageNumber, isLeaf: Bool) throws -> UInt64 {
        let ref = try transaction.page(page)
        let count = Int(ref.bytes.loadLE(UInt16.self, at: Layout.entryCountOffset))
        return isLeaf ? UInt64(count) : sumCounts(ref.bytes, 0..<count)
    }

    /// After the first key of the page at `depth` changed, rewrites the separator keys of its
    /// ancestors: the parent's entry for it, and further up while the entry is the first one.
    func refreshSeparators(_ frames: Path, fromDepth depth: Int) throws {
        let leafDepth = frames.count - 1
        var child = depth
        while child > 0 {
            let key = try firstKey(frames[child].page, isLeaf: child == leafDepth)
            let parent = frames[child - 1]
            let ref = try transaction.mutablePage(parent.page)
            storeKey(key, ref.bytes, at: branchOffset(parent.index) + Layout.branchKeyOffset)
            if parent.index != 0 { break }
            child -= 1
        }
    }

    /// Inserts `entry` at the leaf position of the (owned) path, splitting pages upward as needed
    /// and growing a new root when the root splits.
    func insertEntry(_ leafEntry: UnsafeRawBufferPointer, frames: Path) throws {
        let leafDepth = frames.count - 1
        var depth = leafDepth
        // Branch entries built on the way up live in this fixed buffer (at most 48 bytes).
        var scratch: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
        var entry = leafEntry
        while true {
            let isLeaf = depth == leafDepth
            let frame = frames[depth]
            let split = try insertIntoPage(frame.page, at: frame.index, entry, isLeaf: isLeaf)
            if frame.index == 0 { try refreshSeparators(frames, fromDepth: depth) }
            guard let right = split else { return }
            let leftTotal = try subtreeCount(frame.page, isLeaf: isLeaf)
            let rightTotal = try subtreeCount(right, isLeaf: isLeaf)
            let rightKey = try firstKey(right, isLeaf: isLeaf)
            if depth == 0 {
                let leftKey = try firstKey(frame.page, isLeaf: isLeaf)
                let newRoot = try transaction.allocatePage()
                let level = Int(transaction.state.trees[slot].height)
                do {
                    let ref = try transaction.mutablePage(newRoot)
                    initializeHeader(ref.bytes, isLeaf: false, level: level)
                    writeBranchEntry(ref.bytes, at: branchOffset(0), child: frame.page, count: leftTotal, key: leftKey)
                    writeBranchEntry(ref.bytes, at: branchOffset(1), child: right, count: rightTotal, key: rightKey)
                    ref.bytes.storeLE(UInt16(2), at: Layout.entryCountOffset)
                }
                transaction.state.trees[slot].rootPage = newRoot
                transaction.state.trees[slot].height = UInt8(level + 1)
                return
            }
            let parent = frames[depth - 1]
            do {
                let ref = try transaction.mutablePage(parent.page)
                ref.bytes.storeLE(leftTotal, at: branchOffset(parent.index) + Layout.branchCountOffset)
            }
            let size = branchEntrySize
            entry = withUnsafeMutableBytes(of: &scratch) { buffer in
                writeBranchEntry(buffer, at: 0, child: right, count: rightTotal, key: rightKey)
                return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<size])
            }
            depth -= 1
            frames[depth].index += 1
        }
    }

    /// Inserts `entry` at `index` of owned page `page`. If the page is full, splits it into a
    /// new right sibling and returns that sibling: in the middle (left keeps ⌊(count+1)/2⌋),
    /// or, when the entry goes to the end (start) of the page, so that the right (left) page
    /// holds exactly the minimum fill.
    func insertIntoPage(_ page: PageNumber, at index: Int, _ entry: UnsafeRawBufferPointer, isLeaf: Bool) throws -> PageNumber? {
        let ref = try transaction.mutablePage(page)
        let bytes = ref.bytes
        let base = bytes.baseAddress!
        let size = entrySize(isLeaf: isLeaf)
        let count = Int(bytes.loadLE(UInt16.self, at: Layout.entryCountOffset))
        let capacity = capacity(isLeaf: isLeaf, pageSize: bytes.count)
        let header = Layout.headerSize
        guard index >= 0, index <= count, count <= capacity else {
            throw corrupted(page, pageSize: bytes.count, at: Layout.entryCountOffset, "entry count \(count) inconsistent with insert position \(index)")
        }
        if count < capacity {
            let offset = header + index * size
            (base + offset + size).copyMemory(from: base + offset, byteCount: (count - index) * size)
            (base + offset).copyMemory(from: entry.baseAddress!, byteCount: size)
            bytes.storeLE(UInt16(count + 1), at: Layout.entryCountOffset)
            bytes.storeLE(UInt16(index + 1), at: Layout.insertHintOffset)
            return nil
        }
        // Split point: the middle, unless the previous insert into this page was just before
        // this one (a sequential run, e.g. appends to one conversation or one search term):
        // - at the page's end, the new entry and the fewest entries the minimum fill allows
        //   (a sixteenth of a leaf) go right: the left page keeps 15/16, the run goes on in
        //   the right page;
        // - inside the page (other keys follow the run's), the new entry is the left page's
        //   last and the keys after it go right (clamped so the left keeps the underflow fill,
        //   a quarter, and the right the minimum fill): the run goes on in the left page's
        //   free space, away from the keys that follow, until that page is full and the run
        //   reaches its end. (At most one sparse page per place where a run meets other keys.)
        // Time-ordered inserts so leave pages full instead of half (or 3/4) full.
        let hint = Int(bytes.loadLE(UInt16.self, at: Layout.insertHintOffset))
        let leftCount: Int
        if hint != 0 && hint == index {
            if index == count {
                leftCount = count + 1 - minimumFill(isLeaf: isLeaf, pageSize: bytes.count)
            } else {
                let underflow = underflowFill(isLeaf: isLeaf, pageSize: bytes.count)
                leftCount = min(max(index + 1, underflow), count + 1 - minimumFill(isLeaf: isLeaf, pageSize: bytes.count))
            }
        } else {
            leftCount = (count + 1) / 2
        }
        let rightCount = count + 1 - leftCount
        let rightPage = try transaction.allocatePage()
        let rightRef = try transaction.mutablePage(rightPage)
        let rightBase = rightRef.bytes.baseAddress!
        let fields = BTreePageLayout.ownedHeaderFields, tail = BTreePageLayout.ownedHeaderTail
        (rightBase + fields.lowerBound).copyMemory(from: base + fields.lowerBound, byteCount: fields.count)
        (rightBase + tail.lowerBound).copyMemory(from: base + tail.lowerBound, byteCount: tail.count)
        if index < leftCount {
            // Right: old [leftCount-1, count). Left: old [0, index) + entry + old [index, leftCount-1).
            let moveFrom = leftCount - 1
            (rightBase + header).copyMemory(from: base + header + moveFrom * size, byteCount: (count - moveFrom) * size)
            let offset = header + index * size
            (base + offset + size).copyMemory(from: base + offset, byteCount: (moveFrom - index) * size)
            (base + offset).copyMemory(from: entry.baseAddress!, byteCount: size)
        } else {
            // Right: old [leftCount, index) + entry + old [index, count).
            let before = index - leftCount
            (rightBase + header).copyMemory(from: base + header + leftCount * size, byteCount: before * size)
            (rightBase + header + before * size).copyMemory(from: entry.baseAddress!, byteCount: size)
            (rightBase + header + (before + 1) * size).copyMemory(from: base + header + index * size, byteCount: (count - index) * size)
        }
        let leftEnd = header + leftCount * size
        (base + leftEnd).initializeMemory(as: UInt8.self, repeating: 0, count: bytes.count - leftEnd)
        bytes.storeLE(UInt16(leftCount), at: Layout.entryCountOffset)
        rightRef.bytes.storeLE(UInt16(rightCount), at: Layout.entryCountOffset)
        bytes.storeLE(UInt16(index < leftCount ? index + 1 : 0), at: Layout.insertHintOffset)
        rightRef.bytes.storeLE(UInt16(index < leftCount ? 0 : index - leftCount + 1), at: Layout.insertHintOffset)
        return rightPage
    }

    // MARK: delete machinery

    /// Removes entry `index` from owned page `page`; returns the remaining entry count.
    func removeEntry(page: PageNumber, index: Int, isLeaf: Bool) throws -> Int {
        let ref = try transaction.mutablePage(page)
        let bytes = ref.bytes
        let base = bytes.baseAddress!
        let size = entrySize(isLeaf: isLeaf)
        let count = Int(bytes.loadLE(UInt16.self, at: Layout.entryCountOffset))
        guard index >= 0, index < count else {
            throw corrupted(page, pageSize: bytes.count, at: Layout.entryCountOffset, "entry count \(count) has no entry \(index)")
        }
        let offset = Layout.headerSize + index * size
        (base + offset).copyMemory(from: base + offset + size, byteCount: (count - index - 1) * size)
        (base + Layout.headerSize + (count - 1) * size).initializeMemory(as: UInt8.self, repeating: 0, count: size)
        bytes.storeLE(UInt16(count - 1), at: Layout.entryCountOffset)
        return count - 1
    }

    /// Walks up from `depth`, fixing pages below the minimum fill by merging with or borrowing
    /// from an adjacent sibling (the left one when there is one). Stops at the first page that
    /// is full enough or was fixed by redistribution.
    func rebalance(_ frames: Path, fromDepth start: Int) throws {
        let leafDepth = frames.count - 1
        var depth = start
        while depth > 0 {
            let isLeaf = depth == leafDepth
            let page = frames[depth].page
            let (count, pageSize) = try {
                let ref = try transaction.page(page)
                return (Int(ref.bytes.loadLE(UInt16.self, at: Layout.entryCountOffset)), ref.bytes.count)
            }()
            if count >= underflowFill(isLeaf: isLeaf, pageSize: pageSize) { return }
            let parent = frames[depth - 1]
            let parentCount = try {
                let ref = try transaction.page(parent.page)
                return Int(ref.bytes.loadLE(UInt16.self, at: Layout.entryCountOffset))
            }()
            guard parentCount >= 2 else {
                throw corrupted(parent.page, pageSize: pageSize, at: Layout.entryCountOffset, "branch with a single child below the root")
            }
            let siblingIndex = parent.index > 0 ? parent.index - 1 : parent.index + 1
            var sibling = try { let ref = try transaction.page(parent.page); return childPage(ref.bytes, siblingIndex) }()
            _ = try withPage(sibling, level: leafDepth - depth) { _, _ in 0 }
            if !transaction.isOwned(sibling) {
                sibling = try copyPage(sibling)
                try setChild(parent.page, siblingIndex, page: sibling)
            }
            let leftIndex = min(parent.index, siblingIndex)
            let (left, right) = parent.index < siblingIndex ? (page, sibling) : (sibling, page)
            let merged = try mergeOrRedistribute(left: left, right: right, isLeaf: isLeaf)
            do {
                let ref = try transaction.mutablePage(parent.page)
                let bytes = ref.bytes
                let leftCountOffset = branchOffset(leftIndex) + Layout.branchCountOffset
                if merged {
                    let total = childCount(UnsafeRawBufferPointer(bytes), leftIndex) &+ childCount(UnsafeRawBufferPointer(bytes), leftIndex + 1)
                    bytes.storeLE(total, at: leftCountOffset)
                } else {
                    let total = childCount(UnsafeRawBufferPointer(bytes), leftIndex) &+ childCount(UnsafeRawBufferPointer(bytes), leftIndex + 1)
                    let leftTotal = try subtreeCount(left, isLeaf: isLeaf)
                    bytes.storeLE(leftTotal, at: leftCountOffset)
                    bytes.storeLE(total &- leftTotal, at: branchOffset(leftIndex + 1) + Layout.branchCountOffset)
                    storeKey(try firstKey(right, isLeaf: isLeaf), bytes, at: branchOffset(leftIndex + 1) + Layout.branchKeyOffset)
                }
                storeKey(try firstKey(left, isLeaf: isLeaf), bytes, at: branchOffset(leftIndex) + Layout.branchKeyOffset)
            }
            if merged { _ = try removeEntry(page: parent.page, index: leftIndex + 1, isLeaf: false) }
            if leftIndex == 0 { try refreshSeparators(frames, fromDepth: depth - 1) }
            if !merged { return }
            depth -= 1
        }
    }

    /// Merges `right` into `left` if their entries fit one page (freeing `right`, returns true);
    /// otherwise moves entries so both hold half (returns false). Both pages must be owned.
    func mergeOrRedistribute(left: PageNumber, right: PageNumber, isLeaf: Bool) throws -> Bool {
        let size = entrySize(isLeaf: isLeaf)
        let header = Layout.headerSize
        let merged: Bool
        do {
            let leftRef = try transaction.mutablePage(left)
            let rightRef = try transaction.mutablePage(right)
            let l = leftRef.bytes.baseAddress!
            let r = rightRef.bytes.baseAddress!
            let pageSize = leftRef.bytes.count
            let leftCount = Int(leftRef.bytes.loadLE(UInt16.self, at: Layout.entryCountOffset))
            let rightCount = Int(rightRef.bytes.loadLE(UInt16.self, at: Layout.entryCountOffset))
            let capacity = capacity(isLeaf: isLeaf, pageSize: pageSize)
            let total = leftCount + rightCount
            if total <= capacity {
                (l + header + leftCount * size).copyMemory(from: r + header, byteCount: rightCount * size)
                leftRef.bytes.storeLE(UInt16(total), at: Layout.entryCountOffset)
                merged = true
            } else {
                let newLeft = total / 2
                let newRight = total - newLeft
                if leftCount < newLeft {
                    let k = newLeft - leftCount
                    (l + header + leftCount * size).copyMemory(from: r + header, byteCount: k * size)
                    (r + header).copyMemory(from: r + header + k * size, byteCount: newRight * size)
                    (r + header + newRight * size).initializeMemory(as: UInt8.self, repeating: 0, count: k * size)
                } else if leftCount > newLeft {
                    let k = leftCount - newLeft
                    (r + header + k * size).copyMemory(from: r + header, byteCount: rightCount * size)
                    (r + header).copyMemory(from: l + header + newLeft * size, byteCount: k * size)
                    (l + header + newLeft * size).initializeMemory(as: UInt8.self, repeating: 0, count: k * size)
                }
                leftRef.bytes.storeLE(UInt16(newLeft), at: Layout.entryCountOffset)
                rightRef.bytes.storeLE(UInt16(newRight), at: Layout.entryCountOffset)
                rightRef.bytes.storeLE(UInt16(0), at: Layout.insertHintOffset)
                merged = false
            }
        }
        if merged { try transaction.freePage(right) }
        return merged
    }

    /// While the root is a branch with a single child, makes that child the root.
    func collapseRoot() throws {
        while transaction.state.trees[slot].height > 1 {
            let rootPage = transaction.state.trees[slot].rootPage
            let (count, child) = try {
                let ref = try transaction.page(rootPage)
                return (Int(ref.bytes.loadLE(UInt16.self, at: Layout.entryCountOffset)), childPage(ref.bytes, 0))
            }()
            guard count == 1 else { return }
            try transaction.freePage(rootPage)
            transaction.state.trees[slot].rootPage = child
            transaction.state.trees[slot].height -= 1
        }
    }
}
