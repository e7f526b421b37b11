import ScrollbackBTree
import ScrollbackStorage

extension MessageDatabase {
    /// Conversations by newest live message (descending; ties by name ascending).
    package func conversations(limit: Int) throws -> [ConversationEntry] {
        guard limit > 0 else { return [] }
        return try engine.read { snapshot in
            let activity = try BTree(snapshot, .activity)
            let conversations = try BTree(snapshot, .conversations)
            var cursor = activity.cursor()
            var valid = try cursor.seekLast()
            var result: [ConversationEntry] = []
            var group: [ConversationEntry] = []
            var groupTime: UInt64 = 0
            func flush() {
                group.sort { $0.name < $1.name }   // Swift String order, as the public API documents "ascending"
                result.append(contentsOf: group.prefix(limit - result.count))
                group.removeAll(keepingCapacity: true)
            }
            while valid {
                guard let treeKey = try cursor.key() else { break }
                let key = ActivityKey(treeKey)
                if !group.isEmpty && key.newestCreatedAt != groupTime {
                    flush()
                    if result.count >= limit { break }
                }
                groupTime = key.newestCreatedAt
                group.append(try entry(key, conversations))
                valid = try cursor.previous()
            }
            if !group.isEmpty && result.count < limit { flush() }
            return result
        }
    }

    /// The list entry of the conversation an activity entry names.
    private func entry(_ key: ActivityKey, _ conversations: BTree) throws -> ConversationEntry {
        var entry: ConversationEntry? = nil
        try conversations.withValue(for: ConversationKey(key.conversation).treeKey) { v in
            entry = ConversationEntry(name: ConversationRecord.name(in: v), lastActivity: Int64(key.newestCreatedAt),
                                      messageCount: Int(ConversationRecord(v).liveCount))
        }
        guard let entry else {
            throw StorageError.corrupted(file: engine.pageFilePath, offset: 0,
                                         reason: "activity entry names missing conversation \(key.conversation)")
        }
        return entry
    }
}
