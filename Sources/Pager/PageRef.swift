import Synchronization

/// Memory of one cache frame: `pageSize` bytes of page (aligned to the page size) followed by
/// the frame's pin count (`Atomic<Int>`) and its lock-free reference bit (`Atomic<Int>`, set
/// by hits that bypass the cache lock, read and cleared by the CLOCK sweep). Keeping the pin
/// count next to the bytes lets a `PageRef` unpin without a lock, an object reference or a
/// table lookup.
enum FrameMemory {
    static func allocate(pageSize: Int) -> UnsafeMutableRawPointer {
        let base = UnsafeMutableRawPointer.allocate(
            byteCount: pageSize + 2 * MemoryLayout<Atomic<Int>>.stride, alignment: pageSize)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: pageSize)
        (base + pageSize).bindMemory(to: Atomic<Int>.self, capacity: 2).initialize(to: Atomic(0))
        (base + pageSize).assumingMemoryBound(to: Atomic<Int>.self).advanced(by: 1).initialize(to: Atomic(0))
        return base
    }

    static func deallocate(_ base: UnsafeMutableRawPointer, pageSize: Int) {
        _ = pins(base, pageSize: pageSize).deinitialize(count: 2)
        base.deallocate()
    }

    @inline(__always)
    static func pins(_ base: UnsafeMutableRawPointer, pageSize: Int) -> UnsafeMutablePointer<Atomic<Int>> {
        (base + pageSize).assumingMemoryBound(to: Atomic<Int>.self)
    }

    @inline(__always)
    static func referenceBit(_ base: UnsafeMutableRawPointer, pageSize: Int) -> UnsafeMutablePointer<Atomic<Int>> {
        pins(base, pageSize: pageSize) + 1
    }

    /// Sets the frame's lock-free reference bit (a load first: a hot page's bit is usually
    /// set already, and a store would take its cache line from other cores).
    @inline(__always)
    static func markReferenced(_ base: UnsafeMutableRawPointer, pageSize: Int) {
        let bit = referenceBit(base, pageSize: pageSize)
        if bit.pointee.load(ordering: .relaxed) == 0 { bit.pointee.store(1, ordering: .relaxed) }
    }

    /// Clears the lock-free reference bit and returns whether it was set.
    @inline(__always)
    static func takeReferenced(_ base: UnsafeMutableRawPointer, pageSize: Int) -> Bool {
        let bit = referenceBit(base, pageSize: pageSize)
        guard bit.pointee.load(ordering: .relaxed) != 0 else { return false }
        bit.pointee.store(0, ordering: .relaxed)
        return true
    }

    @inline(__always)
    static func pin(_ base: UnsafeMutableRawPointer, pageSize: Int) {
        pins(base, pageSize: pageSize).pointee.wrappingAdd(1, ordering: .relaxed)
    }

    @inline(__always)
    static func unpin(_ base: UnsafeMutableRawPointer, pageSize: Int) {
        pins(base, pageSize: pageSize).pointee.wrappingSubtract(1, ordering: .releasing)
    }

    @inline(__always)
    static func isPinned(_ base: UnsafeMutableRawPointer, pageSize: Int) -> Bool {
        pins(base, pageSize: pageSize).pointee.load(ordering: .sequentiallyConsistent) != 0
    }
}

/// How a page reference is pinned; released exactly once when the reference dies.
///
/// Three kinds, packed in one word so a `PageRef` stays three words:
/// - 0: not pinned (a page owned by the open write transaction: dirty frames are never
///   evicted and only that transaction could reuse the page);
/// - address of a pin slot | 1: the frame's address is stored in a pin slot of the
///   transaction (set under the cache lock, or by a lock-free hit with a sequentially
///   consistent store; cleared with one release store; no atomic read-modify-write);
/// - address of the frame's pin count: one atomic decrement (the fallback when all of a
///   transaction's pin slots are in use, and for pages loaded by a cache miss).
struct PinToken: Sendable {
    let raw: UInt

    static let none = PinToken(raw: 0)

    @inline(__always)
    static func slot(_ slot: UnsafeMutablePointer<Atomic<UInt>>) -> PinToken { PinToken(raw: UInt(bitPattern: slot) | 1) }

    @inline(__always)
    static func counter(_ base: UnsafeMutableRawPointer, pageSize: Int) -> PinToken {
        PinToken(raw: UInt(bitPattern: FrameMemory.pins(base, pageSize: pageSize)))
    }

    @inline(__always)
    func release() {
        if raw & 1 != 0 {
            UnsafeMutablePointer<Atomic<UInt>>(bitPattern: raw & ~1).unsafelyUnwrapped.pointee.store(0, ordering: .releasing)
        } else if raw != 0 {
            UnsafeMutablePointer<Atomic<Int>>(bitPattern: raw).unsafelyUnwrapped.pointee.wrappingSubtract(1, ordering: .releasing)
        }
    }
}

