import ScrollbackBTree
import ScrollbackFormat
import ScrollbackLog
import ScrollbackPager

/// Where the storage engine keeps its liveness accounting of log segments: per segment, the
/// bytes of every record appended to it and the bytes of the records still live (the trees
/// point at them). A segment whose live bytes reach 0 can be retired, and its file removed
/// once no snapshot can read it (as LevelDB's version set decides which files are live).
///
/// The numbers are on disk and the schema picks them so that they fit its own numbering
/// (the message layer: tree slot 7, record type 23, counter 5; spec/message-records.md).
package struct LivenessLayout: Sendable, Equatable {
    /// Tree slot of the segment table: key (segment id), value a `SegmentAccount` (16 bytes).
    package var segmentTable: Int
    /// Log record type of a retirement: count u64, then count segment ids u64. The engine
    /// writes and applies these records; the schema never sees them.
    package var retireRecordType: UInt8
    /// Counter that grows by one with every retirement record.
    package var retirementCounter: Int

    package init(segmentTable: Int, retireRecordType: UInt8, retirementCounter: Int) {
        self.segmentTable = segmentTable
        self.retireRecordType = retireRecordType
        self.retirementCounter = retirementCounter
    }
}

/// The liveness account of one log segment: an entry of the segment table.
package struct SegmentAccount: Sendable, Equatable {
    package var id: UInt32
    /// Frames of every record appended to the segment.
    package var recordBytes: UInt64
    /// Frames of the records the trees point at.
    package var liveBytes: UInt64
    /// Whether the segment is sealed (complete and immutable), from the log's listing.
    package var isSealed = false

    // The value in the segment table (on disk: never change).
    static let valueSize = 16
    static let recordBytesOffset = 0   // u64
    static let liveBytesOffset = 8     // u64

    init(id: UInt32, recordBytes: UInt64, liveBytes: UInt64) {
        self.id = id
        self.recordBytes = recordBytes
        self.liveBytes = liveBytes
    }

    /// Reads a segment-table entry.
    init(key: BTreeKey, value: UnsafeRawBufferPointer) {
        self.init(id: UInt32(truncatingIfNeeded: key.w0), recordBytes: value.loadLE(UInt64.self, at: Self.recordBytesOffset),
                  liveBytes: value.loadLE(UInt64.self, at: Self.liveBytesOffset))
    }

    static func store(recordBytes: UInt64, liveBytes: UInt64, into value: UnsafeMutableRawBufferPointer) {
        value.storeLE(recordBytes, at: recordBytesOffset)
        value.storeLE(liveBytes, at: liveBytesOffset)
    }

    /// Dead record bytes over record bytes (0 for an empty segment).
    package var garbageRatio: Double {
        recordBytes == 0 ? 0 : Double(recordBytes - min(liveBytes, recordBytes)) / Double(recordBytes)
    }

    /// The garbage ratio of several segments together (0 when they hold nothing).
    package static func garbageRatio(_ accounts: [SegmentAccount]) -> Double {
        let records = accounts.reduce(UInt64(0)) { $0 + $1.recordBytes }
        let live = accounts.reduce(UInt64(0)) { $0 + min($1.liveBytes, $1.recordBytes) }
        return records == 0 ? 0 : Double(records - live) / Double(records)
    }
}

