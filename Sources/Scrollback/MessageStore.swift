import ScrollbackIO
import ScrollbackMessaging
import ScrollbackStorage

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
/// conversation id is 1…255 UTF-8 bytes; unknown conversations read as empty. (Swift
/// strings are always valid Unicode, so "bad UTF-8" cannot reach the store through this API;
/// lengths are counted in UTF-8 bytes.)
///
/// ```swift
/// let store = try MessageStore(path: "/var/lib/chat/store")
/// try store.append(Message(id: "m1", conversation: "general", sender: "alice",
///                          createdAt: 1_700_000_000_000, body: "hello"))
/// let newest = try store.latest(in: "general", limit: 20)
/// let first = try store.page(in: "general", after: nil, limit: 20)
/// let second = try store.page(in: "general", after: first.next, limit: 20)
/// try store.markRead(user: "bob", conversation: "general", through: "m1")
/// let unread = try store.unreadCount(user: "bob", in: "general")
/// let feed = try store.feed(["general", "random"], limit: 50)
/// try store.close()
/// ```
public final class MessageStore: Sendable {
    /// Largest `limit` a query accepts.
    public static let maxLimit = ArgumentLimits.queryLimit.upperBound
    /// Largest number of conversations `feed` and `latestMessage(in:)` accept.
    public static let maxConversationsPerQuery = ArgumentLimits.conversationsPerQuery

    /// The message layer this store wraps (white-box tests).
    package let database: MessageDatabase
    let cacheCapacity: (pages: Int, blocks: Int)
    /// The threads of the async methods, the logger and the metrics (StoreServices.swift).
    let services: StoreServices

    /// Opens the store at `path` (a directory) for writing, creating it when the directory is
    /// missing or empty. Throws `.storeLocked` when another writer — in another process, or
    /// another `MessageStore` of this one — has it open (nothing is written; the lock goes
    /// with the holder's `close()` or its death), `.notAStore` for a regular file or a
    /// directory that holds other files, `.unsupportedVersion` for a store written by a newer
    /// format, `.corrupted` for damage found while recovering. To read a store that another
    /// process writes, use `init(readingAt:options:)`.
    public convenience init(path: String, options: StoreOptions = StoreOptions()) throws {
        try self.init(path: path, options: options, fileSystem: PosixFileSystem())
    }

    /// Opens the store on any `FileSystem` (tests run it on the in-memory and crash-simulating
    /// file systems); `readOnly` as `init(readingAt:options:)`.
    package init(path: String, options: StoreOptions, fileSystem: any FileSystem, readOnly: Bool = false) throws {
        try Self.validatePath(path, argument: "path")
        var config = try Self.configuration(options)
        services = StoreServices(path: path, options: options)
        config.storage.observer = StorageObserverSlot(services.events)
        // Commits do not pay the log file's size changes (Log.allocateAhead), except on file
        // systems that number their I/O steps for crash and fault sweeps.
        config.storage.log.allocateAhead = !readOnly && fileSystem.allowsBackgroundIO
        // Checkpoints and sealing on the store's own thread, beside the commits (same exception).
        config.storage.backgroundMaintenance = !readOnly && fileSystem.allowsBackgroundIO
        cacheCapacity = (config.storage.pageCacheBytes, config.storage.runCacheBytes)
        let opening = services.opening(options) { !MessageDatabase.storeExists(fileSystem: fileSystem, at: path) }
        do {
            database = readOnly
                ? try MessageDatabase.openReadOnly(fileSystem: fileSystem, directory: path, options: config)
                : try MessageDatabase.open(fileSystem: fileSystem, directory: path, options: config)
        } catch StorageError.needsUpgrade(_, let found, let current) {
            // Named by the store's path, which `scrollback upgrade` takes.
            let error = ScrollbackError.unsupportedVersion(path: path, found: found, supported: current)
            services.openFailed(error)
            throw error
        } catch {
            let error = scrollbackError(error)
            services.openFailed(error)
            throw error
        }
        services.opened(self, opening)
    }

