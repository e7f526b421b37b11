import CPrefetch
import ScrollbackFormat
import ScrollbackIO

/// A key of a sorted run: three unsigned 64-bit words compared lexicographically (word 0
/// first). The message layer stores (conversation, createdAt, seq) in them.
///
/// Public (the module is not a product) only so that its small members are inlined in the
/// other modules of the package: the members of a package type are not, and a read calls
/// them per record.
public struct RunKey: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var w0: UInt64
    public var w1: UInt64
    public var w2: UInt64

    @inlinable @inline(__always)
    package init(_ w0: UInt64, _ w1: UInt64, _ w2: UInt64) {
        self.w0 = w0
        self.w1 = w1
        self.w2 = w2
    }

    package static let min = RunKey(0, 0, 0)
    package static let max = RunKey(.max, .max, .max)

    @inlinable @inline(__always)
    public static func < (a: RunKey, b: RunKey) -> Bool {
        if a.w0 != b.w0 { return a.w0 < b.w0 }
        if a.w1 != b.w1 { return a.w1 < b.w1 }
        return a.w2 < b.w2
    }

    @inlinable @inline(__always)
    public static func == (a: RunKey, b: RunKey) -> Bool { a.w0 == b.w0 && a.w1 == b.w1 && a.w2 == b.w2 }

    public var description: String { "(\(w0), \(w1), \(w2))" }

    func store(into bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.storeLE(w0, at: offset)
        bytes.storeLE(w1, at: offset + 8)
        bytes.storeLE(w2, at: offset + 16)
    }

    static func load(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> RunKey {
        RunKey(bytes.loadLE(UInt64.self, at: offset), bytes.loadLE(UInt64.self, at: offset + 8),
               bytes.loadLE(UInt64.self, at: offset + 16))
    }
}

/// The encoding of one block's records before compression (spec/sorted-run.md, "Block
/// encoding"): the record count, the first key, the other keys as deltas, the payload
/// lengths, then the payloads back to back.
enum RunBlockEncoding {
    @inline(__always)
    static func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }
    @inline(__always)
    static func unzigzag(_ v: UInt64) -> Int64 { Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1) }

    /// Appends a tag as the zigzag delta from the tag before it.
    static func appendTag(_ tag: UInt32, after previous: UInt32, to out: inout ByteWriter) {
        out.writeVarint(zigzag(Int64(tag) - Int64(previous)))
    }

    /// Appends the delta of `key` after `previous` to `out` (REQUIRES previous < key).
    static func appendDelta(_ key: RunKey, after previous: RunKey, to out: inout ByteWriter) {
        let a = key.w0 &- previous.w0
        out.writeVarint(a)
        if a == 0 {
            out.writeVarint(key.w1 &- previous.w1)
            out.writeVarint(zigzag(Int64(bitPattern: key.w2 &- previous.w2)))
        } else {
            out.writeVarint(key.w1)
            out.writeVarint(key.w2)
        }
    }
}

