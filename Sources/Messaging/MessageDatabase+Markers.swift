import ScrollbackBTree
import ScrollbackStorage

/// Read markers read back, and unread counts of many conversations in one snapshot.
///
/// A marker is stored as the key position `(createdAt, seq)` of the message it was moved to
/// (`MarkerValue`), so it stays meaningful after that message is deleted; reading it back as
/// a message id looks the position up in the messages tree.
extension MessageDatabase {
    /// The id of the message `user`'s marker in `conversation` points at; nil when the user
    /// has no marker there (or the user or conversation is unknown), or when that message has
    /// been deleted since. O(log n): two name lookups, the marker, the messages tree, and one
    /// log record read for the id.
    package func readMarker(user: String, conversation: String) throws -> String? {
        try engine.read { snapshot in
            guard let conversationID = try conversationID(conversation, in: snapshot),
                  let marker = try marker(user: user, conversation: conversationID, in: snapshot) else { return nil }
            let key = MessageKey(conversation: conversationID, createdAt: marker.createdAt, seq: marker.seq)
            var position: LogPosition? = nil
            try BTree(snapshot, .messages).withValue(for: key.treeKey) { position = MessagePointer.position(in: $0) }
            guard let position else { return nil }
            var id: String? = nil
            var reader = engine.recordReader(for: snapshot)
            try visitMessage(at: position, key: key, conversation: conversation, &reader) { id = $0.id }
            return id
        }
    }

    /// `unreadCount(user:in:)` for each conversation, in the order given, all from one
    /// snapshot (no write lands between two of them). O(k log n) for k conversations.
    package func unreadCounts(user: String, conversations: [String]) throws -> [Int] {
        try engine.read { snapshot in
            let messages = try BTree(snapshot, .messages)
            let userID = try userID(user, in: snapshot)
            var counts: [Int] = []
            counts.reserveCapacity(conversations.count)
            for conversation in conversations {
                guard let id = try conversationID(conversation, in: snapshot) else {
                    counts.append(0)
                    continue
                }
                let marker = try userID.flatMap { try markerValue(MarkerKey(user: $0, conversation: id), in: snapshot) }
                counts.append(try unreadCount(conversation: id, marker: marker, messages: messages))
            }
            return counts
        }
    }

    /// The marker of `user` in the conversation with this id, or nil.
    func marker(user: String, conversation: UInt64, in snapshot: PageTransaction) throws -> MarkerValue? {
        guard let userID = try userID(user, in: snapshot) else { return nil }
        return try markerValue(MarkerKey(user: userID, conversation: conversation), in: snapshot)
    }

    func markerValue(_ key: MarkerKey, in snapshot: PageTransaction) throws -> MarkerValue? {
        var marker: MarkerValue? = nil
        try BTree(snapshot, .readMarkers).withValue(for: key.treeKey) { bytes in
            // An entry may hold only a membership (format 2): no marker then.
            let value = MarkerValue(bytes)
            if value.marks { marker = value }
        }
        return marker
    }

    /// Messages of the conversation after `marker` (all of them without one): one count of a
    /// key range in the counted messages tree (a single descent while both bounds share a
    /// child, so an ordinary room whose keys sit in one leaf costs one descent).
    func unreadCount(conversation id: UInt64, marker: MarkerValue?, messages: BTree) throws -> Int {
        let end = MessageKey.first(of: id &+ 1).treeKey
        guard let marker else {
            return try messages.count(from: MessageKey.first(of: id).treeKey, to: end, inclusive: false)
        }
        // The first key after the marker's (conversation, createdAt, seq), in tree order.
        let start: MessageKey
        if marker.seq < MessageKey.maxSeq {
            start = MessageKey(conversation: id, createdAt: marker.createdAt, seq: marker.seq + 1)
        } else if marker.createdAt < MessageKey.maxCreatedAt {
            start = MessageKey(conversation: id, createdAt: marker.createdAt + 1, seq: 0)
        } else {
            return 0
        }
        return try messages.count(from: start.treeKey, to: end, inclusive: false)
    }
}
