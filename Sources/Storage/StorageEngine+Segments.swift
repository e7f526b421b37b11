import ScrollbackBTree
import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import ScrollbackPager

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The segment lifecycle (spec/storage-records.md): the active segment fills and is rolled; a
/// full segment's live records are sealed into a sorted run (StorageEngine+Runs.swift); a
/// segment without live records is retired; a file goes once nothing can read it — no
/// snapshot, and no durable state a crash could fall back to. A crash between any two steps
/// is repaired at the next open (`reconcileFiles`).
extension StorageEngine {
    /// The segment a record position lies in.
    package static func segment(of position: LogPosition) -> UInt32 { LogPositions.segment(position) }

    /// Ends the active segment (if it holds any record) and seals every full segment, so that
    /// all live records written so far are in runs. Refused while the engine refuses writes;
    /// a failure poisons it.
    package func sealActiveSegment() throws {
        try withWriteFailurePoisoning { try log.rollSegment() }
        try sealFullSegments()
    }

    /// Every segment-table entry, in segment order, read on a fresh snapshot, with whether
    /// the segment's log file is a sealed archive.
    package func segmentAccounts() throws -> [SegmentAccount] {
        let sealed = Set(try log.listSegments().filter { $0.state == .sealed }.map(\.id))
        return try read { snapshot in
            var accounts = try Self.segmentTable(of: snapshot, schema: schema)
            for i in accounts.indices { accounts[i].isSealed = sealed.contains(accounts[i].id) }
            return accounts
        }
    }

    static func segmentTable(of snapshot: PageTransaction, schema: StorageSchema) throws -> [SegmentAccount] {
        let table = try BTree(snapshot, slot: schema.liveness.segmentTable)
        var cursor = table.cursor()
        var valid = try cursor.seekFirst()
        var result: [SegmentAccount] = []
        while valid {
            try cursor.withCurrent { key, value in result.append(SegmentAccount(key: key, value: value)) }
            valid = try cursor.next()
        }
        return result
    }

    /// Retires the segments among `candidates` that hold no live record and are not the
    /// active one: one retirement record drops them from the segment table (and runs no
    /// segment is bound to any more from the run table); their files go once nothing can read
    /// them. Returns the retired ids.
    @discardableResult
    package func retireDeadSegments(among candidates: Set<UInt32>) throws -> [UInt32] {
        try maintenanceRole.withLock { _ in
            let active = LogPositions.segment(log.endPosition)
            let dead = try read { try Self.segmentTable(of: $0, schema: schema) }
                .filter { candidates.contains($0.id) && $0.liveRecords == 0 && $0.id != active }.map(\.id)
            guard !dead.isEmpty else { return [] }
            try retireSegments(dead)
            return dead
        }
    }

    /// Commits one retirement of `segments` and queues their files (and the files of runs
    /// that lose their last segment) for removal. REQUIRES: maintenanceRole.
    func retireSegments(_ segments: [UInt32]) throws {
        let before = try read { snapshot in Self.boundRuns(try Self.segmentTable(of: snapshot, schema: schema)) }
        let type = schema.liveness.retireRecordType
        var committed: UInt64 = 0
        try commit { transaction, batch in
            committed = transaction.state.transactionID
            try RetirementRecord.encode(segments, type: type, into: &batch)
        }
        let after = try read { Self.boundRuns(try Self.segmentTable(of: $0, schema: schema)) }
        // The segments' bindings stay: snapshots older than the retirement may still read
        // their records from the run; they go with the run's file.
        pendingFileRemovals.withLock { pending in
            for segment in segments where !LogPositions.isVirtual(segment) {
                pending.append(PendingFileRemoval(file: .segment(segment), readableBefore: committed, durableAfter: committed,
                                                  otherProcessesBefore: committed))
            }
            for run in before.subtracting(after) {
                pending.append(PendingFileRemoval(file: .run(run), readableBefore: committed, durableAfter: committed,
                                                  otherProcessesBefore: committed))
            }
        }
        try removeUnreadableFiles()
    }

    static func boundRuns(_ accounts: [SegmentAccount]) -> Set<UInt32> { Set(accounts.map(\.run).filter { $0 != 0 }) }

    /// Removes the files that nothing can read any more: no snapshot older than the point where
    /// they stopped being needed, the durable state past it, no reader in another process
    /// holding a state from before the commit that made them unneeded (spec/reader-table.md),
    /// and (for a log segment) the durable checkpoint's replay — and every such reader's —
    /// starting in a later segment. Never waits. Does nothing while a backup copies files, and
    /// nothing in a read-only engine (it never removes a file of the store).
    package func removeUnreadableFiles() throws {
        if isReadOnly || pendingFileRemovals.withLock({ $0.isEmpty }) { return }
        try backupsRunning.withLock { backups in
            if backups == 0 { try removeUnreadableFilesUnlessBackingUp() }
        }
    }