/// One block of a sorted run, decoded: keys, payload offsets and payload bytes in one
/// buffer with O(1) access to record `i` (through `records`). Immutable after decoding;
/// shared through the block cache and freed when the cache and every reader let go.
///
/// Layout of the buffer: `count` keys (3 × u64 each, native order), `count` tags (u32),
/// `count + 1` payload offsets (u32, relative to the payload area), the payload area.
package final class DecodedRunBlock: @unchecked Sendable {
    /// The records, read in place; valid while this block is alive.
    package let records: RunBlockRecords
    let base: UnsafeMutableRawPointer
    let byteCount: Int

    init(count: Int, payloadBytes: Int) {
        let keyBytes = count * RunKeyStride.bytes
        let tagBytes = count * 4
        let offsetBytes = (count + 1) * 4
        byteCount = keyBytes + tagBytes + offsetBytes + payloadBytes
        base = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 16)
        records = RunBlockRecords(
            count: count, keys: base.bindMemory(to: UInt64.self, capacity: count * 3),
            tags: (base + keyBytes).bindMemory(to: UInt32.self, capacity: count),
            offsets: (base + keyBytes + tagBytes).bindMemory(to: UInt32.self, capacity: count + 1),
            payloads: base + keyBytes + tagBytes + offsetBytes)
    }

    deinit { base.deallocate() }

    package var count: Int { records.count }

    /// Bytes this block holds in memory (its cost in the block cache).
    package var memoryCost: Int { byteCount + 64 }

    /// Decodes the encoded block `bytes` (after decompression) and checks it against its
    /// index entry: record count, first and last key, strictly increasing keys, payload
    /// lengths that add up to exactly the bytes that remain. Damage throws `.corrupted`
    /// naming `file` and `fileOffset` (where the stored block starts).
    static func decode(_ bytes: UnsafeRawBufferPointer, entry: RunBlockEntry, file: String) throws -> DecodedRunBlock {
        func damaged(_ reason: String) -> StorageError {
            .corrupted(file: file, offset: entry.fileOffset, reason: "run block: \(reason)")
        }
        var reader = ByteReader(bytes, file: file, baseOffset: entry.fileOffset)
        let count = Int(try reader.read(UInt32.self))
        guard count == Int(entry.recordCount), count >= 1, count <= SortedRunLayout.maximumRecordsPerBlock else {
            throw damaged("holds \(count) records, the index says \(entry.recordCount)")
        }
        guard reader.remaining >= RunKeyStride.bytes + 3 * (count - 1) + 2 * count else {
            throw damaged("too short for \(count) records")
        }
        // Keys and lengths first into a scratch array (the payload size is known only after).
        let keyWords = UnsafeMutablePointer<UInt64>.allocate(capacity: count * 3)
        defer { keyWords.deallocate() }
        var previous = RunKey(try reader.read(UInt64.self), try reader.read(UInt64.self), try reader.read(UInt64.self))
        guard previous == entry.firstKey else { throw damaged("first key \(previous) differs from the index's \(entry.firstKey)") }
        keyWords[0] = previous.w0
        keyWords[1] = previous.w1
        keyWords[2] = previous.w2
        for i in 1..<max(count, 1) {
            let a = try reader.readVarint()
            var key: RunKey
            if a == 0 {
                let b = try reader.readVarint()
                let c = RunBlockEncoding.unzigzag(try reader.readVarint())
                key = RunKey(previous.w0, previous.w1 &+ b, previous.w2 &+ UInt64(bitPattern: c))
                guard b > 0 || c > 0, key.w1 >= previous.w1 else { throw damaged("key \(i) does not increase") }
            } else {
                key = RunKey(previous.w0 &+ a, try reader.readVarint(), try reader.readVarint())
                guard key.w0 > previous.w0 else { throw damaged("key \(i) does not increase") }
            }
            keyWords[3 * i] = key.w0
            keyWords[3 * i + 1] = key.w1
            keyWords[3 * i + 2] = key.w2
            previous = key
        }
        guard previous == entry.lastKey else { throw damaged("last key \(previous) differs from the index's \(entry.lastKey)") }
        let tagValues = UnsafeMutablePointer<UInt32>.allocate(capacity: count)
        defer { tagValues.deallocate() }
        var previousTag: Int64 = 0
        for i in 0..<count {
            let tag = previousTag &+ RunBlockEncoding.unzigzag(try reader.readVarint())
            guard tag >= 0, tag <= Int64(UInt32.max) else { throw damaged("tag \(i) out of range") }
            tagValues[i] = UInt32(tag)
            previousTag = tag
        }
        let lengths = UnsafeMutablePointer<UInt32>.allocate(capacity: count)
        defer { lengths.deallocate() }
        var total = 0
        for i in 0..<count {
            let length = try reader.readVarint()
            guard length <= UInt64(SortedRunLayout.maximumBlockBytes) else { throw damaged("payload \(i) of \(length) bytes") }
            lengths[i] = UInt32(length)
            total += Int(length)
        }
        guard total == reader.remaining else {
            throw damaged("payload lengths add up to \(total) bytes, \(reader.remaining) remain")
        }
        let block = DecodedRunBlock(count: count, payloadBytes: total)
        let records = block.records
        records.keys.update(from: keyWords, count: count * 3)
        records.tags.update(from: tagValues, count: count)
        var offset: UInt32 = 0
        for i in 0..<count {
            records.offsets[i] = offset
            offset &+= lengths[i]
        }
        records.offsets[count] = offset
        if total > 0 {
            let source = try reader.readBytes(total)
            records.payloads.copyMemory(from: source.baseAddress!, byteCount: total)
        }
        return block
    }
}

