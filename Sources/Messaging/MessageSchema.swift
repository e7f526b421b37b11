import ScrollbackBTree
import ScrollbackStorage

/// The storage schema of the message layer: its trees (slots 7 and 8 are the storage
/// engine's segment and run tables), the one `apply` function that turns logged message-layer
/// records into tree changes, for live commits and recovery alike, and what sealing and
/// merging need to know about messages (spec/message-records.md).
package enum MessageSchema {
    package static let schema = makeSchema(acceptingLegacySearchIndex: false)
    /// The schema `scrollback upgrade` opens a format-3 store with (its search index in the
    /// previous layout) to rebuild the index.
    static let legacySearchSchema = makeSchema(acceptingLegacySearchIndex: true)

    private static func makeSchema(acceptingLegacySearchIndex: Bool) -> StorageSchema {
        StorageSchema(
            trees: MessageTree.allCases.filter { !$0.isEngineTree }.map(\.shape),
            liveness: LivenessLayout(
                segmentTable: MessageTree.segments.rawValue, runTable: MessageTree.runs.rawValue,
                retireRecordType: MessageRecordType.retireSegment.rawValue, sealRecordType: MessageRecordType.sealed.rawValue,
                mergeRecordType: MessageRecordType.merged.rawValue, attachRecordType: MessageRecordType.attached.rawValue,
                retirementCounter: MessageCounter.compactions.rawValue, nextRunCounter: MessageCounter.nextRun.rawValue,
                virtualSegmentCounter: MessageCounter.lowestVirtualSegment.rawValue),
            checkState: { state, pageFile in
                try checkFormat(state, pageFile: pageFile, acceptingLegacySearchIndex: acceptingLegacySearchIndex)
            },
            apply: { transaction, records, liveness in try apply(transaction, records, &liveness) },
            sealRecord: { snapshot, position, type, payload, arena in try sealRecord(snapshot, position, type, payload, &arena) },
            isLive: { snapshot, key, segment in try isLive(snapshot, key, segment) })
    }

    /// Refuses a store written by another message-layer format (counter 6; 0 is a store
    /// whose initialize record is not written yet; 4 is format 2 with the search index on):
    /// a newer one is `unsupportedVersion`, an older one names the upgrade — including 3, the
    /// search index's previous layout, unless `acceptingLegacySearchIndex` (the upgrade).
    static func checkFormat(_ state: CommittedState, pageFile: String, acceptingLegacySearchIndex: Bool = false) throws {
        let version = state[counter: .formatVersion]
        if version == MessageLimits.legacySearchFormatVersion && !acceptingLegacySearchIndex {
            throw StorageError.needsUpgrade(file: pageFile, found: UInt32(version), current: UInt32(MessageLimits.searchFormatVersion))
        }
        if version > MessageLimits.searchFormatVersion {
            throw MessagingError.unsupportedVersion(
                path: pageFile, found: UInt32(truncatingIfNeeded: version), supported: UInt32(MessageLimits.searchFormatVersion))
        }
        if version != 0 && version < MessageLimits.formatVersion {
            throw StorageError.needsUpgrade(file: pageFile, found: UInt32(truncatingIfNeeded: version),
                                            current: UInt32(MessageLimits.formatVersion))
        }
    }

    /// The trees of one transaction.
    package struct Trees {
        package let messages: BTree
        package let ids: BTree
        package let idCollisions: BTree
        package let names: BTree
        package let longNames: BTree
        package let conversations: BTree
        package let activity: BTree
        package let users: BTree
        package let markers: BTree

        package init(_ transaction: PageTransaction) throws {
            messages = try BTree(transaction, .messages)
            ids = try BTree(transaction, .messageIDs)
            idCollisions = try BTree(transaction, .idCollisions)
            names = try BTree(transaction, .names)
            longNames = try BTree(transaction, .longNames)
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
            guard let kind = MessageRecordType(rawValue: type), !kind.isEngineRecord, kind != .relocate else {
                throw MessageHeader.corrupted(position, 0, "record type \(type) is not a message-layer record of format 2")
            }
            switch kind {
            case .message:
                let header = try MessageHeader.parse(payload, position: position, offset: 0)
                try applyMessage(header, payload, at: position, trees, &liveness, &conversations)
            case .delete:
                try applyDelete(try DeleteRecord.decode(payload, position: position), trees, &liveness, &conversations)
            case .markRead:
                try applyMarkRead(try MarkReadRecord.decode(payload, position: position), trees)
            case .join, .leave:
                try applyMembership(try MembershipRecord.decode(kind, payload, position: position), trees, &conversations)
            case .newConversation, .newUser:
                try applyName(try NameRecord.decode(kind, payload, position: position), trees)
            case .initialize:
                applyInitialize(try InitializeRecord.decode(payload, position: position), transaction)
            case .replicaMark:
                let mark = try ReplicaMarkRecord.decode(payload, position: position)
                transaction.state[counter: .replicaSource] = mark.source
                transaction.state[counter: .replicaSequence] = mark.sequence
            case .bulkLoad:
                try applyBulkLoad(try BulkLoadRecord.decode(payload, position: position), records.context, trees, &liveness,
                                  &conversations)
            case .searchEnable:
                SearchIndex.applyEnable(transaction)
            case .searchBuild:
                try SearchIndex.applyBuild(try SearchBuildRecord.decode(payload, position: position), at: position, transaction)
            case .searchRemove:
                try SearchIndex.applyRemove(try SearchRemoveRecord.decode(payload, position: position), transaction)
            case .searchDisable:
                try SearchIndex.applyDisable(transaction)
            case .relocate, .retireSegment, .sealed, .merged, .attached:
                break
            }
        }
        try conversations.flush(trees)
    }

    /// A message, or the edit of one (the same key, a new record). Either way the search index
    /// (when it covers the message) gets the body's terms; an edit's old ones were removed by
    /// the `.searchRemove` logged before it.
    static func applyMessage(_ header: MessageHeader, _ payload: UnsafeRawBufferPointer, at position: LogPosition,
                             _ trees: Trees, _ liveness: inout LivenessLedger, _ conversations: inout ConversationUpdates) throws {
        let key = header.key.treeKey
        let pointer = MessagePointer(position: position)
        // One descent: a new message's entry is inserted, an edit's repointed (its old pointer
        // seen on the way).
        var old: MessagePointer? = nil
        try pointer.withBytes { value in
            try trees.messages.upsert(key, value: value) { old = MessagePointer($0) }
        }
        liveness.recordBecameLive(at: position)
        let body = header.body
        let record = MessageHeader.bodyRecord(of: payload)
        try SearchIndex.messageApplied(header.key, text: UnsafeRawBufferPointer(rebasing: record[body.textStart..<body.end]),
                                       trees.transaction)
        if let old {
            liveness.recordBecameDead(at: old.position)
            return
        }
        let id = UnsafeRawBufferPointer(rebasing: record[body.idStart..<body.senderStart])
        try IDIndex.insert(idHash: Hash64.hash(id), key: header.key, trees)
        trees.transaction.state[counter: .liveMessages] &+= 1
        trees.transaction.state.raise(.nextSeq, to: header.seq &+ 1)
        try conversations.messageAdded(header.key, trees)
    }

    static func applyDelete(_ delete: DeleteRecord, _ trees: Trees, _ liveness: inout LivenessLedger,
                            _ conversations: inout ConversationUpdates) throws {
        var old: MessagePointer? = nil
        try trees.messages.withValue(for: delete.key.treeKey) { old = MessagePointer($0) }
        guard let old else { return }
        try trees.messages.delete(delete.key.treeKey)
        try IDIndex.remove(idHash: Hash64.hash(delete.id), key: delete.key, trees)
        liveness.recordBecameDead(at: old.position)
        trees.transaction.state[counter: .liveMessages] &-= 1
        try conversations.messageRemoved(delete.key, trees)
    }

    /// Markers move forward only, also on replay; the membership flag stays.
    static func applyMarkRead(_ mark: MarkReadRecord, _ trees: Trees) throws {
        var current = MarkerValue(createdAt: 0, seq: 0, flags: 0)
        try trees.markers.withValue(for: mark.marker.treeKey) { current = MarkerValue($0) }
        let moved = MarkerValue(through: mark.through)
        if !moved.isAfter(current) { return }
        let value = MarkerValue(createdAt: moved.createdAt, seq: moved.seq, flags: current.flags | MarkerValue.hasMarker)
        try trees.markers.upsert(mark.marker.treeKey, value: value.bytes)
    }

    /// A join of a member or a leave of a non-member changes nothing (the write path does not
    /// even log them).
    static func applyMembership(_ change: MembershipRecord, _ trees: Trees, _ conversations: inout ConversationUpdates) throws {
        var current = MarkerValue(createdAt: 0, seq: 0, flags: 0)
        try trees.markers.withValue(for: change.entry.treeKey) { current = MarkerValue($0) }
        guard current.member != change.joins else { return }
        current.flags = change.joins ? current.flags | MarkerValue.isMember : current.flags & ~MarkerValue.isMember
        if current.flags == 0 {
            try trees.markers.delete(change.entry.treeKey)
        } else {
            try trees.markers.upsert(change.entry.treeKey, value: current.bytes)
        }
        try conversations.membersChanged(change.entry.conversation, by: change.joins ? 1 : -1, trees)
    }

    static func applyName(_ name: NameRecord, _ trees: Trees) throws {
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        try trees.names.insert(NameKey(space: name.space, nameHash: Hash64.hash(name.name), id: name.id).treeKey, value: empty)
        let record = NameValue.newRecord(name.space, name: name.name)
        switch name.space {
        case .conversation:
            try trees.conversations.insert(ConversationKey(name.id).treeKey, value: record)
            trees.transaction.state.raise(.nextConversation, to: name.id &+ 1)
        case .user:
            try trees.users.insert(UserKey(name.id).treeKey, value: record)
            trees.transaction.state.raise(.nextUser, to: name.id &+ 1)
        }
        for (key, chunk) in LongName.chunks(name.space, id: name.id, name: name.name) {
            try trees.longNames.insert(key, value: chunk)
        }
    }

    static func applyInitialize(_ initialize: InitializeRecord, _ transaction: PageTransaction) {
        transaction.state[counter: .formatVersion] = initialize.formatVersion
        transaction.state[counter: .cursorSecret] = initialize.cursorSecret
        transaction.state.raise(.nextSeq, to: 1)
        transaction.state.raise(.nextConversation, to: 1)
        transaction.state.raise(.nextUser, to: 1)
    }

    // MARK: Sealing and merging

    /// A `.message` record of a segment being sealed is kept when the trees point at it: its
    /// body record goes into the run under its key.
    static func sealRecord(_ snapshot: PageTransaction, _ position: LogPosition, _ type: UInt8, _ payload: UnsafeRawBufferPointer,
                           _ arena: inout [UInt8]) throws -> RunKey? {
        guard type == MessageRecordType.message.rawValue else { return nil }
        let header = try MessageHeader.parse(payload, position: position, offset: 0)
        var current: LogPosition? = nil
        try BTree(snapshot, .messages).withValue(for: header.key.treeKey) { current = MessagePointer.position(in: $0) }
        guard current == position else { return nil }
        arena.append(contentsOf: MessageHeader.bodyRecord(of: payload))
        return header.key.runKey
    }

    /// A run record of `segment` under `key` is live when the messages tree points into
    /// `segment` for that key.
    static func isLive(_ snapshot: PageTransaction, _ key: RunKey, _ segment: UInt32) throws -> Bool {
        var current: LogPosition? = nil
        try BTree(snapshot, .messages).withValue(for: MessageKey(key).treeKey) { current = MessagePointer.position(in: $0) }
        guard let current else { return false }
        return LogPositions.segment(current) == segment
    }
}