    deinit {
        services.shutDown()
    }

    /// Whether `path` is a directory holding a store (its page file). `init(path:)` opens such
    /// a directory; it creates a store in a missing or empty one, and refuses one that holds
    /// other files (`.notAStore`) or a log without its page file (`.corrupted`).
    public static func storeExists(at path: String) -> Bool {
        MessageDatabase.storeExists(fileSystem: PosixFileSystem(), at: path)
    }

    static func validatePath(_ path: String, argument: String) throws {
        guard !path.isEmpty else { throw ScrollbackError.invalidArgument(argument: argument, reason: "must not be empty") }
        guard !path.utf8.contains(0) else {
            throw ScrollbackError.invalidArgument(argument: argument, reason: "must not contain a NUL byte")
        }
    }

    /// Checks every option against its documented range and maps it to the layers below.
    static func configuration(_ options: StoreOptions) throws -> MessageDatabaseOptions {
        func bad(_ name: String, _ reason: String) -> ScrollbackError {
            .invalidArgument(argument: "options.\(name)", reason: reason)
        }
        guard options.cacheBytes >= 1 << 20, options.cacheBytes <= 1 << 40 else {
            throw bad("cacheBytes", "\(options.cacheBytes) is outside 1 MiB ... 1 TiB")
        }
        guard ArgumentLimits.bodyLimit.contains(options.maxBodyBytes) else {
            throw bad("maxBodyBytes", "\(options.maxBodyBytes) is outside 0 ... 16 MiB")
        }
        guard options.checkpointDirtyBytes > 0 else { throw bad("checkpointDirtyBytes", "must be positive") }
        guard options.checkpointLogBytes > 0 else { throw bad("checkpointLogBytes", "must be positive") }
        if let ratio = options.autoCompactGarbageRatio {
            guard ratio.isFinite, ratio >= 0, ratio < 1 else {
                throw bad("autoCompactGarbageRatio", "\(ratio) is outside 0 ..< 1")
            }
        }
        guard [4096, 8192, 16384].contains(options.pageSize) else {
            throw bad("pageSize", "\(options.pageSize) is not 4096, 8192 or 16384")
        }
        guard options.segmentBytes >= 64 << 10, options.segmentBytes <= 1 << 30 else {
            throw bad("segmentBytes", "\(options.segmentBytes) is outside 64 KiB ... 1 GiB")
        }
        guard options.changeRetentionBytes >= 0, options.changeRetentionBytes <= 1 << 40 else {
            throw bad("changeRetentionBytes", "\(options.changeRetentionBytes) is outside 0 ... 1 TiB")
        }
        guard (1...256).contains(options.asyncThreads) else {
            throw bad("asyncThreads", "\(options.asyncThreads) is outside 1 ... 256")
        }
        var config = MessageDatabaseOptions()
        config.storage.pageSize = options.pageSize
        // Three quarters for tree pages, a quarter for the decoded blocks of the sorted runs
        // (sealed history). The log's own caches serve format-1 sealed segments only, which a
        // format-2 store never has (an upgrade reads them with its own reader): none.
        config.storage.pageCacheBytes = options.cacheBytes - options.cacheBytes / 4
        config.storage.runCacheBytes = options.cacheBytes / 4
        config.storage.log.blockCacheBytes = 0
        config.storage.log.recordCacheBytes = 0
        config.storage.log.segmentSize = options.segmentBytes
        config.storage.durability = options.durability == .full ? .full : .normal
        config.storage.checkpointDirtyBytes = options.checkpointDirtyBytes
        config.storage.checkpointLogBytes = UInt64(options.checkpointLogBytes)
        config.storage.changeRetentionBytes = UInt64(options.changeRetentionBytes)
        config.maxBodyBytes = options.maxBodyBytes
        config.searchPostingsScannedPerSeek = options.searchPostingsScannedPerSeek
        config.searchDecodesPerProbe = options.searchDecodesPerProbe
        if let label = options.lockLabel { config.storage.lockLabel = label }
        config.autoCompactGarbageRatio = options.autoCompactGarbageRatio
        return config
    }

