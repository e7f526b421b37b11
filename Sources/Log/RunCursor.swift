import ScrollbackFormat

/// A position in a sorted run, for reading records by key in a sequence of nearby keys (the
/// merge-join of a tree scan with the run it points into).
///
/// `find(_:)` positions the cursor on the record with exactly that key. When the key lies in
/// the block the cursor is already on — the usual case in a scan — it costs a few key
/// comparisons next to the current record (no cache lookup, no lock); otherwise binary
/// searches of the page table (skipped when the key lies in the current block's index page),
/// of the index page (read on its first use) and of the block, and one block-cache lookup.
///
/// Holds a reference to its current decoded block and reads its records through a view
/// (`records`) that the reference keeps valid: no reference counting per record. Not
/// thread-safe (one scan, one thread).
package struct RunCursor {
    package let run: SortedRun
    let cache: RunBlockCache
    /// The current block (nil before the first move): owned here, read through `records`.
    package private(set) var block: DecodedRunBlock?
    /// `block`'s records (nil exactly when `block` is).
    private var records: RunBlockRecords?
    package private(set) var blockNumber = -1
    package private(set) var index = -1
    /// The current block's key range (valid when `block` is set).
    private var blockFirst = RunKey.min
    private var blockLast = RunKey.min

    init(run: SortedRun, cache: RunBlockCache) {
        self.run = run
        self.cache = cache
    }

    /// Moves to the record with `key`; false (cursor unchanged) if the run has no such record.
    @inline(__always)
    package mutating func find(_ key: RunKey) throws -> Bool {
        if let records, !(key < blockFirst) && !(blockLast < key) {
            // Neighbours first: scans move one record at a time in either direction.
            // The record after the one found in the scan's direction is likely the next one
            // asked for: its bytes are prefetched while the caller reads this one.
            if index + 1 < records.count && records.isKey(index + 1, equalTo: key) {
                index += 1
                if index + 1 < records.count { records.prefetchPayload(index + 1) }
                return true
            }
            if index > 0 && records.isKey(index - 1, equalTo: key) {
                index -= 1
                if index > 0 { records.prefetchPayload(index - 1) }
                return true
            }
            guard let i = records.index(of: key) else { return false }
            index = i
            return true
        }
        return try findSlow(key)
    }

    /// `find(key)`, then the record's payload if its tag is `tag`; nil if the run holds no
    /// record with `key` or holds it with another tag. One call for the hot path of a reader
    /// in another module (the cursor is reached in place, no copy of its references). The
    /// payload stays valid while this cursor stays on its block (until it moves to another
    /// block or dies).
    package mutating func payload(of key: RunKey, tag: UInt32) throws -> UnsafeRawBufferPointer? {
        guard try find(key), let records, records.tag(index) == tag else { return nil }
        return records.payload(index)
    }

    /// The index page of the current block (-1 before the first move): tried first by lookups.
    private var pageHint: Int { blockNumber >= 0 ? blockNumber / SortedRunLayout.indexPageEntries : -1 }

    /// Makes `found` (block `number`, indexed by `entry`) the current block.
    private mutating func adopt(_ found: DecodedRunBlock, number: Int, entry: RunBlockEntry) {
        block = found
        records = found.records
        blockNumber = number
        blockFirst = entry.firstKey
        blockLast = entry.lastKey
    }

    @inline(never)
    mutating func findSlow(_ key: RunKey) throws -> Bool {
        guard let (number, entry) = try run.locate(atLeast: key, hint: pageHint), !(key < entry.firstKey) else { return false }
        let found = try run.block(number, entry: entry, cache: cache)
        guard let i = found.records.index(of: key) else { return false }
        adopt(found, number: number, entry: entry)
        index = i
        return true
    }

    /// The payload of the current record; valid while this cursor (or another reference to
    /// its block) is alive. REQUIRES: a successful `find`.
    @inline(__always)
    package var payload: UnsafeRawBufferPointer { records!.payload(index) }

    @inline(__always)
    package var key: RunKey { records!.key(index) }

    /// The tag of the current record. REQUIRES: a successful `find` or seek.
    @inline(__always)
    package var tag: UInt32 { records!.tag(index) }

    /// Moves to the first record with a key ≥ `key` (false at the end of the run).
    package mutating func seek(atLeast key: RunKey) throws -> Bool {
        guard let (number, entry) = try run.locate(atLeast: key, hint: pageHint) else { return false }
        let found = try run.block(number, entry: entry, cache: cache)
        adopt(found, number: number, entry: entry)
        index = found.records.lowerBound(key)
        return index < found.count
    }

    /// Moves to the first record of the run (false if it is empty).
    package mutating func seekFirst() throws -> Bool { try seek(atLeast: .min) }

    /// Moves to the next record (false at the end; the cursor then stays on the last one).
    package mutating func next() throws -> Bool {
        guard let records else { return false }
        if index + 1 < records.count {
            index += 1
            return true
        }
        let number = blockNumber + 1
        guard number < run.blockCount else { return false }
        let entry = try run.entry(number)
        adopt(try run.block(number, entry: entry, cache: cache), number: number, entry: entry)
        index = 0
        return true
    }
}

extension SortedRun {
    /// A cursor over this run reading blocks through `cache`.
    func cursor(cache: RunBlockCache) -> RunCursor { RunCursor(run: self, cache: cache) }
}
