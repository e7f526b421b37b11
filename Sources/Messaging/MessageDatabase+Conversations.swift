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
        var cursor = activity.scanCursor()
        var page = ListPage(start: start, startName: startName, limit: limit)
        var full = false
        if try cursor.seek(atMost: ActivityKey(newestCreatedAt: start.lastActivity, conversation: .max).treeKey) {
            // One page access per activity leaf; each entry's record and name take one descent
            // of the conversations tree (the walk's leaf stays pinned meanwhile, as allowed).
            try cursor.walk(forward: false) { treeKey, _ in
                let key = ActivityKey(treeKey)
                if key.newestCreatedAt != page.groupTime && !page.group.isEmpty {
                    page.takeGroup()
                    // This entry is after every one taken, and it comes after the position.
                    if page.entries.count == limit {
                        full = true
                        return false
                    }
                }
                page.groupTime = key.newestCreatedAt
                page.group.append((try entry(key, conversations), key.conversation))
                return true
            }
        }
        if full { return (page.entries, page.last, true) }
        let left = page.takeGroup()
        return (page.entries, page.last, left > 0)
    }

    /// The page being filled, and the group of equal times being collected.
    private struct ListPage {
        let start: ListPosition
        let startName: String?
        let limit: Int
        var entries: [ConversationEntry] = []
        var last: ListPosition?
        var group: [(entry: ConversationEntry, id: UInt64)] = []
        var groupTime: UInt64 = 0

        init(start: ListPosition, startName: String?, limit: Int) {
            self.start = start
            self.startName = startName
            self.limit = limit
        }

        /// Takes the group's conversations after the start position, by name, up to the
        /// limit; returns how many of those did not fit.
        @discardableResult
        mutating func takeGroup() -> Int {
            group.sort { $0.entry.name < $1.entry.name }
            var left = 0
            for (entry, id) in group {
                if groupTime == start.lastActivity, let startName, !(entry.name > startName) { continue }
                if entries.count == limit {
                    left += 1
                    continue
                }
                entries.append(entry)
                last = ListPosition(lastActivity: groupTime, conversation: id)
            }
            group.removeAll(keepingCapacity: true)
            return left
        }
    }

    /// The name of the conversation a list token names; `.invalidCursor` if there is none.
    private func listedName(_ id: UInt64, _ conversations: BTree) throws -> String {
        guard let name = try Self.storedName(.conversation, id: id, conversations.transaction) else {
            throw MessagingError.invalidCursor("the cursor names no conversation of this store")
        }
        return name
    }

    /// The list entry of the conversation an activity entry names: its record and its name
    /// from one descent of the conversations tree (the long-name tree as well for a name of
    /// more than 31 bytes).
    private func entry(_ key: ActivityKey, _ conversations: BTree) throws -> ConversationEntry {
        var found: (liveCount: UInt64, name: String)? = nil
        try conversations.withValue(for: ConversationKey(key.conversation).treeKey) { value in
            found = (ConversationRecord(value).liveCount,
                     try Self.storedName(.conversation, id: key.conversation, record: value, conversations.transaction))
        }
        guard let found else {
            throw StorageError.corrupted(file: engine.pageFilePath, offset: 0,
                                         reason: "activity entry names missing conversation \(key.conversation)")
        }
        return ConversationEntry(name: found.name, lastActivity: Int64(key.newestCreatedAt), messageCount: Int(found.liveCount))
    }
}
