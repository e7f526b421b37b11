@testable import ScrollbackReferenceModel
import Scrollback
import ScrollbackIO
import Foundation
import Synchronization

/// The public `MessageStore` surface the randomized tests drive. `MessageStore` conforms as
/// is; `ReferenceBackedStore` (the reference model behind the same surface, optionally with a
/// deliberate bug) lets the harness test itself: the model test must pass against an honest
/// copy of the oracle and must fail against a broken one.
protocol StoreUnderTest: AnyObject, Sendable {
    func close() throws
    func append(_ message: Message) throws -> AppendOutcome
    func write(_ batch: WriteBatch) throws -> [AppendOutcome]
    func load(_ messages: [Message]) throws -> LoadSummary
    func edit(id: String, body: String) throws
    func delete(id: String) throws
    func markRead(user: String, conversation: String, through messageID: String) throws
    func join(user: String, conversation: String) throws
    func leave(user: String, conversation: String) throws
    func inbox(user: String, after cursor: InboxCursor?, limit: Int) throws -> InboxPage
    func message(id: String) throws -> Message?
    func latest(in conversation: String, limit: Int) throws -> [Message]
    func messages(in conversation: String, from: Int64, through: Int64, order: Order, limit: Int?) throws -> [Message]
    func page(in conversation: String, after cursor: Cursor?, limit: Int, order: Order) throws -> MessagePage
    func page(in conversation: String, from: Int64, through: Int64, after cursor: Cursor?, limit: Int, order: Order) throws
        -> MessagePage
    func page(in conversation: String, offset: Int, limit: Int, order: Order) throws -> [Message]
    func count(in conversation: String, after: Int64) throws -> Int
    func unreadCount(user: String, in conversation: String) throws -> Int
    func unreadCounts(user: String, conversations: [String]) throws -> [Int]
    func readMarker(user: String, conversation: String) throws -> String?
    func feed(_ conversations: [String], limit: Int) throws -> [Message]
    func latestMessage(in conversations: [String]) throws -> [Message?]
    func conversations(limit: Int) throws -> [ConversationSummary]
    func checkpoint() throws
    func sync() throws
    func compact() throws -> CompactionReport
    func verify() throws -> [String]
    var statistics: StoreStatistics { get throws }
    func enableSearchIndex() throws
    func disableSearchIndex() throws
    var isSearchIndexEnabled: Bool { get throws }
    func search(_ query: String, in scope: SearchScope, after cursor: Cursor?, limit: Int) throws -> MessagePage
    func searchCount(_ query: String, in scope: SearchScope) throws -> Int
}

extension MessageStore: StoreUnderTest {}

extension SearchScope {
    /// The scope as the reference model takes it (nil: the whole store).
    var referenceNames: [String]? {
        switch self {
        case .conversation(let name): [name]
        case .conversations(let names): names
        case .wholeStore: nil
        }
    }
}

/// A value behind a pthread lock (`NSLock`). Test code uses this rather than
/// `Synchronization.Mutex`, whose futex-based lock ThreadSanitizer does not see on Linux
/// (it reports false races on every `Mutex`-guarded access), so TSan runs report only
/// races of the store.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// Deliberate bugs for `ReferenceBackedStore`, each one a mistake a real implementation
/// could make. The model test must catch every one.
enum InjectedBug: String, CaseIterable, Sendable {
    /// Feed ties (equal createdAt) come out oldest insertion first.
    case feedTiesOldestFirst
    /// Offset pages skip one message too many.
    case offsetOffByOne
    /// A read marker moves back when an older message is marked.
    case markerMovesBack
    /// The last keyset page still returns a next cursor when it is full.
    case fullLastPageHasCursor
    /// A failing batch keeps the operations before the failing one.
    case partialBatch
    /// An edit moves the message to the end of its conversation.
    case editMovesMessage
    /// A reopen loses the most recent acknowledged write.
    case reopenLosesLastWrite
    /// `readMarker` answers the newest live message at or before the marker (a seek instead of
    /// an exact lookup), so a marker whose message was deleted names an older message.
    case markerNamesAnOlderMessage
    /// `unreadCounts` answers a conversation named twice once (deduplicated like `feed`).
    case unreadCountsDeduplicated
    /// A keyset cursor given back with the other order is accepted (and read as a position
    /// in that order) instead of `invalidCursor`.
    case cursorIgnoresOrder
    /// An append of an id live in another conversation is a silent `.duplicate`, not
    /// `idConflict`.
    case conflictIsDuplicate
    /// The inbox leaves out the conversations without a live message.
    case inboxOmitsQuietConversations
    /// An edit drops the message's metadata.
    case editDropsMetadata
    /// A search page continues after the last message's time, skipping the other matches
    /// with that `createdAt`.
    case searchCursorSkipsTies
}

