import ScrollbackBTree
import ScrollbackStorage

/// The storage schema of the message layer: seven trees (slot 7 is the storage engine's
/// segment table), and the one `apply` function that turns logged message-layer records into
/// tree changes, for live commits and recovery alike (spec/message-records.md).
package enum MessageSchema {
    package static let schema = StorageSchema(
        trees: MessageTree.allCases.filter { $0 != .segments }.map(\.shape),
        liveness: LivenessLayout(segmentTable: MessageTree.segments.rawValue,
                                 retireRecordType: MessageRecordType.retireSegment.rawValue,
                                 retirementCounter: MessageCounter.compactions.rawValue),
        checkState: { state, pageFile in try checkFormat(state, pageFile: pageFile) },
        apply: { transaction, records, liveness in try apply(transaction, records, &liveness) })

    /// Refuses a store written by a newer message-layer format (counter 6; 0 is a store
    /// whose initialize record is not written yet).
    static func checkFormat(_ state: CommittedState, pageFile: String) throws {
        let version = state[counter: .formatVersion]
        if version > MessageLimits.formatVersion {
            throw MessagingError.unsupportedVersion(
                path: pageFile, found: UInt32(truncatingIfNeeded: version), supported: UInt32(MessageLimits.formatVersion))
        }
    }

    /// The seven trees of one transaction.
    package struct Trees {
        package let messages: BTree
        package let ids: BTree
        package let names: BTree
        package let conversations: BTree
        package let activity: BTree
        package let users: BTree
        package let markers: BTree

        package init(_ transaction: PageTransaction) throws {
            messages = try BTree(transaction, .messages)
            ids = try BTree(transaction, .messageIDs)
            names = try BTree(transaction, .names)
            conversations = try BTree(transaction, .conversations)
            activity = try BTree(transaction, .activity)
            users = try BTree(transaction, .users)
            markers = try BTree(transaction, .readMarkers)
        }

        var transaction: PageTransaction { messages.transaction }
    }

    /// Applies one transaction's records in log order, then writes the conversation records
    /// and activity entries they changed.
    static func apply(_ transaction: PageTransaction, _ records: SchemaRecords, _ liveness: inout LivenessLedger) throws {
        let trees = try Trees(transaction)
        var conversations = ConversationUpdates()
        try records.forEach { position, type, payload in
            let frameLength = Int64(StorageEngine.frameBytes(payloadCount: payload.count))
            // Retirements are the storage engine's own records and never reach the schema.
            guard let kind = MessageRecordType(rawValue: type), kind != .retireSegment else {
                throw MessageHeader.corrupted(position, 0, "unknown message-layer record type \(type)")
            }
            switch kind {
            case .message:
                let header = try MessageHeader.parse(payload, position: position, offset: 0)
                try applyMessage(header, payload, at: position, frameLength: frameLength, trees, &liveness, &conversations)
            case .relocate:
                try applyRelocate(try RelocateRecord.decode(payload, position: position), at: position, frameLength: frameLength,
                                  trees, &liveness)
            case .delete:
                try applyDelete(try DeleteRecord.decode(payload, position: position), trees, &liveness, &conversations)
            case .markRead:
                try applyMarkRead(try MarkReadRecord.decode(payload, position: position), trees)
            case .newConversation, .newUser:
                try applyName(try NameRecord.decode(kind, payload, position: position), trees)
            case .initialize:
                applyInitialize(try InitializeRecord.decode(payload, position: position), transaction)
            case .retireSegment:
                break
            }
        }
        try conversations.flush(trees)
    }

    /// A message, or the edit of one (the same key, a new record).
    static func applyMessage(_ header: MessageHeader, _ payload: UnsafeRawBufferPointer, at position: LogPosition,
                             frameLength: Int64, _ trees: Trees, _ liveness: inout LivenessLedger,
                             _ conversations: inout ConversationUpdates) throws {
        let key = header.key.treeKey
        let pointer = MessagePointer(position: position, frameLength: UInt32(truncatingIfNeeded: frameLength),
                                     kind: header.kind, flags: header.flags)
        var old: MessagePointer? = nil
        try trees.messages.withValue(for: key) { old = MessagePointer($0) }
        liveness.recordBecameLive(at: position, frameBytes: frameLength)
        if let old {
            liveness.recordBecameDead(at: old.position, frameBytes: Int64(old.frameLength))
            try trees.messages.update(key, value: pointer.bytes)
            return
        }
        try trees.messages.insert(key, value: pointer.bytes)
        let id = UnsafeRawBufferPointer(rebasing: payload[header.idStart..<header.senderStart])
        let idValue = MessageIDValue(conversation: header.conversation, createdAt: header.createdAt)
        try trees.ids.insert(MessageIDKey(idHash: Hash64.hash(id), seq: header.seq).treeKey, value: idValue.bytes)
        trees.transaction.state[counter: .liveMessages] &+= 1
        trees.transaction.state.raise(.nextSeq, to: header.seq &+ 1)

        let i = try conversations.state(of: header.conversation, trees)
        var record = conversations.states[i].record
        if record.liveCount == 0
            || header.key.isAfter(MessageKey(conversation: header.conversation, createdAt: record.newestCreatedAt, seq: record.newestSeq)) {
            record.newestCreatedAt = header.createdAt
            record.newestSeq = header.seq
        }
        record.liveCount &+= 1
        conversations.states[i].record = record
    }

    /// A compaction copy: it takes over only if the entry still points at the original (the
    /// message was not edited or deleted since the copy was made); otherwise it is garbage.
    static func applyRelocate(_ copy: RelocateRecord, at position: LogPosition, frameLength: Int64, _ trees: Trees,
                              _ liveness: inout LivenessLedger) throws {
        let key = copy.header.key.treeKey
        var current: MessagePointer? = nil
        try trees.messages.withValue(for: key) { current = MessagePointer($0) }
        guard let current, current.position == copy.from else { return }
        let moved = MessagePointer(position: position, frameLength: UInt32(truncatingIfNeeded: frameLength),
                                   kind: current.kind, flags: current.flags)
        try trees.messages.update(key, value: moved.bytes)
        liveness.recordBecameDead(at: copy.from, frameBytes: Int64(current.frameLength))
        liveness.recordBecameLive(at: position, frameBytes: frameLength)
    }

    static func applyDelete(_ delete: DeleteRecord, _ trees: Trees, _ liveness: inout LivenessLedger,
                            _ conversations: inout ConversationUpdates) throws {
        var old: MessagePointer? = nil
        try trees.messages.withValue(for: delete.key.treeKey) { old = MessagePointer($0) }
        guard let old else { return }
        try trees.messages.delete(delete.key.treeKey)
        try trees.ids.delete(MessageIDKey(idHash: delete.idHash, seq: delete.key.seq).treeKey)
        liveness.recordBecameDead(at: old.position, frameBytes: Int64(old.frameLength))
        trees.transaction.state[counter: .liveMessages] &-= 1

        let i = try conversations.state(of: delete.key.conversation, trees)
        var record = conversations.states[i].record
        record.liveCount = record.liveCount > 0 ? record.liveCount - 1 : 0
        if record.newestCreatedAt == delete.key.createdAt && record.newestSeq == delete.key.seq {
            record.newestCreatedAt = 0
            record.newestSeq = 0
            if record.liveCount > 0 {
                // The new newest: one reverse seek.
                var cursor = trees.messages.cursor()
                if try cursor.seek(atMost: MessageKey.last(of: delete.key.conversation).treeKey), let k = try cursor.key(),
                   k.w0 == delete.key.conversation {
                    let newest = MessageKey(k)
                    record.newestCreatedAt = newest.createdAt
                    record.newestSeq = newest.seq
                }
            }
        }
        conversations.states[i].record = record
    }

    /// Markers move forward only, also on replay.
    static func applyMarkRead(_ mark: MarkReadRecord, _ trees: Trees) throws {
        var current: MarkerValue? = nil
        try trees.markers.withValue(for: mark.marker.treeKey) { current = MarkerValue($0) }
        if let current, !mark.through.isAfter(current) { return }
        try trees.markers.upsert(mark.marker.treeKey, value: mark.through.bytes)
    }

    static func applyName(_ name: NameRecord, _ trees: Trees) throws {
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        try trees.names.insert(NameKey(space: name.space, nameHash: Hash64.hash(name.name), id: name.id).treeKey, value: empty)
        switch name.space {
        case .conversation:
            try trees.conversations.insert(ConversationKey(name.id).treeKey, value: ConversationRecord.new(name: name.name))
            trees.transaction.state.raise(.nextConversation, to: name.id &+ 1)
        case .user:
            try trees.users.insert(UserKey(name.id).treeKey, value: UserRecord.new(name: name.name))
            trees.transaction.state.raise(.nextUser, to: name.id &+ 1)
        }
    }

    static func applyInitialize(_ initialize: InitializeRecord, _ transaction: PageTransaction) {
        transaction.state[counter: .formatVersion] = initialize.formatVersion
        transaction.state[counter: .cursorSecret] = initialize.cursorSecret
        transaction.state.raise(.nextSeq, to: 1)
        transaction.state.raise(.nextConversation, to: 1)
        transaction.state.raise(.nextUser, to: 1)
    }
}
