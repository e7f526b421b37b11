import ScrollbackFormat
import ScrollbackLog
import ScrollbackPager

/// Where a record was found: a log frame (its type and payload), or a run record (its
/// payload, whose key is the one asked for).
package enum StoredRecord {
    case log(type: UInt8, payload: UnsafeRawBufferPointer)
    case run(payload: UnsafeRawBufferPointer)
}

/// Reads the records a snapshot's trees point at (spec/storage-records.md, "Reading a
/// record"): a tree entry holds the log position the record was written at and its key; a
/// record of a segment that is not sealed (for this snapshot) is read from the log by
/// position, one of a sealed segment from the run bound to the segment, by key.
///
/// A reader is made for one snapshot and one scan: it keeps a cursor per run it has used, so
/// a scan through a conversation's history finds the next record a comparison or two from
/// the last one (no lookup, lock or hash per record), and reads each block once.
///
/// Not thread-safe: one reader per scan. The payload views are valid only inside `body`.
/// A reader must not outlive its engine (it is a local of a read; it does not retain the
/// engine).
package struct RecordReader {
    /// Not retained: a reader lives inside a read whose caller holds the engine. (A retain
    /// and release per read showed in profiles of short reads: the engine is referenced
    /// weakly by its maintenance worker, which puts its reference count on the slow path.)
    unowned(unsafe) let engine: StorageEngine
    let transaction: UInt64
    /// The cursor of the first run read: most reads touch one run, and need no array.
    private var firstCursor: RunCursor? = nil
    /// The cursors of the other runs read, in the order first read.
    private var otherCursors: [RunCursor] = []
    private var lastSegment: UInt32 = .max
    private var lastRun: UInt32? = nil
    /// The cursor of the run read last: 0 for `firstCursor`, i + 1 for `otherCursors[i]`.
    private var lastCursorRun: UInt32 = .max
    private var lastCursor = 0

    init(engine: StorageEngine, transaction: UInt64) {
        self.engine = engine
        self.transaction = transaction
    }

    /// Calls `body` with the record the trees point at: written at `position`, under `key`.
    /// Throws `.corrupted` when the record is not where the position and the key say.
    @inline(__always)
    package mutating func withRecord<R>(at position: LogPosition, key: RunKey, _ body: (StoredRecord) throws -> R) throws -> R {
        if let payload = try runPayload(at: position, key: key) { return try body(.run(payload: payload)) }
        return try withLogRecord(at: position, key: key, body)
    }

    /// The payload of the record the trees point at when its segment is bound to a run for
    /// this snapshot (the usual case: all but the newest records), nil when it is to be read
    /// from the log (with `withRecord`). The payload stays valid until this reader reads
    /// another record: its cursor holds the block. Throws `.corrupted` when the run does not
    /// hold the record. Not generic and without a closure: a scan's call per record.
    package mutating func runPayload(at position: LogPosition, key: RunKey) throws -> UnsafeRawBufferPointer? {
        let segment = LogPositions.segment(position)
        if segment != lastSegment { bind(segment) }
        guard let run = lastRun else { return nil }
        if run != lastCursorRun {
            lastCursor = try cursorIndex(run)
            lastCursorRun = run
        }
        let payload = lastCursor == 0 ? try firstCursor!.payload(of: key, tag: segment)
                                       : try otherCursors[lastCursor - 1].payload(of: key, tag: segment)
        guard let payload else { throw Self.missing(key: key, segment: segment, run: run, position: position) }
        return payload
    }

    /// Looks up the run bound to `segment` for this snapshot (nil while it is a log segment).
    /// Out of line, as are the log reads: a scan inlines only the per-record path of
    /// `withRecord`.
    @inline(never)
    private mutating func bind(_ segment: UInt32) {
        lastRun = engine.aliases.run(of: segment, for: transaction)
        lastSegment = segment
    }

    /// `withRecord` for a record of a segment that has no run for this snapshot: read from the
    /// log by position.
    @inline(never)
    private mutating func withLogRecord<R>(at position: LogPosition, key: RunKey, _ body: (StoredRecord) throws -> R)
        throws -> R {
        let segment = LogPositions.segment(position)
        var bodyThrew = false
        do {
            return try engine.log.withRecord(at: position) { type, payload in
                do {
                    return try body(.log(type: type, payload: payload))
                } catch {
                    bodyThrew = true
                    throw error
                }
            }
        } catch let error as StorageError where !bodyThrew {
            // The segment may have been sealed since the binding was looked up: once its
            // run is bound, snapshots from the binding's start read the run, and the raw
            // file may go. Look again; read the run if there is one now. (Only a failure
            // of the log read itself: an error of `body` passes through, so `body` never
            // runs twice for one record.)
            bind(segment)
            guard lastRun != nil else { throw error }
            return try withRecord(at: position, key: key, body)
        }
    }

    /// The cursor of `run` (made on its first use): 0 for `firstCursor`, i + 1 for
    /// `otherCursors[i]`.
    @inline(never)
    private mutating func cursorIndex(_ run: UInt32) throws -> Int {
        guard let first = firstCursor else {
            firstCursor = try engine.runs.cursor(run)
            return 0
        }
        if first.run.id == run { return 0 }
        if let i = otherCursors.firstIndex(where: { $0.run.id == run }) { return i + 1 }
        otherCursors.append(try engine.runs.cursor(run))
        return otherCursors.count
    }

    @inline(never)
    static func missing(key: RunKey, segment: UInt32, run: UInt32, position: LogPosition) -> StorageError {
        .corrupted(file: SortedRun.fileName(run), offset: 0,
                   reason: "run \(run) holds no record \(key) of segment \(segment) (the trees point at log position \(LogPositions.describe(position)))")
    }
}

extension StorageEngine {
    /// A record reader for `snapshot`.
    package func recordReader(for snapshot: PageTransaction) -> RecordReader {
        RecordReader(engine: self, transaction: snapshot.id)
    }
}
