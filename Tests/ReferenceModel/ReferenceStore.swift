// The reference model of the public API: a plain in-memory implementation of every
// MessageStore primitive with the documented semantics. The oracle of the model-based tests
// (Tests/ScrollbackTests) and of the operations fuzz target (Fuzz/Targets/operations).
// Imported with `@testable` (its declarations are internal); every build that uses it
// compiles with testability.
import Scrollback

/// Where a message sits in its conversation: `(createdAt, insertion sequence)`.
struct ReferencePosition: Comparable, Hashable, Sendable, CustomStringConvertible {
    var createdAt: Int64
    var seq: Int

    static func < (a: Self, b: Self) -> Bool { (a.createdAt, a.seq) < (b.createdAt, b.seq) }
    var description: String { "(\(createdAt), #\(seq))" }
}

/// The reference model's cursor: a position in one conversation, issued by a walk in `order`
/// (the store's cursor is an opaque token for the same thing).
struct ReferenceCursor: Hashable, Sendable {
    var conversation: String
    var position: ReferencePosition
    var order: Order
}

/// The reference model's inbox cursor: the user whose inbox issued it and the last
/// conversation of the page (nil: before the first).
struct ReferenceInboxCursor: Hashable, Sendable {
    var user: String
    var lastActivity: Int64?
    var conversation: String?
}

/// A page of the reference model's inbox.
struct ReferenceInboxPage: Hashable, Sendable {
    var conversations: [InboxEntry]
    var next: ReferenceInboxCursor?
}

/// A keyset page of the reference model.
struct ReferencePage: Hashable, Sendable {
    var messages: [Message]
    /// The position after which the next page starts; nil exactly when nothing remains.
    var next: ReferenceCursor?
}

/// A plain in-memory implementation of every `MessageStore` primitive, written to be
/// obviously correct rather than fast (sorted arrays, linear scans). It is the oracle of the
/// model-based tests: its semantics are the doc comments of `Sources/Scrollback/*.swift`.
///
/// Value type: copying it snapshots the whole state (batches run on a copy and replace
/// `self` only when every operation succeeded; crash tests keep the states a crash may
/// legally recover to).
///
/// Interpretations where the documentation is silent (listed in the test report):
/// - argument names in `invalidArgument` are the documented field names (`id`,
///   `conversation`, `sender`, `createdAt`, `body`, `replyTo`, `user`, `through`, `limit`,
///   `offset`, `conversations`);
/// - arguments are validated before existence (`notFound`) and in parameter order;
/// - a batch is applied in order on the state left by its earlier operations (an edit or read
///   marker may target a message appended earlier in the same batch);
/// - `messages(in:from:through:)` with `from > through` is empty;
/// - conversation ids tie-break by their UTF-8 bytes (the model tests use ASCII names, where
///   that equals `String` order);
/// - join and leave validate `user`, then `conversation`; `metadata` is checked after
///   `replyTo`.
struct ReferenceStore: Sendable, Equatable {
    struct Entry: Hashable, Sendable {
        var message: Message
        var seq: Int
        var position: ReferencePosition { ReferencePosition(createdAt: message.createdAt, seq: seq) }
    }

    static let maxIDBytes = 128
    static let maxNameBytes = 255
    static let maxCreatedAt: Int64 = (1 << 53) - 1

    let maxBodyBytes: Int
    /// Live messages of each conversation, ascending by position. No empty arrays.
    private(set) var conversationEntries: [String: [Entry]] = [:]
    /// Live message id → its conversation.
    private(set) var conversationOfID: [String: String] = [:]
    /// user → conversation → marker position.
    private(set) var markers: [String: [String: ReferencePosition]] = [:]
    /// user → the conversations the user is a member of. No empty sets.
    private(set) var memberships: [String: Set<String>] = [:]
    private(set) var nextSeq = 1

    init(maxBodyBytes: Int = StoreOptions().maxBodyBytes) {
        self.maxBodyBytes = maxBodyBytes
    }

    // MARK: Validation

    static func invalid(_ argument: String, _ reason: String) -> ScrollbackError {
        .invalidArgument(argument: argument, reason: reason)
    }

