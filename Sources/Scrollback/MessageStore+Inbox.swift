import ScrollbackMessaging

/// An opaque position in one user's inbox, returned by `MessageStore.inbox(user:after:limit:)`.
///
/// Printable and tamper-checked like `Cursor`, and bound to the user whose inbox issued it: a
/// damaged or forged token, one of another user or store, or another kind of cursor's token is
/// rejected with `ScrollbackError.invalidCursor`.
public struct InboxCursor: Sendable, Hashable, CustomStringConvertible {
    /// The printable form.
    public let token: String

    public init(token: String) {
        self.token = token
    }

    public var description: String { token }
}

/// A conversation in a user's inbox.
public struct InboxEntry: Sendable, Hashable {
    /// The conversation id.
    public var id: String
    /// `createdAt` of its newest live message; nil when it has none (a conversation joined
    /// before its first message, or whose messages are all deleted).
    public var lastActivity: Int64?
    /// Number of live messages.
    public var messageCount: Int
    /// Messages after the user's read marker, as `MessageStore.unreadCount(user:in:)` counts.
    public var unreadCount: Int

    public init(id: String, lastActivity: Int64?, messageCount: Int, unreadCount: Int) {
        self.id = id
        self.lastActivity = lastActivity
        self.messageCount = messageCount
        self.unreadCount = unreadCount
    }
}

/// One page of a user's inbox.
public struct InboxPage: Sendable, Hashable {
    /// The page's conversations, in inbox order (see `MessageStore.inbox(user:after:limit:)`).
    public var conversations: [InboxEntry]
    /// Where the next page starts; nil exactly when no conversation remains.
    public var next: InboxCursor?

    public init(conversations: [InboxEntry], next: InboxCursor?) {
        self.conversations = conversations
        self.next = next
    }
}

/// Membership and the inbox: which conversations a user is in, and those conversations by
/// activity with unread counts (a chat's home screen).
///
/// A membership is one entry of the user's in the store's read-marker index (the same entry
/// as the user's read marker in that conversation); nothing of it is written per message, so
/// membership costs an append nothing. Membership and read markers are independent: a user
/// may mark a conversation read without being a member, and leaving keeps the marker.
extension MessageStore {
    /// Makes `user` a member of `conversation` (1…255 UTF-8 bytes each; the conversation need
    /// not have messages yet). Idempotent: joining a conversation one is a member of writes
    /// nothing. Durable when it returns, like every write. O(log n).
    public func join(user: String, conversation: String) throws {
        try mapErrors { _ = try database.write([.join(user: user, conversation: conversation)]) }
    }

    /// Ends `user`'s membership of `conversation`: it leaves the user's inbox. Idempotent:
    /// leaving a conversation one is not a member of (or an unknown one) writes nothing. The
    /// user's read marker there stays. O(log n).
    public func leave(user: String, conversation: String) throws {
        try mapErrors { _ = try database.write([.leave(user: user, conversation: conversation)]) }
    }

    /// Keyset pagination of `user`'s inbox: the conversations the user is a member of, those
    /// with live messages first, by the `createdAt` of their newest live message (descending;
    /// ties by conversation id in UTF-8 byte order), then those without a live message
    /// (`lastActivity` nil) by id. Returns the `limit` conversations after `cursor` (from the
    /// start when nil), each with its live message count and the user's unread count, and
    /// where the next page starts: nil exactly when none remains. Each page is read from one
    /// snapshot. An unknown user has an empty inbox.
    ///
    /// Walking every page returns each member conversation whose newest message (and the
    /// membership) does not change meanwhile exactly once; one that gets a newer message, or
    /// loses its newest, during the walk may be returned twice or not at all.
    ///
    /// Cost, for a user who is a member of m conversations: O(m log n + m log m +
    /// limit · log n) per page — every page reads the user's m memberships and each one's
    /// conversation record, and sorts them; the unread counts are two counted-tree ranks per
    /// conversation returned. No message is read. There is no limit on m, but a page's cost
    /// grows with it: for users in many thousands of conversations, prefer large pages.
    ///
    /// Throws `.invalidArgument` for a `user` outside 1…255 UTF-8 bytes or a `limit` outside
    /// 0…`maxLimit`; `.invalidCursor` for a damaged or forged cursor, one issued for another
    /// user's inbox or by another store, or another kind of cursor's token.
    public func inbox(user: String, after cursor: InboxCursor? = nil, limit: Int) throws -> InboxPage {
        try Self.checkName(user, "user")
        try Self.checkLimit(limit)
        return try mapErrors {
            let page = try database.inbox(user: user, after: cursor?.token, limit: limit)
            return InboxPage(
                conversations: page.entries.map {
                    InboxEntry(id: $0.name, lastActivity: $0.lastActivity, messageCount: $0.messageCount,
                               unreadCount: $0.unreadCount)
                },
                next: page.next.map(InboxCursor.init(token:)))
        }
    }
}

extension MessageStore {
    /// The asynchronous form of `join(user:conversation:)`.
    public func join(user: String, conversation: String) async throws {
        try await offload { [self] in try join(user: user, conversation: conversation) }
    }

    /// The asynchronous form of `leave(user:conversation:)`.
    public func leave(user: String, conversation: String) async throws {
        try await offload { [self] in try leave(user: user, conversation: conversation) }
    }

    /// The asynchronous form of `inbox(user:after:limit:)`.
    public func inbox(user: String, after cursor: InboxCursor? = nil, limit: Int) async throws -> InboxPage {
        try await offload { [self] in try inbox(user: user, after: cursor, limit: limit) }
    }
}
