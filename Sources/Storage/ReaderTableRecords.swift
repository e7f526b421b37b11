import ScrollbackFormat
import ScrollbackIO

// The values of the reader table (spec/reader-table.md) and the codecs of its header and
// slots. Decoders never trap and never throw: the table is volatile coordination state, and
// what a damaged header or slot means is decided by `ReaderTable` (rebuild, re-read, or
// "oldest possible").

/// The state a reader in another process reads: a checkpointed meta page plus the log after it.
package struct ReaderSnapshot: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The transaction id of the meta page the reader reads (its trees). A page freed by
    /// transaction T may be reused only when every reader has `transactionID >= T`.
    package var transactionID: UInt64
    /// The meta page's log position, where the reader's log replay starts: no log segment at
    /// or after `segment(logPosition)` may be removed while the reader lives.
    package var logPosition: UInt64

    package init(transactionID: UInt64, logPosition: UInt64) {
        self.transactionID = transactionID
        self.logPosition = logPosition
    }

    package var description: String { "transaction \(transactionID), log position \(hex(logPosition))" }
}

/// What the writer publishes in the table's header (`ReaderTable.publish`).
package struct PublishedState: Sendable, Equatable {
    /// Readers must not read log records past this position while it is not `noBound`.
    package var durableLogEnd: UInt64
    /// Transaction id of the writer's newest durable checkpoint (a hint: readers decide with
    /// the meta pages).
    package var checkpointTransaction: UInt64
    /// Number of publishes since the table was built; changes whenever a value changes.
    package var publishCount: UInt64

    package init(durableLogEnd: UInt64, checkpointTransaction: UInt64, publishCount: UInt64) {
        self.durableLogEnd = durableLogEnd
        self.checkpointTransaction = checkpointTransaction
        self.publishCount = publishCount
    }

    /// False when no writer has published since the table was built: there is no bound, a
    /// reader reads every complete transaction.
    package var hasBound: Bool { durableLogEnd != ReaderTableLayout.noBound }
}

/// The writer's view of the live readers (`ReaderTable.oldestReader()`).
package struct OldestReader: Sendable, Equatable, CustomStringConvertible {
    /// The smallest snapshot transaction id of a live reader (0 if a live slot is unreadable).
    package var transactionID: UInt64
    /// The smallest snapshot log position of a live reader (0 if a live slot is unreadable).
    package var logPosition: UInt64
    /// Live readers of other handles (slots whose lock is held and that hold a snapshot).
    package var liveReaders: Int
    /// Pid of the reader with the smallest transaction id; nil if that is an unreadable slot.
    package var pid: UInt64?
    /// Live slots whose bytes failed their checksum on every re-read; each counts as the
    /// oldest possible reader (transaction 0, position 0): it delays reuse, never breaks it.
    package var unreadableSlots: Int

    package init(transactionID: UInt64, logPosition: UInt64, liveReaders: Int, pid: UInt64?, unreadableSlots: Int) {
        self.transactionID = transactionID
        self.logPosition = logPosition
        self.liveReaders = liveReaders
        self.pid = pid
        self.unreadableSlots = unreadableSlots
    }

    package var description: String {
        let who = pid.map { "pid \($0)" } ?? "an unreadable slot"
        return "\(liveReaders) live reader(s); oldest: \(who), transaction \(transactionID), log position \(hex(logPosition))"
    }
}

/// One slot of the table as `ReaderTable.inspectSlots()` sees it.
package enum ReaderSlotState: Sendable, Equatable {
    /// All zero.
    case free
    /// Holds a snapshot and its lock is held: a live reader.
    case live(ReaderSlot)
    /// Its lock is held but its bytes fail the checksum (being written, or damaged).
    case liveUnreadable
    /// Holds bytes but nobody holds its lock: its reader is gone. The slot, if readable.
    case stale(ReaderSlot?)
}

