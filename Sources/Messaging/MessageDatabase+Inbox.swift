import ScrollbackBTree
import ScrollbackStorage

/// A conversation of a user's inbox, as the message layer reads it (the public `InboxEntry`
/// without the public type).
package struct StoredInboxEntry: Sendable, Hashable {
    package var name: String
    /// `createdAt` of the conversation's newest live message; nil when it has none.
    package var lastActivity: Int64?
    package var messageCount: Int
    /// Messages after the user's read marker (all of them without one).
    package var unreadCount: Int

    package init(name: String, lastActivity: Int64?, messageCount: Int, unreadCount: Int) {
        self.name = name
        self.lastActivity = lastActivity
        self.messageCount = messageCount
        self.unreadCount = unreadCount
    }
}

/// The inbox: the conversations a user is a member of, newest live message first (equal
/// times by conversation id in UTF-8 byte order), then those without a live message, by id.
///
/// Membership lives in the user's entries of the markers tree (`MarkerKey` (user,
/// conversation), flag `MarkerValue.isMember`), which are contiguous for a user: a page walks
/// that prefix, looks each conversation's record up (its live count and newest message) and
/// sorts. Nothing of it is kept per message, so membership costs an append nothing.
extension MessageDatabase {
    /// A position in a user's inbox: after the conversation `conversation` (0: before every
    /// conversation) among those of rank `rank`. The rank orders the inbox ascending:
    /// `maxCreatedAt − lastActivity` for a conversation with a live message, `noActivityRank`
    /// for one without.
    struct InboxPosition {
        var rank: UInt64
        var conversation: UInt64

        static let start = InboxPosition(rank: 0, conversation: 0)
        static let noActivityRank: UInt64 = 1 << 53

        static func rank(lastActivity: UInt64?) -> UInt64 {
            guard let lastActivity else { return noActivityRank }
            return MessageKey.maxCreatedAt - min(lastActivity, MessageKey.maxCreatedAt)
        }
    }

    /// One member conversation, as read for a page.
    private struct InboxCandidate {
        var id: UInt64
        var name: String
        var rank: UInt64
        var record: ConversationRecord
        var marker: MarkerValue?

        /// Inbox order: rank, then the name's UTF-8 bytes.
        func precedes(_ other: InboxCandidate) -> Bool {
            if rank != other.rank { return rank < other.rank }
            return name.utf8.lexicographicallyPrecedes(other.name.utf8)
        }

        /// Whether this conversation comes after `position` (whose conversation is named
        /// `positionName`; nil: before every name).
        func follows(_ position: InboxPosition, named positionName: String?) -> Bool {
            if rank != position.rank { return rank > position.rank }
            guard let positionName else { return true }
            return positionName.utf8.lexicographicallyPrecedes(name.utf8)
        }
    }