    /// REQUIRES: backupsRunning's lock, no backup running.
    private func removeUnreadableFilesUnlessBackingUp() throws {
        // Segments the change stream's retention window keeps (read first: the floor only
        // rises as the log grows, so an older value keeps more).
        let retained = retentionFloorSegment()
        // Runs of bulk loads whose attachment the retention window keeps (a change-stream
        // follower reads the load from its run); scanned only when a run waits for removal.
        let hasRuns = pendingFileRemovals.withLock { $0.contains { if case .run = $0.file { return true } else { return false } } }
        let loadRuns = hasRuns ? try runsAttachedInRetainedLog() : []
        let ready: [PendingFileRemoval.File] = pendingFileRemovals.withLock { pending in
            // The floors are read while the list is locked, after every entry in it was
            // added: an entry is added after the commit that makes its file unneeded, so a
            // snapshot that may still read the file began before that commit and is counted
            // here. (Read before taking the lock, a floor could predate both a snapshot that
            // begins on the older state and the entry added for it, and the file would go
            // while that snapshot reads it.) Lock order: this list, then the pager's and the
            // reader table's locks; nothing takes this list's lock while holding those.
            let oldest = pager.oldestSnapshotID ?? .max
            let durable = pager.durableState
            let replaySegment = LogPositions.segment(durable.logPosition)
            let active = LogPositions.segment(log.endPosition)
            // Readers in other processes (spec/reader-table.md): the oldest state any of them
            // may read, and the segment its replay starts in (a failed scan lets nothing go).
            let readers = readerSegmentFloor()
            var files: [PendingFileRemoval.File] = []
            pending.removeAll { entry in
                guard oldest >= entry.readableBefore, durable.transactionID >= entry.durableAfter,
                      readers.transaction >= entry.otherProcessesBefore else { return false }
                if case .segment(let id) = entry.file,
                   id >= replaySegment || id >= active || id >= readers.segment || id >= retained { return false }
                if case .run(let id) = entry.file, loadRuns.contains(id) { return false }
                files.append(entry.file)
                return true
            }
            return files
        }
        guard !ready.isEmpty else { return }
        // A file may be queued twice (a sealed segment retired later): remove it once.
        var present = Set(try log.listSegments().map(\.id))
        var removedRuns = Set<UInt32>()
        for file in ready {
            switch file {
            case .segment(let id):
                if present.remove(id) != nil { try log.removeSegment(id) }
            case .run(let id):
                if removedRuns.insert(id).inserted { try runs.remove(id) }
            }
        }
        if !removedRuns.isEmpty { aliases.forget(runs: removedRuns) }
    }

    /// At open: removes files no table needs — raw log segments already sealed (or retired)
    /// that the durable checkpoint no longer replays and the change stream's retention window
    /// does not keep (those wait in the removal list), run files the run table does not name
    /// (written by a sealing, merge or load that did not commit) — and retires table entries
    /// of segments whose files are gone with no live record left. A missing file that still
    /// holds live records is corruption: the durable state in use is not the one the files
    /// belong to (e.g. a damaged newest meta page made the pager fall back to an older
    /// checkpoint); it is reported now rather than by later reads.
    func reconcileFiles() throws {
        let segments = try log.listSegments()
        let (accounts, runAccounts) = try read { snapshot in
            (try Self.segmentTable(of: snapshot, schema: schema), try Self.runTable(of: snapshot, schema: schema))
        }
        let byID = Dictionary(uniqueKeysWithValues: accounts.map { ($0.id, $0) })
        let replaySegment = LogPositions.segment(pager.durableState.logPosition)
        // A reader in another process may still read a state from before the durable one (a
        // run or segment that state names, gone from the tables in use): such files wait for
        // the readers like any other removal.
        let readers = readerSegmentFloor()
        let durable = pager.durableTransactionID
        let retained = retentionFloorSegment()
        var waiting: [PendingFileRemoval] = []
        for segment in segments where segment.state != .active && segment.id < replaySegment {
            let account = byID[segment.id]
            guard account == nil || account!.run != 0 else { continue }
            if segment.id < retained && Self.readersArePast(readers, segment: segment.id, retiredAt: durable) {
                try log.removeSegment(segment.id)
            } else {
                waiting.append(PendingFileRemoval(file: .segment(segment.id), readableBefore: 0, durableAfter: durable,
                                                  otherProcessesBefore: durable))
            }
        }
        let knownRuns = Set(runAccounts.map(\.id))
        // Ids from the run counter on were never committed (a sealing, merge or load that did
        // not commit): no state names them. Lower ids were named by an older state.
        let nextRun = pager.committedState.counters[schema.liveness.nextRunCounter]
        for id in runs.ids() where !knownRuns.contains(id) {
            if UInt64(id) >= nextRun || readers.transaction >= durable {
                try runs.remove(id)
            } else {
                waiting.append(PendingFileRemoval(file: .run(id), readableBefore: 0, durableAfter: durable,
                                                  otherProcessesBefore: durable))
            }
        }
        if !waiting.isEmpty { pendingFileRemovals.withLock { $0.append(contentsOf: waiting) } }
        for account in runAccounts where !runs.contains(account.id) {
            throw StorageError.corrupted(file: Path.join(directory, SortedRun.fileName(account.id)), offset: 0,
                                         reason: "the run table of the checkpoint in use lists run \(account.id), but its file is missing")
        }
        let present = Set(segments.map(\.id))
        if let lost = accounts.first(where: { $0.run == 0 && !present.contains($0.id) && $0.liveRecords > 0 }) {
            throw StorageError.corrupted(
                file: pager.path, offset: 0,
                reason: "the segment table of the checkpoint in use lists log segment \(lost.id) with \(lost.liveRecords) live records, but the segment is missing")
        }
        let missing = accounts.filter { $0.run == 0 && !present.contains($0.id) && $0.liveRecords == 0 }.map(\.id)
        if !missing.isEmpty {
            try commit { _, batch in try RetirementRecord.encode(missing, type: schema.liveness.retireRecordType, into: &batch) }
        }
    }
}

extension LogPositions {
    /// Whether `segment` is a virtual segment of a bulk load (no log file).
    static func isVirtual(_ segment: UInt32) -> Bool { segment >= 0x8000_0000 }
}
