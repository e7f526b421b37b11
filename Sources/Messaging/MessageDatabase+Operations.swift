import ScrollbackBTree
import ScrollbackStorage

extension MessageDatabase {
    package func checkpoint() throws { try engine.checkpoint() }
    /// See `StorageEngine.checkpoint(during:)`.
    package func checkpoint(during body: () throws -> Void) throws { try engine.checkpoint(during: body) }

    package func sync() throws { try engine.sync() }
    /// See `StorageEngine.allocateLogAhead()`.
    @discardableResult
    package func allocateLogAhead() throws -> Bool { try engine.allocateLogAhead() }

    /// Throws `.closed` once the store is closed.
    package func checkOpen() throws { try engine.read { _ in } }

    /// Checkpoints and seals begun and ended since open; lock-free, never throws.
    package var backgroundActivity: BackgroundActivityCounts { engine.backgroundActivity }

    package func statistics() throws -> MessageDatabaseStatistics {
        let (messages, conversations, compactions) = try engine.read { snapshot in
            (Int(truncatingIfNeeded: snapshot.state[counter: .liveMessages]),
             try BTree(snapshot, .activity).count, snapshot.state[counter: .compactions])
        }
        let storage = engine.statistics
        let ratio = try garbageRatio()
        let bytes = compactionBytes.withLock { $0 }
        return MessageDatabaseStatistics(
            messages: messages, conversations: conversations, pageFileBytes: storage.pageFileBytes,
            rawLogBytes: storage.log.rawSegmentBytes, sealedLogBytes: storage.log.sealedSegmentBytes + storage.runs.bytes,
            garbageRatio: ratio, storage: storage, compactions: compactions,
            lastCompactionBytesBefore: bytes.before, lastCompactionBytesAfter: bytes.after)
    }

    /// Records the trees no longer point at, over all records stored: in runs (their records
    /// against the live records of the segments bound to them) and in log segments not sealed
    /// yet. 0 for an empty store.
    func garbageRatio() throws -> Double {
        let segments = try engine.segmentAccounts()
        var liveInRun: [UInt32: UInt64] = [:]
        var records: UInt64 = 0, live: UInt64 = 0
        for segment in segments {
            if segment.run != 0 {
                liveInRun[segment.run, default: 0] += segment.liveRecords
            } else {
                records += segment.records
                live += min(segment.liveRecords, segment.records)
            }
        }
        for run in try engine.runAccounts() {
            records += run.records
            live += min(liveInRun[run.id] ?? 0, run.records)
        }
        return records == 0 ? 0 : Double(records - live) / Double(records)
    }

    /// Writes a consistent copy of the store into `destination` (a missing or empty
    /// directory) while the store stays open (`StorageEngine.backup(to:)`).
    package func backup(to destination: String) throws {
        if let names = try? fileSystem.listDirectory(destination), !names.isEmpty {
            throw MessagingError.invalidArgument(argument: "path", reason: "\(destination) is not empty")
        }
        try engine.backup(to: destination)
    }
}

extension MessageDatabase {
    /// Bytes per structure: each tree by name, free pages, sorted runs and the log. Cost:
    /// reads every branch page of every tree.
    package func spaceUsage() throws -> [(structure: String, bytes: UInt64)] {
        let usage = try engine.spaceUsage()
        let pageSize = UInt64(usage.pageSize)
        var result: [(structure: String, bytes: UInt64)] = []
        for tree in MessageTree.allCases {
            result.append(("tree \(tree)", UInt64(usage.treePages[tree.rawValue] ?? 0) * pageSize))
        }
        let treePages = usage.treePages.values.reduce(0, +)
        result.append(("free pages", UInt64(usage.freePages) * pageSize))
        result.append(("page file other (meta, free list)", UInt64(max(0, usage.pageCount - treePages - usage.freePages)) * pageSize))
        result.append(("sorted runs", usage.runBytes))
        result.append(("log", usage.logBytes))
        return result
    }
}
