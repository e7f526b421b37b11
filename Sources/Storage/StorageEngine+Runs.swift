import ScrollbackBTree
import ScrollbackFormat
import ScrollbackLog
import ScrollbackPager
import Synchronization

/// A file that waits until no snapshot (and no durable state) can need it any more.
struct PendingFileRemoval {
    enum File: Equatable {
        /// A sealed log segment's raw file.
        case segment(UInt32)
        case run(UInt32)
    }

    var file: File
    /// Snapshots older than this transaction may read the file. (A merge's sources name the
    /// merge's commit, not its starting snapshot: a snapshot that began while the merge ran
    /// may have looked a source up before the merged binding existed.)
    var readableBefore: UInt64
    /// The file may go once the durable (checkpointed) state is at least this transaction.
    var durableAfter: UInt64
    /// The commit from which on the tables no longer name the file (the sealing's, merge's or
    /// retirement's): a reader in another process learns of a sealing or merge only from the
    /// tables of the state it reads (it has no in-memory binding from `readableBefore`), so
    /// the file waits until every such reader reads this transaction or a newer one
    /// (StorageEngine.readerSegmentFloor).
    var otherProcessesBefore: UInt64
}

/// Sorted runs (spec/storage-records.md): sealing full log segments into runs, merging runs,
/// attaching runs written directly (bulk loads), and removing the files nothing can read any
/// more. A crash between any two steps leaves at most files no table names, which the next
/// open removes.
extension StorageEngine {
    // MARK: Sealing

    /// Seals every full log segment whose live records are not in a run yet, one run per
    /// segment; a segment without live records is retired instead. Returns the segments sealed.
    /// Refused while the engine refuses writes; a failure poisons it.
    @discardableResult
    package func sealFullSegments() throws -> Int {
        try maintenanceRole.withLock { _ in try sealFullSegmentsLocked() }
    }

    /// `sealFullSegments` for a caller holding maintenanceRole.
    @discardableResult
    func sealFullSegmentsLocked() throws -> Int {
        do {
            // The full segments first, then their accounts on a snapshot taken between groups:
            // every commit into a segment that is full now is applied by then. (Accounts read
            // before the listing could miss the commits of a segment that filled meanwhile,
            // and retire a segment the trees point into.)
            let full = try log.listSegments().filter { $0.state == .full }
            guard !full.isEmpty else { return 0 }
            let accounts = try withWriterRole {
                try read { snapshot in
                    Dictionary(uniqueKeysWithValues: try Self.segmentTable(of: snapshot, schema: schema).map { ($0.id, $0) })
                }
            }
            var sealed = 0
            var retire: [UInt32] = []
            // A segment already retired or sealed whose file waits for snapshots or readers in
            // other processes is not retired again (that would only queue its file anew).
            let waiting = Set(pendingFileRemovals.withLock { $0.compactMap { entry -> UInt32? in
                if case .segment(let id) = entry.file { return id }
                return nil
            } })
            for segment in full {
                let account = accounts[segment.id]
                if account?.run ?? 0 != 0 { continue }
                if account == nil && waiting.contains(segment.id) { continue }
                if (account?.liveRecords ?? 0) == 0 {
                    retire.append(segment.id)
                    continue
                }
                try withWriteFailurePoisoning { try sealSegment(segment.id) }
                sealed += 1
            }
            if !retire.isEmpty {
                try retireSegments(retire)
            }
            return sealed
        }
    }