/// The liveness changes of one logged transaction, per segment, collected while it is
/// applied and written to the segment table once at its end. The schema reports the records
/// its trees start and stop pointing at; the engine adds every record's frame to its
/// segment's record bytes.
package struct LivenessLedger {
    private var segments: [UInt32] = []
    private var records: [Int64] = []
    private var live: [Int64] = []

    init() {}

    /// The trees now point at the record at `position`, `frameBytes` long.
    package mutating func recordBecameLive(at position: LogPosition, frameBytes: Int64) {
        add(LogPositions.segment(position), records: 0, live: frameBytes)
    }

    /// The trees no longer point at the record at `position`, `frameBytes` long.
    package mutating func recordBecameDead(at position: LogPosition, frameBytes: Int64) {
        add(LogPositions.segment(position), records: 0, live: -frameBytes)
    }

    mutating func recordAppended(at position: LogPosition, frameBytes: Int64) {
        add(LogPositions.segment(position), records: frameBytes, live: 0)
    }

    /// Drops what was collected for a segment that is being retired.
    mutating func forget(_ segment: UInt64) {
        if let i = segments.firstIndex(where: { UInt64($0) == segment }) {
            segments.remove(at: i)
            records.remove(at: i)
            live.remove(at: i)
        }
    }

    private mutating func add(_ segment: UInt32, records r: Int64, live l: Int64) {
        if let i = segments.firstIndex(of: segment) {
            records[i] += r
            live[i] += l
        } else {
            segments.append(segment)
            records.append(r)
            live.append(l)
        }
    }

    /// Adds the collected changes to the segment table (never below zero).
    func write(to table: BTree) throws {
        var value = [UInt8](repeating: 0, count: SegmentAccount.valueSize)
        for (i, id) in segments.enumerated() {
            let key = BTreeKey(UInt64(id))
            var recordBytes: Int64 = 0, liveBytes: Int64 = 0
            try table.withValue(for: key) { v in
                let account = SegmentAccount(key: key, value: v)
                recordBytes = Int64(truncatingIfNeeded: account.recordBytes)
                liveBytes = Int64(truncatingIfNeeded: account.liveBytes)
            }
            recordBytes = max(0, recordBytes + records[i])
            liveBytes = max(0, liveBytes + live[i])
            value.withUnsafeMutableBytes {
                SegmentAccount.store(recordBytes: UInt64(recordBytes), liveBytes: UInt64(liveBytes), into: $0)
            }
            try table.upsert(key, value: value)
        }
    }
}

/// The payload of a retirement record: count u64, then count segment ids u64.
package enum RetirementRecord {
    static func encode(_ ids: [UInt32], type: UInt8, into batch: inout LogBatch) throws {
        try batch.append(type: type, payloadCount: 8 + 8 * ids.count) { out in
            out.storeLE(UInt64(ids.count), at: 0)
            for (i, id) in ids.enumerated() { out.storeLE(UInt64(id), at: 8 + 8 * i) }
        }
    }

    /// The retired segment ids; `.corrupted` naming the record's position when inconsistent.
    package static func decode(_ payload: UnsafeRawBufferPointer, position: LogPosition) throws -> [UInt64] {
        guard payload.count >= 8, (payload.count - 8) % 8 == 0,
              payload.loadLE(UInt64.self, at: 0) == UInt64((payload.count - 8) / 8) else {
            throw StorageError.corrupted(file: "log position \(LogPositions.describe(position))", offset: 0,
                                         reason: "retire record of \(payload.count) bytes is inconsistent")
        }
        return (0..<((payload.count - 8) / 8)).map { payload.loadLE(UInt64.self, at: 8 + $0 * 8) }
    }
}

extension StorageEngine {
    /// Applies one logged transaction to the trees in `transaction`: every record's frame
    /// counts towards its segment's record bytes, the engine's own retirement records drop
    /// their segments from the segment table, the schema applies the rest and reports what
    /// became live or dead, and the liveness changes go to the segment table. Live commits
    /// and recovery both come here, so both build the same state.
    static func apply(_ logged: LoggedTransaction, to transaction: PageTransaction, schema: StorageSchema) throws {
        let layout = schema.liveness
        let table = try BTree(transaction, slot: layout.segmentTable)
        var ledger = LivenessLedger()
        try logged.forEachRecord { position, type, payload in
            ledger.recordAppended(at: position, frameBytes: Int64(frameBytes(payloadCount: payload.count)))
            guard type == layout.retireRecordType else { return }
            for id in try RetirementRecord.decode(payload, position: position) {
                try table.delete(BTreeKey(id))
                ledger.forget(id)
            }
            transaction.state.counters[layout.retirementCounter] &+= 1
        }
        try schema.apply(transaction, SchemaRecords(logged: logged, engineRecordType: layout.retireRecordType), &ledger)
        try ledger.write(to: table)
        transaction.state.logPosition = logged.end
    }
}
