import Synchronization

/// Memory of one cache frame: `pageSize` bytes of page (aligned to the page size) followed by
/// the frame's pin count (`Atomic<Int>`). Keeping the pin count next to the bytes lets a
/// `PageRef` unpin without a lock, an object reference or a table lookup.
enum FrameMemory {
    static func allocate(pageSize: Int) -> UnsafeMutableRawPointer {
        let base = UnsafeMutableRawPointer.allocate(
            byteCount: pageSize + MemoryLayout<Atomic<Int>>.stride, alignment: pageSize)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: pageSize)
        (base + pageSize).bindMemory(to: Atomic<Int>.self, capacity: 1).initialize(to: Atomic(0))
        return base
    }

    static func deallocate(_ base: UnsafeMutableRawPointer, pageSize: Int) {
        _ = pins(base, pageSize: pageSize).deinitialize(count: 1)
        base.deallocate()
    }

    @inline(__always)
    static func pins(_ base: UnsafeMutableRawPointer, pageSize: Int) -> UnsafeMutablePointer<Atomic<Int>> {
        (base + pageSize).assumingMemoryBound(to: Atomic<Int>.self)
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
        pins(base, pageSize: pageSize).pointee.load(ordering: .acquiring) != 0
    }
}

/// A pinned, read-only view of one page: exactly `pageSize` bytes, header included.
///
/// The page's frame cannot be evicted or reused while the `PageRef` is alive. Valid only for
/// the life of the transaction that returned it (the snapshot guarantees the page is not
/// reused; the pin guarantees the frame is not). Unpinning in `deinit` is one atomic
/// decrement: no lock, no allocation, no reference counting.
///
/// Thread-safety: the bytes are immutable while any reader can see them; a `PageRef` may be
/// moved to another thread.
package struct PageRef: ~Copyable {
    /// The page, `pageSize` bytes; valid while `self` is alive.
    package let bytes: UnsafeRawBufferPointer

    /// REQUIRES: the frame at `base` was pinned once for this reference.
    @inline(__always)
    init(pinnedFrame base: UnsafeMutableRawPointer, pageSize: Int) {
        bytes = UnsafeRawBufferPointer(start: base, count: pageSize)
    }

    deinit {
        if let base = bytes.baseAddress { FrameMemory.unpin(UnsafeMutableRawPointer(mutating: base), pageSize: bytes.count) }
    }
}

/// A pinned, writable view of a page owned by the open write transaction.
///
/// The user may write bytes 4..<8 and 24..<pageSize (see spec/page-file.md); the pager owns
/// the checksum (0..<4), the page number (8..<16) and the write sequence (16..<24).
/// Valid only while the write transaction is open.
package struct MutablePageRef: ~Copyable {
    /// The page, `pageSize` bytes; valid while `self` is alive.
    package let bytes: UnsafeMutableRawBufferPointer

    @inline(__always)
    init(pinnedFrame base: UnsafeMutableRawPointer, pageSize: Int) {
        bytes = UnsafeMutableRawBufferPointer(start: base, count: pageSize)
    }

    deinit {
        if let base = bytes.baseAddress { FrameMemory.unpin(base, pageSize: bytes.count) }
    }
}
