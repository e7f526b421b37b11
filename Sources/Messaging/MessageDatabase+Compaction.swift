import ScrollbackBTree
import ScrollbackStorage

/// Compaction (spec/message-records.md, "Compaction"): full log segments are sealed into
/// sorted runs, segments without live records are retired, and runs with garbage (records
/// the trees no longer point at) — or, for an explicit compaction, runs not yet compressed
/// with LZ4 HC — are merged into new runs, in bounded groups. A run without garbage that is
/// already compressed is left alone, so compacting a clean store changes nothing.
extension MessageDatabase {
    /// Bytes of the log and the runs on disk.
    var logBytes: UInt64 {
        let s = engine.statistics
        return s.log.rawSegmentBytes + s.log.sealedSegmentBytes + s.runs.bytes
    }

    /// A run whose garbage ratio is at most this is left alone (unless it is to be
    /// recompressed by an explicit compaction).
    static let garbageFloor = 0.1
    /// Input bytes of one merge (one new run, one commit).
    static let mergeGroupBytes: UInt64 = 256 << 20
    /// LZ4 HC level of merged runs: measured on the reference dataset (spec/sorted-run.md),
    /// level 9 is 7% smaller than 4 and compacts at ~25 MB/s; decompression speed is the same.
    static let mergeCompression = RunCompression.high(level: 9)

    /// Explicit compaction (no `threshold`): rolls the active segment, seals every full one,
    /// retires segments without live records, and merges every run that has more garbage than
    /// the floor or is not yet compressed with LZ4 HC. With `threshold` (the automatic policy):
    /// only runs whose garbage ratio exceeds it, no roll and no recompression.
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

    private func compactLocked(threshold: Double?) throws -> CompactionSummary {
        var summary = CompactionSummary()
        summary.logBytesBefore = logBytes
        if threshold == nil {
            try engine.sealActiveSegment()
        } else {
            try engine.sealFullSegments()
        }
        let dead = try engine.segmentAccounts().filter { $0.liveRecords == 0 }.map(\.id)
        summary.segmentsRewritten += try engine.retireDeadSegments(among: Set(dead)).count
        for group in try mergeGroups(threshold: threshold) {
            guard let merged = try engine.mergeRuns(group, compression: Self.mergeCompression) else { continue }
            summary.segmentsRewritten += group.count
            summary.recordsMoved += Int(merged.records)
        }
        // Files wait for a durable state past their last use: checkpoint, then remove what no
        // snapshot reads.
        try engine.checkpoint()
        try engine.removeUnreadableFiles()
        summary.logBytesAfter = logBytes
        // An explicit compaction also gives the page file's free space back (the automatic
        // policy leaves it: the free pages are reused by the writes that follow).
        let pages = threshold == nil ? try engine.compactPageFile() : nil
        summary.pageFileBytesBefore = pages?.bytesBefore ?? engine.statistics.pageFileBytes
        summary.pageFileBytesAfter = pages?.bytesAfter ?? summary.pageFileBytesBefore
        compactionBytes.withLock { $0 = (summary.logBytesBefore, summary.logBytesAfter) }
        return summary
    }

    /// The runs to merge, in groups of at most `mergeGroupBytes` input, in run id order (runs
    /// written about the same time cover about the same conversations' history).
    func mergeGroups(threshold: Double?) throws -> [[UInt32]] {
        let accounts = try engine.segmentAccounts()
        var live: [UInt32: UInt64] = [:]
        for account in accounts where account.run != 0 { live[account.run, default: 0] += account.liveRecords }
        // A bulk load's run stays as it is while the change stream's retention window keeps the
        // load's record: followers read the load from it (spec/change-stream.md, "Retention").
        let loads = try engine.runsAttachedInRetainedLog()
        let chosen = try engine.runAccounts().filter { run in
            if loads.contains(run.id) { return false }
            let garbage = run.records == 0 ? 0 : 1 - Double(min(live[run.id] ?? 0, run.records)) / Double(run.records)
            if let threshold { return garbage > threshold }
            return garbage > Self.garbageFloor || !run.isHighlyCompressed
        }
        var groups: [[UInt32]] = []
        var current: [UInt32] = []
        var bytes: UInt64 = 0
        for run in chosen.sorted(by: { $0.id < $1.id }) {
            if !current.isEmpty && bytes + run.fileBytes > Self.mergeGroupBytes {
                groups.append(current)
                current = []
                bytes = 0
            }
            current.append(run.id)
            bytes += run.fileBytes
        }
        if !current.isEmpty { groups.append(current) }
        return groups
    }

    /// The automatic policy: every 1024 writes, if the runs' garbage ratio exceeds the
    /// configured threshold, merge the runs above it (in the writer's thread, one compaction
    /// at a time; errors are left to the next explicit call).
    func maybeCompactAutomatically() {
        guard let threshold = autoCompactGarbageRatio else { return }
        guard writesSincePolicyCheck.load(ordering: .relaxed) >= 1024 else { return }
        writesSincePolicyCheck.store(0, ordering: .relaxed)
        guard !compactionRunning.load(ordering: .acquiring) else { return }
        try? engine.removeUnreadableFiles()
        guard let accounts = try? engine.segmentAccounts().filter({ $0.run != 0 }),
              SegmentAccount.garbageRatio(accounts) > threshold else { return }
        _ = try? compact(threshold: threshold)
    }
}
