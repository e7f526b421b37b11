import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ScrollbackIO

/// A map from byte strings to 64-bit values: an open-addressing table (linear probing, at
/// most half full) keyed by a 64-bit hash of the bytes that the caller supplies, each slot
/// naming its key's bytes in an arena, so two keys with one hash stay apart (the hash only
/// filters probes; the bytes decide).
///
/// Used for the ids a bulk load took (hashed with `Hash64`, the id index's hash) and for the
/// name caches (`NameIDCache`). It replaced `Dictionary<ByteString, UInt64>` in both: SipHash
/// of every key, rehashing on every growth and a `String` per entry were 30% of the
/// reference load's time, and a quarter of a warm unread count. Memory: 24 bytes per slot
/// plus the keys' bytes. Keys up to `maxKeyBytes`. Not thread-safe.
struct ByteKeyTable {
    /// Per slot: the key's hash, 0 meaning empty (a hash of 0 is stored as 1).
    private var hashes: [UInt64] = []
    private var values: [UInt64] = []
    /// Offset (high 40 bits) and length (low 24 bits) of the slot's key in `bytes`.
    private var places: [UInt64] = []
    private var bytes: [UInt8] = []
    private(set) var count = 0

    @inline(__always)
    private static func stored(_ hash: UInt64) -> UInt64 { hash == 0 ? 1 : hash }

    /// The value of `key`, if present. O(1) expected.
    func value(of key: UnsafeRawBufferPointer, hash: UInt64) -> UInt64? {
        guard !hashes.isEmpty else { return nil }
        let h = Self.stored(hash), mask = hashes.count - 1
        var slot = Int(truncatingIfNeeded: Hash64.fmix(h)) & mask
        while hashes[slot] != 0 {
            if hashes[slot] == h && matches(slot, key) { return values[slot] }
            slot = (slot + 1) & mask
        }
        return nil
    }

    /// Longest key the table holds (its length is stored in 24 bits).
    static let maxKeyBytes = (1 << 24) - 1

    /// Adds `key` (REQUIRES: not present) with `value`; false, adding nothing, for a key longer
    /// than `maxKeyBytes` (names and ids are at most 255 bytes).
    @discardableResult
    mutating func insert(_ key: UnsafeRawBufferPointer, hash: UInt64, value: UInt64) -> Bool {
        guard key.count <= Self.maxKeyBytes else { return false }
        if (count + 1) * 2 > hashes.count { grow() }
        let offset = bytes.count
        bytes.append(contentsOf: key)
        place(Self.stored(hash), value, UInt64(offset) << 24 | UInt64(key.count))
        count += 1
        return true
    }

    /// Forgets every entry; keeps the memory.
    mutating func removeAll() {
        guard count > 0 else { return }
        for i in hashes.indices { hashes[i] = 0 }
        bytes.removeAll(keepingCapacity: true)
        count = 0
    }

    private func matches(_ slot: Int, _ key: UnsafeRawBufferPointer) -> Bool {
        let offset = Int(places[slot] >> 24), length = Int(places[slot] & 0xFF_FFFF)
        guard length == key.count else { return false }
        return bytes.withUnsafeBytes { all in
            length == 0 || memcmp(all.baseAddress! + offset, key.baseAddress!, length) == 0
        }
    }

    private mutating func place(_ h: UInt64, _ value: UInt64, _ where_: UInt64) {
        let mask = hashes.count - 1
        var slot = Int(truncatingIfNeeded: Hash64.fmix(h)) & mask
        while hashes[slot] != 0 { slot = (slot + 1) & mask }
        hashes[slot] = h
        values[slot] = value
        places[slot] = where_
    }

    private mutating func grow() {
        let old = (hashes, values, places)
        let capacity = max(1024, hashes.count * 2)
        hashes = [UInt64](repeating: 0, count: capacity)
        values = [UInt64](repeating: 0, count: capacity)
        places = [UInt64](repeating: 0, count: capacity)
        for slot in old.0.indices where old.0[slot] != 0 { place(old.0[slot], old.1[slot], old.2[slot]) }
    }
}

/// Conversation or user name → internal id, for names the store has committed: ids are never
/// reused or removed, so an entry never becomes wrong (a snapshot older than the conversation
/// simply finds no messages under its id). Names are compared as UTF-8 bytes (`ByteString`'s
/// rule). At `limit` entries the cache starts over.
///
/// Two levels. The table (`ByteKeyTable` under a mutex) holds every cached name. In front of
/// it, a lock-free direct-mapped array of `frontSlots` entries for names of up to 32 bytes
/// (`FrontEntry` words: a sequence word, the id, the length, the bytes zero-padded to four
/// words), each guarded by its sequence word (a seqlock: the one writer, holding the
/// table's mutex, makes it odd, stores the fields, makes it even again; a reader keeps what
/// it read only if the word was even and unchanged around its loads). A name the front does
/// not answer (another name in its entry, a longer name, a racing write) is looked up in the
/// table, and a short one found there takes its front entry back (so the names in use keep
/// the front, one per entry).
///
/// Cost of a lookup: a hash of the name's bytes (8 at a time, mixed with a random seed of the
/// cache at every step, so that which names share a hash differs between processes; a shared
/// hash only lengthens a probe, the bytes decide); in the front, eight atomic loads and a
/// compare of at most four words; else one mutex hold, a probe and a `memcmp`.
/// Thread-safe.
final class NameIDCache: @unchecked Sendable {
    private let table = Lock(ByteKeyTable())
    private let seed = UInt64.random(in: 1...UInt64.max)
    let limit: Int
    /// Front entries (`frontSlots` of `FrontEntry.words` atomic words each).
    private let front: UnsafeMutablePointer<Atomic<UInt64>>
    private let frontMask: Int
    static let frontSlots = 4096
    /// Longest name the front holds.
    static let frontNameBytes = 32