    static func checkBytes(_ value: String, _ argument: String, max: Int) throws {
        let count = value.utf8.count
        if count == 0 { throw invalid(argument, "empty") }
        if count > max { throw invalid(argument, "\(count) UTF-8 bytes, more than \(max)") }
    }

    static func checkID(_ value: String, _ argument: String = "id") throws {
        try checkBytes(value, argument, max: maxIDBytes)
    }

    static func checkName(_ value: String, _ argument: String) throws {
        try checkBytes(value, argument, max: maxNameBytes)
    }

    static func checkLimit(_ limit: Int) throws {
        if limit < 0 || limit > MessageStore.maxLimit {
            throw invalid("limit", "\(limit) is outside 0...\(MessageStore.maxLimit)")
        }
    }

    func checkMessage(_ message: Message) throws {
        try Self.checkID(message.id)
        try Self.checkName(message.conversation, "conversation")
        try Self.checkName(message.sender, "sender")
        if message.createdAt < 0 || message.createdAt > Self.maxCreatedAt {
            throw Self.invalid("createdAt", "\(message.createdAt) is outside 0..<2^53")
        }
        try checkBody(message.body)
        if let replyTo = message.replyTo { try Self.checkID(replyTo, "replyTo") }
        if let metadata = message.metadata, metadata.count > Message.maxMetadataBytes {
            throw Self.invalid("metadata", "\(metadata.count) bytes, more than \(Message.maxMetadataBytes)")
        }
    }

    func checkBody(_ body: String) throws {
        if body.utf8.count > maxBodyBytes {
            throw Self.invalid("body", "\(body.utf8.count) UTF-8 bytes, more than \(maxBodyBytes)")
        }
    }

    static func checkConversationList(_ conversations: [String]) throws {
        if conversations.count > MessageStore.maxConversationsPerQuery {
            throw invalid("conversations", "\(conversations.count) conversations, more than \(MessageStore.maxConversationsPerQuery)")
        }
        for conversation in conversations { try checkName(conversation, "conversations") }
    }

    // MARK: Writes

    /// See `MessageStore.append`.
    @discardableResult
    mutating func append(_ message: Message) throws -> AppendOutcome {
        try checkMessage(message)
        if let owner = conversationOfID[message.id] {
            if owner == message.conversation { return .duplicate }
            throw ScrollbackError.idConflict(id: message.id, conversation: owner)
        }
        var stored = message
        stored.edited = false
        if stored.metadata?.isEmpty == true { stored.metadata = nil }  // empty metadata is none
        let entry = Entry(message: stored, seq: nextSeq)
        nextSeq += 1
        var entries = conversationEntries[message.conversation] ?? []
        // The new sequence number is the largest, so it goes after every equal timestamp.
        let index = entries.firstIndex { $0.position > entry.position } ?? entries.endIndex
        entries.insert(entry, at: index)
        conversationEntries[message.conversation] = entries
        conversationOfID[message.id] = message.conversation
        return .appended
    }

    /// See `MessageStore.write(_:)`: all operations in order on a copy; all or nothing.
    @discardableResult
    mutating func write(_ batch: WriteBatch) throws -> [AppendOutcome] {
        if batch.operations.count > WriteBatch.maxOperations {
            throw ScrollbackError.limitExceeded("batch of \(batch.operations.count) operations, more than \(WriteBatch.maxOperations)")
        }
        var copy = self
        var outcomes: [AppendOutcome] = []
        for operation in batch.operations {
            switch operation {
            case let .append(message): outcomes.append(try copy.append(message))
            case let .edit(id, body): try copy.edit(id: id, body: body)
            case let .delete(id): try copy.delete(id: id)
            case let .markRead(user, conversation, through):
                try copy.markRead(user: user, conversation: conversation, through: through)
            case let .join(user, conversation): try copy.join(user: user, conversation: conversation)
            case let .leave(user, conversation): try copy.leave(user: user, conversation: conversation)
            }
        }
        self = copy
        return outcomes
    }