    /// Checkpoints and closes the files. Later calls throw `.closed`. Async calls still
    /// waiting for a thread fail with `.closed`; those already running finish first or fail.
    public func close() throws {
        services.shutDown()
        do {
            try mapErrors { try database.close() }
            services.log?.closed(nil)
        } catch {
            services.log?.closed(error)
            throw error
        }
    }

    // MARK: Writes

    /// Appends a message. Idempotent on `id`: if a live message of the same conversation has
    /// this id, nothing changes and the result is `.duplicate` (the rest of the message is not
    /// compared). If a live message of *another* conversation has it, the append throws
    /// `.idConflict` and nothing is written. A deleted message's id may be used again.
    @discardableResult
    public func append(_ message: Message) throws -> AppendOutcome {
        let outcomes = try mapErrors { try database.write([.append(Self.stored(message))]) }
        return outcomes.first == false ? .duplicate : .appended
    }

    /// Applies a batch atomically and durably; returns one outcome per append, in order.
    @discardableResult
    public func write(_ batch: WriteBatch) throws -> [AppendOutcome] {
        guard batch.operations.count <= WriteBatch.maxOperations else {
            throw ScrollbackError.limitExceeded("batch of \(batch.operations.count) operations exceeds \(WriteBatch.maxOperations)")
        }
        if batch.operations.isEmpty { return [] }
        let operations = batch.operations.map(Self.operation)
        let outcomes = try mapErrors { try database.write(operations) }
        return outcomes.map { $0 ? .appended : .duplicate }
    }

    /// The message layer's operation for a batch operation.
    static func operation(_ operation: WriteBatch.Operation) -> WriteOperation {
        switch operation {
        case .append(let message): .append(stored(message))
        case let .edit(id, body): .edit(id: id, body: body)
        case let .delete(id): .delete(id: id)
        case let .markRead(user, conversation, through): .markRead(user: user, conversation: conversation, through: through)
        case let .join(user, conversation): .join(user: user, conversation: conversation)
        case let .leave(user, conversation): .leave(user: user, conversation: conversation)
        }
    }

    /// Builds a batch in `body` and applies it (see `write(_:)`).
    @discardableResult
    public func write(_ body: (inout WriteBatch) throws -> Void) throws -> [AppendOutcome] {
        var batch = WriteBatch()
        try body(&batch)
        return try write(batch)
    }

    /// Replaces the body of a message; it keeps its position and gets `edited = true`.
    /// Throws `.notFound` if no live message has this id.
    public func edit(id: String, body: String) throws {
        try mapErrors { _ = try database.write([.edit(id: id, body: body)]) }
    }

    /// Deletes a message: it disappears from every query and count. Throws `.notFound`.
    public func delete(id: String) throws {
        try mapErrors { _ = try database.write([.delete(id: id)]) }
    }

    /// Moves `user`'s read marker in `conversation` forward to `messageID` (a marker never
    /// moves back: marking an older message is a no-op). Throws `.notFound` if the message
    /// does not exist and `.invalidArgument(argument: "through")` if it belongs to another
    /// conversation. The marker stays valid if the message is deleted later.
    public func markRead(user: String, conversation: String, through messageID: String) throws {
        try mapErrors { _ = try database.write([.markRead(user: user, conversation: conversation, through: messageID)]) }
    }

    // MARK: Queries

    /// The message with this id, or nil. O(log n).
    public func message(id: String) throws -> Message? {
        try Self.checkID(id, "id")
        return try mapErrors {
            var result: Message? = nil
            try database.message(id: id) { result = Self.message($0) }
            return result
        }
    }

