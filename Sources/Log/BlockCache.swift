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

/// Identifies a block of a sealed segment.
struct BlockKey: Hashable, ClockCacheKey {
    var segment: UInt32
    var block: UInt32

    var packed: UInt64 { UInt64(segment) << 32 | UInt64(block) }
}

/// The byte-bounded cache of decompressed sealed blocks (CLOCK; each block charged its size).
/// A block larger than the whole capacity is returned to the caller but not cached.
typealias BlockCache = ClockCache<BlockKey, DecompressedBlock>

extension ClockCache where Key == BlockKey, Value == DecompressedBlock {
    /// Inserts `block` (or returns the copy another thread inserted first).
    func insert(_ key: BlockKey, _ block: DecompressedBlock) -> DecompressedBlock {
        insert(key, block, cost: block.count)
    }

    /// Drops every block of `segment` (after the segment is removed).
    func removeAll(segment: UInt32) { removeAll { $0.segment == segment } }

    var statistics: BlockCacheStatistics {
        let c = counters
        return BlockCacheStatistics(
            hits: c.hits, misses: c.misses, evictions: c.evictions, cachedBytes: c.bytes, cachedBlocks: c.entries)
    }
}