/// A slot's content.
package struct ReaderSlot: Sendable, Equatable {
    package var process: ProcessIdentity
    package var snapshot: ReaderSnapshot
    /// 1 when claimed, incremented by every update (never 0 in a valid slot).
    package var generation: UInt64

    package init(process: ProcessIdentity, snapshot: ReaderSnapshot, generation: UInt64) {
        self.process = process
        self.snapshot = snapshot
        self.generation = generation
    }

    enum Decoded: Equatable {
        case free
        case valid(ReaderSlot)
        case damaged(String)
    }

    /// Writes the slot's 64 bytes into `raw` (which must hold at least 64 bytes).
    func encode(into raw: UnsafeMutableRawBufferPointer) {
        raw.storeLE(process.pid, at: ReaderSlotLayout.pid)
        raw.storeLE(process.startTime, at: ReaderSlotLayout.processStartTime)
        raw.storeLE(snapshot.transactionID, at: ReaderSlotLayout.snapshotTransaction)
        raw.storeLE(snapshot.logPosition, at: ReaderSlotLayout.snapshotLogPosition)
        raw.storeLE(generation, at: ReaderSlotLayout.generation)
        for offset in ReaderSlotLayout.reserved..<ReaderSlotLayout.reserved + ReaderSlotLayout.reservedSize {
            raw[offset] = 0
        }
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[..<ReaderSlotLayout.checksum]))
        raw.storeLE(crc, at: ReaderSlotLayout.checksum)
    }

    /// Decodes the first 64 bytes of `raw` (fewer bytes read as damaged).
    static func decode(_ raw: UnsafeRawBufferPointer) -> Decoded {
        guard raw.count >= ReaderTableLayout.slotSize else { return .damaged("slot is cut short") }
        let slot = UnsafeRawBufferPointer(rebasing: raw[..<ReaderTableLayout.slotSize])
        if isZero(slot) { return .free }
        let stored = slot.loadLE(UInt32.self, at: ReaderSlotLayout.checksum)
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: slot[..<ReaderSlotLayout.checksum]))
        guard stored == computed else {
            return .damaged("slot checksum mismatch (stored \(hex(stored)), computed \(hex(computed)))")
        }
        let reserved = ReaderSlotLayout.reserved..<ReaderSlotLayout.reserved + ReaderSlotLayout.reservedSize
        guard isZero(UnsafeRawBufferPointer(rebasing: slot[reserved])) else { return .damaged("reserved bytes are not zero") }
        let pid = slot.loadLE(UInt64.self, at: ReaderSlotLayout.pid)
        let generation = slot.loadLE(UInt64.self, at: ReaderSlotLayout.generation)
        guard pid != 0, generation != 0 else { return .damaged("pid or generation is zero") }
        return .valid(ReaderSlot(
            process: ProcessIdentity(pid: pid, startTime: slot.loadLE(UInt64.self, at: ReaderSlotLayout.processStartTime)),
            snapshot: ReaderSnapshot(
                transactionID: slot.loadLE(UInt64.self, at: ReaderSlotLayout.snapshotTransaction),
                logPosition: slot.loadLE(UInt64.self, at: ReaderSlotLayout.snapshotLogPosition)),
            generation: generation))
    }
}

/// The table's header (file offset 0).
struct ReaderTableHeader: Equatable {
    var slotCount: Int
    var published: PublishedState

    enum Decoded: Equatable {
        case valid(ReaderTableHeader)
        /// Magic and checksum are right, the version is newer than this build reads.
        case newerVersion(UInt32)
        case invalid(String)
    }