    /// Keyset pagination of `user`'s inbox: up to `limit` conversations after `token` (from the
    /// start when nil), each with its last activity, live message count and unread count, and
    /// the token of the next page — nil exactly when no conversation remains. All from one
    /// snapshot. A token is tamper-checked like a list token and bound to the user it was
    /// issued for: a damaged or forged one, one of another user or store, or another kind of
    /// token is `.invalidCursor`. An unknown user has an empty inbox.
    ///
    /// Cost, for a user who is a member of m conversations: O(m log n) to read the user's
    /// entries and each conversation's record and name, O(m log m) to sort them, and
    /// O(limit log n) for the unread counts of the page. Every page reads all m entries (the
    /// order is by activity, which the per-user entries do not keep), so walking the whole
    /// inbox in pages of `limit` costs m / limit times that. A conversation whose newest
    /// message changes during a walk may be returned twice or not at all; every other one is
    /// returned exactly once.
    package func inbox(user: String, after token: String?, limit: Int) throws -> (entries: [StoredInboxEntry], next: String?) {
        let tokenPosition = try token.map(inboxToken)
        return try engine.read { snapshot in
            guard let userID = try userID(user, in: snapshot) else {
                if tokenPosition != nil {
                    throw MessagingError.invalidCursor("the cursor was issued for another user's inbox")
                }
                return ([], nil)
            }
            var start = InboxPosition.start
            if let tokenPosition {
                guard tokenPosition.seq == userID else {
                    throw MessagingError.invalidCursor("the cursor was issued for another user's inbox")
                }
                start = InboxPosition(rank: tokenPosition.createdAt, conversation: tokenPosition.conversation)
            }
            let startName: String?
            if start.conversation == 0 {
                startName = nil
            } else {
                guard let name = try Self.storedName(.conversation, id: start.conversation, snapshot) else {
                    throw MessagingError.invalidCursor("the cursor names no conversation of this store")
                }
                startName = name
            }
            var remaining = try memberConversations(of: userID, in: snapshot).filter { $0.follows(start, named: startName) }
            remaining.sort { $0.precedes($1) }
            let taken = remaining.prefix(limit)
            let messages = try BTree(snapshot, .messages)
            var entries: [StoredInboxEntry] = []
            entries.reserveCapacity(taken.count)
            for candidate in taken {
                let live = candidate.record.liveCount
                entries.append(StoredInboxEntry(
                    name: candidate.name, lastActivity: live == 0 ? nil : Int64(candidate.record.newestCreatedAt),
                    messageCount: Int(live),
                    unreadCount: try unreadCount(conversation: candidate.id, marker: candidate.marker, messages: messages)))
            }
            guard remaining.count > taken.count else { return (entries, nil) }
            let last = taken.last.map { InboxPosition(rank: $0.rank, conversation: $0.id) } ?? start
            let position = CursorToken.Position(conversation: last.conversation, createdAt: last.rank, seq: userID)
            return (entries, CursorToken.encode(position, secret: cursorSecret, version: CursorToken.inboxVersion))
        }
    }

    /// The position an inbox token names (its seq is the user's id); `.invalidCursor` when it
    /// is damaged, forged, of another store or another kind.
    private func inboxToken(_ token: String) throws -> CursorToken.Position {
        guard let (version, position) = CursorToken.decode(token, secret: cursorSecret) else {
            throw MessagingError.invalidCursor("the token is damaged, forged or from another store")
        }
        guard version == CursorToken.inboxVersion else {
            throw MessagingError.invalidCursor("the token is not an inbox cursor")
        }
        guard position.createdAt <= InboxPosition.noActivityRank else {
            throw MessagingError.invalidCursor("the token names no inbox position")
        }
        return position
    }

    /// The conversations `userID` is a member of, unsorted: one walk of the user's entries in
    /// the markers tree, then each conversation's record and name.
    private func memberConversations(of userID: UInt64, in snapshot: PageTransaction) throws -> [InboxCandidate] {
        var members: [(conversation: UInt64, value: MarkerValue)] = []
        var cursor = try BTree(snapshot, .readMarkers).scanCursor()
        var valid = try cursor.seek(atLeast: MarkerKey(user: userID, conversation: 0).treeKey)
        while valid {
            var done = false
            _ = try cursor.withCurrent { key, value in
                guard key.w0 == userID else {
                    done = true
                    return
                }
                let entry = MarkerValue(value)
                if entry.member { members.append((key.w1, entry)) }
            }
            if done { break }
            valid = try cursor.next()
        }
        let conversations = try BTree(snapshot, .conversations)
        var candidates: [InboxCandidate] = []
        candidates.reserveCapacity(members.count)
        for (id, value) in members {
            var record: ConversationRecord? = nil
            try conversations.withValue(for: ConversationKey(id).treeKey) { record = ConversationRecord($0) }
            guard let record, let name = try Self.storedName(.conversation, id: id, snapshot) else {
                throw StorageError.corrupted(file: engine.pageFilePath, offset: 0,
                                             reason: "a membership names missing conversation \(id)")
            }
            candidates.append(InboxCandidate(
                id: id, name: name, rank: InboxPosition.rank(lastActivity: record.liveCount == 0 ? nil : record.newestCreatedAt),
                record: record, marker: value.marks ? value : nil))
        }
        return candidates
    }
}
