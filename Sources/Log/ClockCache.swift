import ScrollbackIO
import Synchronization

/// A byte-bounded cache with CLOCK replacement: the one mechanism behind the block cache and
/// the record cache of sealed segments.
///
/// Each entry is charged a cost in bytes chosen by the caller and has a reference bit, set on
/// every hit; to make room the hand sweeps the slots, clearing set bits and evicting the first
/// entry whose bit is clear. An entry costing more than the whole capacity is not cached.
/// Lookup and insert are O(1) amortized; `removeAll(where:)` is O(slots).
///
/// Keys are found through an `IntegerMap` of their 64-bit packing (`ClockCacheKey`), not a
/// `Dictionary`: a lookup is one per read, and SipHash was most of its cost.
///
/// Thread-safety: one lock around the table; values are immutable objects handed out as
/// references, so readers use them outside the lock and an evicted value lives on until its
/// last reader lets go.
final class ClockCache<Key: ClockCacheKey, Value: AnyObject & Sendable>: Sendable {
    struct Counters: Sendable, Equatable {
        var hits: UInt64 = 0
        var misses: UInt64 = 0
        var evictions: UInt64 = 0
        var bytes = 0
        var entries = 0
    }

    private struct Slot {
        var key: Key
        var value: Value
        var cost: Int
        var referenced: Bool
    }

    private struct State {
        /// Packed key → index in `slots`.
        var map = IntegerMap<Int>()
        var slots: [Slot?] = []
        var freeSlots: [Int] = []
        var hand = 0
        var counters = Counters()
    }

    let capacity: Int
    private let state = Lock(State())

    init(capacity: Int) { self.capacity = capacity }

    func lookup(_ key: Key) -> Value? {
        state.withLock { state in
            guard let index = state.map[key.packed], let slot = state.slots[index] else {
                state.counters.misses += 1
                return nil
            }
            state.counters.hits += 1
            if !slot.referenced { state.slots[index]?.referenced = true }
            return slot.value
        }
    }

    /// Caches `value` unless `key` is present already (then the cached value is returned:
    /// another thread got there first) or `cost` exceeds the capacity (then `value` is
    /// returned uncached).
    @discardableResult
    func insert(_ key: Key, _ value: Value, cost: Int) -> Value {
        guard cost <= capacity else { return value }
        return state.withLock { state in
            if let index = state.map[key.packed], let existing = state.slots[index] { return existing.value }
            while state.counters.bytes + cost > capacity, state.map.count > 0 {
                Self.evictOne(&state)
            }
            let slot = Slot(key: key, value: value, cost: cost, referenced: false)
            let index: Int
            if let free = state.freeSlots.popLast() {
                state.slots[free] = slot
                index = free
            } else {
                state.slots.append(slot)
                index = state.slots.count - 1
            }
            state.map[key.packed] = index
            state.counters.bytes += cost
            state.counters.entries += 1
            return value
        }
    }

    /// Drops every entry whose key matches (e.g. all of a removed segment).
    func removeAll(where matches: (Key) -> Bool) {
        state.withLock { state in
            for (index, slot) in state.slots.enumerated() {
                guard let slot, matches(slot.key) else { continue }
                Self.release(&state, index: index, slot: slot)
            }
        }
    }

    var counters: Counters { state.withLock { $0.counters } }

    private static func evictOne(_ state: inout State) {
        while true {
            if state.hand >= state.slots.count { state.hand = 0 }
            let index = state.hand
            state.hand += 1
            guard let slot = state.slots[index] else { continue }
            if slot.referenced {
                state.slots[index]?.referenced = false
                continue
            }
            release(&state, index: index, slot: slot)
            state.counters.evictions += 1
            return
        }
    }

    private static func release(_ state: inout State, index: Int, slot: Slot) {
        state.slots[index] = nil
        state.freeSlots.append(index)
        state.map[slot.key.packed] = nil
        state.counters.bytes -= slot.cost
        state.counters.entries -= 1
    }
}

/// A cache key with a one-to-one packing into 64 bits (the cache's table is keyed by it).
protocol ClockCacheKey: Equatable, Sendable {
    var packed: UInt64 { get }
}

extension UInt64: ClockCacheKey {
    var packed: UInt64 { self }
}