    /// Writes the header's 64 bytes into `raw` (which must hold at least 64 bytes).
    func encode(into raw: UnsafeMutableRawBufferPointer) {
        raw.storeLE(ReaderTableLayout.magic, at: ReaderTableHeaderLayout.magic)
        raw.storeLE(ReaderTableLayout.formatVersion, at: ReaderTableHeaderLayout.formatVersion)
        raw.storeLE(UInt32(slotCount), at: ReaderTableHeaderLayout.slotCount)
        raw.storeLE(UInt32(ReaderTableLayout.slotSize), at: ReaderTableHeaderLayout.slotSize)
        raw.storeLE(UInt32(0), at: ReaderTableHeaderLayout.reserved0)
        raw.storeLE(published.durableLogEnd, at: ReaderTableHeaderLayout.durableLogEnd)
        raw.storeLE(published.checkpointTransaction, at: ReaderTableHeaderLayout.checkpointTransaction)
        raw.storeLE(published.publishCount, at: ReaderTableHeaderLayout.publishCount)
        let reserved = ReaderTableHeaderLayout.reserved1..<ReaderTableHeaderLayout.reserved1 + ReaderTableHeaderLayout.reserved1Size
        for offset in reserved { raw[offset] = 0 }
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[..<ReaderTableHeaderLayout.checksum]))
        raw.storeLE(crc, at: ReaderTableHeaderLayout.checksum)
    }

    /// Decodes the header at the start of `raw`; `fileSize` must cover every slot it names.
    static func decode(_ raw: UnsafeRawBufferPointer, fileSize: UInt64) -> Decoded {
        guard raw.count >= ReaderTableLayout.headerSize else {
            return .invalid("file holds \(raw.count) bytes, less than the \(ReaderTableLayout.headerSize)-byte header")
        }
        guard raw.loadLE(UInt64.self, at: ReaderTableHeaderLayout.magic) == ReaderTableLayout.magic else {
            return .invalid("bad magic")
        }
        let stored = raw.loadLE(UInt32.self, at: ReaderTableHeaderLayout.checksum)
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[..<ReaderTableHeaderLayout.checksum]))
        guard stored == computed else {
            return .invalid("header checksum mismatch (stored \(hex(stored)), computed \(hex(computed)))")
        }
        let version = raw.loadLE(UInt32.self, at: ReaderTableHeaderLayout.formatVersion)
        if version > ReaderTableLayout.formatVersion { return .newerVersion(version) }
        guard version == ReaderTableLayout.formatVersion else { return .invalid("format version \(version)") }
        let slotCount = Int(raw.loadLE(UInt32.self, at: ReaderTableHeaderLayout.slotCount))
        let slotSize = Int(raw.loadLE(UInt32.self, at: ReaderTableHeaderLayout.slotSize))
        guard slotSize == ReaderTableLayout.slotSize else { return .invalid("slot size \(slotSize)") }
        guard (1...ReaderTableLayout.maximumSlotCount).contains(slotCount) else { return .invalid("slot count \(slotCount)") }
        let reserved = ReaderTableHeaderLayout.reserved1..<ReaderTableHeaderLayout.reserved1 + ReaderTableHeaderLayout.reserved1Size
        guard raw.loadLE(UInt32.self, at: ReaderTableHeaderLayout.reserved0) == 0,
            isZero(UnsafeRawBufferPointer(rebasing: raw[reserved]))
        else { return .invalid("reserved bytes are not zero") }
        let needed = ReaderTableLayout.fileSize(slotCount: slotCount)
        guard fileSize >= needed else {
            return .invalid("file holds \(fileSize) bytes, \(slotCount) slots need \(needed)")
        }
        return .valid(ReaderTableHeader(
            slotCount: slotCount,
            published: PublishedState(
                durableLogEnd: raw.loadLE(UInt64.self, at: ReaderTableHeaderLayout.durableLogEnd),
                checkpointTransaction: raw.loadLE(UInt64.self, at: ReaderTableHeaderLayout.checkpointTransaction),
                publishCount: raw.loadLE(UInt64.self, at: ReaderTableHeaderLayout.publishCount))))
    }
}

@inline(__always)
func isZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
    var index = 0
    let count = bytes.count
    while index + 8 <= count {
        if bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) != 0 { return false }
        index += 8
    }
    while index < count {
        if bytes[index] != 0 { return false }
        index += 1
    }
    return true
}

/// `0x…` in lower-case hex (messages only).
func hex<T: FixedWidthInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }
