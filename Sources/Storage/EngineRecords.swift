import ScrollbackBTree
import ScrollbackFormat
import ScrollbackLog
import ScrollbackPager

// The storage engine's own log records (spec/storage-records.md): written by the engine in
// ordinary commits and applied by `StorageEngine.apply`, for live commits and recovery alike.

/// The payload of a retirement record: count u64, then count segment ids u64. The segments'
/// table entries go (they hold no live record any more).
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
            throw engineRecordCorrupted(position, "retire record of \(payload.count) bytes is inconsistent")
        }
        let ids = (0..<((payload.count - 8) / 8)).map { payload.loadLE(UInt64.self, at: 8 + $0 * 8) }
        guard ids.allSatisfy({ $0 <= UInt64(UInt32.max) }) else {
            throw engineRecordCorrupted(position, "retire record names a segment id above 2^32 - 1")
        }
        return ids
    }
}

/// A sealing or an attachment: `segment`'s live records are in `run` (sealed: also still in
/// the log segment until its file is removed; attached: a virtual segment of a bulk load,
/// whose records exist only in the run). 32 bytes.
package struct RunBindingRecord: Equatable, Sendable {
    package var segment: UInt32
    package var run: RunAccount

    static let size = 32

    static func decode(_ payload: UnsafeRawBufferPointer, position: LogPosition) throws -> RunBindingRecord {
        guard payload.count == size, payload.loadLE(UInt32.self, at: 28) == 0 else {
            throw engineRecordCorrupted(position, "run binding record of \(payload.count) bytes is inconsistent")
        }
        let run = payload.loadLE(UInt32.self, at: 4)
        guard run != 0 else { throw engineRecordCorrupted(position, "run binding names run 0") }
        return RunBindingRecord(segment: payload.loadLE(UInt32.self, at: 0),
                                run: RunAccount(id: run, records: payload.loadLE(UInt64.self, at: 8),
                                                fileBytes: payload.loadLE(UInt64.self, at: 16),
                                                flags: payload.loadLE(UInt32.self, at: 24)))
    }

    func encode(type: UInt8, into batch: inout LogBatch) throws {
        try batch.append(type: type, payloadCount: Self.size) { out in
            out.storeLE(segment, at: 0)
            out.storeLE(run.id, at: 4)
            out.storeLE(run.records, at: 8)
            out.storeLE(run.fileBytes, at: 16)
            out.storeLE(run.flags, at: 24)
            out.storeLE(UInt32(0), at: 28)
        }
    }
}

/// A merge: the runs `sources` are replaced by `result`, which holds every record of theirs
/// that was live when the merge began. 28 + 4 × count bytes.
package struct MergeRecord: Equatable, Sendable {
    package var result: RunAccount
    package var sources: [UInt32]

    static func decode(_ payload: UnsafeRawBufferPointer, position: LogPosition) throws -> MergeRecord {
        guard payload.count >= 28 else { throw engineRecordCorrupted(position, "merge record of \(payload.count) bytes") }
        let count = Int(payload.loadLE(UInt32.self, at: 24))
        guard payload.count == 28 + 4 * count, count >= 1 else {
            throw engineRecordCorrupted(position, "merge record of \(payload.count) bytes names \(count) runs")
        }
        let id = payload.loadLE(UInt32.self, at: 0)
        guard id != 0 else { throw engineRecordCorrupted(position, "merge into run 0") }
        return MergeRecord(
            result: RunAccount(id: id, records: payload.loadLE(UInt64.self, at: 8), fileBytes: payload.loadLE(UInt64.self, at: 16),
                               flags: payload.loadLE(UInt32.self, at: 4)),
            sources: (0..<count).map { payload.loadLE(UInt32.self, at: 28 + 4 * $0) })
    }

    func encode(type: UInt8, into batch: inout LogBatch) throws {
        try batch.append(type: type, payloadCount: 28 + 4 * sources.count) { out in
            out.storeLE(result.id, at: 0)
            out.storeLE(result.flags, at: 4)
            out.storeLE(result.records, at: 8)
            out.storeLE(result.fileBytes, at: 16)
            out.storeLE(UInt32(sources.count), at: 24)
            for (i, source) in sources.enumerated() { out.storeLE(source, at: 28 + 4 * i) }
        }
    }
}

@inline(never)
func engineRecordCorrupted(_ position: LogPosition, _ reason: String) -> StorageError {
    .corrupted(file: "log position \(LogPositions.describe(position))", offset: 0, reason: reason)
}

extension StorageEngine {
    /// Applies one logged transaction to the trees in `transaction`: every record's frame
    /// counts towards its segment's record bytes, the engine's own records change the segment
    /// and run tables, the schema applies the rest and reports what became live or dead, and
    /// the liveness changes go to the segment table. Live commits and recovery both come
    /// here, so both build the same state.
    static func apply(_ logged: LoggedTransaction, to transaction: PageTransaction, schema: StorageSchema,
                      runs: RunStore) throws {
        let layout = schema.liveness
        let tables = try EngineTables(transaction, layout)
        var ledger = LivenessLedger()
        try logged.forEachRecord { position, type, payload in
            ledger.recordAppended(at: position, frameBytes: Int64(frameBytes(payloadCount: payload.count)))
            guard layout.isEngineRecord(type) else { return }
            try tables.apply(type: type, payload, at: position, ledger: &ledger)
        }
        let context = SchemaApplyContext(runs: runs)
        try schema.apply(transaction, SchemaRecords(logged: logged, layout: layout, context: context), &ledger)
        try ledger.write(to: tables.segments)
        transaction.state.logPosition = logged.end
    }
}

