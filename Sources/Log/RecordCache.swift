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
/// CLOCK replacement (the same `ClockCache` as the block cache).
///
/// Why: a conversation's messages are spread over the whole log by a time-ordered load, a
/// few per 32 KiB block, so walking a large conversation decompresses a block per few
/// records and the block cache cycles through far more blocks than it holds. This cache
/// keeps just the records that were read (a few hundred bytes each), so a conversation's
/// history stays cached within a small budget. Its bytes come from a block whose checksum
/// was verified when it was read from the file; they are trusted from then on.
typealias RecordCache = ClockCache<UInt64, CachedRecord>

extension ClockCache where Key == UInt64, Value == CachedRecord {
    /// Bytes charged per entry beyond its payload (object, allocation, table slot).
    static var overhead: Int { 96 }

    /// Copies the record into the cache (unless it is there already or too large).
    func insert(_ key: UInt64, type: UInt8, payload: UnsafeRawBufferPointer) {
        let cost = payload.count + Self.overhead
        guard cost <= capacity else { return }
        insert(key, CachedRecord(type: type, copying: payload), cost: cost)
    }

    /// Drops every record of `segment` (after the segment is removed).
    func removeAll(segment: UInt32) { removeAll { LogPositions.segment($0) == segment } }

    var cachedBytes: Int { counters.bytes }
}
