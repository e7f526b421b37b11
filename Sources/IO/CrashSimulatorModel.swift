// The data model behind `CrashSimulatingFileSystem`: one `SimulatedFile` per inode holding the
// current bytes plus the ordered list of unsynced changes (with what each overwrote, so the
// durable bytes can be recovered by undoing them), and a small seeded generator.
// Everything here is guarded by the file system's mutex.

/// SplitMix64: a tiny deterministic generator. The crash simulator draws every random choice
/// from one of these so that a seed replays the same crash.
struct SplitMix64: RandomNumberGenerator, Sendable {
    private(set) var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in `0..<bound` (bound > 0).
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    /// `count` bytes of garbage.
    mutating func bytes(_ count: Int) -> [UInt8] {
        var result = [UInt8]()
        result.reserveCapacity(count)
        while result.count < count {
            var word = next()
            for _ in 0..<min(8, count - result.count) {
                result.append(UInt8(truncatingIfNeeded: word))
                word >>= 8
            }
        }
        return result
    }
}

/// One change to a file's bytes that has not been made durable by `syncData`.
struct PendingChange {
    enum Kind {
        case write(offset: Int, bytes: [UInt8])
        case truncate(size: Int)
    }

    let kind: Kind
    /// File size before the change.
    let previousSize: Int
    /// The bytes the change destroyed (overwritten or cut off), which lived at
    /// `overwrittenOffset` and lay inside `previousSize`.
    let overwrittenOffset: Int
    let overwritten: [UInt8]
}

extension [UInt8] {
    /// Grows with zeros or shrinks to exactly `size` bytes.
    mutating func resize(to size: Int) {
        if count > size {
            removeLast(count - size)
        } else if count < size {
            append(contentsOf: repeatElement(0, count: size - count))
        }
    }

    /// Copies `source` to `offset`, growing (zero-filled) as needed.
    mutating func put<C: Collection<UInt8>>(_ source: C, at offset: Int) {
        let end = offset + source.count
        if count < end { resize(to: end) }
        guard !source.isEmpty else { return }
        withUnsafeMutableBufferPointer { target in
            _ = UnsafeMutableBufferPointer(rebasing: target[offset..<end]).update(fromContentsOf: source)
        }
    }

    /// Applies `change` (used when replaying pending changes onto durable bytes at a crash).
    mutating func apply(_ change: PendingChange.Kind) {
        switch change {
        case let .write(offset, bytes): put(bytes, at: offset)
        case let .truncate(size): resize(to: size)
        }
    }

    /// Reverts `change`, which must be the last change applied to `self`.
    mutating func undo(_ change: PendingChange) {
        resize(to: change.previousSize)
        put(change.overwritten, at: change.overwrittenOffset)
    }
}

/// One file (an inode): current bytes (what reads see: pending changes over durable bytes)
/// plus the ordered pending changes since the last successful `syncData`.
///
/// Invariant: undoing `pending` in reverse order from `bytes` yields the durable bytes.
/// Guarded by the owning file system's mutex.
final class SimulatedFile: @unchecked Sendable {
    /// Unique per file system, for diagnostics.
    let id: Int
    var bytes: [UInt8]
    var pending: [PendingChange] = []

    init(id: Int, bytes: [UInt8] = []) {
        self.id = id
        self.bytes = bytes
    }

    /// Applies `kind` to the current bytes and remembers how to undo it.
    func record(_ kind: PendingChange.Kind) {
        let previousSize = bytes.count
        switch kind {
        case let .write(offset, data):
            let start = min(offset, previousSize)
            let end = min(offset + data.count, previousSize)
            pending.append(PendingChange(
                kind: kind, previousSize: previousSize, overwrittenOffset: start,
                overwritten: Array(bytes[start..<end])))
        case let .truncate(size):
            let start = min(size, previousSize)
            pending.append(PendingChange(
                kind: kind, previousSize: previousSize, overwrittenOffset: start,
                overwritten: Array(bytes[start..<previousSize])))
        }
        bytes.apply(kind)
    }

    /// What survives `dropAllUnsynced`: the bytes as of the last successful sync.
    var durableBytes: [UInt8] {
        var result = bytes
        for change in pending.reversed() { result.undo(change) }
        return result
    }

    /// `syncData` succeeded: everything is durable.
    func makeDurable() { pending.removeAll() }

    /// Forgets every pending change (a failed fsync dropped them): reads see the durable bytes.
    func dropPending() {
        bytes = durableBytes
        pending.removeAll()
    }

    /// Replaces the file with what a crash in `mode` leaves of it. Draws from `rng`.
    func crash(_ mode: CrashMode, rng: inout SplitMix64) {
        let changes = pending.map(\.kind)
        var result = durableBytes
        switch mode {
        case .dropAllUnsynced:
            break
        case .keepAll:
            result = bytes
        case .keepPrefix:
            for change in changes.prefix(rng.below(changes.count + 1)) { result.apply(change) }
        case .keepRandomSubset:
            for change in changes where rng.next() & 1 == 1 { result.apply(change) }
        case .tearLastWrite:
            if let last = changes.lastIndex(where: { if case .write = $0 { true } else { false } }) {
                for change in changes[..<last] { result.apply(change) }
                if case let .write(offset, data) = changes[last] {
                    Self.tear(offset: offset, data: data, into: &result, rng: &rng)
                }
            } else {
                for change in changes { result.apply(change) }
            }
        case .mixed:
            for change in changes {
                switch (rng.below(3), change) {
                case (0, _): result.apply(change)
                case (1, _): break
                case let (_, .write(offset, data)): Self.tear(offset: offset, data: data, into: &result, rng: &rng)
                case (_, .truncate): result.apply(change)
                }
            }
        }
        bytes = result
        pending.removeAll()
    }

    /// A torn write: the write is cut at absolute 512-byte sector boundaries; a random prefix
    /// of its pieces (possibly none, never all) reaches the disk, the piece in flight gets
    /// garbage, the rest is lost. Bytes outside the write are never touched, so earlier
    /// durable data in a shared sector stays intact (spec/README.md, assumption 3).
    static func tear(offset: Int, data: [UInt8], into result: inout [UInt8], rng: inout SplitMix64) {
        guard !data.isEmpty else { return }
        let sector = CrashSimulatingFileSystem.sectorSize
        var pieces: [Range<Int>] = []  // ranges within `data`
        var start = 0
        while start < data.count {
            let absolute = offset + start
            let end = min(data.count, start + (sector - absolute % sector))
            pieces.append(start..<end)
            start = end
        }
        let kept = rng.below(pieces.count)
        for piece in pieces[..<kept] { result.put(data[piece], at: offset + piece.lowerBound) }
        let torn = pieces[kept]
        result.put(rng.bytes(torn.count), at: offset + torn.lowerBound)
    }
}