    /// The newest `limit` messages of a conversation, newest first. O(log n + limit).
    /// The read of `withLatest(in:limit:_:)`, each message copied out of the store's buffers.
    public func latest(in conversation: String, limit: Int) throws -> [Message] {
        try Self.checkConversation(conversation)
        try Self.checkLimit(limit)
        return try mapErrors {
            var result: [Message] = []
            result.reserveCapacity(min(limit, 256))
            try database.latest(in: conversation, limit: limit) { result.append(Self.message($0)) }
            return result
        }
    }

    /// Messages with `from ≤ createdAt ≤ through`, in `order`: the first `limit` of them, or
    /// with `limit` nil all of them — at most `maxLimit`: a range holding more throws
    /// `.limitExceeded` rather than return a cut list as if it were whole (page through such a
    /// range with `page(in:from:through:after:limit:order:)`). O(log n + returned). An empty
    /// range (`from > through`) returns nothing.
    public func messages(
        in conversation: String, from: Int64, through: Int64, order: Order = .oldestFirst, limit: Int? = nil
    ) throws -> [Message] {
        try Self.checkConversation(conversation)
        if let limit { try Self.checkLimit(limit) }
        return try mapErrors {
            var messages: [Message] = []
            // A long range says how many messages are still to come: the result grows once,
            // not by doubling (whose copies were ~3% of a day of a busy room). Both closures
            // reach the result through a pointer: a variable captured by two closures is
            // checked for exclusive access at run time, on every append.
            let more = try withUnsafeMutablePointer(to: &messages) { result in
                if let limit {
                    try database.messages(in: conversation, from: from, through: through, forward: order == .oldestFirst,
                                          limit: limit, expecting: { result.pointee.reserveCapacity(result.pointee.count + $0) }) {
                        result.pointee.append(Self.message($0))
                    }
                    return false
                }
                return try database.page(in: conversation, from: from, through: through, after: nil, limit: Self.maxLimit,
                                         forward: order == .oldestFirst,
                                         expecting: { result.pointee.reserveCapacity(result.pointee.count + $0) }) {
                    result.pointee.append(Self.message($0))
                } != nil
            }
            if more {
                throw ScrollbackError.limitExceeded(
                    "the range \(from)...\(through) of \(conversation) holds more than \(Self.maxLimit) messages; "
                        + "page through it with page(in:from:through:after:limit:order:)")
            }
            return messages
        }
    }

    /// Keyset pagination of a time range: the `limit` messages with `from ≤ createdAt ≤
    /// through` after `cursor` in `order` (from the range's start when `cursor` is nil), and
    /// where the next page starts — nil exactly when no message of the range remains. Walking
    /// every page returns each message of the range that existed when the walk started
    /// exactly once, however many there are. Cursors are those of `page(in:after:limit:order:)`
    /// (either kind continues the other within the range); a cursor issued for the other
    /// `order`, another conversation or another store is `.invalidCursor`. O(log n + limit).
    public func page(
        in conversation: String, from: Int64, through: Int64, after cursor: Cursor?, limit: Int, order: Order = .oldestFirst
    ) throws -> MessagePage {
        try Self.checkConversation(conversation)
        try Self.checkLimit(limit)
        return try mapErrors {
            var messages: [Message] = []
            messages.reserveCapacity(min(limit, 256))
            let next = try database.page(in: conversation, from: from, through: through, after: cursor?.token, limit: limit,
                                         forward: order == .oldestFirst) { messages.append(Self.message($0)) }
            return MessagePage(messages: messages, next: next.map(Cursor.init(token:)))
        }
    }

    /// Keyset pagination: the `limit` messages after `cursor` in `order` (from the start in
    /// that order when `cursor` is nil). Stable under concurrent inserts: walking all pages
    /// returns every message that existed when the walk started exactly once. A cursor is
    /// bound to the `order` that issued it: given back with the other order it is
    /// `.invalidCursor` (as is one of another conversation or store). O(log n + limit).
    public func page(in conversation: String, after cursor: Cursor?, limit: Int, order: Order = .newestFirst) throws
        -> MessagePage {
        try Self.checkConversation(conversation)
        try Self.checkLimit(limit)
        return try mapErrors {
            var messages: [Message] = []
            messages.reserveCapacity(min(limit, 256))
            let next = try database.page(in: conversation, after: cursor?.token, limit: limit, forward: order == .oldestFirst) {
                messages.append(Self.message($0))
            }
            return MessagePage(messages: messages, next: next.map(Cursor.init(token:)))
        }
    }