    /// Builds the run of segment `id` from the records the trees point at, on one snapshot,
    /// binds it, and commits the sealing. REQUIRES: maintenanceRole.
    private func sealSegment(_ id: UInt32) throws {
        sealsBegun.add(1, ordering: .sequentiallyConsistent)
        defer { sealsEnded.add(1, ordering: .sequentiallyConsistent) }
        // Taken between groups: every transaction appended to the segment is published in it
        // (a group appends and publishes under the writer lock), so the snapshot sees every
        // entry that will ever point into the segment.
        let snapshot = try withWriterRole { try self.snapshot() }
        defer { snapshot.rollback() }
        var arena: [UInt8] = []
        var entries: [(key: RunKey, start: Int, end: Int)] = []
        try log.forEachTransaction(inSegment: id) { logged in
            try logged.forEachRecord { position, type, payload in
                let start = arena.count
                if let key = try schema.sealRecord(snapshot, position, type, payload, &arena) {
                    entries.append((key, start, arena.count))
                } else {
                    arena.removeSubrange(start...)
                }
            }
        }
        entries.sort { $0.key < $1.key }
        let runID = allocateRunID()
        let writer = try runs.writer(id: runID, compression: .fast)
        do {
            try arena.withUnsafeBytes { bytes in
                for entry in entries {
                    try writer.append(entry.key, tag: id, payload: UnsafeRawBufferPointer(rebasing: bytes[entry.start..<entry.end]))
                }
            }
        } catch {
            writer.abandon()
            throw error
        }
        let run = try writer.finish()
        runs.add(run)
        let from = snapshot.state.transactionID
        aliases.bind(id, to: runID, from: from)
        let account = RunAccount(id: runID, records: run.recordCount, fileBytes: run.fileSize, flags: 0)
        var committed: UInt64 = 0
        try commit { transaction, batch in
            committed = transaction.state.transactionID
            try RunBindingRecord(segment: id, run: account).encode(type: schema.liveness.sealRecordType, into: &batch)
        }
        counters.withLock { $0.segmentsSealed += 1 }
        pendingFileRemovals.withLock {
            $0.append(PendingFileRemoval(file: .segment(id), readableBefore: from, durableAfter: 0, otherProcessesBefore: committed))
        }
    }

    // MARK: Merging

    /// Merges runs `ids` into one new run holding the records of theirs the trees still point
    /// at, in key order, compressed with `compression`; commits the merge. Snapshots that began
    /// before keep reading the old runs, whose files are removed once no snapshot or durable
    /// state needs them. Returns the new run's account (nil when `ids` is empty).
    @discardableResult
    package func mergeRuns(_ ids: [UInt32], compression: RunCompression) throws -> RunAccount? {
        guard !ids.isEmpty else { return nil }
        return try maintenanceRole.withLock { _ in
            try withWriteFailurePoisoning { try mergeRunsLocked(Set(ids), compression: compression) }
        }
    }

    private func mergeRunsLocked(_ sources: Set<UInt32>, compression: RunCompression) throws -> RunAccount {
        let snapshot = try snapshot()
        defer { snapshot.rollback() }
        let bound = Set(try Self.segmentTable(of: snapshot, schema: schema).filter { sources.contains($0.run) }.map(\.id))
        var cursors: [RunCursor] = []
        for id in sources.sorted() {
            var cursor = try runs.cursor(id)
            if try cursor.seekFirst() { cursors.append(cursor) }
        }
        let runID = allocateRunID()
        let writer = try runs.writer(id: runID, compression: compression)
        do {
            // K-way merge by key; a key can repeat across runs (an edited message), at most
            // one of its records is live.
            while let smallest = cursors.indices.min(by: { cursors[$0].key < cursors[$1].key }) {
                let key = cursors[smallest].key, tag = cursors[smallest].tag
                if bound.contains(tag), try schema.isLive(snapshot, key, tag) {
                    try writer.append(key, tag: tag, payload: cursors[smallest].payload)
                }
                if try !cursors[smallest].next() { cursors.remove(at: smallest) }
            }
        } catch {
            writer.abandon()
            throw error
        }
        let run = try writer.finish()
        runs.add(run)
        let from = snapshot.state.transactionID
        aliases.merge(sources, into: runID, from: from)
        let flags = compression == .fast ? 0 : RunFlags.highCompression
        let account = RunAccount(id: runID, records: run.recordCount, fileBytes: run.fileSize, flags: flags)
        var committed: UInt64 = 0
        try commit { transaction, batch in
            committed = transaction.state.transactionID
            try MergeRecord(result: account, sources: sources.sorted()).encode(type: schema.liveness.mergeRecordType, into: &batch)
        }
        // Snapshots that began before the merged binding was in place — any up to the merge's
        // commit, which other writers' commits may have preceded since `from` — may have
        // looked a source up and open its cursor only later: the sources stay until every
        // snapshot before the merge's commit has ended.
        pendingFileRemovals.withLock { pending in
            for source in sources {
                pending.append(PendingFileRemoval(file: .run(source), readableBefore: committed, durableAfter: committed,
                                                  otherProcessesBefore: committed))
            }
        }
        return account
    }

    // MARK: Attaching (bulk loads)

