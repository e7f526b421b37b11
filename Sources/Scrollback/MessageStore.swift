/// An embedded message store: one directory on disk, opened by one process.
///
/// Thread-safety: `MessageStore` is `Sendable`; share one instance across threads. Reads run
/// on snapshots and never wait for writers. Writes from many threads are serialized and
/// share syncs (group commit).
///
/// Durability: in `.full` mode (the default) every write method returns only after the
/// write is durable; after a crash the store reopens with every acknowledged write and no
/// part of an unacknowledged batch.
///
/// Limits common to the queries: `limit` is 0…`MessageStore.maxLimit` (10,000); a
/// conversation id is 1…255 UTF-8 bytes; unknown conversations read as empty.
public final class MessageStore: Sendable {
    /// Largest `limit` a query accepts.
    public static let maxLimit = 10_000
    /// Largest number of conversations `feed` and `latestMessage(in:)` accept.
    public static let maxConversationsPerQuery = 10_000

    /// Opens the store at `path` (a directory), creating it when the directory is missing or
    /// empty. Throws `.notAStore` for a directory that holds other files, `.unsupportedVersion`
    /// for a store written by a newer format, `.corrupted` for damage found while recovering.
    public init(path: String, options: StoreOptions = StoreOptions()) throws {
        throw ScrollbackError.closed   // TEMP: implemented by the message layer
    }

    /// Checkpoints and closes the files. Later calls throw `.closed`.
    public func close() throws { throw ScrollbackError.closed }

    // MARK: Writes

    /// Appends a message. Idempotent on `id`: if a live message has this id, nothing changes
    /// and the result is `.duplicate`. A deleted message's id may be used again.
    @discardableResult
    public func append(_ message: Message) throws -> AppendOutcome { throw ScrollbackError.closed }

    /// Applies a batch atomically and durably; returns one outcome per append, in order.
    @discardableResult
    public func write(_ batch: WriteBatch) throws -> [AppendOutcome] { throw ScrollbackError.closed }

    /// Builds a batch in `body` and applies it (see `write(_:)`).
    @discardableResult
    public func write(_ body: (inout WriteBatch) throws -> Void) throws -> [AppendOutcome] {
        var batch = WriteBatch()
        try body(&batch)
        return try write(batch)
    }

    /// Replaces the body of a message; it keeps its position and gets `edited = true`.
    /// Throws `.notFound` if no live message has this id.
    public func edit(id: String, body: String) throws { throw ScrollbackError.closed }

    /// Deletes a message: it disappears from every query and count. Throws `.notFound`.
    public func delete(id: String) throws { throw ScrollbackError.closed }

    /// Moves `user`'s read marker in `conversation` forward to `messageID` (a marker never
    /// moves back: marking an older message is a no-op). Throws `.notFound` if the message
    /// does not exist and `.invalidArgument(argument: "through")` if it belongs to another
    /// conversation. The marker stays valid if the message is deleted later.
    public func markRead(user: String, conversation: String, through messageID: String) throws {
        throw ScrollbackError.closed
    }

    // MARK: Queries

    /// The message with this id, or nil. O(log n).
    public func message(id: String) throws -> Message? { throw ScrollbackError.closed }

    /// The newest `limit` messages of a conversation, newest first. O(log n + limit).
    public func latest(in conversation: String, limit: Int) throws -> [Message] { throw ScrollbackError.closed }

    /// Messages with `from ≤ createdAt ≤ through`, in `order`, at most `limit` (nil: up to
    /// `maxLimit`). O(log n + returned).
    public func messages(
        in conversation: String, from: Int64, through: Int64, order: Order = .oldestFirst, limit: Int? = nil
    ) throws -> [Message] { throw ScrollbackError.closed }

    /// Keyset pagination: the `limit` messages after `cursor` in `order` (from the start in
    /// that order when `cursor` is nil). Stable under concurrent inserts: walking all pages
    /// returns every message that existed when the walk started exactly once. O(log n + limit).
    public func page(in conversation: String, after cursor: Cursor?, limit: Int, order: Order = .newestFirst) throws
        -> MessagePage { throw ScrollbackError.closed }

    /// Offset pagination: `limit` messages starting at position `offset` in `order`.
    /// O(log n + limit) whatever the offset (counted B+tree).
    public func page(in conversation: String, offset: Int, limit: Int, order: Order = .newestFirst) throws
        -> [Message] { throw ScrollbackError.closed }

    /// Number of messages with `createdAt > after`. O(log n).
    public func count(in conversation: String, after: Int64) throws -> Int { throw ScrollbackError.closed }

    /// Number of messages after `user`'s read marker (all of them without a marker). O(log n).
    public func unreadCount(user: String, in conversation: String) throws -> Int { throw ScrollbackError.closed }

    /// The newest `limit` messages across `conversations`, newest first; equal `createdAt`:
    /// later insertion first. A k-way merge over per-conversation reverse scans (no sort).
    /// Duplicate conversation ids count once.
    public func feed(_ conversations: [String], limit: Int) throws -> [Message] { throw ScrollbackError.closed }

    /// The newest live message of each conversation (nil for an empty or unknown one), in
    /// the order given. One descent each.
    public func latestMessage(in conversations: [String]) throws -> [Message?] { throw ScrollbackError.closed }

    /// Conversations with at least one live message, by the `createdAt` of their newest live
    /// message (descending; ties by conversation id ascending), with their live message
    /// counts. From an index ordered by last activity: O(log n + limit).
    public func conversations(limit: Int) throws -> [ConversationSummary] { throw ScrollbackError.closed }

    // MARK: Operations

    /// Writes the trees to the page file (bounds recovery time after a crash).
    public func checkpoint() throws { throw ScrollbackError.closed }

    /// Makes every write so far durable (for `.normal` durability).
    public func sync() throws { throw ScrollbackError.closed }

    /// Rewrites the live records of the most wasteful sealed log segments in key order
    /// (each conversation's history becomes contiguous), then removes the old segments.
    /// Runs in bounded steps; readers and writers keep working meanwhile.
    @discardableResult
    public func compact() throws -> CompactionReport { throw ScrollbackError.closed }

    /// Writes a consistent copy of the store to `path` (a new or empty directory) while the
    /// store stays open for reads and writes.
    public func backup(to path: String) throws { throw ScrollbackError.closed }

    /// Walks every structure and returns the problems found; empty when healthy.
    public func verify() throws -> [String] { throw ScrollbackError.closed }

    public var statistics: StoreStatistics {
        get throws { throw ScrollbackError.closed }
    }
}
