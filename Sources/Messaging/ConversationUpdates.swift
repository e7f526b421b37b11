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
    var value = [UInt8](repeating: 0, count: ConversationRecord.size)

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
            throw StorageError.corrupted(file: "pages", offset: 0, reason: "a message names conversation \(id), which does not exist")
        }
        states.append(loaded)
        if states.count == 4 {
            for (i, s) in states.enumerated() { index[s.id] = i }
        } else if states.count > 4 {
            index[id] = states.count - 1
        }
        return states.count - 1
    }

    /// Writes every changed conversation record and moves its activity entry.
    mutating func flush(_ trees: MessageSchema.Trees) throws {
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        for state in states where state.record != state.original {
            let key = ConversationKey(state.id).treeKey
            var found = false
            try trees.conversations.withValue(for: key) { v in
                found = true
                value.withUnsafeMutableBytes { $0.copyMemory(from: v) }
            }
            guard found else {
                throw StorageError.corrupted(file: "pages", offset: 0, reason: "conversation \(state.id) vanished during a transaction")
            }
            var stored = state.record
            if stored.liveCount == 0 {
                stored.newestCreatedAt = 0
                stored.newestSeq = 0
            }
            value.withUnsafeMutableBytes { stored.store(into: $0) }
            try trees.conversations.update(key, value: value)
            let before = State.activity(state.original, id: state.id)
            let after = State.activity(state.record, id: state.id)
            if before != after {
                if let before { try trees.activity.delete(before.treeKey) }
                if let after { try trees.activity.insert(after.treeKey, value: empty) }
            }
        }
    }
}