    /// Word offsets inside a front entry.
    enum FrontEntry {
        static let sequence = 0, id = 1, length = 2, bytes = 3
        static let words = 7
        /// `length` of an empty entry.
        static let empty = UInt64.max
    }

    init(limit: Int) {
        self.limit = limit
        var slots = 16
        while slots < Self.frontSlots && slots / 2 < limit { slots <<= 1 }
        frontMask = slots - 1
        front = .allocate(capacity: slots * FrontEntry.words)
        for slot in 0..<slots {
            for word in 0..<FrontEntry.words {
                (front + slot * FrontEntry.words + word).initialize(to: Atomic(word == FrontEntry.length ? FrontEntry.empty : 0))
            }
        }
    }

    deinit {
        front.deinitialize(count: (frontMask + 1) * FrontEntry.words)
        front.deallocate()
    }

    /// The cached id of `name`, or nil.
    func id(of name: String) -> UInt64? {
        Self.withBytes(name) { bytes in
            let hash = Self.hash(bytes, seed: seed)
            let short = bytes.count <= Self.frontNameBytes
            if short, let id = frontID(of: bytes, hash: hash) { return id }
            return table.withLock { table in
                let id = table.value(of: bytes, hash: hash)
                // A name the front lost to another (one entry per hash) takes it back.
                if short, let id { writeFront(Int(truncatingIfNeeded: hash) & frontMask, id: id, bytes: bytes) }
                return id
            }
        }
    }

    /// Remembers `name` → `id` (a name already cached keeps its entry).
    func insert(_ name: String, id: UInt64) {
        Self.withBytes(name) { bytes in
            let hash = Self.hash(bytes, seed: seed)
            table.withLock { table in
                guard table.value(of: bytes, hash: hash) == nil else { return }
                if table.count >= limit {
                    table.removeAll()
                    for slot in 0...frontMask { writeFront(slot, id: 0, bytes: nil) }
                }
                if table.insert(bytes, hash: hash, value: id), bytes.count <= Self.frontNameBytes {
                    writeFront(Int(truncatingIfNeeded: hash) & frontMask, id: id, bytes: bytes)
                }
            }
        }
    }

    var count: Int { table.withLock { $0.count } }

    /// `bytes` (at most 32) as four little-endian words, zero-padded.
    @inline(__always)
    private static func words(_ bytes: UnsafeRawBufferPointer) -> (UInt64, UInt64, UInt64, UInt64) {
        var w: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &w) { $0.copyMemory(from: bytes) }
        return w
    }

    /// The front's answer for `bytes` (≤ 32), or nil (not there, or a write raced the read).
    @inline(__always)
    private func frontID(of bytes: UnsafeRawBufferPointer, hash: UInt64) -> UInt64? {
        let entry = front + (Int(truncatingIfNeeded: hash) & frontMask) * FrontEntry.words
        let before = entry[FrontEntry.sequence].load(ordering: .acquiring)
        guard before & 1 == 0 else { return nil }
        let id = entry[FrontEntry.id].load(ordering: .relaxed)
        let length = entry[FrontEntry.length].load(ordering: .relaxed)
        let b0 = entry[FrontEntry.bytes].load(ordering: .relaxed)
        let b1 = entry[FrontEntry.bytes + 1].load(ordering: .relaxed)
        let b2 = entry[FrontEntry.bytes + 2].load(ordering: .relaxed)
        let b3 = entry[FrontEntry.bytes + 3].load(ordering: .relaxed)
        atomicMemoryFence(ordering: .acquiring)
        guard entry[FrontEntry.sequence].load(ordering: .relaxed) == before, length == UInt64(bytes.count) else { return nil }
        let w = Self.words(bytes)
        guard b0 == w.0, b1 == w.1, b2 == w.2, b3 == w.3 else { return nil }
        return id
    }

    /// Sets front entry `slot` to `bytes` → `id` (nil bytes: empty). REQUIRES: the table's
    /// mutex (the one writer).
    private func writeFront(_ slot: Int, id: UInt64, bytes: UnsafeRawBufferPointer?) {
        let entry = front + slot * FrontEntry.words
        let sequence = entry[FrontEntry.sequence].load(ordering: .relaxed)
        entry[FrontEntry.sequence].store(sequence &+ 1, ordering: .relaxed)
        atomicMemoryFence(ordering: .releasing)
        let w = bytes.map(Self.words) ?? (0, 0, 0, 0)
        entry[FrontEntry.id].store(id, ordering: .relaxed)
        entry[FrontEntry.length].store(bytes.map { UInt64($0.count) } ?? FrontEntry.empty, ordering: .relaxed)
        entry[FrontEntry.bytes].store(w.0, ordering: .relaxed)
        entry[FrontEntry.bytes + 1].store(w.1, ordering: .relaxed)
        entry[FrontEntry.bytes + 2].store(w.2, ordering: .relaxed)
        entry[FrontEntry.bytes + 3].store(w.3, ordering: .relaxed)
        entry[FrontEntry.sequence].store(sequence &+ 2, ordering: .releasing)
    }

    @inline(__always)
    private static func withBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let result = name.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) { return result }
        var copy = name
        return copy.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }

    /// A seeded hash of `bytes`, 8 bytes per step (in memory only; never stored).
    @inline(__always)
    static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        var h = seed ^ (UInt64(bytes.count) &* 0x9E37_79B9_7F4A_7C15)
        var i = 0
        while i + 8 <= bytes.count {
            h = (h ^ bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
            h ^= (h >> 32) ^ seed
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < bytes.count {
            tail |= UInt64(bytes[i]) << shift
            shift += 8
            i += 1
        }
        return Hash64.fmix(h ^ tail)
    }
}
