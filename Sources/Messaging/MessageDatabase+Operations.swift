import ScrollbackBTree
import ScrollbackStorage

extension MessageDatabase {
    package func checkpoint() throws { try engine.checkpoint() }

    package func sync() throws { try engine.sync() }

    /// Throws `.closed` once the store is closed.
    package func checkOpen() throws { try engine.read { _ in } }

    package func statistics() throws -> MessageDatabaseStatistics {
        let (messages, conversations, compactions) = try engine.read { snapshot in
            (Int(truncatingIfNeeded: snapshot.state[counter: .liveMessages]),
             try BTree(snapshot, .activity).count, snapshot.state[counter: .compactions])
        }
        let storage = engine.statistics
        let ratio = SegmentAccount.garbageRatio(try engine.segmentAccounts())
        let bytes = compactionBytes.withLock { $0 }
        return MessageDatabaseStatistics(
            messages: messages, conversations: conversations, pageFileBytes: storage.pageFileBytes,
            rawLogBytes: storage.log.rawSegmentBytes, sealedLogBytes: storage.log.sealedSegmentBytes,
            garbageRatio: ratio, storage: storage, compactions: compactions,
            lastCompactionBytesBefore: bytes.before, lastCompactionBytesAfter: bytes.after)
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
