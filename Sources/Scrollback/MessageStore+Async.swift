/// The `async` API: every operation of `MessageStore`, for Swift concurrency.
///
/// Each method runs its synchronous namesake on one of the store's own threads
/// (`StoreOptions.asyncThreads`, started on first use) and resumes the calling task from
/// there, so a task never blocks a thread of the cooperative pool: not on a durable write's
/// group commit and `fdatasync`, not on a read that misses the cache and reads the disk.
/// Durable writes from many tasks share group commits as writes from many threads do.
/// Results, errors and guarantees are those of the synchronous method.
///
/// Cancellation: a call whose task is cancelled before one of the store's threads has taken it
/// throws `CancellationError` and has done nothing. Once taken, the call runs to completion
/// and returns its result or error whether or not the task is cancelled meanwhile: a write
/// handed to the store is never left half-way, and a write that returned is durable.
///
/// Cost: the hop to a store thread and back adds a few microseconds to each call. A read of
/// data in the cache is itself a few microseconds of CPU, so code that knows its working set
/// is cached may call the synchronous readers from a task instead; a cold read of the disk
/// then blocks a cooperative thread for its duration (see the DocC article "Concurrency and
/// processes" for figures).
///
/// After `close()`, calls still waiting for a thread throw `.closed`.
extension MessageStore {
    /// Runs a blocking call on the store's threads.
    @inline(__always)
    func offload<R: Sendable>(_ body: @escaping @Sendable () throws -> R) async throws -> R {
        try await services.pool.run(body)
    }

    // MARK: Close

    /// The asynchronous form of `close()`.
    public func close() async throws {
        try await offload { [self] in try close() }
    }

    // MARK: Writes

    /// The asynchronous form of `append(_:)`.
    @discardableResult
    public func append(_ message: Message) async throws -> AppendOutcome {
        try await offload { [self] in try append(message) }
    }

    /// The asynchronous form of `write(_:)` (an atomic batch).
    @discardableResult
    public func write(_ batch: WriteBatch) async throws -> [AppendOutcome] {
        try await offload { [self] in try write(batch) }
    }

    /// Builds a batch in `body` (on the calling task) and applies it on the store's threads.
    @discardableResult
    public func write(_ body: (inout WriteBatch) throws -> Void) async throws -> [AppendOutcome] {
        var batch = WriteBatch()
        try body(&batch)
        return try await write(batch)
    }

    /// The asynchronous form of `edit(id:body:)`.
    public func edit(id: String, body: String) async throws {
        try await offload { [self] in try edit(id: id, body: body) }
    }

    /// The asynchronous form of `delete(id:)`.
    public func delete(id: String) async throws {
        try await offload { [self] in try delete(id: id) }
    }

    /// The asynchronous form of `markRead(user:conversation:through:)`.
    public func markRead(user: String, conversation: String, through messageID: String) async throws {
        try await offload { [self] in try markRead(user: user, conversation: conversation, through: messageID) }
    }

    // MARK: Queries

    /// The asynchronous form of `message(id:)`.
    public func message(id: String) async throws -> Message? {
        try await offload { [self] in try message(id: id) }
    }

    /// The asynchronous form of `latest(in:limit:)`.
    public func latest(in conversation: String, limit: Int) async throws -> [Message] {
        try await offload { [self] in try latest(in: conversation, limit: limit) }
    }

    /// The asynchronous form of `messages(in:from:through:order:limit:)`.
    public func messages(
        in conversation: String, from: Int64, through: Int64, order: Order = .oldestFirst, limit: Int? = nil
    ) async throws -> [Message] {
        try await offload { [self] in try messages(in: conversation, from: from, through: through, order: order, limit: limit) }
    }

    /// The asynchronous form of `page(in:from:through:after:limit:order:)` (keyset pages of a
    /// time range).
    public func page(
        in conversation: String, from: Int64, through: Int64, after cursor: Cursor?, limit: Int, order: Order = .oldestFirst
    ) async throws -> MessagePage {
        try await offload { [self] in
            try page(in: conversation, from: from, through: through, after: cursor, limit: limit, order: order)
        }
    }

    /// The asynchronous form of `page(in:after:limit:order:)` (keyset pagination).
    public func page(in conversation: String, after cursor: Cursor?, limit: Int, order: Order = .newestFirst) async throws
        -> MessagePage {
        try await offload { [self] in try page(in: conversation, after: cursor, limit: limit, order: order) }
    }

    /// The asynchronous form of `page(in:offset:limit:order:)` (offset pagination).
    public func page(in conversation: String, offset: Int, limit: Int, order: Order = .newestFirst) async throws
        -> [Message] {
        try await offload { [self] in try page(in: conversation, offset: offset, limit: limit, order: order) }
    }

    /// The asynchronous form of `count(in:after:)`.
    public func count(in conversation: String, after: Int64) async throws -> Int {
        try await offload { [self] in try count(in: conversation, after: after) }
    }

    /// The asynchronous form of `unreadCount(user:in:)`.
    public func unreadCount(user: String, in conversation: String) async throws -> Int {
        try await offload { [self] in try unreadCount(user: user, in: conversation) }
    }

    /// The asynchronous form of `unreadCounts(user:conversations:)`.
    public func unreadCounts(user: String, conversations: [String]) async throws -> [Int] {
        try await offload { [self] in try unreadCounts(user: user, conversations: conversations) }
    }

    /// The asynchronous form of `readMarker(user:conversation:)`.
    public func readMarker(user: String, conversation: String) async throws -> String? {
        try await offload { [self] in try readMarker(user: user, conversation: conversation) }
    }

    /// The asynchronous form of `feed(_:limit:)`.
    public func feed(_ conversations: [String], limit: Int) async throws -> [Message] {
        try await offload { [self] in try feed(conversations, limit: limit) }
    }

    /// The asynchronous form of `latestMessage(in:)`.
    public func latestMessage(in conversations: [String]) async throws -> [Message?] {
        try await offload { [self] in try latestMessage(in: conversations) }
    }

    /// The asynchronous form of `conversations(limit:)`.
    public func conversations(limit: Int) async throws -> [ConversationSummary] {
        try await offload { [self] in try conversations(limit: limit) }
    }

    /// The asynchronous form of `conversations(after:limit:)`.
    public func conversations(after cursor: ConversationCursor?, limit: Int) async throws -> ConversationPage {
        try await offload { [self] in try conversations(after: cursor, limit: limit) }
    }

    // MARK: Operations

    /// The asynchronous form of `checkpoint()`.
    public func checkpoint() async throws {
        try await offload { [self] in try checkpoint() }
    }

    /// The asynchronous form of `sync()`.
    public func sync() async throws {
        try await offload { [self] in try sync() }
    }

    /// The asynchronous form of `compact()`.
    @discardableResult
    public func compact() async throws -> CompactionReport {
        try await offload { [self] in try compact() }
    }

    /// The asynchronous form of `backup(to:)`.
    public func backup(to path: String) async throws {
        try await offload { [self] in try backup(to: path) }
    }

    /// The asynchronous form of `verify()`.
    public func verify() async throws -> [String] {
        try await offload { [self] in try verify() }
    }

    /// The asynchronous form of `statistics`.
    public func statistics() async throws -> StoreStatistics {
        try await offload { [self] in try statistics }
    }
}