/// The durable side of `ReferenceBackedStore`: survives close and reopen.
final class ReferenceDisk: Sendable {
    struct State: Sendable {
        var model: ReferenceStore
        var previous: ReferenceStore
    }

    let state: Locked<State>
    let bug: InjectedBug?
    /// When set, every write first writes and syncs a byte of `/reference.seg` here, so
    /// simulated power losses and failed syncs reach the reference store too (a write whose
    /// I/O fails is not applied; afterwards writes are refused until a reopen).
    let fileSystem: CrashSimulatingFileSystem?

    init(maxBodyBytes: Int, bug: InjectedBug?, fileSystem: CrashSimulatingFileSystem? = nil) {
        let empty = ReferenceStore(maxBodyBytes: maxBodyBytes)
        state = Locked(State(model: empty, previous: empty))
        self.bug = bug
        self.fileSystem = fileSystem
    }

    func open() throws -> ReferenceBackedStore {
        if let fileSystem { _ = try fileSystem.listDirectory("/") }
        if bug == .reopenLosesLastWrite { state.withLock { $0.model = $0.previous } }
        return ReferenceBackedStore(disk: self)
    }

    func journal() throws {
        guard let fileSystem else { return }
        let handle = try fileSystem.open("/reference.seg", mode: .createIfMissing)
        defer { try? handle.close() }
        try handle.write([1], at: 0)
        try handle.syncData()
    }
}

/// `ReferenceStore` behind the `StoreUnderTest` surface, with printable cursors.
final class ReferenceBackedStore: StoreUnderTest {
    let disk: ReferenceDisk
    let isClosed = Atomic<Bool>(false)
    let refusesWrites = Atomic<Bool>(false)
    var bug: InjectedBug? { disk.bug }

    init(disk: ReferenceDisk) { self.disk = disk }

    private func read<R>(_ body: (ReferenceStore) throws -> R) throws -> R {
        if isClosed.load(ordering: .relaxed) { throw ScrollbackError.closed }
        return try disk.state.withLock { try body($0.model) }
    }

    private func mutate<R>(_ body: (inout ReferenceStore) throws -> R) throws -> R {
        if isClosed.load(ordering: .relaxed) { throw ScrollbackError.closed }
        return try disk.state.withLock { state in
            var model = state.model
            let result = try body(&model)
            if refusesWrites.load(ordering: .relaxed) { throw ScrollbackError.refusesWrites(cause: "an earlier write failed") }
            do { try disk.journal() } catch {
                refusesWrites.store(true, ordering: .relaxed)
                throw ScrollbackError.io(path: "/reference.seg", operation: "write", errno: 5)
            }
            state.previous = state.model
            state.model = model
            return result
        }
    }

    static func token(_ cursor: ReferenceCursor) -> Cursor {
        let order = cursor.order == .oldestFirst ? "o" : "n"
        return Cursor(token: "ref.\(order).\(cursor.position.createdAt).\(cursor.position.seq).\(cursor.conversation)")
    }

