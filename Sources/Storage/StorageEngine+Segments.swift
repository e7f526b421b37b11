import ScrollbackBTree
import ScrollbackFormat
import ScrollbackLog
import ScrollbackPager

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Retired segments whose files wait until no snapshot can read them: every snapshot that
/// began before `readableBefore` may still follow a tree entry into them.
struct PendingRemoval {
    var segments: [UInt32]
    var readableBefore: UInt64
}

/// The segment lifecycle: the active segment is rolled and sealed, every segment's liveness
/// is accounted in the segment table (through the schema's ledger), a segment without live
/// records is retired, and its file is removed once no snapshot can read it. A crash between
/// any two steps is repaired at the next open (`reconcileSegments`).
extension StorageEngine {
    /// The segment a record position lies in.
    package static func segment(of position: LogPosition) -> UInt32 { LogPositions.segment(position) }

    /// Ends the active segment (if it holds any record) and seals every full segment, so
    /// that all records written so far are in sealed segments. Refused while the engine
    /// refuses writes; a failure poisons it.
    package func sealActiveSegment() throws {
        try lifecycleLock.withLock { _ in
            try withWriteFailurePoisoning {
                try log.rollSegment()
                _ = try log.sealFullSegments()
            }
        }
    }

    /// Every segment-table entry, in segment order, read on a fresh snapshot, with whether
    /// the segment is sealed.
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

    /// Retires the segments among `candidates` that hold no live record, and removes their
    /// files. First a checkpoint puts the trees that no longer point into them in the page
    /// file (so recovery never needs them), then one retirement record drops them from the
    /// segment table, then each file is removed once no snapshot can read it: this waits up to
    /// a second for older snapshots; what they still hold is removed later (by
    /// `removeUnreadableSegments`, at close, or by the next open's reconciliation).
    /// Returns the retired ids.
    package func retireDeadSegments(among candidates: Set<UInt32>) throws -> [UInt32] {
        try lifecycleLock.withLock { _ in
            try checkpoint()
            // Every snapshot from now on sees trees that no longer point into dead segments.
            let readableBefore = pager.committedState.transactionID
            let dead = try read { try Self.segmentTable(of: $0, schema: schema) }
                .filter { candidates.contains($0.id) && $0.liveBytes == 0 }.map(\.id)
            guard !dead.isEmpty else { return [] }
            try commitRetirement(dead)
            pendingRemovals.withLock { $0.append(PendingRemoval(segments: dead, readableBefore: readableBefore)) }
            try removeUnreadableSegmentsLocked(waitingUpTo: 1000)
            return dead
        }
    }

    /// Removes the files of retired segments that no snapshot can read any more; never waits.
    package func removeUnreadableSegments() throws {
        if pendingRemovals.withLock({ $0.isEmpty }) { return }
        try lifecycleLock.withLock { _ in try removeUnreadableSegmentsLocked(waitingUpTo: 1) }
    }

    /// Polls up to `attempts` times, a millisecond apart, until every pending removal is
    /// done. REQUIRES: lifecycleLock.
    private func removeUnreadableSegmentsLocked(waitingUpTo attempts: Int) throws {
        var attempts = attempts
        while attempts > 0 {
            attempts -= 1
            // Recovery after a crash now replays from the durable checkpoint's position and
            // needs the segment holding it (even when nothing after it is in that segment):
            // segments from that one on wait for a later checkpoint.
            let replaySegment = Self.segment(of: pager.durableState.logPosition)
            let ready: [UInt32] = pendingRemovals.withLock { pending in
                let oldest = pager.oldestSnapshotID ?? .max
                var ids: [UInt32] = []
                for i in pending.indices where oldest >= pending[i].readableBefore {
                    ids.append(contentsOf: pending[i].segments.filter { $0 < replaySegment })
                    pending[i].segments.removeAll { $0 < replaySegment }
                }
                pending.removeAll { $0.segments.isEmpty }
                return ids
            }
            let existing = Set(try log.listSegments().map(\.id))
            for id in ready where existing.contains(id) {
                try log.removeSegment(id)
            }
            // Only snapshots are worth waiting for; a checkpoint is not waited for.
            let oldest = pager.oldestSnapshotID ?? .max
            if pendingRemovals.withLock({ !$0.contains { oldest < $0.readableBefore } }) { return }
            if attempts > 0 { usleep(1000) }
        }
    }

    private func commitRetirement(_ segments: [UInt32]) throws {
        let type = schema.liveness.retireRecordType
        try commit { _, batch in try RetirementRecord.encode(segments, type: type, into: &batch) }
    }

    /// At open: removes the files of non-active segments the segment table no longer knows
    /// (retired by a run that crashed before removing them), and retires table entries whose
    /// files are gone with no live record left (removed before the retirement was durable).
    /// A missing segment that still holds live records is corruption: the durable state in
    /// use is not the one the files belong to (e.g. a damaged newest meta page made the pager
    /// fall back to an older checkpoint); it is reported now rather than by later reads.
    /// Only segments before the one holding the checkpoint's replay position are removed:
    /// that segment and the ones after it are what the next recovery replays, even when they
    /// hold no record yet (an empty segment left by a roll has no segment-table entry).
    func reconcileSegments() throws {
        let segments = try log.listSegments()
        let accounts = try read { try Self.segmentTable(of: $0, schema: schema) }
        let known = Set(accounts.map(\.id))
        let replaySegment = Self.segment(of: pager.committedState.logPosition)
        for segment in segments
        where segment.state != .active && segment.id < replaySegment && !known.contains(segment.id) {
            try log.removeSegment(segment.id)
        }
        let present = Set(segments.map(\.id))
        if let lost = accounts.first(where: { !present.contains($0.id) && $0.liveBytes > 0 }) {
            throw StorageError.corrupted(
                file: pager.path, offset: 0,
                reason: "the segment table of the checkpoint in use lists log segment \(lost.id) with \(lost.liveBytes) live bytes, but the segment is missing")
        }
        let missing = accounts.filter { !present.contains($0.id) && $0.liveBytes == 0 }.map(\.id)
        if !missing.isEmpty { try commitRetirement(missing) }
    }
}
