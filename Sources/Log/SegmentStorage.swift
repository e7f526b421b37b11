import ScrollbackFormat
import ScrollbackIO
import Synchronization

/// An open segment file that closes itself when the last user lets go, so a reader that
/// grabbed it just before the segment was sealed or removed can finish its read.
final class SegmentFile: @unchecked Sendable {
    let handle: any FileHandle
    private let closed = Atomic<Bool>(false)

    init(_ handle: any FileHandle) { self.handle = handle }

    var path: String { handle.path }

    /// Closes now (used by `Log.close`); later reads through it fail with an I/O error.
    func close() {
        if !closed.exchange(true, ordering: .acquiringAndReleasing) { try? handle.close() }
    }

    deinit { close() }
}

/// The in-memory copy of a raw segment written in this session: a fixed-capacity buffer
/// whose bytes below `published` never change again.
///
/// Invariants: bytes `0..<published` equal the file's bytes and are immutable; only the
/// (single, serialized) appender writes at or past `published`, then raises it with
/// release ordering. Readers load `published` with acquire ordering and read below it
/// without a lock. The buffer never moves; it is freed when the last reference goes.
final class SegmentImage: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    private let publishedCount = Atomic<Int>(0)

    init(capacity: Int) {
        self.capacity = capacity
        base = UnsafeMutableRawPointer.allocate(byteCount: max(capacity, 1), alignment: 16)
    }

    deinit { base.deallocate() }

    var published: Int { publishedCount.load(ordering: .acquiring) }

    func publish(_ count: Int) {
        assert(count <= capacity)
        publishedCount.store(count, ordering: .releasing)
    }

    /// The immutable, published prefix.
    var publishedBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: published) }

    /// The writable space from `offset` to capacity (appender only).
    func writable(from offset: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + offset, count: capacity - offset)
    }
}

/// A raw (`.seg`) segment: the active one, or a full one waiting to be sealed.
final class RawSegment: @unchecked Sendable {
    let id: UInt32
    let file: SegmentFile
    let salt: UInt32
    /// Present for segments written in this session (the active one and the one before it).
    let image: SegmentImage?
    /// Length of the file when the segment is not active (fixed); for the active segment,
    /// `image.published` is the length.
    let fixedLength: Int

    init(id: UInt32, file: SegmentFile, salt: UInt32, image: SegmentImage?, fixedLength: Int) {
        self.id = id
        self.file = file
        self.salt = salt
        self.image = image
        self.fixedLength = fixedLength
    }

    var length: Int { image?.published ?? fixedLength }
}

/// One entry of the segment table.
enum SegmentEntry {
    case raw(RawSegment)
    case sealed(SealedSegment)
}