/// A transaction's pin slots: a fixed block of words, each empty (0) or holding the address
/// of a frame the transaction has pinned, followed by one word counting the transaction's
/// lock-free cache hits. Only the owning transaction fills a slot (under the cache lock, or
/// on the lock-free hit path with a sequentially consistent store); the reference that
/// filled it empties it. The cache treats a frame whose address is in any slot as pinned.
struct PinSlots: @unchecked Sendable {
    static let count = 16
    let block: UnsafeMutablePointer<Atomic<UInt>>

    static func allocate() -> PinSlots {
        let block = UnsafeMutablePointer<Atomic<UInt>>.allocate(capacity: count + 1)
        for i in 0...count { (block + i).initialize(to: Atomic(0)) }
        return PinSlots(block: block)
    }

    func deallocate() {
        block.deinitialize(count: Self.count + 1)
        block.deallocate()
    }

    /// Stores `base` in an empty slot; nil if all are in use.
    @inline(__always)
    func claim(for base: UnsafeMutableRawPointer) -> PinToken? {
        for i in 0..<Self.count {
            let slot = block + i
            if slot.pointee.load(ordering: .relaxed) == 0 {
                slot.pointee.store(UInt(bitPattern: base), ordering: .relaxed)
                return .slot(slot)
            }
        }
        return nil
    }

    /// An empty slot, not yet filled; nil if all are in use.
    @inline(__always)
    func emptySlot() -> UnsafeMutablePointer<Atomic<UInt>>? {
        for i in 0..<Self.count where (block + i).pointee.load(ordering: .relaxed) == 0 { return block + i }
        return nil
    }

    /// Lock-free hits counted by the owning transaction (one writer; any thread may read).
    @inline(__always)
    func countHit() {
        let counter = block + Self.count
        counter.pointee.store(counter.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
    }

    var hits: UInt64 { UInt64((block + Self.count).pointee.load(ordering: .relaxed)) }

    /// True if any slot is in use.
    var anySlotSet: Bool {
        for i in 0..<Self.count where (block + i).pointee.load(ordering: .acquiring) != 0 { return true }
        return false
    }

    /// True if `base` is in one of the block's slots. Sequentially consistent loads: the
    /// eviction side of the lock-free hit protocol (`PageCache`, "Lock-free hits").
    func contains(_ base: UnsafeMutableRawPointer) -> Bool {
        let key = UInt(bitPattern: base)
        for i in 0..<Self.count where (block + i).pointee.load(ordering: .sequentiallyConsistent) == key { return true }
        return false
    }
}

/// A pinned, read-only view of one page: exactly `pageSize` bytes, header included.
///
/// The page's frame cannot be evicted or reused while the `PageRef` is alive. Valid only for
/// the life of the transaction that returned it (the snapshot guarantees the page is not
/// reused; the pin guarantees the frame is not). REQUIRES: the caller keeps the transaction
/// alive while it uses the reference (ARC may end an unused local early: hold the
/// transaction in a property or parameter, or use `withExtendedLifetime`). A reference that
/// outlives its pager is memory-safe: its frame and pin slot are leaked, not freed. Releasing the pin in `deinit` is one store
/// (or, in the fallback, one atomic decrement): no lock, no allocation, no reference counting.
///
/// Thread-safety: the bytes are immutable while any reader can see them; a `PageRef` may be
/// moved to another thread.
package struct PageRef: ~Copyable {
    /// The page, `pageSize` bytes; valid while `self` is alive.
    package let bytes: UnsafeRawBufferPointer
    let pin: PinToken

    @inline(__always)
    init(frame base: UnsafeMutableRawPointer, pageSize: Int, pin: PinToken) {
        bytes = UnsafeRawBufferPointer(start: base, count: pageSize)
        self.pin = pin
    }

    deinit { pin.release() }
}

/// A writable view of a page owned by the open write transaction.
///
/// The user may write bytes 4..<8 and 24..<pageSize (see spec/page-file.md); the pager owns
/// the checksum (0..<4), the page number (8..<16) and the write sequence (16..<24).
/// Valid only while the write transaction is open. (Owned pages are dirty, never evicted, so
/// no pin is needed.)
package struct MutablePageRef: ~Copyable {
    /// The page, `pageSize` bytes; valid while `self` is alive.
    package let bytes: UnsafeMutableRawBufferPointer

    @inline(__always)
    init(frame base: UnsafeMutableRawPointer, pageSize: Int) {
        bytes = UnsafeMutableRawBufferPointer(start: base, count: pageSize)
    }
}