    /// See `MessageStore.load`: each message checked and appended in order, all or nothing;
    /// ids live in the same conversation skipped as duplicates, in another one `idConflict`.
    mutating func load(_ messages: [Message]) throws -> LoadSummary {
        var copy = self
        var summary = LoadSummary(appended: 0, duplicates: 0)
        for message in messages {
            if try copy.append(message) == .appended { summary.appended += 1 } else { summary.duplicates += 1 }
        }
        self = copy
        return summary
    }

    private func locate(_ id: String) -> (conversation: String, index: Int)? {
        guard let conversation = conversationOfID[id],
            let index = conversationEntries[conversation]?.firstIndex(where: { $0.message.id == id })
        else { return nil }
        return (conversation, index)
    }

    /// See `MessageStore.edit`.
    mutating func edit(id: String, body: String) throws {
        try Self.checkID(id)
        try checkBody(body)
        guard let (conversation, index) = locate(id) else { throw ScrollbackError.notFound("message \(id)") }
        conversationEntries[conversation]![index].message.body = body
        conversationEntries[conversation]![index].message.edited = true
    }

    /// See `MessageStore.delete`.
    mutating func delete(id: String) throws {
        try Self.checkID(id)
        guard let (conversation, index) = locate(id) else { throw ScrollbackError.notFound("message \(id)") }
        conversationEntries[conversation]!.remove(at: index)
        if conversationEntries[conversation]!.isEmpty { conversationEntries[conversation] = nil }
        conversationOfID[id] = nil
    }

    /// See `MessageStore.markRead`.
    mutating func markRead(user: String, conversation: String, through messageID: String) throws {
        try Self.checkName(user, "user")
        try Self.checkName(conversation, "conversation")
        try Self.checkID(messageID, "through")
        guard let (actual, index) = locate(messageID) else { throw ScrollbackError.notFound("message \(messageID)") }
        guard actual == conversation else {
            throw Self.invalid("through", "message \(messageID) belongs to another conversation")
        }
        let position = conversationEntries[actual]![index].position
        if let old = markers[user]?[conversation], old >= position { return }
        markers[user, default: [:]][conversation] = position
    }

    /// See `MessageStore.join(user:conversation:)`: idempotent.
    mutating func join(user: String, conversation: String) throws {
        try Self.checkName(user, "user")
        try Self.checkName(conversation, "conversation")
        memberships[user, default: []].insert(conversation)
    }

    /// See `MessageStore.leave(user:conversation:)`: idempotent; the read marker stays.
    mutating func leave(user: String, conversation: String) throws {
        try Self.checkName(user, "user")
        try Self.checkName(conversation, "conversation")
        memberships[user]?.remove(conversation)
        if memberships[user]?.isEmpty == true { memberships[user] = nil }
    }

    /// Replaces a live message's metadata. Only for `InjectedBug.editDropsMetadata`.
    mutating func forceMetadata(id: String, _ metadata: [UInt8]?) {
        guard let (conversation, index) = locate(id) else { return }
        conversationEntries[conversation]![index].message.metadata = metadata
    }

    /// Sets a marker unconditionally. Only for `InjectedBug.markerMovesBack`.
    mutating func forceMarker(user: String, conversation: String, position: ReferencePosition) {
        markers[user, default: [:]][conversation] = position
    }

    // MARK: Queries

    func entries(_ conversation: String) -> [Entry] { conversationEntries[conversation] ?? [] }

    func ordered(_ conversation: String, _ order: Order) -> [Entry] {
        let ascending = entries(conversation)
        return order == .oldestFirst ? ascending : ascending.reversed()
    }

    func entry(id: String) -> Entry? {
        guard let (conversation, index) = locate(id) else { return nil }
        return conversationEntries[conversation]![index]
    }

    /// See `MessageStore.message(id:)`.
    func message(id: String) throws -> Message? {
        try Self.checkID(id)
        return entry(id: id)?.message
    }

    /// See `MessageStore.latest(in:limit:)`.
    func latest(in conversation: String, limit: Int) throws -> [Message] {
        try Self.checkName(conversation, "conversation")
        try Self.checkLimit(limit)
        return ordered(conversation, .newestFirst).prefix(limit).map(\.message)
    }

    /// See `MessageStore.messages(in:from:through:order:limit:)`.
    func messages(
        in conversation: String, from: Int64, through: Int64, order: Order = .oldestFirst, limit: Int? = nil
    ) throws -> [Message] {
        try Self.checkName(conversation, "conversation")
        if let limit { try Self.checkLimit(limit) }
        let inRange = ordered(conversation, order).filter { from <= $0.message.createdAt && $0.message.createdAt <= through }
        if limit == nil && inRange.count > MessageStore.maxLimit {
            throw ScrollbackError.limitExceeded("the range holds \(inRange.count) messages, more than \(MessageStore.maxLimit)")
        }
        return inRange.prefix(limit ?? MessageStore.maxLimit).map(\.message)
    }

    /// See `MessageStore.page(in:from:through:after:limit:order:)`: the messages of the range
    /// strictly after the cursor's position in `order`.
    func page(in conversation: String, from: Int64, through: Int64, after cursor: ReferenceCursor?, limit: Int,
              order: Order = .oldestFirst) throws -> ReferencePage {
        try Self.checkName(conversation, "conversation")
        try Self.checkLimit(limit)
        try Self.checkCursor(cursor, conversation: conversation, order: order)
        let remaining = ordered(conversation, order).filter { entry in
            guard from <= entry.message.createdAt && entry.message.createdAt <= through else { return false }
            guard let cursor else { return true }
            return order == .oldestFirst ? entry.position > cursor.position : entry.position < cursor.position
        }
        let taken = Array(remaining.prefix(limit))
        guard remaining.count > taken.count else { return ReferencePage(messages: taken.map(\.message), next: nil) }
        let next = taken.last.map { ReferenceCursor(conversation: conversation, position: $0.position, order: order) } ?? cursor
        return ReferencePage(messages: taken.map(\.message), next: next)
    }

    /// A cursor of another conversation, or issued for the other order, is `invalidCursor`.
    static func checkCursor(_ cursor: ReferenceCursor?, conversation: String, order: Order) throws {
        guard let cursor else { return }
        if cursor.conversation != conversation {
            throw ScrollbackError.invalidCursor("cursor of conversation \(cursor.conversation)")
        }
        if cursor.order != order { throw ScrollbackError.invalidCursor("cursor of the other order") }
    }

    /// See `MessageStore.page(in:after:limit:order:)`. With `limit == 0` the next cursor is
    /// the given one (nil from the start: the model has no "start" cursor).
    func page(in conversation: String, after cursor: ReferenceCursor?, limit: Int, order: Order = .newestFirst) throws
        -> ReferencePage
    {
        // The time range that holds every message.
        try page(in: conversation, from: .min, through: .max, after: cursor, limit: limit, order: order)
    }

    /// See `MessageStore.page(in:offset:limit:order:)`.
    func page(in conversation: String, offset: Int, limit: Int, order: Order = .newestFirst) throws -> [Message] {
        try Self.checkName(conversation, "conversation")
        if offset < 0 { throw Self.invalid("offset", "\(offset) is negative") }
        try Self.checkLimit(limit)
        return ordered(conversation, order).dropFirst(offset).prefix(limit).map(\.message)
    }

    /// See `MessageStore.count(in:after:)`.
    func count(in conversation: String, after: Int64) throws -> Int {
        try Self.checkName(conversation, "conversation")
        return entries(conversation).filter { $0.message.createdAt > after }.count
    }

    func marker(user: String, conversation: String) -> ReferencePosition? { markers[user]?[conversation] }

    /// See `MessageStore.unreadCount(user:in:)`.
    func unreadCount(user: String, in conversation: String) throws -> Int {
        try Self.checkName(user, "user")
        try Self.checkName(conversation, "conversation")
        guard let marker = marker(user: user, conversation: conversation) else { return entries(conversation).count }
        return entries(conversation).filter { $0.position > marker }.count
    }

    /// See `MessageStore.unreadCounts(user:conversations:)`.
    func unreadCounts(user: String, conversations: [String]) throws -> [Int] {
        try Self.checkName(user, "user")
        try Self.checkConversationList(conversations)
        return try conversations.map { try unreadCount(user: user, in: $0) }
    }

    /// See `MessageStore.readMarker(user:conversation:)`: the live message at the marker's
    /// position, if any.
    func readMarker(user: String, conversation: String) throws -> String? {
        try Self.checkName(user, "user")
        try Self.checkName(conversation, "conversation")
        guard let marker = marker(user: user, conversation: conversation) else { return nil }
        return entries(conversation).first { $0.position == marker }?.message.id
    }

    /// Every conversation of `user`'s inbox, in inbox order: newest live message first (ties
    /// by the ids' UTF-8 bytes), then those without a live message, by id.
    func allInboxEntries(user: String) -> [InboxEntry] {
        (memberships[user] ?? []).map { conversation in
            let live = entries(conversation)
            return InboxEntry(id: conversation, lastActivity: live.last?.message.createdAt, messageCount: live.count,
                              unreadCount: (try? unreadCount(user: user, in: conversation)) ?? -1)
        }.sorted { Self.inboxPrecedes(($0.lastActivity, $0.id), ($1.lastActivity, $1.id)) }
    }

    /// Inbox order of (lastActivity, id) pairs.
    static func inboxPrecedes(_ a: (Int64?, String), _ b: (Int64?, String)) -> Bool {
        switch (a.0, b.0) {
        case let (x?, y?) where x != y: return x > y
        case (.some, nil): return true
        case (nil, .some): return false
        default: return a.1.utf8.lexicographicallyPrecedes(b.1.utf8)
        }
    }

    /// See `MessageStore.inbox(user:after:limit:)`: the entries strictly after the cursor.
    func inbox(user: String, after cursor: ReferenceInboxCursor?, limit: Int) throws -> ReferenceInboxPage {
        try Self.checkName(user, "user")
        try Self.checkLimit(limit)
        if let cursor, cursor.user != user { throw ScrollbackError.invalidCursor("cursor of \(cursor.user)'s inbox") }
        let remaining = allInboxEntries(user: user).filter { entry in
            guard let cursor, let last = cursor.conversation else { return true }
            return Self.inboxPrecedes((cursor.lastActivity, last), (entry.lastActivity, entry.id))
        }
        let taken = Array(remaining.prefix(limit))
        guard remaining.count > taken.count else { return ReferenceInboxPage(conversations: taken, next: nil) }
        let next = taken.last.map { ReferenceInboxCursor(user: user, lastActivity: $0.lastActivity, conversation: $0.id) }
            ?? cursor ?? ReferenceInboxCursor(user: user, lastActivity: nil, conversation: nil)
        return ReferenceInboxPage(conversations: taken, next: next)
    }

    /// See `MessageStore.feed(_:limit:)`: the union sorted by (createdAt, seq) descending.
    func feed(_ conversations: [String], limit: Int) throws -> [Message] {
        try Self.checkConversationList(conversations)
        try Self.checkLimit(limit)
        var all: [Entry] = []
        for conversation in Set(conversations) { all += entries(conversation) }
        all.sort { $0.position > $1.position }
        return all.prefix(limit).map(\.message)
    }

    /// See `MessageStore.latestMessage(in:)`.
    func latestMessage(in conversations: [String]) throws -> [Message?] {
        try Self.checkConversationList(conversations)
        return conversations.map { entries($0).last?.message }
    }

    /// Every conversation with a live message, ordered as `conversations(limit:)` orders them.
    func allSummaries() -> [ConversationSummary] {
        conversationEntries.map { name, entries in
            ConversationSummary(id: name, lastActivity: entries.last!.message.createdAt, messageCount: entries.count)
        }.sorted { a, b in
            if a.lastActivity != b.lastActivity { return a.lastActivity > b.lastActivity }
            return a.id.utf8.lexicographicallyPrecedes(b.id.utf8)
        }
    }

    /// See `MessageStore.conversations(limit:)`.
    func conversations(limit: Int) throws -> [ConversationSummary] {
        try Self.checkLimit(limit)
        return Array(allSummaries().prefix(limit))
    }

    /// `statistics.messages`.
    var liveMessageCount: Int { conversationOfID.count }
    /// `statistics.conversations`.
    var liveConversationCount: Int { conversationEntries.count }
}
