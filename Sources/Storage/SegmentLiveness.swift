import ScrollbackBTree
import ScrollbackFormat
import ScrollbackLog
import ScrollbackPager

/// Where the storage engine keeps its own tables and records (spec/storage-records.md): the
/// segment table (per log segment: liveness, and the sorted run its live records were sealed
/// into), the run table (per sorted run: size), and the engine's log records (retire, sealed,
/// merged, attached), which it writes and applies itself; the schema never sees them.
///
/// The numbers are on disk and the schema picks them so that they fit its own numbering
/// (the message layer: slots 7 and 8, record types 23–26, counters 5, 7, 8).
package struct LivenessLayout: Sendable, Equatable {
    /// Tree slot of the segment table: key (segment id), value a `SegmentAccount`.
    package var segmentTable: Int
    /// Tree slot of the run table: key (run id), value a `RunAccount`.
    package var runTable: Int
    /// Record type of a retirement: count u64, then count segment ids u64.
    package var retireRecordType: UInt8
    /// Record type of a sealing: a segment's live records now also live in a run.
    package var sealRecordType: UInt8
    /// Record type of a merge: runs replaced by one run.
    package var mergeRecordType: UInt8
    /// Record type of an attachment: a run written directly (bulk load) under a virtual segment.
    package var attachRecordType: UInt8
    /// Counter that grows by one with every retirement and every merge record (compactions).
    package var retirementCounter: Int
    /// Counter: the next run id (first is 1).
    package var nextRunCounter: Int
    /// Counter: the lowest virtual segment id handed out so far (0: none; they count down
    /// from 2^32 − 1, far above any log segment id).
    package var virtualSegmentCounter: Int

    package init(segmentTable: Int, runTable: Int, retireRecordType: UInt8, sealRecordType: UInt8, mergeRecordType: UInt8,
                 attachRecordType: UInt8, retirementCounter: Int, nextRunCounter: Int, virtualSegmentCounter: Int) {
        self.segmentTable = segmentTable
        self.runTable = runTable
        self.retireRecordType = retireRecordType
        self.sealRecordType = sealRecordType
        self.mergeRecordType = mergeRecordType
        self.attachRecordType = attachRecordType
        self.retirementCounter = retirementCounter
        self.nextRunCounter = nextRunCounter
        self.virtualSegmentCounter = virtualSegmentCounter
    }

    /// Whether `type` is one of the engine's own record types.
    @inline(__always)
    func isEngineRecord(_ type: UInt8) -> Bool {
        type == retireRecordType || type == sealRecordType || type == mergeRecordType || type == attachRecordType
    }
}

/// The account of one log segment: an entry of the segment table (32 bytes).
package struct SegmentAccount: Sendable, Equatable {
    package var id: UInt32
    /// Frames of every record appended to the segment (0 for a virtual segment).
    package var recordBytes: UInt64
    /// Records of the segment the trees have pointed at, ever (live or not any more).
    package var records: UInt64
    /// The sorted run holding this segment's live records (0: not sealed, they are read from
    /// the log segment).
    package var run: UInt32
    /// `SegmentFlags`.
    package var flags: UInt32
    /// Records the trees point at.
    package var liveRecords: UInt64
    /// Whether the log segment's file is a sealed archive (complete and immutable), from the
    /// log's listing.
    package var isSealed = false

    package var isVirtual: Bool { flags & SegmentFlags.virtual != 0 }

    // The value in the segment table (on disk: never change).
    static let valueSize = 32
    static let recordBytesOffset = 0   // u64
    static let recordsOffset = 8       // u64
    static let runOffset = 16          // u32
    static let flagsOffset = 20        // u32
    static let liveRecordsOffset = 24  // u64

    init(id: UInt32, recordBytes: UInt64 = 0, records: UInt64 = 0, run: UInt32 = 0, flags: UInt32 = 0, liveRecords: UInt64 = 0) {
        self.id = id
        self.recordBytes = recordBytes
        self.records = records
        self.run = run
        self.flags = flags
        self.liveRecords = liveRecords
    }

    /// Reads a segment-table entry.
    init(key: BTreeKey, value: UnsafeRawBufferPointer) {
        self.init(id: UInt32(truncatingIfNeeded: key.w0), recordBytes: value.loadLE(UInt64.self, at: Self.recordBytesOffset),
                  records: value.loadLE(UInt64.self, at: Self.recordsOffset), run: value.loadLE(UInt32.self, at: Self.runOffset),
                  flags: value.loadLE(UInt32.self, at: Self.flagsOffset),
                  liveRecords: value.loadLE(UInt64.self, at: Self.liveRecordsOffset))
    }

    func store(into value: UnsafeMutableRawBufferPointer) {
        value.storeLE(recordBytes, at: Self.recordBytesOffset)
        value.storeLE(records, at: Self.recordsOffset)
        value.storeLE(run, at: Self.runOffset)
        value.storeLE(flags, at: Self.flagsOffset)
        value.storeLE(liveRecords, at: Self.liveRecordsOffset)
    }

    var bytes: [UInt8] {
        var value = [UInt8](repeating: 0, count: Self.valueSize)
        value.withUnsafeMutableBytes { store(into: $0) }
        return value
    }

    /// Dead records over records (0 for an empty segment).
    package var garbageRatio: Double {
        records == 0 ? 0 : Double(records - min(liveRecords, records)) / Double(records)
    }

    /// The garbage ratio of several segments together (0 when they hold nothing).
    package static func garbageRatio(_ accounts: [SegmentAccount]) -> Double {
        let records = accounts.reduce(UInt64(0)) { $0 + $1.records }
        let live = accounts.reduce(UInt64(0)) { $0 + min($1.liveRecords, $1.records) }
        return records == 0 ? 0 : Double(records - live) / Double(records)
    }
}

