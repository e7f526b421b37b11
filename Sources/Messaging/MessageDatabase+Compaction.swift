import ScrollbackBTree
import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import ScrollbackPager
import ScrollbackStorage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension MessageDatabase {
    /// Slot-7 accounting of one segment.
    package struct SegmentAccount: Sendable, Equatable {
        package var id: UInt32
        package var recordBytes: UInt64
        package var liveBytes: UInt64
    }

    /// Every slot-7 entry, in segment order, read on a snapshot.
    package func segmentAccounts() throws -> [SegmentAccount] {
        try engine.read { snapshot in
            let segments = try BTree(snapshot, slot: MessageTree.segments)
            var cursor = segments.cursor()
            var valid = try cursor.seekFirst()
            var result: [SegmentAccount] = []
            while valid {
                try cursor.withCurrent { key, value in
                    result.append(SegmentAccount(id: UInt32(truncatingIfNeeded: key.w0),
                                                 recordBytes: value.loadLE(UInt64.self, at: MessageValueLayout.recordBytesOffset),
                                                 liveBytes: value.loadLE(UInt64.self, at: MessageValueLayout.liveBytesOffset)))
                }
                valid = try cursor.next()
            }
            return result
        }
    }

    /// Garbage ratio of the given segments: dead record bytes over record bytes (0 when empty).
    static func garbageRatio(_ accounts: [SegmentAccount]) -> Double {
        let records = accounts.reduce(UInt64(0)) { $0 + $1.recordBytes }
        let live = accounts.reduce(UInt64(0)) { $0 + min($1.liveBytes, $1.recordBytes) }
        return records == 0 ? 0 : Double(records - live) / Double(records)
    }

    /// Slot-7 accounts of sealed segments only.
    func sealedAccounts() throws -> [SegmentAccount] {
        let sealed = Set(try engine.log.listSegments().filter { $0.state == .sealed }.map(\.id))
        return try segmentAccounts().filter { sealed.contains($0.id) }
    }

    var logBytes: UInt64 {
        let s = engine.log.statistics
        return s.rawSegmentBytes + s.sealedSegmentBytes
    }

    // MARK: Compaction

    /// Explicit compaction: rolls and seals the active segment, then rewrites every sealed
    /// segment holding garbage. With `threshold`, only sealed segments whose garbage ratio
    /// exceeds it (the automatic policy).
    package func compact(threshold: Double? = nil) throws -> CompactionSummary {
        try maintenance.withLock { _ in
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
        try removeDeferredSegments(wait: false)
        if threshold == nil {
            try engine.withWriteFailurePoisoning {
                try engine.log.rollSegment()
                _ = try engine.log.sealFullSegments()
            }
        }
        summary.logBytesBefore = logBytes
        let accounts = try sealedAccounts()
        let chosen = accounts.filter { account in
            guard account.recordBytes > 0 else { return true }
            let garbage = Double(account.recordBytes - min(account.liveBytes, account.recordBytes)) / Double(account.recordBytes)
            if let threshold { return garbage > threshold }
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
                    if chosenIDs.contains(LogPositions.segment(position)) {
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
        let lastMove = engine.pager.committedState.transactionID
        // The moved records are durable and the trees that point at them are checkpointed
        // before any old segment goes away.
        try engine.checkpoint()

        let dead = try segmentAccounts().filter { chosenIDs.contains($0.id) && $0.liveBytes == 0 }.map(\.id)
        if !dead.isEmpty {
            try engine.commit { _, batch in
                try batch.append(type: MessageRecordType.retireSegment, payloadCount: 8 + 8 * dead.count) { out in
                    out.storeLE(UInt64(dead.count), at: 0)
                    for (i, id) in dead.enumerated() { out.storeLE(UInt64(id), at: 8 + 8 * i) }
                }
            }
            pendingRemovals.withLock { $0.append((ids: dead, after: lastMove)) }
            try removeDeferredSegments(wait: true)
        }
        summary.segmentsRewritten = dead.count
        summary.logBytesAfter = logBytes
        compactionBytes.withLock { $0 = (summary.logBytesBefore, summary.logBytesAfter) }
        return summary
    }

    /// Removes the files of retired segments once no snapshot that could read them is alive
    /// (the oldest snapshot began after the last commit that moved records out of them).
    /// With `wait`, polls for up to a second; what is still held stays queued (and is removed
    /// at the next compaction, at close, or by the next open's reconciliation).
    func removeDeferredSegments(wait: Bool) throws {
        var attempts = wait ? 1000 : 1
        while attempts > 0 {
            attempts -= 1
            let ready: [UInt32] = pendingRemovals.withLock { pending in
                let oldest = engine.pager.oldestSnapshotID ?? .max
                var ids: [UInt32] = []
                pending.removeAll { entry in
                    guard oldest >= entry.after else { return false }
                    ids.append(contentsOf: entry.ids)
                    return true
                }
                return ids
            }
            let existing = Set(try engine.log.listSegments().map(\.id))
            for id in ready where existing.contains(id) {
                try engine.log.removeSegment(id)
            }
            if pendingRemovals.withLock({ $0.isEmpty }) { return }
            if attempts > 0 { usleep(1000) }
        }
    }

    /// At open: removes files of non-active segments that slot 7 no longer knows (retired by a
    /// compaction that crashed before removing them), and retires slot-7 entries whose files
    /// are gone with no live record left (removed before the retire record became durable).
    func reconcileSegments() throws {
        let segments = try engine.log.listSegments()
        let accounts = try segmentAccounts()
        let known = Set(accounts.map(\.id))
        for segment in segments where segment.state != .active && !known.contains(segment.id) {
            try engine.log.removeSegment(segment.id)
        }
        let present = Set(segments.map(\.id))
        // A segment the trees still point into must exist: compaction removes a file only after
        // its retire record (live bytes 0). A missing one means the durable state in use is not
        // the one the files belong to (e.g. a damaged newest meta page made the pager fall back
        // to an older checkpoint); report it now rather than failing reads later.
        if let lost = accounts.first(where: { !present.contains($0.id) && $0.liveBytes > 0 }) {
            throw StorageError.corrupted(
                file: engine.pager.path, offset: 0,
                reason: "the segment table of the checkpoint in use lists log segment \(lost.id) with \(lost.liveBytes) live bytes, but the segment is missing")
        }
        let missing = accounts.filter { !present.contains($0.id) && $0.liveBytes == 0 }.map(\.id)
        if !missing.isEmpty {
            try engine.commit { _, batch in
                try batch.append(type: MessageRecordType.retireSegment, payloadCount: 8 + 8 * missing.count) { out in
                    out.storeLE(UInt64(missing.count), at: 0)
                    for (i, id) in missing.enumerated() { out.storeLE(UInt64(id), at: 8 + 8 * i) }
                }
            }
        }
    }

    /// The automatic policy: every 1024 writes, if the sealed segments' garbage ratio exceeds
    /// the configured threshold, compact the segments above it (in the writer's thread, one
    /// compaction at a time; errors are left to the next explicit call).
    func maybeCompactAutomatically() {
        guard let threshold = autoCompactGarbageRatio else { return }
        guard writesSincePolicyCheck.load(ordering: .relaxed) >= 1024 else { return }
        writesSincePolicyCheck.store(0, ordering: .relaxed)
        guard !compactionRunning.load(ordering: .acquiring) else { return }
        if !pendingRemovals.withLock({ $0.isEmpty }) { try? removeDeferredSegments(wait: false) }
        guard let accounts = try? sealedAccounts(), Self.garbageRatio(accounts) > threshold else { return }
        _ = try? compact(threshold: threshold)
    }
}
