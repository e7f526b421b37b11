/// An opaque position in one conversation, returned by keyset pagination (or in a search's
/// results, returned by `MessageStore.search(_:in:after:limit:)`).
///
/// The token is printable (URL-safe) and can be handed to clients and back. The store
/// rejects, with `ScrollbackError.invalidCursor`, a token that is damaged or forged (it
/// carries a keyed check value), that belongs to another conversation or another store, or
/// that was issued by a walk in the other `Order` (a search cursor: by another query or scope).
/// A cursor stays valid when its message is deleted or edited.
public struct Cursor: Sendable, Hashable, CustomStringConvertible {
    /// The printable form.
    public let token: String

    public init(token: String) {
        self.token = token
    }

    public var description: String { token }
}

/// An opaque position in the conversation list, returned by
/// `MessageStore.conversations(after:limit:)`.
///
/// Printable and tamper-checked like `Cursor`: a damaged or forged token, one of another
/// store, or a message cursor's token is rejected with `ScrollbackError.invalidCursor`.
public struct ConversationCursor: Sendable, Hashable, CustomStringConvertible {
    /// The printable form.
    public let token: String

    public init(token: String) {
        self.token = token
    }

    public var description: String { token }
}