/// Flags of a segment-table entry. on disk: never renumber.
package enum SegmentFlags {
    /// A bulk load's segment: it names a run written directly, and no log file.
    package static let virtual: UInt32 = 1
}

/// The account of one sorted run: an entry of the run table (32 bytes).
package struct RunAccount: Sendable, Equatable {
    package var id: UInt32
    /// Records in the run file (live or not).
    package var records: UInt64
    /// Bytes of the run file.
    package var fileBytes: UInt64
    /// `RunFlags`.
    package var flags: UInt32

    static let valueSize = 32
    static let recordsOffset = 0      // u64
    static let fileBytesOffset = 8    // u64
    static let flagsOffset = 16       // u32, then 12 reserved bytes (zero)

    package init(id: UInt32, records: UInt64, fileBytes: UInt64, flags: UInt32) {
        self.id = id
        self.records = records
        self.fileBytes = fileBytes
        self.flags = flags
    }

    init(key: BTreeKey, value: UnsafeRawBufferPointer) {
        self.init(id: UInt32(truncatingIfNeeded: key.w0), records: value.loadLE(UInt64.self, at: Self.recordsOffset),
                  fileBytes: value.loadLE(UInt64.self, at: Self.fileBytesOffset), flags: value.loadLE(UInt32.self, at: Self.flagsOffset))
    }

    var bytes: [UInt8] {
        var value = [UInt8](repeating: 0, count: Self.valueSize)
        value.withUnsafeMutableBytes {
            $0.storeLE(records, at: Self.recordsOffset)
            $0.storeLE(fileBytes, at: Self.fileBytesOffset)
            $0.storeLE(flags, at: Self.flagsOffset)
        }
        return value
    }

    package var isHighlyCompressed: Bool { flags & RunFlags.highCompression != 0 }
}

/// Flags of a run-table entry. on disk: never renumber.
package enum RunFlags {
    /// Every block was written with LZ4 HC (compaction need not recompress it).
    package static let highCompression: UInt32 = 1
}

/// The liveness changes of one logged transaction, per segment, collected while it is
/// applied and written to the segment table once at its end. The schema reports the records
/// its trees start and stop pointing at; the engine adds every record's frame to its
/// segment's record bytes.
package struct LivenessLedger {
    private var segments: [UInt32] = []
    private var bytes: [Int64] = []
    private var records: [Int64] = []
    private var liveCounts: [Int64] = []

    init() {}

    /// The trees now point at the record at `position` (written in this transaction).
    package mutating func recordBecameLive(at position: LogPosition) {
        add(LogPositions.segment(position), bytes: 0, records: 1, live: 1)
    }

    /// The trees now point at `count` records of `segment` (a bulk load's virtual segment).
    package mutating func recordsBecameLive(inSegment segment: UInt32, count: Int64) {
        add(segment, bytes: 0, records: count, live: count)
    }

    /// The trees no longer point at the record at `position`.
    package mutating func recordBecameDead(at position: LogPosition) {
        add(LogPositions.segment(position), bytes: 0, records: 0, live: -1)
    }

    mutating func recordAppended(at position: LogPosition, frameBytes: Int64) {
        add(LogPositions.segment(position), bytes: frameBytes, records: 0, live: 0)
    }

    /// Drops what was collected for a segment that is being retired.
    mutating func forget(_ segment: UInt64) {
        if let i = segments.firstIndex(where: { UInt64($0) == segment }) {
            segments.remove(at: i)
            bytes.remove(at: i)
            records.remove(at: i)
            liveCounts.remove(at: i)
        }
    }

    private mutating func add(_ segment: UInt32, bytes b: Int64, records r: Int64, live l: Int64) {
        if let i = segments.firstIndex(of: segment) {
            bytes[i] += b
            records[i] += r
            liveCounts[i] += l
        } else {
            segments.append(segment)
            bytes.append(b)
            records.append(r)
            liveCounts.append(l)
        }
    }

    /// Adds the collected changes to the segment table (never below zero).
    func write(to table: BTree) throws {
        for (i, id) in segments.enumerated() {
            let key = BTreeKey(UInt64(id))
            var account = SegmentAccount(id: id)
            try table.withValue(for: key) { account = SegmentAccount(key: key, value: $0) }
            account.recordBytes = UInt64(max(0, Int64(truncatingIfNeeded: account.recordBytes) + bytes[i]))
            account.records = UInt64(max(0, Int64(truncatingIfNeeded: account.records) + records[i]))
            account.liveRecords = UInt64(max(0, Int64(truncatingIfNeeded: account.liveRecords) + liveCounts[i]))
            try table.upsert(key, value: account.bytes)
        }
    }
}
