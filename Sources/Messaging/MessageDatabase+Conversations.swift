import ScrollbackBTree
import ScrollbackStorage

/// The conversation list: conversations with live messages by the `createdAt` of their
/// newest one (descending), equal times by name (ascending, Swift `String` order, as the
/// public API documents it), read from the activity index.
extension MessageDatabase {
    /// A position in the conversation list: after `conversation` among the conversations
    /// whose newest live message is at `lastActivity` (conversation 0: before all of them).
    struct ListPosition {
        var lastActivity: UInt64
        var conversation: UInt64

        /// Before every conversation.
        static let start = ListPosition(lastActivity: .max, conversation: 0)
    }

    /// The first `limit` conversations of the list. O(log n + limit).
    package func conversations(limit: Int) throws -> [ConversationEntry] {
        guard limit > 0 else { return [] }
        return try engine.read { try listPage($0, after: .start, limit: limit).entries }
    }

    /// Keyset pagination of the list: up to `limit` conversations after `token` (from the
    /// start when nil) and the token of the next page, nil exactly when none remain. A token
    /// is tamper-checked (like message cursors) and names a conversation of this store;
    /// otherwise `.invalidCursor`. O(log n + limit + the conversations sharing the position's
    /// time). A conversation whose newest message changes during a walk may be returned twice
    /// or not at all; every other one is returned exactly once.
    package func conversations(after token: String?, limit: Int) throws -> (entries: [ConversationEntry], next: String?) {
        var start = ListPosition.start
        if let token {
            guard let position = CursorToken.decode(token, secret: cursorSecret, version: CursorToken.listVersion),
                  position.seq == 0 else {
                throw MessagingError.invalidCursor("the token is damaged, forged or from another store")
            }
            start = ListPosition(lastActivity: position.createdAt, conversation: position.conversation)
        }
        return try engine.read { snapshot in
            let page = try listPage(snapshot, after: start, limit: limit)
            guard page.more else { return (page.entries, nil) }
            let last = page.last ?? start
            let position = CursorToken.Position(conversation: last.conversation, createdAt: last.lastActivity, seq: 0)
            return (page.entries, CursorToken.encode(position, secret: cursorSecret, version: CursorToken.listVersion))
        }
    }

    /// Walks the activity index backwards from `start`, one group of equal times at a time
    /// (sorted by name), until `limit` conversations are taken. Returns them, the position of
    /// the last one, and whether any conversation follows it.
    private func listPage(_ snapshot: PageTransaction, after start: ListPosition, limit: Int) throws
        -> (entries: [ConversationEntry], last: ListPosition?, more: Bool) {
        let activity = try BTree(snapshot, .activity)
        let conversations = try BTree(snapshot, .conversations)
        let startName = try start.conversation == 0 ? nil : listedName(start.conversation, conversations)
        var cursor = activity.cursor()
        var valid = try cursor.seek(atMost: ActivityKey(newestCreatedAt: start.lastActivity, conversation: .max).treeKey)
        var entries: [ConversationEntry] = []
        var last: ListPosition? = nil
        var group: [(entry: ConversationEntry, id: UInt64)] = []
        while valid {
            // One group: every conversation whose newest message is at this time.
            guard let first = try cursor.key() else { break }
            let time = ActivityKey(first).newestCreatedAt
            group.removeAll(keepingCapacity: true)
            while valid, let treeKey = try cursor.key(), ActivityKey(treeKey).newestCreatedAt == time {
                let key = ActivityKey(treeKey)
                group.append((try entry(key, conversations), key.conversation))
                valid = try cursor.previous()
            }
            group.sort { $0.entry.name < $1.entry.name }
            for (entry, id) in group {
                if time == start.lastActivity, let startName, !(entry.name > startName) { continue }
                if entries.count == limit { return (entries, last, true) }
                entries.append(entry)
                last = ListPosition(lastActivity: time, conversation: id)
            }
            if entries.count == limit { return (entries, last, valid) }
        }
        return (entries, last, false)
    }

    /// The name of the conversation a list token names; `.invalidCursor` if there is none.
    private func listedName(_ id: UInt64, _ conversations: BTree) throws -> String {
        var name: String? = nil
        try conversations.withValue(for: ConversationKey(id).treeKey) { name = ConversationRecord.name(in: $0) }
        guard let name else { throw MessagingError.invalidCursor("the cursor names no conversation of this store") }
        return name
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
