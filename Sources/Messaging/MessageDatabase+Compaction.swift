import ScrollbackBTree
import ScrollbackStorage

/// Compaction (spec/message-records.md, "Compaction"): choose the sealed segments with
/// garbage, collect the live records in them, relocate those in bounded commits, and let the
/// storage engine retire the segments that are left without live records.
extension MessageDatabase {
    /// Log bytes on disk (raw and sealed segments).
    var logBytes: UInt64 {
        let s = engine.statistics.log
        return s.rawSegmentBytes + s.sealedSegmentBytes
    }

    /// Explicit compaction: rolls and seals the active segment, then rewrites every sealed
    /// segment holding garbage. With `threshold`, only sealed segments whose garbage ratio
    /// exceeds it (the automatic policy).
    package func compact(threshold: Double? = nil) throws -> CompactionSummary {
        try compactionLock.withLock { _ in
            compactionRunning.store(true, ordering: .releasing)
            defer { compactionRunning.store(false, ordering: .releasing) }
            let start = ContinuousClock.now
            let summary = try compactLocked(threshold: threshold)
            engine.observer?.compacted(CompactionEvent(
                automatic: threshold != nil, segmentsRewritten: summary.segmentsRewritten, recordsMoved: summary.recordsMoved,
                logBytesBefore: summary.logBytesBefore, logBytesAfter: summary.logBytesAfter, duration: ContinuousClock.now - start))
            return summary
        }
    }

    /// Bytes of live records moved per commit step.
    static let stepBytes = 1 << 20
    static let stepRecords = 4096

    private func compactLocked(threshold: Double?) throws -> CompactionSummary {
        var summary = CompactionSummary()
        try engine.removeUnreadableSegments()
        if threshold == nil {
            try engine.sealActiveSegment()
        }
        summary.logBytesBefore = logBytes
        let chosen = try chooseSegments(threshold: threshold)
        if !chosen.isEmpty {
            let records = try liveRecords(in: chosen)
            summary.recordsMoved = try relocate(records)
            // The engine checkpoints before it forgets any segment: the moved records are
            // durable and the trees that point at them are in the page file first.
            summary.segmentsRewritten = try engine.retireDeadSegments(among: chosen).count
        }
        summary.logBytesAfter = logBytes
        if !chosen.isEmpty {
            compactionBytes.withLock { $0 = (summary.logBytesBefore, summary.logBytesAfter) }
        }
        return summary
    }

    /// Sealed segments with garbage (explicit compaction) or with a garbage ratio above
    /// `threshold` (automatic policy). Empty segments always qualify.
    private func chooseSegments(threshold: Double?) throws -> Set<UInt32> {
        let chosen = try engine.segmentAccounts().filter(\.isSealed).filter { account in
            guard account.recordBytes > 0 else { return true }
            if let threshold { return account.garbageRatio > threshold }
            return account.liveBytes < account.recordBytes
        }
        return Set(chosen.map(\.id))
    }

    /// A live record to move: its messages-tree key and where it is.
    private struct LiveRecord {
        var key: MessageKey
        var position: LogPosition
        var frameLength: UInt32
    }

    /// The live records of `segments`, in key order (a scan of the messages tree on a snapshot).
    private func liveRecords(in segments: Set<UInt32>) throws -> [LiveRecord] {
        var records: [LiveRecord] = []
        try engine.read { snapshot in
            var cursor = try BTree(snapshot, .messages).cursor()
            var valid = try cursor.seekFirst()
            while valid {
                try cursor.withCurrent { key, value in
                    let pointer = MessagePointer(value)
                    if segments.contains(StorageEngine.segment(of: pointer.position)) {
                        records.append(LiveRecord(key: MessageKey(key), position: pointer.position, frameLength: pointer.frameLength))
                    }
                }
                valid = try cursor.next()
            }
        }
        return records
    }

    /// Copies the records still pointed at (checked in the writer's view) in bounded steps,
    /// each a normal commit, so readers and writers interleave. Returns how many moved.
    private func relocate(_ records: [LiveRecord]) throws -> Int {
        var moved = 0
        var index = 0
        while index < records.count {
            var end = index
            var bytes = 0
            while end < records.count && end - index < Self.stepRecords && bytes < Self.stepBytes {
                bytes += Int(records[end].frameLength)
                end += 1
            }
            let step = records[index..<end]
            var movedInStep = 0
            try engine.commit { transaction, batch in
                movedInStep = 0
                let messages = try BTree(transaction, .messages)
                for record in step {
                    var current: LogPosition? = nil
                    try messages.withValue(for: record.key.treeKey) { current = MessagePointer.position(in: $0) }
                    guard current == record.position else { continue }   // edited or deleted meanwhile
                    try withMessageRecord(at: record.position) { _, payload in
                        try RelocateRecord.append(from: record.position, message: payload, into: &batch)
                    }
                    movedInStep += 1
                }
            }
            moved += movedInStep
            index = end
        }
        return moved
    }

    /// The automatic policy: every 1024 writes, if the sealed segments' garbage ratio exceeds
    /// the configured threshold, compact the segments above it (in the writer's thread, one
    /// compaction at a time; errors are left to the next explicit call).
    func maybeCompactAutomatically() {
        guard let threshold = autoCompactGarbageRatio else { return }
        guard writesSincePolicyCheck.load(ordering: .relaxed) >= 1024 else { return }
        writesSincePolicyCheck.store(0, ordering: .relaxed)
        guard !compactionRunning.load(ordering: .acquiring) else { return }
        try? engine.removeUnreadableSegments()
        guard let accounts = try? engine.segmentAccounts().filter(\.isSealed),
              SegmentAccount.garbageRatio(accounts) > threshold else { return }
        _ = try? compact(threshold: threshold)
    }
}