    /// The cursor a token names; with `cursorIgnoresOrder` it is taken for `order` whatever
    /// order issued it.
    func parse(_ cursor: Cursor, order: Order) throws -> ReferenceCursor {
        let parts = cursor.token.split(separator: ".", maxSplits: 4, omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "ref", parts[1] == "o" || parts[1] == "n", let createdAt = Int64(parts[2]),
              let seq = Int(parts[3]) else {
            throw ScrollbackError.invalidCursor("malformed token")
        }
        let issued: Order = parts[1] == "o" ? .oldestFirst : .newestFirst
        return ReferenceCursor(conversation: String(parts[4]), position: ReferencePosition(createdAt: createdAt, seq: seq),
                               order: bug == .cursorIgnoresOrder ? order : issued)
    }

    func close() throws {
        if isClosed.exchange(true, ordering: .relaxed) { throw ScrollbackError.closed }
    }

    func append(_ message: Message) throws -> AppendOutcome {
        try mutate { model in
            if bug == .conflictIsDuplicate, let owner = model.conversationOfID[message.id], owner != message.conversation {
                return .duplicate
            }
            return try model.append(message)
        }
    }

    func load(_ messages: [Message]) throws -> LoadSummary { try mutate { try $0.load(messages) } }

    func write(_ batch: WriteBatch) throws -> [AppendOutcome] {
        if bug == .partialBatch {
            return try mutate { model in
                var outcomes: [AppendOutcome] = []
                for operation in batch.operations {
                    var single = WriteBatch()
                    switch operation {
                    case let .append(message): single.append(message)
                    case let .edit(id, body): single.edit(id: id, body: body)
                    case let .delete(id): single.delete(id: id)
                    case let .markRead(user, conversation, through):
                        single.markRead(user: user, conversation: conversation, through: through)
                    case let .join(user, conversation): single.join(user: user, conversation: conversation)
                    case let .leave(user, conversation): single.leave(user: user, conversation: conversation)
                    }
                    do {
                        outcomes += try model.write(single)
                    } catch {
                        return outcomes  // swallows the failure and keeps the prefix
                    }
                }
                return outcomes
            }
        }
        return try mutate { try $0.write(batch) }
    }

    func edit(id: String, body: String) throws {
        try mutate { model in
            if bug == .editDropsMetadata {
                try model.edit(id: id, body: body)
                return model.forceMetadata(id: id, nil)
            }
            guard bug == .editMovesMessage, let old = model.entry(id: id)?.message else {
                return try model.edit(id: id, body: body)
            }
            try model.delete(id: id)
            var moved = old
            moved.body = body
            moved.createdAt = (model.entries(old.conversation).last?.message.createdAt ?? 0) + 1
            try model.append(moved)
            try model.edit(id: id, body: body)
        }
    }

    func delete(id: String) throws { try mutate { try $0.delete(id: id) } }

    func markRead(user: String, conversation: String, through messageID: String) throws {
        try mutate { model in
            if bug == .markerMovesBack, let entry = model.entry(id: messageID), entry.message.conversation == conversation {
                try model.markRead(user: user, conversation: conversation, through: messageID)
                model.forceMarker(user: user, conversation: conversation, position: entry.position)
                return
            }
            try model.markRead(user: user, conversation: conversation, through: messageID)
        }
    }

    func join(user: String, conversation: String) throws { try mutate { try $0.join(user: user, conversation: conversation) } }
    func leave(user: String, conversation: String) throws { try mutate { try $0.leave(user: user, conversation: conversation) } }

    /// `ri.<lastActivity or ->.<user hex>.<conversation hex or ->`.
    static func inboxToken(_ cursor: ReferenceInboxCursor) -> InboxCursor {
        func hex(_ text: String) -> String { text.utf8.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined() }
        return InboxCursor(token: "ri.\(cursor.lastActivity.map(String.init) ?? "-").\(hex(cursor.user)).\(cursor.conversation.map(hex) ?? "-")")
    }

    static func parseInbox(_ cursor: InboxCursor) throws -> ReferenceInboxCursor {
        func text(_ hex: Substring) -> String? {
            let digits = Array(hex)
            guard digits.count % 2 == 0 else { return nil }
            var bytes: [UInt8] = []
            for i in stride(from: 0, to: digits.count, by: 2) {
                guard let byte = UInt8(String(digits[i...i + 1]), radix: 16) else { return nil }
                bytes.append(byte)
            }
            return String(validating: bytes, as: UTF8.self)
        }
        let parts = cursor.token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "ri", let user = text(parts[2]) else { throw ScrollbackError.invalidCursor("malformed token") }
        let lastActivity = parts[1] == "-" ? nil : Int64(parts[1])
        let conversation = parts[3] == "-" ? nil : text(parts[3])
        if parts[1] != "-" && lastActivity == nil || parts[3] != "-" && conversation == nil {
            throw ScrollbackError.invalidCursor("malformed token")
        }
        return ReferenceInboxCursor(user: user, lastActivity: lastActivity, conversation: conversation)
    }

    func inbox(user: String, after cursor: InboxCursor?, limit: Int) throws -> InboxPage {
        let parsed = try cursor.map(Self.parseInbox)
        return try read { model in
            var page = try model.inbox(user: user, after: parsed, limit: limit)
            if bug == .inboxOmitsQuietConversations { page.conversations.removeAll { $0.lastActivity == nil } }
            return InboxPage(conversations: page.conversations, next: page.next.map(Self.inboxToken))
        }
    }

    func message(id: String) throws -> Message? { try read { try $0.message(id: id) } }

    func latest(in conversation: String, limit: Int) throws -> [Message] {
        try read { try $0.latest(in: conversation, limit: limit) }
    }

    func messages(in conversation: String, from: Int64, through: Int64, order: Order, limit: Int?) throws -> [Message] {
        try read { try $0.messages(in: conversation, from: from, through: through, order: order, limit: limit) }
    }

    func page(in conversation: String, from: Int64, through: Int64, after cursor: Cursor?, limit: Int, order: Order) throws
        -> MessagePage {
        let parsed = try cursor.map { try parse($0, order: order) }
        return try read { model in
            let page = try model.page(in: conversation, from: from, through: through, after: parsed, limit: limit, order: order)
            return MessagePage(messages: page.messages, next: page.next.map(Self.token))
        }
    }

    func page(in conversation: String, after cursor: Cursor?, limit: Int, order: Order) throws -> MessagePage {
        let parsed = try cursor.map { try parse($0, order: order) }
        return try read { model in
            let page = try model.page(in: conversation, after: parsed, limit: limit, order: order)
            var next = page.next
            if bug == .fullLastPageHasCursor, next == nil, limit > 0, page.messages.count == limit,
                let last = page.messages.last, let entry = model.entry(id: last.id)
            {
                next = ReferenceCursor(conversation: conversation, position: entry.position, order: order)
            }
            return MessagePage(messages: page.messages, next: next.map(Self.token))
        }
    }

    func page(in conversation: String, offset: Int, limit: Int, order: Order) throws -> [Message] {
        try read { model in
            let shifted = bug == .offsetOffByOne && offset > 0 ? offset + 1 : offset
            return try model.page(in: conversation, offset: shifted, limit: limit, order: order)
        }
    }

    func count(in conversation: String, after: Int64) throws -> Int {
        try read { try $0.count(in: conversation, after: after) }
    }

    func unreadCount(user: String, in conversation: String) throws -> Int {
        try read { try $0.unreadCount(user: user, in: conversation) }
    }

    func unreadCounts(user: String, conversations: [String]) throws -> [Int] {
        try read { model in
            guard bug == .unreadCountsDeduplicated else { return try model.unreadCounts(user: user, conversations: conversations) }
            var seen = Set<String>()
            return try model.unreadCounts(user: user, conversations: conversations.filter { seen.insert($0).inserted })
        }
    }

    func readMarker(user: String, conversation: String) throws -> String? {
        try read { model in
            let answer = try model.readMarker(user: user, conversation: conversation)
            guard bug == .markerNamesAnOlderMessage, answer == nil,
                  let marker = model.marker(user: user, conversation: conversation) else { return answer }
            return model.entries(conversation).last { $0.position <= marker }?.message.id
        }
    }

    func feed(_ conversations: [String], limit: Int) throws -> [Message] {
        try read { model in
            guard bug == .feedTiesOldestFirst else { return try model.feed(conversations, limit: limit) }
            let all = try model.feed(conversations, limit: MessageStore.maxLimit)
            let sorted = all.enumerated().sorted { a, b in
                a.element.createdAt != b.element.createdAt ? a.element.createdAt > b.element.createdAt : a.offset > b.offset
            }.map(\.element)
            return Array(sorted.prefix(limit))
        }
    }

    func latestMessage(in conversations: [String]) throws -> [Message?] {
        try read { try $0.latestMessage(in: conversations) }
    }

    func conversations(limit: Int) throws -> [ConversationSummary] { try read { try $0.conversations(limit: limit) } }

    func checkpoint() throws { try read { _ in } }
    func sync() throws { try read { _ in } }

    func compact() throws -> CompactionReport {
        try read { _ in CompactionReport(segmentsRewritten: 0, recordsMoved: 0, logBytesBefore: 0, logBytesAfter: 0) }
    }

    func verify() throws -> [String] { try read { _ in [] } }

    /// Search cursors: "rs.<n>", the model's cursor kept here.
    let searchCursors = Locked<[String: ReferenceSearchCursor]>([:])

    /// Whether `disableSearchIndex()` turned search off (searches then refuse, as the store's).
    let searchOff = Locked(false)

    func enableSearchIndex() throws { try read { _ in searchOff.withLock { $0 = false } } }
    func disableSearchIndex() throws { try read { _ in searchOff.withLock { $0 = true } } }
    var isSearchIndexEnabled: Bool { get throws { try read { _ in !searchOff.withLock { $0 } } } }

    private func refuseSearchWhenOff() throws {
        if searchOff.withLock({ $0 }) { throw ScrollbackError.invalidArgument(argument: "search", reason: "the search index is off") }
    }

    func search(_ query: String, in scope: SearchScope, after cursor: Cursor?, limit: Int) throws -> MessagePage {
        try refuseSearchWhenOff()
        let parsed = try cursor.map { token in
            guard var found = searchCursors.withLock({ $0[token.token] }) else { throw ScrollbackError.invalidCursor("unknown token") }
            if bug == .searchCursorSkipsTies { found.position.seq = Int.min }
            return found
        }
        return try read { model in
            let page = try model.search(query, in: scope.referenceNames, after: parsed, limit: limit)
            let messages = page.messages
            let next = page.next.map { cursor in
                searchCursors.withLock { cursors -> Cursor in
                    let token = "rs.\(cursors.count)"
                    cursors[token] = cursor
                    return Cursor(token: token)
                }
            }
            return MessagePage(messages: messages, next: next)
        }
    }

    func searchCount(_ query: String, in scope: SearchScope) throws -> Int {
        try refuseSearchWhenOff()
        return try read { try $0.allSearchMatches(query, in: scope.referenceNames).count }
    }

    var statistics: StoreStatistics {
        get throws {
            try read { model in
                let cache = StoreStatistics.Cache(hits: 0, misses: 0, evictions: 0, bytes: 0, capacityBytes: 0)
                return StoreStatistics(
                    messages: model.liveMessageCount, conversations: model.liveConversationCount, pageFileBytes: 0,
                    rawLogBytes: 0, sealedLogBytes: 0, garbageRatio: 0, pageCache: cache, blockCache: cache, commits: 0,
                    checkpoints: 0, compactions: 0, lastCompactionBytesBefore: 0, lastCompactionBytesAfter: 0)
            }
        }
    }
}