    /// Offset pagination: `limit` messages starting at position `offset` (≥ 0) in `order`.
    /// O(log n + limit) whatever the offset (counted B+tree).
    public func page(in conversation: String, offset: Int, limit: Int, order: Order = .newestFirst) throws
        -> [Message] {
        try Self.checkConversation(conversation)
        try Self.checkLimit(limit)
        guard offset >= 0 else { throw ScrollbackError.invalidArgument(argument: "offset", reason: "\(offset) is negative") }
        return try mapErrors {
            var result: [Message] = []
            result.reserveCapacity(min(limit, 256))
            try database.page(in: conversation, offset: offset, limit: limit, forward: order == .oldestFirst) {
                result.append(Self.message($0))
            }
            return result
        }
    }

    /// Number of messages with `createdAt > after`. O(log n).
    public func count(in conversation: String, after: Int64) throws -> Int {
        try Self.checkConversation(conversation)
        return try mapErrors { try database.count(in: conversation, after: after) }
    }

    /// Number of messages after `user`'s read marker (all of them without a marker). O(log n).
    public func unreadCount(user: String, in conversation: String) throws -> Int {
        try Self.checkName(user, "user")
        try Self.checkConversation(conversation)
        return try mapErrors { try database.unreadCount(user: user, in: conversation) }
    }

    /// `unreadCount(user:in:)` of each conversation, in the order given (a conversation named
    /// twice is answered twice; an unknown one is 0), all read from one snapshot: no write
    /// lands between two of the counts. At most `maxConversationsPerQuery` conversations.
    /// O(k log n) for k conversations.
    public func unreadCounts(user: String, conversations: [String]) throws -> [Int] {
        try Self.checkName(user, "user")
        try Self.checkConversations(conversations)
        return try mapErrors { try database.unreadCounts(user: user, conversations: conversations) }
    }

    /// The id of the message `user`'s read marker in `conversation` points at (the newest
    /// message `markRead` moved it to), or nil when the user has no marker there or that
    /// message has been deleted since. A marker whose message was deleted still counts:
    /// `unreadCount` measures from its position. O(log n).
    public func readMarker(user: String, conversation: String) throws -> String? {
        try Self.checkName(user, "user")
        try Self.checkConversation(conversation)
        return try mapErrors { try database.readMarker(user: user, conversation: conversation) }
    }

    /// The newest `limit` messages across `conversations`, newest first; equal `createdAt`:
    /// later insertion first. A k-way merge over per-conversation reverse scans (no sort).
    /// Duplicate conversation ids count once.
    public func feed(_ conversations: [String], limit: Int) throws -> [Message] {
        try Self.checkConversations(conversations)
        try Self.checkLimit(limit)
        return try mapErrors {
            var result: [Message] = []
            result.reserveCapacity(min(limit, 256))
            try database.feed(conversations, limit: limit) { result.append(Self.message($0)) }
            return result
        }
    }

    /// The newest live message of each conversation (nil for an empty or unknown one), in
    /// the order given. One descent each.
    public func latestMessage(in conversations: [String]) throws -> [Message?] {
        try Self.checkConversations(conversations)
        return try mapErrors {
            var result: [Message?] = []
            result.reserveCapacity(conversations.count)
            try database.latestMessage(in: conversations) { result.append($0.map(Self.message)) }
            return result
        }
    }

    /// Conversations with at least one live message, by the `createdAt` of their newest live
    /// message (descending; ties by conversation id ascending), with their live message
    /// counts. From an index ordered by last activity: O(log n + limit). The first page of
    /// `conversations(after:limit:)`.
    public func conversations(limit: Int) throws -> [ConversationSummary] {
        try Self.checkLimit(limit)
        return try mapErrors { try database.conversations(limit: limit).map(Self.summary) }
    }