/// The records of a decoded run block as raw pointers into its buffer: what a cursor reads
/// per record, with no reference counting (a copy of this view does not keep the block
/// alive). Valid while the `DecodedRunBlock` it came from is alive.
package struct RunBlockRecords {
    package let count: Int
    let keys: UnsafeMutablePointer<UInt64>
    let tags: UnsafeMutablePointer<UInt32>
    let offsets: UnsafeMutablePointer<UInt32>
    let payloads: UnsafeMutableRawPointer

    @inline(__always)
    package func key(_ i: Int) -> RunKey {
        RunKey(keys[3 * i], keys[3 * i + 1], keys[3 * i + 2])
    }

    /// The tag of record `i` (the writer's per-record number; the storage engine stores the
    /// log segment the record was written in).
    @inline(__always)
    package func tag(_ i: Int) -> UInt32 { tags[i] }

    /// The payload of record `i`; valid while the block is alive.
    @inline(__always)
    package func payload(_ i: Int) -> UnsafeRawBufferPointer {
        let start = Int(offsets[i]), end = Int(offsets[i + 1])
        return UnsafeRawBufferPointer(start: payloads + start, count: end - start)
    }

    /// Asks the CPU to load record `i`'s payload into its caches (up to three 64-byte lines,
    /// a typical chat message): a scan calls it for the record it visits next, so that one's
    /// first touch does not wait for memory. Only a hint; `i` must be a valid index.
    @inline(__always)
    func prefetchPayload(_ i: Int) {
        let start = Int(offsets[i]), end = Int(offsets[i + 1])
        var line = start
        while line < end && line < start + 192 {
            scrollback_prefetch(payloads + line)
            line += 64
        }
    }

    @inline(__always)
    func isKey(_ i: Int, lessThan key: RunKey) -> Bool {
        let a = keys[3 * i]
        if a != key.w0 { return a < key.w0 }
        let b = keys[3 * i + 1]
        if b != key.w1 { return b < key.w1 }
        return keys[3 * i + 2] < key.w2
    }

    @inline(__always)
    func isKey(_ i: Int, equalTo key: RunKey) -> Bool {
        keys[3 * i] == key.w0 && keys[3 * i + 1] == key.w1 && keys[3 * i + 2] == key.w2
    }

    /// Index of the first record whose key is ≥ `key` (`count` if none). O(log count).
    @inline(__always)
    package func lowerBound(_ key: RunKey) -> Int {
        var low = 0, high = count
        while low < high {
            let mid = (low + high) >> 1
            if isKey(mid, lessThan: key) { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// Index of the record with exactly `key`, or nil.
    @inline(__always)
    package func index(of key: RunKey) -> Int? {
        let i = lowerBound(key)
        return i < count && isKey(i, equalTo: key) ? i : nil
    }
}

enum RunKeyStride {
    static let bytes = 24
}

/// One entry of a run's block index (spec/sorted-run.md, "Block index").
package struct RunBlockEntry: Equatable, Sendable {
    package var firstKey: RunKey
    package var lastKey: RunKey
    package var fileOffset: UInt64
    package var storedLength: UInt32
    package var rawLength: UInt32
    package var recordCount: UInt32
    package var codec: RunBlockCodec
    package var checksum: UInt32
}

/// Identifies a block of a run in the block cache.
struct RunBlockKey: Hashable, ClockCacheKey {
    var run: UInt32
    var block: UInt32

    var packed: UInt64 { UInt64(run) << 32 | UInt64(block) }
}

/// The byte-bounded cache of decoded run blocks (CLOCK; each block charged its size).
typealias RunBlockCache = ClockCache<RunBlockKey, DecodedRunBlock>

extension ClockCache where Key == RunBlockKey, Value == DecodedRunBlock {
    /// Drops every block of `run` (after the run file is removed).
    func removeAll(run: UInt32) { removeAll { $0.run == run } }

    var statistics: BlockCacheStatistics {
        let c = counters
        return BlockCacheStatistics(
            hits: c.hits, misses: c.misses, evictions: c.evictions, cachedBytes: c.bytes, cachedBlocks: c.entries)
    }
}