    /// Runs `body` in the maintenance role: no sealing, merge or backup runs meanwhile. A bulk
    /// load writes and attaches its runs inside it, so that a backup never sees a run that is
    /// written but not yet attached (or discarded).
    package func withMaintenanceRole<T>(_ body: () throws -> T) throws -> T {
        try maintenanceRole.withLock { _ in try body() }
    }

    /// Writes a new run directly (a bulk load's): `fill` appends its records in key order; each
    /// is tagged with a new virtual segment; blocks are compressed on `compressionThreads`
    /// threads (`SortedRunWriter`). Returns the run's account and the virtual segment.
    /// The run is not part of the store until a commit carries `encodeAttachment` of it.
    /// REQUIRES: the maintenance role (`withMaintenanceRole`).
    package func writeRun(compression: RunCompression, compressionThreads: Int = 1, _ fill: (inout RunSink) throws -> Void) throws
        -> (run: RunAccount, segment: UInt32) {
        let segment = try allocateVirtualSegment()
        let runID = allocateRunID()
        let writer = try runs.writer(id: runID, compression: compression, compressionThreads: compressionThreads)
        var sink = RunSink(writer: writer, tag: segment)
        do {
            try fill(&sink)
        } catch {
            writer.abandon()
            throw error
        }
        let run = try writer.finish()
        runs.add(run)
        // No tree entry names the segment before the attachment commits: the binding may be
        // in place already.
        aliases.bind(segment, to: runID, from: 0)
        let flags = compression == .fast ? 0 : RunFlags.highCompression
        return (RunAccount(id: runID, records: run.recordCount, fileBytes: run.fileSize, flags: flags), segment)
    }

    /// Adds the attachment of a run written by `writeRun` to a commit's batch (the schema's
    /// records that insert its entries go in the same batch).
    package func encodeAttachment(of run: RunAccount, segment: UInt32, into batch: inout LogBatch) throws {
        try RunBindingRecord(segment: segment, run: run).encode(type: schema.liveness.attachRecordType, into: &batch)
    }

    /// Removes a run `writeRun` wrote that will not be attached (a failed load).
    package func discardRun(_ run: RunAccount) {
        try? runs.remove(run.id)
        aliases.forget(runs: [run.id])
    }

    // MARK: Accounts

    /// Every run-table entry, read on a fresh snapshot.
    package func runAccounts() throws -> [RunAccount] {
        try read { snapshot in try Self.runTable(of: snapshot, schema: schema) }
    }

    static func runTable(of snapshot: PageTransaction, schema: StorageSchema) throws -> [RunAccount] {
        let table = try BTree(snapshot, slot: schema.liveness.runTable)
        var cursor = table.cursor()
        var valid = try cursor.seekFirst()
        var result: [RunAccount] = []
        while valid {
            try cursor.withCurrent { key, value in result.append(RunAccount(key: key, value: value)) }
            valid = try cursor.next()
        }
        return result
    }

    // MARK: Ids

    func allocateRunID() -> UInt32 {
        nextRunID.withLock { next in
            let committed = UInt32(truncatingIfNeeded: pager.committedState.counters[schema.liveness.nextRunCounter])
            next = max(next, committed, 1)
            defer { next += 1 }
            return next
        }
    }

    func allocateVirtualSegment() throws -> UInt32 {
        try nextVirtualSegment.withLock { lowest in
            let committed = UInt32(truncatingIfNeeded: pager.committedState.counters[schema.liveness.virtualSegmentCounter])
            let floor = committed == 0 ? UInt32.max : committed
            let next = min(lowest == 0 ? UInt32.max : lowest, floor) - 1
            // Virtual ids are 2^31 ... 2^32 - 2 (LogPositions.isVirtual): 2^31 - 1 bulk loads.
            guard LogPositions.isVirtual(next) else {
                throw StorageError.limitExceeded("a store takes at most \(UInt32.max / 2) bulk-loaded runs over its lifetime")
            }
            lowest = next
            return lowest
        }
    }
}

/// Appends the records of a run `StorageEngine.writeRun` writes, each tagged with the run's
/// virtual segment.
package struct RunSink {
    let writer: SortedRunWriter
    package let tag: UInt32

    /// Appends one record. REQUIRES: keys strictly increasing.
    package mutating func append(_ key: RunKey, payload: UnsafeRawBufferPointer) throws {
        try writer.append(key, tag: tag, payload: payload)
    }

    package var recordCount: UInt64 { writer.recordCount }
}
