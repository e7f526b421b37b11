import ScrollbackBTree
import ScrollbackStorage

extension MessageDatabase {
    package func checkpoint() throws { try engine.checkpoint() }

    package func sync() throws { try engine.sync() }

    /// Throws `.closed` once the store is closed.
    package func checkOpen() throws { try engine.read { _ in } }

    package func statistics() throws -> MessageDatabaseStatistics {
        let (messages, conversations, counters) = try engine.read { snapshot in
            (Int(truncatingIfNeeded: snapshot.state.counters[MessageCounter.liveMessages]),
             Int(truncatingIfNeeded: snapshot.state.trees[MessageTree.activity].entryCount), snapshot.state.counters)
        }
        let storage = engine.statistics
        let ratio = SegmentAccount.garbageRatio(try engine.segmentAccounts())
        let bytes = compactionBytes.withLock { $0 }
        return MessageDatabaseStatistics(
            messages: messages, conversations: conversations, pageFileBytes: storage.pageFileBytes,
            rawLogBytes: storage.log.rawSegmentBytes, sealedLogBytes: storage.log.sealedSegmentBytes,
            garbageRatio: ratio, storage: storage, compactions: counters[MessageCounter.compactions],
            lastCompactionBytesBefore: bytes.before, lastCompactionBytesAfter: bytes.after)
    }

    // MARK: Backup

    /// Writes a consistent copy of the store into `destination` (a missing or empty
    /// directory) while the store stays open (`StorageEngine.backup(to:)`).
    package func backup(to destination: String) throws {
        if let names = try? fileSystem.listDirectory(destination), !names.isEmpty {
            throw MessagingError.invalidArgument(argument: "path", reason: "\(destination) is not empty")
        }
        try engine.backup(to: destination)
    }

    // MARK: Verify

    /// The storage core's checks plus the message layer's: every slot-0 entry's record decodes
    /// and matches its key, kind, flags and length; the id index matches the messages exactly;
    /// conversation counts and newest entries, the activity index, the names index, the live
    /// message counter and the per-segment live bytes all match what the messages imply.
    package func verify() -> [String] {
        var problems = engine.verify()
        do {
            try engine.read { snapshot in try verifyMessages(snapshot, into: &problems) }
        } catch {
            problems.append("message layer: \(error)")
        }
        return problems
    }

    private func verifyMessages(_ snapshot: PageTransaction, into problems: inout [String]) throws {
        let trees = try MessageSchema.Trees(snapshot)
        func report(_ text: String) { if problems.count < 100 { problems.append(text) } }
        struct Conversation { var count: UInt64 = 0; var newest = BTreeKey.min }
        var conversations: [UInt64: Conversation] = [:]
        var liveBytes = LiveRecordTally()
        var total: UInt64 = 0

        var cursor = trees.messages.cursor()
        var valid = try cursor.seekFirst()
        while valid {
            var key = BTreeKey.min
            var value = [UInt8](repeating: 0, count: 16)
            try cursor.withCurrent { k, v in
                key = k
                value.withUnsafeMutableBytes { $0.copyMemory(from: v) }
            }
            let (position, length, kind, flags) = value.withUnsafeBytes {
                ($0.loadLE(UInt64.self, at: V.positionOffset), $0.loadLE(UInt32.self, at: V.lengthOffset), $0[V.kindOffset], $0[V.flagsOffset])
            }
            total += 1
            var entry = conversations[key.w0] ?? Conversation()
            entry.count += 1
            entry.newest = key
            conversations[key.w0] = entry
            liveBytes.add(recordAt: position, frameBytes: UInt64(length))
            do {
                let frame = try engine.withRecord(at: position) { _, payload in StorageEngine.frameBytes(payloadCount: payload.count) }
                if frame != Int(length) { report("message \(key): length \(length) in the tree, record frame is \(frame) bytes") }
                try withMessagePayload(at: position) { header, payload in
                    if header.conversation != key.w0 || header.createdAt != key.w1 || header.seq != key.w2 {
                        report("message \(key): record at \(LogPositions.describe(position)) holds \(header.conversation)/\(header.createdAt)/\(header.seq)")
                    }
                    if header.kind != kind || header.flags != flags {
                        report("message \(key): kind/flags \(kind)/\(flags) in the tree, \(header.kind)/\(header.flags) in the record")
                    }
                    let hash = Hash64.hash(UnsafeRawBufferPointer(rebasing: payload[header.idStart..<header.senderStart]))
                    var idValue: (UInt64, UInt64)? = nil
                    try trees.ids.withValue(for: BTreeKey(hash, key.w2)) { idValue = ($0.loadLE(UInt64.self, at: 0), $0.loadLE(UInt64.self, at: 8)) }
                    if let idValue, idValue == (key.w0, key.w1) {} else {
                        report("message \(key): id index entry missing or wrong")
                    }
                }
            } catch {
                report("message \(key): record at \(LogPositions.describe(position)): \(error)")
            }
            valid = try cursor.next()
        }
        if trees.ids.count != trees.messages.count {
            report("id index holds \(trees.ids.count) entries, messages tree \(trees.messages.count)")
        }
        if snapshot.state.counters[MessageCounter.liveMessages] != total {
            report("live message counter \(snapshot.state.counters[MessageCounter.liveMessages]), messages tree holds \(total)")
        }

        // Conversations, names, activity.
        var activeConversations = 0
        var conversationCursor = trees.conversations.cursor()
        valid = try conversationCursor.seekFirst()
        while valid {
            var id: UInt64 = 0
            var count: UInt64 = 0, newestAt: UInt64 = 0, newestSeq: UInt64 = 0
            var name = ""
            try conversationCursor.withCurrent { k, v in
                id = k.w0
                count = v.loadLE(UInt64.self, at: V.liveCountOffset)
                newestAt = v.loadLE(UInt64.self, at: V.newestCreatedAtOffset)
                newestSeq = v.loadLE(UInt64.self, at: V.newestSeqOffset)
                name = Self.conversationName(v)
            }
            let expected = conversations.removeValue(forKey: id) ?? Conversation()
            if count != expected.count { report("conversation \(name): count \(count), messages tree holds \(expected.count)") }
            if expected.count > 0 {
                activeConversations += 1
                if newestAt != expected.newest.w1 || newestSeq != expected.newest.w2 {
                    report("conversation \(name): newest \(newestAt)/\(newestSeq), messages tree says \(expected.newest.w1)/\(expected.newest.w2)")
                }
                if try !trees.activity.contains(BTreeKey(expected.newest.w1, id)) {
                    report("conversation \(name): activity entry missing")
                }
            }
            if try !trees.names.contains(BTreeKey(V.conversationNamespace, Hash64.hash(name), id)) {
                report("conversation \(name): names entry missing")
            }
            valid = try conversationCursor.next()
        }
        for (id, _) in conversations { report("messages of conversation \(id), which does not exist") }
        if trees.activity.count != activeConversations {
            report("activity index holds \(trees.activity.count) entries, \(activeConversations) conversations have messages")
        }

        // Segments.
        try engine.verifyLiveness(liveBytes, in: snapshot, report: report)
    }
}