/// The segment and run tables of one transaction, and the engine records' effect on them.
struct EngineTables {
    let segments: BTree
    let runs: BTree
    let layout: LivenessLayout

    init(_ transaction: PageTransaction, _ layout: LivenessLayout) throws {
        segments = try BTree(transaction, slot: layout.segmentTable)
        runs = try BTree(transaction, slot: layout.runTable)
        self.layout = layout
    }

    var transaction: PageTransaction { segments.transaction }

    func apply(type: UInt8, _ payload: UnsafeRawBufferPointer, at position: LogPosition, ledger: inout LivenessLedger) throws {
        switch type {
        case layout.retireRecordType:
            var runsOfRetired = Set<UInt32>()
            for id in try RetirementRecord.decode(payload, position: position) {
                if let account = try segment(UInt32(truncatingIfNeeded: id)), account.run != 0 { runsOfRetired.insert(account.run) }
                _ = try segments.delete(BTreeKey(id))
                ledger.forget(id)
            }
            try dropUnboundRuns(among: runsOfRetired)
            transaction.state.counters[layout.retirementCounter] &+= 1
        case layout.sealRecordType, layout.attachRecordType:
            let binding = try RunBindingRecord.decode(payload, position: position)
            var account = try segment(binding.segment) ?? SegmentAccount(id: binding.segment)
            account.run = binding.run.id
            if type == layout.attachRecordType {
                account.flags |= SegmentFlags.virtual
                let lowest = transaction.state.counters[layout.virtualSegmentCounter]
                if lowest == 0 || UInt64(binding.segment) < lowest {
                    transaction.state.counters[layout.virtualSegmentCounter] = UInt64(binding.segment)
                }
            }
            try segments.upsert(BTreeKey(UInt64(binding.segment)), value: account.bytes)
            try runs.upsert(BTreeKey(UInt64(binding.run.id)), value: binding.run.bytes)
            raiseRunCounter(past: binding.run.id)
        case layout.mergeRecordType:
            try applyMerge(try MergeRecord.decode(payload, position: position))
            transaction.state.counters[layout.retirementCounter] &+= 1
        default:
            break
        }
    }

    /// Every segment bound to a source run is bound to the result; the sources leave the run
    /// table (their files go once no snapshot can read them).
    private func applyMerge(_ merge: MergeRecord) throws {
        let sources = Set(merge.sources)
        var rebound: [SegmentAccount] = []
        var cursor = segments.cursor()
        var valid = try cursor.seekFirst()
        while valid {
            try cursor.withCurrent { key, value in
                let account = SegmentAccount(key: key, value: value)
                if sources.contains(account.run) { rebound.append(account) }
            }
            valid = try cursor.next()
        }
        for var account in rebound {
            account.run = merge.result.id
            try segments.update(BTreeKey(UInt64(account.id)), value: account.bytes)
        }
        for source in merge.sources { _ = try runs.delete(BTreeKey(UInt64(source))) }
        try runs.upsert(BTreeKey(UInt64(merge.result.id)), value: merge.result.bytes)
        raiseRunCounter(past: merge.result.id)
    }

    /// Runs among `candidates` that no segment is bound to any more leave the run table.
    private func dropUnboundRuns(among candidates: Set<UInt32>) throws {
        guard !candidates.isEmpty else { return }
        var stillBound = Set<UInt32>()
        var cursor = segments.cursor()
        var valid = try cursor.seekFirst()
        while valid {
            try cursor.withCurrent { key, value in
                let run = SegmentAccount(key: key, value: value).run
                if candidates.contains(run) { stillBound.insert(run) }
            }
            valid = try cursor.next()
        }
        for run in candidates.subtracting(stillBound) { _ = try runs.delete(BTreeKey(UInt64(run))) }
    }

    func segment(_ id: UInt32) throws -> SegmentAccount? {
        let key = BTreeKey(UInt64(id))
        var found: SegmentAccount?
        try segments.withValue(for: key) { found = SegmentAccount(key: key, value: $0) }
        return found
    }

    private func raiseRunCounter(past id: UInt32) {
        let next = UInt64(id) + 1
        if transaction.state.counters[layout.nextRunCounter] < next { transaction.state.counters[layout.nextRunCounter] = next }
    }
}

/// The engine's records in words, for inspection tools (`scrollback dump`).
package enum EngineRecordDescription {
    package static func describe(type: UInt8, payload: UnsafeRawBufferPointer, position: LogPosition,
                                 layout: LivenessLayout) -> String? {
        do {
            switch type {
            case layout.sealRecordType, layout.attachRecordType:
                let binding = try RunBindingRecord.decode(payload, position: position)
                let verb = type == layout.sealRecordType ? "sealed into" : "attached as"
                return "segment \(binding.segment) \(verb) run \(binding.run.id) (\(binding.run.records) records, \(binding.run.fileBytes) B)"
            case layout.mergeRecordType:
                let merge = try MergeRecord.decode(payload, position: position)
                return "runs [\(merge.sources.map(String.init).joined(separator: ", "))] merged into run \(merge.result.id) "
                    + "(\(merge.result.records) records, \(merge.result.fileBytes) B)"
            case layout.retireRecordType:
                let ids = try RetirementRecord.decode(payload, position: position)
                return "retires segments [\(ids.map(String.init).joined(separator: ", "))]"
            default:
                return nil
            }
        } catch {
            return nil
        }
    }
}
