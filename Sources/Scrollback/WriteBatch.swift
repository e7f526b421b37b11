import ScrollbackMessaging

/// The operations of one atomic write (`MessageStore.write`): appends, edits, deletes, read
/// marker moves, joins and leaves. Applied in order, all or nothing: if any operation is
/// invalid (a bad argument, an edit of a missing message, a read marker through a message of
/// another conversation, an append of an id live in another conversation: `.idConflict`), the
/// whole batch throws and nothing is written. An append of an id that is live in the same
/// conversation (in the store or earlier in the batch) is not an error: it is reported as
/// `.duplicate` and changes nothing. A join of a member or a leave of a non-member changes
/// nothing either (and has no outcome: the outcomes are the appends').
///
/// Limit: at most `WriteBatch.maxOperations` operations.
public struct WriteBatch: Sendable {
    /// Most operations a batch may hold (100,000).
    public static let maxOperations = ArgumentLimits.operationsPerBatch

    /// One operation of a batch (see the `MessageStore` method of the same name).
    public enum Operation: Sendable, Hashable {
        case append(Message)
        case edit(id: String, body: String)
        case delete(id: String)
        case markRead(user: String, conversation: String, through: String)
        case join(user: String, conversation: String)
        case leave(user: String, conversation: String)
    }

    /// The operations, in the order they are applied.
    public private(set) var operations: [Operation] = []

    public init() {}

    /// Appends a message (`MessageStore.append(_:)`); a duplicate id is reported, not an error.
    public mutating func append(_ message: Message) { operations.append(.append(message)) }
    /// Replaces a message's body (`MessageStore.edit(id:body:)`).
    public mutating func edit(id: String, body: String) { operations.append(.edit(id: id, body: body)) }
    /// Deletes a message (`MessageStore.delete(id:)`).
    public mutating func delete(id: String) { operations.append(.delete(id: id)) }
    /// Moves a read marker forward (`MessageStore.markRead(user:conversation:through:)`).
    public mutating func markRead(user: String, conversation: String, through messageID: String) {
        operations.append(.markRead(user: user, conversation: conversation, through: messageID))
    }
    /// Makes `user` a member of `conversation` (`MessageStore.join(user:conversation:)`).
    public mutating func join(user: String, conversation: String) {
        operations.append(.join(user: user, conversation: conversation))
    }
    /// Ends `user`'s membership of `conversation` (`MessageStore.leave(user:conversation:)`).
    public mutating func leave(user: String, conversation: String) {
        operations.append(.leave(user: user, conversation: conversation))
    }
}
