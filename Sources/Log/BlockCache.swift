import ScrollbackIO
import Synchronization

/// One decompressed sealed block: raw-segment bytes `rawStart ..< rawStart + count`.
/// Immutable after creation; freed when the cache and every reader let go.
final class DecompressedBlock: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let count: Int
    let rawStart: Int

    init(count: Int, rawStart: Int) {
        self.count = count
        self.rawStart = rawStart
        base = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 16)
    }

    deinit { base.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}

/// Cache counters, cumulative since open.
package struct BlockCacheStatistics: Sendable, Equatable {
    package var hits: UInt64 = 0
    package var misses: UInt64 = 0
    package var evictions: UInt64 = 0
    package var cachedBytes: Int = 0
    package var cachedBlocks: Int = 0
}

/// A byte-bounded cache of decompressed sealed blocks with CLOCK replacement.
///
/// Each entry has a reference bit set on every hit; the hand sweeps the slots, clearing set
/// bits and evicting the first entry whose bit is clear, until the new block fits. A block
/// larger than the whole capacity is returned to the caller but not cached.
/// Lookup and insert are O(1) amortized. Thread-safety: one mutex around the table; blocks
/// are handed out as references, so reads of their bytes happen outside the lock.
final class BlockCache: Sendable {
    struct Key: Hashable {
        var segment: UInt32
        var block: UInt32
    }

    private struct Slot {
        var key: Key
        var block: DecompressedBlock
        var referenced: Bool
    }

    private struct State {
        var map: [Key: Int] = [:]
        var slots: [Slot?] = []
        var freeSlots: [Int] = []
        var hand = 0
        var statistics = BlockCacheStatistics()
    }

    let capacity: Int
    private let state = Lock(State())

    init(capacity: Int) { self.capacity = capacity }

    func lookup(_ key: Key) -> DecompressedBlock? {
        state.withLock { state in
            guard let index = state.map[key], let slot = state.slots[index] else {
                state.statistics.misses += 1
                return nil
            }
            state.statistics.hits += 1
            if !slot.referenced { state.slots[index]!.referenced = true }
            return slot.block
        }
    }

    /// Inserts `block` (or returns the copy another thread inserted first).
    func insert(_ key: Key, _ block: DecompressedBlock) -> DecompressedBlock {
        guard block.count <= capacity else { return block }
        return state.withLock { state in
            if let index = state.map[key], let existing = state.slots[index] { return existing.block }
            while state.statistics.cachedBytes + block.count > capacity, state.map.count > 0 {
                Self.evictOne(&state)
            }
            let slot = Slot(key: key, block: block, referenced: false)
            let index: Int
            if let free = state.freeSlots.popLast() {
                state.slots[free] = slot
                index = free
            } else {
                state.slots.append(slot)
                index = state.slots.count - 1
            }
            state.map[key] = index
            state.statistics.cachedBytes += block.count
            state.statistics.cachedBlocks += 1
            return block
        }
    }

    private static func evictOne(_ state: inout State) {
        while true {
            if state.hand >= state.slots.count { state.hand = 0 }
            let index = state.hand
            state.hand += 1
            guard let slot = state.slots[index] else { continue }
            if slot.referenced {
                state.slots[index]!.referenced = false
                continue
            }
            state.slots[index] = nil
            state.freeSlots.append(index)
            state.map[slot.key] = nil
            state.statistics.cachedBytes -= slot.block.count
            state.statistics.cachedBlocks -= 1
            state.statistics.evictions += 1
            return
        }
    }

    /// Drops every block of `segment` (after the segment is removed).
    func removeAll(segment: UInt32) {
        state.withLock { state in
            for (index, slot) in state.slots.enumerated() {
                guard let slot, slot.key.segment == segment else { continue }
                state.slots[index] = nil
                state.freeSlots.append(index)
                state.map[slot.key] = nil
                state.statistics.cachedBytes -= slot.block.count
                state.statistics.cachedBlocks -= 1
            }
        }
    }

    var statistics: BlockCacheStatistics { state.withLock { $0.statistics } }
}