    /// Keyset pagination of the conversation list (ordered as `conversations(limit:)`): the
    /// `limit` conversations after `cursor` (from the start when nil), and where the next page
    /// starts (nil exactly when none remains). Walking every page returns each conversation
    /// whose newest message does not change meanwhile exactly once; one that gets a newer
    /// message, or loses its newest, during the walk may be returned twice or not at all.
    /// O(log n + limit + the conversations sharing the cursor's last activity).
    /// Throws `.invalidCursor` for a damaged or forged cursor, or one of another store.
    public func conversations(after cursor: ConversationCursor?, limit: Int) throws -> ConversationPage {
        try Self.checkLimit(limit)
        return try mapErrors {
            let page = try database.conversations(after: cursor?.token, limit: limit)
            return ConversationPage(conversations: page.entries.map(Self.summary), next: page.next.map(ConversationCursor.init))
        }
    }

    static func summary(_ entry: ConversationEntry) -> ConversationSummary {
        ConversationSummary(id: entry.name, lastActivity: entry.lastActivity, messageCount: entry.messageCount)
    }

    // MARK: Operations

    /// Writes the trees to the page file (bounds recovery time after a crash).
    public func checkpoint() throws { try mapErrors { try database.checkpoint() } }

    /// A checkpoint with `body` run between its plan and its I/O — what a background
    /// checkpoint does beside commits, in a fixed order, for the crash sweep (which commits
    /// in `body`). The checkpoint makes the state before `body` durable.
    package func checkpoint(during body: () throws -> Void) throws {
        try mapErrors { try database.checkpoint(during: body) }
    }

    /// Makes every write so far durable (for `.normal` durability).
    public func sync() throws { try mapErrors { try database.sync() } }

    /// One step of the log's allocation ahead (what its background thread does when the file
    /// system allows background I/O): extends the active log segment's allocated space ahead
    /// of its end and syncs it. For the crash sweep, which calls it between commits.
    @discardableResult
    package func allocateLogAhead() throws -> Bool { try mapErrors { try database.allocateLogAhead() } }

    /// Rewrites the live records of the most wasteful sealed log segments in key order
    /// (each conversation's history becomes contiguous), then removes the old segments; then,
    /// when more than a tenth of the page file is free, moves the tree pages above the live
    /// size into the free space and cuts the file. Runs in bounded steps; readers keep working
    /// meanwhile, writers wait only while pages are copied.
    @discardableResult
    public func compact() throws -> CompactionReport {
        let summary = try mapErrors { try database.compact() }
        return CompactionReport(segmentsRewritten: summary.segmentsRewritten, recordsMoved: summary.recordsMoved,
                                logBytesBefore: summary.logBytesBefore, logBytesAfter: summary.logBytesAfter,
                                pageFileBytesBefore: summary.pageFileBytesBefore, pageFileBytesAfter: summary.pageFileBytesAfter)
    }

    /// Writes a consistent copy of the store to `path` (a new or empty directory) while the
    /// store stays open for reads and writes.
    public func backup(to path: String) throws {
        try Self.validatePath(path, argument: "path")
        try mapErrors { try database.backup(to: path) }
    }

    /// Walks every structure and returns the problems found; empty when healthy.
    public func verify() throws -> [String] {
        try mapErrors { try database.checkOpen() }
        return database.verify()
    }