/// The message-id index: the first live id with a hash has the entry `(hash)`; every other
/// live id with that hash has an entry `(hash, seq)` in the collision tree. Removing the
/// holder of `(hash)` promotes the first collision entry, so a lookup finds every id with a
/// hash by checking `(hash)` and then the collision entries `(hash, *)`.
enum IDIndex {
    static func insert(idHash: UInt64, key: MessageKey, _ trees: MessageSchema.Trees) throws {
        try MessageIDValue(key: key).withBytes { value in
            // One descent when the hash is new (an insert leaves a present key unchanged).
            if try !trees.ids.insert(MessageIDKey(idHash: idHash).treeKey, value: value) {
                try trees.idCollisions.insert(MessageIDCollisionKey(idHash: idHash, seq: key.seq).treeKey, value: value)
            }
        }
    }

    static func remove(idHash: UInt64, key: MessageKey, _ trees: MessageSchema.Trees) throws {
        let main = MessageIDKey(idHash: idHash).treeKey
        var holder: MessageKey? = nil
        try trees.ids.withValue(for: main) { holder = MessageIDValue($0).key }
        guard holder == key else {
            try trees.idCollisions.delete(MessageIDCollisionKey(idHash: idHash, seq: key.seq).treeKey)
            return
        }
        // Promote the first colliding id, if any.
        var cursor = trees.idCollisions.cursor()
        var promoted: (BTreeKey, [UInt8])? = nil
        if try cursor.seek(atLeast: MessageIDCollisionKey(idHash: idHash, seq: 0).treeKey) {
            try cursor.withCurrent { k, v in if k.w0 == idHash { promoted = (k, Array(v)) } }
        }
        if let (collisionKey, value) = promoted {
            try trees.idCollisions.delete(collisionKey)
            try trees.ids.update(main, value: value)
        } else {
            try trees.ids.delete(main)
        }
    }
}
