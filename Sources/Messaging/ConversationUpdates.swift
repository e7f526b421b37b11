import ScrollbackBTree
import ScrollbackStorage

/// The conversation records and activity entries one transaction changes, kept in memory
/// while its records are applied and written once at the end: a batch of many messages in
/// one conversation costs one conversation-record update and at most one activity move.
struct ConversationUpdates {
    struct State {
        var id: UInt64
        var record: ConversationRecord
        let original: ConversationRecord

        /// The activity entry the record implies (none without live messages).
        static func activity(_ record: ConversationRecord, id: UInt64) -> ActivityKey? {
            record.liveCount > 0 ? ActivityKey(newestCreatedAt: record.newestCreatedAt, conversation: id) : nil
        }
    }

    var states: [State] = []
    var index: [UInt64: Int] = [:]

    /// The index of `id`'s state, loading it from the conversations tree on first use.
    mutating func state(of id: UInt64, _ trees: MessageSchema.Trees) throws -> Int {
        if states.count < 4 {
            if let i = states.firstIndex(where: { $0.id == id }) { return i }
        } else if let i = index[id] {
            return i
        }
        var loaded: State? = nil
        try trees.conversations.withValue(for: ConversationKey(id).treeKey) { v in
            let record = ConversationRecord(v)
            loaded = State(id: id, record: record, original: record)
        }
        guard let loaded else {
            throw StorageError.corrupted(file: "pages", offset: 0, reason: "a record names conversation \(id), which does not exist")
        }
        states.append(loaded)
        if states.count == 4 {
            for (i, s) in states.enumerated() { index[s.id] = i }
        } else if states.count > 4 {
            index[id] = states.count - 1
        }
        return states.count - 1
    }

    /// A new live message in its conversation.
    mutating func messageAdded(_ key: MessageKey, _ trees: MessageSchema.Trees) throws {
        let i = try state(of: key.conversation, trees)
        var record = states[i].record
        if record.liveCount == 0
            || key.isAfter(MessageKey(conversation: key.conversation, createdAt: record.newestCreatedAt, seq: record.newestSeq)) {
            record.newestCreatedAt = key.createdAt
            record.newestSeq = key.seq
        }
        record.liveCount &+= 1
        states[i].record = record
    }

    /// A live message deleted: the count drops; when it was the newest, the new newest is
    /// found by one reverse seek.
    mutating func messageRemoved(_ key: MessageKey, _ trees: MessageSchema.Trees) throws {
        let i = try state(of: key.conversation, trees)
        var record = states[i].record
        record.liveCount = record.liveCount > 0 ? record.liveCount - 1 : 0
        if record.newestCreatedAt == key.createdAt && record.newestSeq == key.seq {
            record.newestCreatedAt = 0
            record.newestSeq = 0
            if record.liveCount > 0 {
                var cursor = trees.messages.cursor()
                if try cursor.seek(atMost: MessageKey.last(of: key.conversation).treeKey), let k = try cursor.key(),
                   MessageKey.conversation(of: k) == key.conversation {
                    let newest = MessageKey(k)
                    record.newestCreatedAt = newest.createdAt
                    record.newestSeq = newest.seq
                }
            }
        }
        states[i].record = record
    }

    mutating func membersChanged(_ conversation: UInt64, by delta: Int, _ trees: MessageSchema.Trees) throws {
        let i = try state(of: conversation, trees)
        states[i].record.members = UInt32(truncatingIfNeeded: max(0, Int(states[i].record.members) + delta))
    }

    /// Writes every changed conversation record and moves its activity entry.
    mutating func flush(_ trees: MessageSchema.Trees) throws {
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        for state in states where state.record != state.original {
            let key = ConversationKey(state.id).treeKey
            var stored = state.record
            if stored.liveCount == 0 {
                stored.newestCreatedAt = 0
                stored.newestSeq = 0
            }
            // In place, one descent (the record's name bytes stay as they are).
            guard try trees.conversations.modify(key, { stored.store(into: $0) }) else {
                throw StorageError.corrupted(file: "pages", offset: 0, reason: "conversation \(state.id) vanished during a transaction")
            }
            let before = State.activity(state.original, id: state.id)
            let after = State.activity(state.record, id: state.id)
            if before != after {
                if let before { try trees.activity.delete(before.treeKey) }
                if let after { try trees.activity.insert(after.treeKey, value: empty) }
            }
        }
    }
}
