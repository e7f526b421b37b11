import ScrollbackIO
import Synchronization

/// One record's type and payload, copied out of a verified decompressed sealed block.
/// Immutable after creation; freed when the cache and every reader let go.
final class CachedRecord: @unchecked Sendable {
    let type: UInt8
    let base: UnsafeMutableRawPointer
    let count: Int

    init(type: UInt8, copying payload: UnsafeRawBufferPointer) {
        self.type = type
        count = payload.count
        base = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 8)
        if count > 0 { base.copyMemory(from: payload.baseAddress!, byteCount: count) }
    }

    deinit { base.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}

/// A byte-bounded cache of single records of sealed segments, keyed by log position, with
/// CLOCK replacement (same policy as `BlockCache`).
///
/// Why: a conversation's messages are spread over the whole log by a time-ordered load, a
/// few per 32 KiB block, so walking a large conversation decompresses a block per few
/// records and the block cache cycles through far more blocks than it holds. This cache
/// keeps just the records that were read (a few hundred bytes each), so a conversation's
/// history stays cached within a small budget. Its bytes come from a block whose checksum
/// was verified when it was read from the file; they are trusted from then on.
///
/// Each entry is charged its payload plus `overhead` bytes. Lookup and insert are O(1)
/// amortized. Thread-safety: one mutex around the table; records are handed out as
/// references, so reads of their bytes happen outside the lock.
final class RecordCache: Sendable {
    /// Bytes charged per entry beyond its payload (object, allocation, table slot).
    static let overhead = 96

    private struct Slot {
        var key: UInt64
        var record: CachedRecord
        var referenced: Bool
    }

    private struct State {
        var map: [UInt64: Int] = [:]
        var slots: [Slot?] = []
        var freeSlots: [Int] = []
        var hand = 0
        var bytes = 0
    }

    let capacity: Int
    private let state = Lock(State())

    init(capacity: Int) { self.capacity = capacity }

    func lookup(_ key: UInt64) -> CachedRecord? {
        state.withLock { state in
            guard let index = state.map[key], let slot = state.slots[index] else { return nil }
            if !slot.referenced { state.slots[index]!.referenced = true }
            return slot.record
        }
    }

    /// Copies the record into the cache (unless it is there already or too large).
    func insert(_ key: UInt64, type: UInt8, payload: UnsafeRawBufferPointer) {
        let cost = payload.count + Self.overhead
        guard cost <= capacity else { return }
        let record = CachedRecord(type: type, copying: payload)
        state.withLock { state in
            if state.map[key] != nil { return }
            while state.bytes + cost > capacity, state.map.count > 0 {
                Self.evictOne(&state)
            }
            let slot = Slot(key: key, record: record, referenced: false)
            let index: Int
            if let free = state.freeSlots.popLast() {
                state.slots[free] = slot
                index = free
            } else {
                state.slots.append(slot)
                index = state.slots.count - 1
            }
            state.map[key] = index
            state.bytes += cost
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
            state.bytes -= slot.record.count + overhead
            return
        }
    }

    /// Drops every record of `segment` (after the segment is removed).
    func removeAll(segment: UInt32) {
        state.withLock { state in
            for (index, slot) in state.slots.enumerated() {
                guard let slot, LogPositions.segment(slot.key) == segment else { continue }
                state.slots[index] = nil
                state.freeSlots.append(index)
                state.map[slot.key] = nil
                state.bytes -= slot.record.count + Self.overhead
            }
        }
    }

    var cachedBytes: Int { state.withLock { $0.bytes } }
}