    /// Counters and sizes of the store now (`StoreStatistics`). Reads a snapshot and the
    /// segment table: cheap, but not free; the metrics task reads it every `gaugeInterval`.
    public var statistics: StoreStatistics {
        get throws {
            let s = try mapErrors { try database.statistics() }
            let pager = s.storage.pager
            let blocks = s.storage.runs.blockCache
            var statistics = StoreStatistics(
                messages: s.messages, conversations: s.conversations, pageFileBytes: s.pageFileBytes,
                rawLogBytes: s.rawLogBytes, sealedLogBytes: s.sealedLogBytes, garbageRatio: s.garbageRatio,
                pageCache: .init(hits: pager.hits, misses: pager.misses, evictions: pager.evictions, bytes: pager.cachedBytes,
                                 capacityBytes: pager.cacheCapacityBytes),
                blockCache: .init(hits: blocks.hits, misses: blocks.misses, evictions: blocks.evictions, bytes: blocks.cachedBytes,
                                  capacityBytes: cacheCapacity.blocks),
                commits: s.storage.commits, checkpoints: s.storage.checkpoints, compactions: s.compactions,
                lastCompactionBytesBefore: s.lastCompactionBytesBefore, lastCompactionBytesAfter: s.lastCompactionBytesAfter)
            Self.addReaders(database.processes, to: &statistics)
            return statistics
        }
    }

    /// The store's background work since it opened: checkpoints (writing the trees' dirty
    /// pages to the page file and flipping its meta page) and seals (packing a filled log
    /// segment into a sorted run), each counted when it begins and when it ends. Commits run
    /// beside both but share the disk with them; a service that wants to tell slow commits
    /// that met a checkpoint from the others reads this before and after a call
    /// (`BackgroundActivity.overlapped(since:)`). Four atomic loads: no lock, no I/O, and it
    /// works on a closed store (the counts stop moving).
    public var backgroundActivity: BackgroundActivity {
        let counts = database.backgroundActivity
        return BackgroundActivity(checkpointsBegun: counts.checkpointsBegun, checkpointsEnded: counts.checkpointsEnded,
                                  sealsBegun: counts.sealsBegun, sealsEnded: counts.sealsEnded)
    }

    // MARK: Conversions and argument checks

    static func stored(_ message: Message) -> StoredMessage {
        StoredMessage(id: message.id, conversation: message.conversation, sender: message.sender, createdAt: message.createdAt,
                      kind: message.kind.rawValue, body: message.body, replyTo: message.replyTo, edited: false,
                      metadata: message.metadata?.isEmpty == false ? message.metadata : nil)
    }

    /// Builds the public value straight from the record bytes (one String per field).
    @inline(__always)
    static func message(_ view: MessageView) -> Message { BorrowedMessage(view).message() }

    static func checkName(_ value: String, _ argument: String) throws {
        try checkLength(value, argument, ArgumentLimits.nameBytes)
    }

    static func checkID(_ value: String, _ argument: String) throws {
        try checkLength(value, argument, ArgumentLimits.idBytes)
    }

    private static func checkLength(_ value: String, _ argument: String, _ range: ClosedRange<Int>) throws {
        let count = value.utf8.count
        guard range.contains(count) else {
            throw ScrollbackError.invalidArgument(
                argument: argument, reason: "\(count) UTF-8 bytes is outside \(range.lowerBound) ... \(range.upperBound)")
        }
    }

    static func checkConversation(_ value: String) throws { try checkName(value, "conversation") }

    static func checkConversations(_ values: [String]) throws {
        guard values.count <= maxConversationsPerQuery else {
            throw ScrollbackError.invalidArgument(
                argument: "conversations", reason: "\(values.count) conversations exceed the limit of \(maxConversationsPerQuery)")
        }
        for value in values {
            let count = value.utf8.count
            guard ArgumentLimits.nameBytes.contains(count) else {
                throw ScrollbackError.invalidArgument(
                    argument: "conversations",
                    reason: "a conversation id of \(count) UTF-8 bytes is outside \(ArgumentLimits.nameBytes.lowerBound) ... \(ArgumentLimits.nameBytes.upperBound)")
            }
        }
    }

    static func checkLimit(_ limit: Int) throws {
        guard limit >= 0, limit <= maxLimit else {
            throw ScrollbackError.invalidArgument(argument: "limit", reason: "\(limit) is outside 0 ... \(maxLimit)")
        }
    }
}
