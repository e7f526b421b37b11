import ScrollbackBTree
import ScrollbackStorage

extension MessageDatabase {
    /// Log bytes on disk (raw and sealed segments).
    var logBytes: UInt64 {
        let s = engine.statistics.log
        return s.rawSegmentBytes + s.sealedSegmentBytes
    }

    // MARK: Compaction

    /// Explicit compaction: rolls and seals the active segment, then rewrites every sealed
    /// segment holding garbage. With `threshold`, only sealed segments whose garbage ratio
    /// exceeds it (the automatic policy).
    package func compact(threshold: Double? = nil) throws -> CompactionSummary {
        try compactionLock.withLock { _ in
            compactionRunning.store(true, ordering: .releasing)
            defer { compactionRunning.store(false, ordering: .releasing) }
            return try compactLocked(threshold: threshold)
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
        let accounts = try engine.segmentAccounts().filter(\.isSealed)
        let chosen = accounts.filter { account in
            guard account.recordBytes > 0 else { return true }
            if let threshold { return account.garbageRatio > threshold }
            return account.liveBytes < account.recordBytes
        }
        guard !chosen.isEmpty else {
            summary.logBytesAfter = logBytes
            return summary
        }
        let chosenIDs = Set(chosen.map(\.id))

        // Live records of the chosen segments, in key order (a scan of slot 0 on a snapshot).
        var items: [(key: BTreeKey, position: UInt64, length: UInt32)] = []
        try engine.read { snapshot in
            let messages = try BTree(snapshot, slot: MessageTree.messages)
            var cursor = messages.cursor()
            var valid = try cursor.seekFirst()
            while valid {
                try cursor.withCurrent { key, value in
                    let position = value.loadLE(UInt64.self, at: MessageValueLayout.positionOffset)
                    if chosenIDs.contains(StorageEngine.segment(of: position)) {
                        items.append((key, position, value.loadLE(UInt32.self, at: MessageValueLayout.lengthOffset)))
                    }
                }
                valid = try cursor.next()
            }
        }

        // Bounded steps, each a normal commit: readers and writers interleave between them.
        var index = 0
        while index < items.count {
            var end = index
            var bytes = 0
            while end < items.count && end - index < Self.stepRecords && bytes < Self.stepBytes {
                bytes += Int(items[end].length)
                end += 1
            }
            let range = index..<end
            var moved = 0
            try engine.commit { transaction, batch in
                moved = 0
                let messages = try BTree(transaction, slot: MessageTree.messages)
                for item in items[range] {
                    var current: UInt64? = nil
                    try messages.withValue(for: item.key) { current = $0.loadLE(UInt64.self, at: MessageValueLayout.positionOffset) }
                    guard current == item.position else { continue }   // edited or deleted meanwhile
                    _ = try withMessagePayload(at: item.position) { _, payload in
                        try batch.append(type: MessageRecordType.relocate,
                                         payloadCount: MessageRecordLayout.relocatePrefix + payload.count) { out in
                            out.storeLE(item.position, at: 0)
                            UnsafeMutableRawBufferPointer(rebasing: out[MessageRecordLayout.relocatePrefix...]).copyMemory(from: payload)
                        }
                    }
                    moved += 1
                }
            }
            summary.recordsMoved += moved
            index = end
        }
        // The engine checkpoints before it forgets any segment: the moved records are durable
        // and the trees that point at them are in the page file before an old segment goes.
        summary.segmentsRewritten = try engine.retireDeadSegments(among: chosenIDs).count
        summary.logBytesAfter = logBytes
        compactionBytes.withLock { $0 = (summary.logBytesBefore, summary.logBytesAfter) }
        return summary
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
