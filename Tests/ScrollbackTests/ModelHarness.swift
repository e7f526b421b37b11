@testable import ScrollbackReferenceModel
import Scrollback
import ScrollbackIO
import Testing
import TestSupport

/// A write the harness performs on the store and on the reference model alike.
enum WriteOperation: CustomStringConvertible {
    case append(Message)
    case batch(WriteBatch)
    case edit(id: String, body: String)
    case delete(id: String)
    case markRead(user: String, conversation: String, through: String)
    case join(user: String, conversation: String)
    case leave(user: String, conversation: String)
    case load([Message])

    var description: String {
        switch self {
        case let .append(m): "append(\(m.id) in \(m.conversation.prefix(12)) at \(m.createdAt))"
        case let .batch(b): "batch(\(b.operations.count) operations)"
        case let .edit(id, body): "edit(\(id), \(body.utf8.count) bytes)"
        case let .delete(id): "delete(\(id))"
        case let .markRead(user, conversation, through): "markRead(\(user), \(conversation.prefix(12)), \(through))"
        case let .join(user, conversation): "join(\(user), \(conversation.prefix(12)))"
        case let .leave(user, conversation): "leave(\(user), \(conversation.prefix(12)))"
        case let .load(messages): "load(\(messages.count) messages)"
        }
    }

    /// Conversations whose contents the operation may change.
    var conversations: [String] {
        switch self {
        case let .append(m): [m.conversation]
        case let .batch(b):
            b.operations.compactMap {
                switch $0 {
                case let .append(m): m.conversation
                case let .markRead(_, conversation, _), let .join(_, conversation), let .leave(_, conversation): conversation
                default: nil
                }
            }
        case let .markRead(_, conversation, _), let .join(_, conversation), let .leave(_, conversation): [conversation]
        case let .load(messages): messages.map(\.conversation)
        default: []
        }
    }
}

enum WriteResult: Equatable {
    case outcome(AppendOutcome)
    case outcomes([AppendOutcome])
    case loaded(LoadSummary)
    case done
}

extension ReferenceStore {
    mutating func perform(_ operation: WriteOperation) throws -> WriteResult {
        switch operation {
        case let .append(m): .outcome(try append(m))
        case let .batch(b): .outcomes(try write(b))
        case let .load(messages): .loaded(try load(messages))
        case let .edit(id, body): try { try edit(id: id, body: body); return .done }()
        case let .delete(id): try { try delete(id: id); return .done }()
        case let .markRead(user, conversation, through):
            try { try markRead(user: user, conversation: conversation, through: through); return .done }()
        case let .join(user, conversation): try { try join(user: user, conversation: conversation); return .done }()
        case let .leave(user, conversation): try { try leave(user: user, conversation: conversation); return .done }()
        }
    }
}

extension StoreUnderTest {
    func perform(_ operation: WriteOperation) throws -> WriteResult {
        switch operation {
        case let .append(m): .outcome(try append(m))
        case let .batch(b): .outcomes(try write(b))
        case let .load(messages): .loaded(try load(messages))
        case let .edit(id, body): try { try edit(id: id, body: body); return .done }()
        case let .delete(id): try { try delete(id: id); return .done }()
        case let .markRead(user, conversation, through):
            try { try markRead(user: user, conversation: conversation, through: through); return .done }()
        case let .join(user, conversation): try { try join(user: user, conversation: conversation); return .done }()
        case let .leave(user, conversation): try { try leave(user: user, conversation: conversation); return .done }()
        }
    }
}

/// True when `actual` is the error the model expects: the same case and, for invalid
/// arguments, the same argument. (`feed`/`latestMessage` may report too many conversations
/// as `invalidArgument(conversations)` or `limitExceeded`.)
/// A keyset page with its cursor reduced to whether there is one (the store's tokens are
/// opaque; the model's are positions).
struct PageShape: Equatable {
    var messages: [Message]
    var hasNext: Bool
}

func errorMatches(_ expected: ScrollbackError, _ actual: any Error) -> Bool {
    guard let actual = actual as? ScrollbackError else { return false }
    switch (expected, actual) {
    case let (.invalidArgument(a, _), .invalidArgument(b, _)):
        return a == b || (a == "conversations" && b == "conversation")
    case (.invalidArgument("conversations", _), .limitExceeded): return true
    case (.notFound, .notFound), (.invalidCursor, .invalidCursor), (.limitExceeded, .limitExceeded), (.closed, .closed):
        return true
    case let (.idConflict(a, c), .idConflict(b, d)): return a == b && c == d
    default: return false
    }
}

/// Everything a crash may change, read through the public queries: the full contents of
/// every conversation, every read marker (as unread counts), the conversation list and the
/// lookup of every id ever used.
struct StateDump: Equatable {
    var messages: [String: [Message]] = [:]
    var unread: [String: Int] = [:]
    /// Each user's whole inbox (memberships, with activity and unread counts).
    var inboxes: [String: [InboxEntry]] = [:]
    var summaries: [ConversationSummary] = []
    var byID: [String: Message?] = [:]
    var liveMessages = 0
    var liveConversations = 0

    func difference(from other: StateDump) -> String {
        if messages != other.messages {
            for key in Set(messages.keys).union(other.messages.keys).sorted() where messages[key] != other.messages[key] {
                let a = messages[key] ?? [], b = other.messages[key] ?? []
                let first = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
                return "conversation \(key): \(a.count) vs \(b.count) messages, first difference at \(first): "
                    + "\(a.dropFirst(first).first.map(describe) ?? "none") vs \(b.dropFirst(first).first.map(describe) ?? "none")"
            }
        }
        if unread != other.unread {
            let keys = Set(unread.keys).union(other.unread.keys).sorted().filter { unread[$0] != other.unread[$0] }
            return "unread counts differ for \(keys.prefix(3)): \(keys.prefix(3).map { "\(unread[$0] ?? -1) vs \(other.unread[$0] ?? -1)" })"
        }
        if inboxes != other.inboxes {
            let users = Set(inboxes.keys).union(other.inboxes.keys).sorted().filter { inboxes[$0] != other.inboxes[$0] }
            return "inboxes differ for \(users.prefix(2)): \(users.prefix(2).map { "\(inboxes[$0] ?? []) vs \(other.inboxes[$0] ?? [])" })"
        }
        if summaries != other.summaries { return "conversation lists differ: \(summaries.prefix(4)) vs \(other.summaries.prefix(4))" }
        if byID != other.byID {
            let keys = Set(byID.keys).union(other.byID.keys).sorted().filter { byID[$0] != other.byID[$0] }
            return "message(id:) differs for \(keys.prefix(3)): \(keys.prefix(3).map { "\(String(describing: byID[$0])) vs \(String(describing: other.byID[$0]))" })"
        }
        return "statistics differ: \(liveMessages)/\(liveConversations) vs \(other.liveMessages)/\(other.liveConversations)"
    }
}

func describe(_ message: Message) -> String {
    "\(message.id)@\(message.conversation.prefix(12)):\(message.createdAt)\(message.edited ? " edited" : "") body \(message.body.utf8.count)B"
}

func describe(_ messages: [Message]) -> String {
    "\(messages.count) [" + messages.prefix(16).map { "\($0.id)@\($0.createdAt)\($0.edited ? "e" : "")/\($0.body.utf8.count)B" }
        .joined(separator: ", ") + (messages.count > 16 ? ", …]" : "]")
}

/// Drives random operations against a store and the reference model, comparing every query
/// primitive after every step. Records the first mismatch as a test issue naming the seed and
/// step, then stops (`failed`).
final class ModelHarness {
    struct Configuration: Sendable, CustomStringConvertible {
        var seed: UInt64
        var steps: Int
        var durability: Durability = .full
        var autoCompactGarbageRatio: Double? = nil
        /// Simulated power losses (needs a `CrashSimulatingFileSystem`).
        var crashes = true
        /// A replica follows the store's change stream (a real `MessageStore` only) and is
        /// compared with the model every 250 steps and at the end. Only meaningful in `.full`
        /// durability: in `.normal`, a power loss may take back changes a follower has read.
        var followsChanges = false
        var maxBodyBytes = 300
        /// The step at which the search index is turned on (0: when the store is first opened,
        /// so every write maintains it; later: built online over the messages written so far);
        /// nil: never. Searches are compared from then on.
        var searchIndexStep: Int? = 0

        var description: String {
            "seed \(seed), \(steps) steps, \(durability), auto-compact \(autoCompactGarbageRatio.map { "\($0)" } ?? "off")"
        }
    }

    let configuration: Configuration
    var rng: SeededRandom
    /// nil when the store is not on a crash-simulating file system (the reference-backed self
    /// test): then "crashes" are plain reopens.
    let fileSystem: CrashSimulatingFileSystem?
    let openStore: () throws -> any StoreUnderTest
    var store: (any StoreUnderTest)?
    var model: ReferenceStore
    /// States a crash may legally recover to (besides the write in flight): the latest
    /// acknowledged state in `.full` mode; every state since the last sync in `.normal` mode.
    var recoverable: [ReferenceStore]
    var step = 0
    var failed = false
    var phase = "setup"

    let conversationNames: [String]
    let users = ["u0", "u1", "u2", "u3", "u4"]
    var usedIDs: [String] = []
    var usedIDSet: Set<String> = []
    var nextID = 0
    var savedCursors: [(token: Cursor, cursor: ReferenceCursor, order: Order)] = []
    /// The change-stream follower (`Configuration.followsChanges`): a replica store and where
    /// its reading stands in the store's change stream.
    var replica: MessageStore?
    var replicaPosition: ChangePosition?
    /// Pages the replica applied, and the replica mark the last marked page set (every other
    /// page goes through `apply(_:mark:)`).
    var replicaPages: UInt64 = 0
    var replicaMark: ReplicaMark?
    var counters: [String: Int] = [:]
    /// Whether the search index has been turned on (searches are compared).
    var searchEnabled = false
    /// The harness turned the index off (`disableSearchIndex`); it turns it on again later.
    var searchDisabled = false

    static let longConversation = "c-" + String(repeating: "L", count: 253)
    /// Conversations only ever joined: no message is appended to them.
    static let quietConversations = ["q0", "q1", "q2"]

    init(
        configuration: Configuration, fileSystem: CrashSimulatingFileSystem?,
        openStore: @escaping () throws -> any StoreUnderTest
    ) {
        self.configuration = configuration
        rng = SeededRandom(seed: configuration.seed)
        self.fileSystem = fileSystem
        self.openStore = openStore
        model = ReferenceStore(maxBodyBytes: configuration.maxBodyBytes)
        recoverable = [model]
        conversationNames = (0..<10).map { "c\($0)" } + [Self.longConversation]
    }

    /// The options the store under test must be opened with.
    static func options(_ configuration: Configuration) -> StoreOptions {
        var options = StoreOptions()
        options.cacheBytes = 1 << 20
        options.durability = configuration.durability
        options.maxBodyBytes = configuration.maxBodyBytes
        options.pageSize = 4096
        options.segmentBytes = 64 << 10
        options.checkpointDirtyBytes = 64 << 10
        options.checkpointLogBytes = 96 << 10
        options.autoCompactGarbageRatio = configuration.autoCompactGarbageRatio
        // Scoped searches: always a merge of per-conversation seeks, the default choice, or
        // always a filtered scan of the rarest term's postings.
        options.searchPostingsScannedPerSeek = [0, 128, 1 << 40][Int(configuration.seed % 3)]
        // Candidates checked by probes only, by the default choice, or by a merge of the two
        // rarest terms' postings whenever they are single terms.
        options.searchDecodesPerProbe = [0, 70, 1e12][Int(configuration.seed / 3 % 3)]
        return options
    }

    var context: String {
        "\(configuration), step \(step) [\(phase)] (replay: SCROLLBACK_SEED=\(configuration.seed))"
    }

    func fail(_ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard !failed else { return }
        failed = true
        Issue.record("\(message) — \(context)", sourceLocation: sourceLocation)
    }

    // MARK: Random values

    func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &rng) < percent }
    func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    func pick<T>(_ values: [T]) -> T { values[Int.random(in: 0..<values.count, using: &rng)] }

    func randomConversation() -> String {
        chance(4) ? Self.longConversation : pick(Array(conversationNames.dropLast()))
    }

    func randomTimestamp() -> Int64 {
        switch int(0...99) {
        case 0..<75: Int64(int(0...150)) * 1000  // few distinct values: many ties
        case 75..<80: 0
        case 80..<85: ReferenceStore.maxCreatedAt
        default: Int64.random(in: 0...ReferenceStore.maxCreatedAt, using: &rng)
        }
    }

    func randomBody() -> String {
        switch int(0...99) {
        case 0..<5: return ""
        case 5..<10: return String(repeating: "b", count: configuration.maxBodyBytes)
        case 10..<25: return "héllo ✓ 🙂 \(int(0...999))" + String(repeating: "é", count: int(0...20))
        case 25..<45: return (0..<int(1...8)).map { _ in pick(Self.searchVocabulary) }.joined(separator: pick([" ", ", ", "-", "。", ""]))
        default:
            let letters = Array("abcdefghijklmnopqrstuvwxyz ")
            return String((0..<int(0...60)).map { _ in letters[int(0...letters.count - 1)] })
        }
    }

    /// Words for search: diacritics, compatibility forms, apostrophes, digits, CJK runs.
    static let searchVocabulary = [
        "Café", "cafe", "CAFÉ", "naïve", "naive", "don't", "hello", "help", "HELLO", "Hélène", "über", "Straße", "x1",
        "42", "2024", "ｈｅｌｌｏ", "ﬁne", "e\u{301}cole", "école", "前言你好", "你好", "好", "東京", "東京都", "こんにちは", "안녕하세요",
        "你", "世界", "hello世界", "ｶﾀｶﾅ", "カタカナ", "㍻", "平成", "ｶﾞ", "a", "ab", "abc", "abd", "zzz", String(repeating: "long", count: 10),
        String(repeating: "long", count: 9) + "er",
    ]

    func freshID() -> String {
        nextID += 1
        let id = "m\(nextID)"
        let result = chance(3) ? id + String(repeating: "x", count: ReferenceStore.maxIDBytes - id.utf8.count) : id
        noteID(result)
        return result
    }

    func noteID(_ id: String) {
        if usedIDSet.insert(id).inserted { usedIDs.append(id) }
    }

    func liveIDs(_ state: ReferenceStore, in conversation: String? = nil) -> [String] {
        if let conversation { return state.entries(conversation).map(\.message.id) }
        return state.conversationOfID.keys.sorted()
    }

    /// A message valid on `state`: an id live in `state` keeps its conversation (a duplicate),
    /// a fresh or deleted id goes to a random conversation.
    func randomMessage(id: String? = nil, in state: ReferenceStore) -> Message {
        let id: String = {
            if let id { return id }
            let live = liveIDs(state)
            let deleted = usedIDs.filter { state.conversationOfID[$0] == nil }
            switch int(0...99) {
            case 0..<12 where !live.isEmpty: return pick(live)       // duplicate
            case 12..<22 where !deleted.isEmpty: return pick(deleted)  // reuse of a deleted id
            default: return freshID()
            }
        }()
        return Message(
            id: id, conversation: state.conversationOfID[id] ?? randomConversation(), sender: chance(3) ? String(repeating: "s", count: 255) : "s\(int(0...3))",
            createdAt: randomTimestamp(), kind: pick(MessageKind.allCases), body: randomBody(),
            replyTo: chance(20) ? (usedIDs.isEmpty ? "nothing" : pick(usedIDs)) : nil, edited: chance(10),
            metadata: randomMetadata())
    }

    /// Mostly none; else 0…40 random bytes (empty: stored as none), rarely the largest allowed.
    func randomMetadata() -> [UInt8]? {
        switch int(0...99) {
        case 0..<70: return nil
        case 70..<99: return (0..<int(0...40)).map { _ in UInt8(truncatingIfNeeded: int(0...255)) }
        default: return [UInt8](repeating: UInt8(truncatingIfNeeded: int(0...255)), count: Message.maxMetadataBytes)
        }
    }

    /// A single operation that is valid on `state` (though it may be a no-op: a duplicate
    /// append, a marker moving back).
    func randomValidOperation(on state: ReferenceStore) -> WriteOperation {
        let live = liveIDs(state)
        switch int(0...99) {
        case 0..<55: return .append(randomMessage(in: state))
        case 55..<66 where !live.isEmpty: return .edit(id: pick(live), body: randomBody())
        case 66..<76 where !live.isEmpty: return .delete(id: pick(live))
        case 76..<92 where !live.isEmpty:
            let id = pick(live)
            return .markRead(user: pick(users), conversation: state.conversationOfID[id]!, through: id)
        case 92..<96:
            // Sometimes a conversation that never gets a message (last activity nil in the inbox).
            return .join(user: pick(users), conversation: chance(30) ? pick(Self.quietConversations) : randomConversation())
        case 96..<100:
            // Mostly a conversation the user is in (else a no-op).
            let user = pick(users)
            let joined = (state.memberships[user] ?? []).sorted()
            return .leave(user: user, conversation: chance(80) && !joined.isEmpty ? pick(joined) : randomConversation())
        default: return .append(randomMessage(in: state))
        }
    }

    /// One operation that must fail on `state` (and so fail its whole batch).
    func randomInvalidOperation(on state: ReferenceStore) -> WriteOperation {
        let live = liveIDs(state)
        var m = randomMessage(id: freshID(), in: state)
        switch int(0...19) {
        case 0: m.id = ""
        case 1: m.id = String(repeating: "i", count: ReferenceStore.maxIDBytes + 1)
        case 2: m.conversation = ""
        case 3: m.conversation = String(repeating: "c", count: 256)
        case 4: m.sender = ""
        case 5: m.sender = String(repeating: "s", count: 256)
        case 6: m.createdAt = -1
        case 7: m.createdAt = ReferenceStore.maxCreatedAt + 1
        case 8: m.body = String(repeating: "b", count: configuration.maxBodyBytes + 1)
        case 9: m.replyTo = ""
        case 10: m.replyTo = String(repeating: "r", count: ReferenceStore.maxIDBytes + 1)
        case 11: return .edit(id: freshID(), body: "x")                 // missing message
        case 12: return .delete(id: freshID())                          // missing message
        case 13 where !live.isEmpty:                                    // body over the limit
            return .edit(id: pick(live), body: String(repeating: "é", count: configuration.maxBodyBytes / 2 + 1))
        case 14: return .markRead(user: pick(users), conversation: randomConversation(), through: freshID())
        case 16: return .join(user: chance(50) ? "" : String(repeating: "u", count: 256), conversation: randomConversation())
        case 17: return .leave(user: pick(users), conversation: chance(50) ? "" : String(repeating: "c", count: 256))
        case 18: m.metadata = [UInt8](repeating: 7, count: Message.maxMetadataBytes + 1)
        case 15 where !live.isEmpty:                                    // an id live in another conversation
            let id = pick(live)
            m.id = id
            m.conversation = pick(conversationNames.filter { $0 != state.conversationOfID[id] })
        default:
            // Through a message of another conversation.
            if let id = live.first(where: { state.conversationOfID[$0] != conversationNames[0] }) {
                return .markRead(user: pick(users), conversation: conversationNames[0], through: id)
            }
            m.id = ""
        }
        return .append(m)
    }

    func randomBatch(on state: ReferenceStore, invalid: Bool) -> WriteBatch {
        var scratch = state
        var operations: [WriteOperation] = []
        for _ in 0..<int(1...6) {
            let operation = randomValidOperation(on: scratch)
            _ = try? scratch.perform(operation)
            operations.append(operation)
        }
        if invalid { operations.insert(randomInvalidOperation(on: scratch), at: int(0...operations.count)) }
        var batch = WriteBatch()
        for operation in operations {
            switch operation {
            case let .append(m): batch.append(m)
            case let .edit(id, body): batch.edit(id: id, body: body)
            case let .delete(id): batch.delete(id: id)
            case let .markRead(user, conversation, through): batch.markRead(user: user, conversation: conversation, through: through)
            case let .join(user, conversation): batch.join(user: user, conversation: conversation)
            case let .leave(user, conversation): batch.leave(user: user, conversation: conversation)
            case .batch, .load: break
            }
        }
        return batch
    }

    /// A bulk load of 0…40 messages (fresh, duplicate and reused ids, equal timestamps, the
    /// edited flag set at random: a load ignores it), sometimes with one invalid message.
    func randomLoad(on state: ReferenceStore, invalid: Bool) -> WriteOperation {
        var messages: [Message] = []
        for _ in 0..<int(0...40) {
            var m = randomMessage(in: state)
            m.edited = chance(10)
            if chance(10), let previous = messages.last {  // a duplicate inside the load
                m.id = previous.id
                m.conversation = previous.conversation
            }
            messages.append(m)
        }
        if invalid, case let .append(bad) = randomInvalidOperation(on: state) {
            messages.insert(bad, at: int(0...messages.count))
        }
        return .load(messages)
    }

    func randomWrite() -> WriteOperation {
        switch int(0...99) {
        case 0..<12: .batch(randomBatch(on: model, invalid: chance(30)))
        case 12..<14: randomLoad(on: model, invalid: chance(20))
        case 14..<17: randomInvalidOperation(on: model)
        default: randomValidOperation(on: model)
        }
    }

    // MARK: Comparing

    /// Runs the same query on the model and the store; records a mismatch (results, or
    /// errors of a different case/argument).
    @discardableResult
    func same<T: Equatable>(
        _ what: @autoclosure () -> String, model expected: () throws -> T, store actual: () throws -> T,
        show: (T) -> String = { "\($0)" }, sourceLocation: SourceLocation = #_sourceLocation
    ) -> T? {
        guard !failed else { return nil }
        let modelResult: Result<T, ScrollbackError>
        do { modelResult = .success(try expected()) } catch { modelResult = .failure(error as! ScrollbackError) }
        do {
            let value = try actual()
            switch modelResult {
            case let .success(wanted) where wanted == value: return value
            case let .success(wanted):
                fail("\(what()): store returned \(show(value)), model \(show(wanted))", sourceLocation: sourceLocation)
            case let .failure(error):
                fail("\(what()): store returned \(show(value)), model throws \(error)", sourceLocation: sourceLocation)
            }
        } catch {
            switch modelResult {
            case let .failure(wanted) where errorMatches(wanted, error): return nil
            case let .failure(wanted): fail("\(what()): store threw \(error), model throws \(wanted)", sourceLocation: sourceLocation)
            case let .success(wanted): fail("\(what()): store threw \(error), model returned \(show(wanted))", sourceLocation: sourceLocation)
            }
        }
        return nil
    }

    func count(_ key: String) { counters[key, default: 0] += 1 }
    func count(_ key: String, _ amount: Int) { counters[key, default: 0] += amount }

    /// Performs a write on both sides; they must agree on the result or the error.
    func write(_ operation: WriteOperation) {
        guard let store, !failed else { return }
        var candidate = model
        let acknowledged = same("\(operation)", model: { try candidate.perform(operation) }, store: { try store.perform(operation) })
        if acknowledged != nil {
            model = candidate
            acknowledge()
            count("acknowledged writes")
        } else if !failed {
            count("rejected writes")
        }
    }

    func acknowledge() {
        if configuration.durability == .full { recoverable = [model] } else { recoverable.append(model) }
    }

    func synced() { recoverable = [model] }

    // MARK: Checking every primitive

    func checkConversation(_ conversation: String) {
        guard let store, !failed else { return }
        let n = model.entries(conversation).count
        let c = String(conversation.prefix(12))
        let limit = int(0...n + 2)
        same("latest(\(c), \(limit))", model: { try model.latest(in: conversation, limit: limit) },
             store: { try store.latest(in: conversation, limit: limit) }, show: describe)
        for order in [Order.oldestFirst, .newestFirst] {
            let from = chance(20) ? 0 : randomTimestamp()
            let through = chance(20) ? ReferenceStore.maxCreatedAt : min(ReferenceStore.maxCreatedAt, from + Int64(int(0...60_000)))
            let rangeLimit: Int? = chance(50) ? nil : int(0...n + 1)
            same("messages(\(c), \(from)...\(through), \(order), \(rangeLimit.map(String.init) ?? "nil"))",
                 model: { try model.messages(in: conversation, from: from, through: through, order: order, limit: rangeLimit) },
                 store: { try store.messages(in: conversation, from: from, through: through, order: order, limit: rangeLimit) },
                 show: describe)
            let offset = int(0...n + 1), pageLimit = int(0...12)
            same("page(\(c), offset \(offset), \(pageLimit), \(order))",
                 model: { try model.page(in: conversation, offset: offset, limit: pageLimit, order: order) },
                 store: { try store.page(in: conversation, offset: offset, limit: pageLimit, order: order) }, show: describe)
            walk(conversation, order: order, pageSize: int(1...max(1, n / 4 + 1)))
            walk(conversation, order: order, pageSize: int(1...max(1, n / 4 + 1)), range: (from, through))
        }
        let after = chance(10) ? ReferenceStore.maxCreatedAt : randomTimestamp()
        same("count(\(c), after \(after))", model: { try model.count(in: conversation, after: after) },
             store: { try store.count(in: conversation, after: after) })
        for user in [pick(users), pick(users)] {
            same("unreadCount(\(user), \(c))", model: { try model.unreadCount(user: user, in: conversation) },
                 store: { try store.unreadCount(user: user, in: conversation) })
            same("readMarker(\(user), \(c))", model: { try model.readMarker(user: user, conversation: conversation) },
                 store: { try store.readMarker(user: user, conversation: conversation) })
        }
        count("conversation checks")
    }

    /// A full keyset walk, of the whole conversation or of a time range; pages must match the
    /// model's page for page (the store's tokens are opaque, so the model follows by position).
    func walk(_ conversation: String, order: Order, pageSize: Int, range: (from: Int64, through: Int64)? = nil) {
        guard let store, !failed else { return }
        var token: Cursor?
        var cursor: ReferenceCursor?
        let n = model.entries(conversation).count
        for pageNumber in 0...(n / pageSize + 1) {
            let label = "page(\(conversation.prefix(12)), \(range.map { "\($0.from)...\($0.through), " } ?? "")after page "
                + "\(pageNumber) of a walk, \(pageSize), \(order))"
            let wanted: ReferencePage
            do {
                wanted = try range.map {
                    try model.page(in: conversation, from: $0.from, through: $0.through, after: cursor, limit: pageSize, order: order)
                } ?? model.page(in: conversation, after: cursor, limit: pageSize, order: order)
            } catch {
                fail("\(label): the model threw \(error)")
                return
            }
            let got: MessagePage
            do {
                got = try range.map {
                    try store.page(in: conversation, from: $0.from, through: $0.through, after: token, limit: pageSize, order: order)
                } ?? store.page(in: conversation, after: token, limit: pageSize, order: order)
            } catch {
                fail("\(label): store threw \(error)")
                return
            }
            if got.messages != wanted.messages {
                fail("\(label): store returned \(describe(got.messages)), model \(describe(wanted.messages))")
                return
            }
            if (got.next == nil) != (wanted.next == nil) {
                fail("\(label): store's next cursor is \(got.next == nil ? "nil" : "set"), the model's is \(wanted.next == nil ? "nil" : "set")")
                return
            }
            guard let next = got.next, let nextCursor = wanted.next else {
                count("keyset walks")
                return
            }
            if chance(3) {
                if savedCursors.count >= 16 { savedCursors.remove(at: int(0...15)) }
                savedCursors.append((next, nextCursor, order))
            }
            token = next
            cursor = nextCursor
        }
        fail("keyset walk of \(conversation.prefix(12)) did not end after \(n / pageSize + 2) pages of \(pageSize)")
    }

    func checkSavedCursor() {
        guard let store, !failed, !savedCursors.isEmpty else { return }
        let saved = pick(savedCursors)
        var conversation = saved.cursor.conversation
        if chance(20) { conversation = pick(conversationNames.filter { $0 != conversation }) }  // → invalidCursor
        var order = saved.order
        if chance(15) { order = order == .oldestFirst ? .newestFirst : .oldestFirst }  // → invalidCursor
        let limit = int(1...8)
        same("page(\(conversation.prefix(12)), after saved cursor \(saved.cursor.position) of \(saved.cursor.conversation.prefix(12)) "
                + "issued \(saved.order), \(limit), \(order))",
             model: { try model.page(in: conversation, after: saved.cursor, limit: limit, order: order).messages },
             store: { try store.page(in: conversation, after: saved.token, limit: limit, order: order).messages },
             show: describe)
        // The same cursor continues a walk of a time range (either kind of walk issues it).
        let from = randomTimestamp(), through = chance(30) ? ReferenceStore.maxCreatedAt : randomTimestamp()
        same("page(\(conversation.prefix(12)), \(from)...\(through), after saved cursor \(saved.cursor.position), \(limit), \(order))",
             model: {
                 let page = try model.page(in: conversation, from: from, through: through, after: saved.cursor, limit: limit, order: order)
                 return PageShape(messages: page.messages, hasNext: page.next != nil)
             },
             store: {
                 let page = try store.page(in: conversation, from: from, through: through, after: saved.token, limit: limit, order: order)
                 return PageShape(messages: page.messages, hasNext: page.next != nil)
             },
             show: { "\(describe($0.messages)), next \($0.hasNext ? "set" : "nil")" })
        count("saved cursor checks")
    }

    func checkGlobal() {
        guard let store, !failed else { return }
        let limit = int(0...model.liveConversationCount + 1)
        same("conversations(limit: \(limit))", model: { try model.conversations(limit: limit) },
             store: { try store.conversations(limit: limit) })
        var set = (0..<int(1...5)).map { _ in chance(10) ? "unknown" : randomConversation() }
        if chance(20) { set.append(set[0]) }  // a duplicate counts once
        let feedLimit = int(0...30)
        same("feed(\(set.map { $0.prefix(12) }), \(feedLimit))", model: { try model.feed(set, limit: feedLimit) },
             store: { try store.feed(set, limit: feedLimit) }, show: describe)
        same("latestMessage(in: \(set.map { $0.prefix(12) }))", model: { try model.latestMessage(in: set) },
             store: { try store.latestMessage(in: set) }, show: { $0.map { $0.map(describe) ?? "nil" }.description })
        let user = pick(users)
        same("unreadCounts(\(user), \(set.map { $0.prefix(12) }))", model: { try model.unreadCounts(user: user, conversations: set) },
             store: { try store.unreadCounts(user: user, conversations: set) })
        walkInbox(user: chance(5) ? "nobody" : pick(users), pageSize: int(0...4))
        for _ in 0..<3 where !usedIDs.isEmpty {
            let id = pick(usedIDs)
            same("message(id: \(id.prefix(16)))", model: { try model.message(id: id) }, store: { try store.message(id: id) })
        }
        same("statistics (messages, conversations)",
             model: { [model.liveMessageCount, model.liveConversationCount] },
             store: { let s = try store.statistics; return [s.messages, s.conversations] })
        checkSavedCursor()
    }

    /// A whole inbox walk; pages must match the model's page for page (the store's tokens are
    /// opaque, so the model follows its own cursors). Then a cursor of this walk given for
    /// another user's inbox must be `invalidCursor`.
    func walkInbox(user: String, pageSize: Int) {
        guard let store, !failed else { return }
        var token: InboxCursor?
        var cursor: ReferenceInboxCursor?
        let n = model.memberships[user]?.count ?? 0
        // A page size of 0 makes no progress: one page, then stop.
        for pageNumber in 0...(pageSize == 0 ? 0 : n / pageSize + 1) {
            let label = "inbox(\(user), after page \(pageNumber) of a walk, \(pageSize))"
            let wanted: ReferenceInboxPage
            do { wanted = try model.inbox(user: user, after: cursor, limit: pageSize) } catch {
                fail("\(label): the model threw \(error)")
                return
            }
            let got: InboxPage
            do { got = try store.inbox(user: user, after: token, limit: pageSize) } catch {
                fail("\(label): the store threw \(error)")
                return
            }
            guard got.conversations == wanted.conversations, (got.next == nil) == (wanted.next == nil) else {
                fail("\(label): store returned \(got.conversations) next \(got.next == nil ? "nil" : "set"), "
                     + "model \(wanted.conversations) next \(wanted.next == nil ? "nil" : "set")")
                return
            }
            count("inbox pages")
            guard let next = got.next else { break }
            token = next
            cursor = wanted.next
        }
        if let token, let cursor {
            let other = pick(users.filter { $0 != user } + ["nobody"])
            same("inbox(\(other), after a cursor of \(user)'s inbox)",
                 model: { try model.inbox(user: other, after: cursor, limit: 3).conversations },
                 store: { try store.inbox(user: other, after: token, limit: 3).conversations })
            count("foreign inbox cursor checks")
        }
        count("inbox walks")
    }

    /// A query: sometimes from the vocabulary, mostly a word (cut to a prefix) or CJK terms of
    /// a live message's body, sometimes two; sometimes one without terms (invalid).
    func randomSearchQuery() -> String {
        let roll = int(0...99)
        if roll < 3 { return pick(["", "!!", " - "]) }
        if roll < 25 { return pick(Self.searchVocabulary) + (chance(30) ? " " + pick(Self.searchVocabulary) : "") }
        let ids = liveIDs(model)
        guard !ids.isEmpty, let body = model.entry(id: pick(ids))?.message.body else { return pick(Self.searchVocabulary) }
        let terms = ReferenceSearchTerms.terms(body)
        var parts: [String] = []
        for _ in 0..<int(1...2) {
            if !terms.singles.isEmpty && chance(25) {
                parts.append(pick(Array(terms.singles.union(terms.pairs)).sorted()))
            } else if !terms.words.isEmpty {
                let word = pick(terms.words)
                let cut = String(word.prefix(int(1...max(1, word.count))))
                parts.append(chance(15) ? cut.uppercased() : cut)
            }
        }
        return parts.isEmpty ? pick(Self.searchVocabulary) : parts.joined(separator: chance(50) ? " " : ", ")
    }

    func randomSearchScope() -> SearchScope {
        switch int(0...99) {
        case 0..<40: return .conversation(randomConversation())
        case 40..<70:
            var names = (0..<int(1...4)).map { _ in randomConversation() }
            if chance(15) { names.append("unknown") }
            return .conversations(names)
        default: return .wholeStore
        }
    }

    /// A search compared with the model: its count, and a whole walk page by page (the
    /// store's cursors are opaque; the model follows its own), then the walk's cursor given
    /// with another query must be `invalidCursor`.
    func checkSearch() {
        if searchDisabled, let store, !failed {
            do {
                _ = try store.search("a", in: .wholeStore, after: nil, limit: 1)
                fail("search answered with the index off")
            } catch ScrollbackError.invalidArgument(let argument, _) where argument == "search" {
            } catch {
                fail("search with the index off threw \(error), not invalidArgument(search)")
            }
            return
        }
        guard let store, searchEnabled, !failed else { return }
        let query = randomSearchQuery()
        let scope = randomSearchScope()
        let label = "search(\(query.debugDescription), \(scope))"
        let expected: [ReferenceStore.Entry]
        do { expected = try model.allSearchMatches(query, in: scope.referenceNames) } catch {
            same(label, model: { () throws -> Int in throw error }, store: { try store.searchCount(query, in: scope) })
            same(label + " page", model: { () throws -> [Message] in throw error },
                 store: { try store.search(query, in: scope, after: nil, limit: 5).messages }, show: describe)
            count("invalid searches")
            return
        }
        same("searchCount of " + label, model: { expected.count }, store: { try store.searchCount(query, in: scope) })
        let pageSize = int(1...6)
        var token: Cursor?
        var after: ReferencePosition?
        for pageNumber in 0...(expected.count / pageSize + 1) {
            let pageLabel = "\(label), page \(pageNumber) of \(pageSize)"
            // The model's page, from the matches computed once (as `ReferenceStore.search` pages).
            let remaining = expected.drop { after != nil && !($0.position < after!) }
            let wanted = Array(remaining.prefix(pageSize)).map(\.message)
            let wantedNext = remaining.count > pageSize
            let got: MessagePage
            do { got = try store.search(query, in: scope, after: token, limit: pageSize) } catch {
                fail("\(pageLabel): the store threw \(error)")
                return
            }
            guard got.messages == wanted, (got.next != nil) == wantedNext else {
                fail("\(pageLabel): store returned \(describe(got.messages)) next \(got.next == nil ? "nil" : "set"), "
                     + "model \(describe(wanted)) next \(wantedNext ? "set" : "nil")")
                return
            }
            count("search pages")
            guard let next = got.next else { break }
            token = next
            after = remaining.prefix(pageSize).last?.position
        }
        if let token {
            // One more term: another search, whose cursors this one's are not.
            same("\(label) continued with a cursor of another query",
                 model: { () throws -> [Message] in throw ScrollbackError.invalidCursor("cursor of another search") },
                 store: { try store.search(query + " zqxj", in: scope, after: token, limit: 3).messages }, show: describe)
        }
        count("search walks")
    }

    /// Turns the search index on (again after a reopen: a crash may have lost some of its
    /// build steps, and calling it again finishes the build).
    func enableSearch() {
        guard let store, !failed else { return }
        let previous = phase
        phase = "enable search"
        do { try store.enableSearchIndex() } catch { fail("enableSearchIndex() threw \(error)") }
        searchEnabled = true
        searchDisabled = false
        phase = previous
    }

    /// Turns the index off (its pages freed; `verifyStore` checks the page accounting).
    func disableSearch() {
        guard let store, !failed else { return }
        let previous = phase
        phase = "disable search"
        do {
            try store.disableSearchIndex()
            if try store.isSearchIndexEnabled { fail("the search index is still on after disableSearchIndex()") }
        } catch {
            fail("disableSearchIndex() threw \(error)")
        }
        searchEnabled = false
        searchDisabled = true
        count("search index turned off")
        phase = previous
    }

    func checkAfter(_ operation: WriteOperation?) {
        phase = "check"
        // Invalid names are the bad-input tests' business.
        var conversations = Set((operation?.conversations ?? []).filter(conversationNames.contains))
        conversations.insert(randomConversation())
        if chance(5) { conversations.insert("unknown conversation") }
        for conversation in conversations.sorted() { checkConversation(conversation) }
        checkGlobal()
        checkSearch()
    }

    // MARK: Whole-state comparison (after reopen and crashes)

    func dump(of state: ReferenceStore, lookups: Bool = true) -> StateDump {
        var result = StateDump()
        for conversation in conversationNames {
            let messages = state.entries(conversation).map(\.message)
            if !messages.isEmpty { result.messages[conversation] = messages }
            for user in users { result.unread["\(user)|\(conversation)"] = (try? state.unreadCount(user: user, in: conversation)) ?? -1 }
        }
        for user in users { result.inboxes[user] = state.allInboxEntries(user: user) }
        result.summaries = state.allSummaries()
        if lookups { for id in usedIDs { result.byID.updateValue(state.entry(id: id)?.message, forKey: id) } }
        result.liveMessages = state.liveMessageCount
        result.liveConversations = state.liveConversationCount
        return result
    }

    func dump(of store: any StoreUnderTest) throws -> StateDump {
        var result = StateDump()
        for conversation in conversationNames {
            let messages = try store.messages(
                in: conversation, from: 0, through: ReferenceStore.maxCreatedAt, order: .oldestFirst, limit: MessageStore.maxLimit)
            if !messages.isEmpty { result.messages[conversation] = messages }
            for user in users { result.unread["\(user)|\(conversation)"] = try store.unreadCount(user: user, in: conversation) }
        }
        for user in users {
            var entries: [InboxEntry] = []
            var page = try store.inbox(user: user, after: nil, limit: 4)
            entries += page.conversations
            while let next = page.next {
                page = try store.inbox(user: user, after: next, limit: 4)
                entries += page.conversations
            }
            result.inboxes[user] = entries
        }
        result.summaries = try store.conversations(limit: MessageStore.maxLimit)
        for id in usedIDs { result.byID.updateValue(try store.message(id: id), forKey: id) }
        let statistics = try store.statistics
        result.liveMessages = statistics.messages
        result.liveConversations = statistics.conversations
        return result
    }

    /// Compares the reopened store with the allowed states (newest first); adopts the match.
    func adoptRecoveredState(allowed: [ReferenceStore]) {
        guard let store, !failed else { return }
        phase = "compare after reopen"
        let observed: StateDump
        do { observed = try dump(of: store) } catch {
            fail("reading the reopened store failed: \(error)")
            return
        }
        // Cheap comparison first (contents, markers, list); id lookups for the match only.
        var withoutLookups = observed
        withoutLookups.byID = [:]
        for (index, candidate) in allowed.reversed().enumerated() where dump(of: candidate, lookups: false) == withoutLookups {
            let expected = dump(of: candidate)
            if expected != observed {
                fail("the reopened store matches an allowed state except: \(observed.difference(from: expected))")
                return
            }
            if index > 0 { savedCursors = [] }  // positions after the recovered state may be reused
            if index > 0 { count("recoveries to an older allowed state (write in flight lost, or unsynced in .normal)") }
            model = candidate
            recoverable = [model]
            return
        }
        fail("the reopened store matches none of the \(allowed.count) allowed states; vs the latest: \(observed.difference(from: dump(of: allowed.last!)))")
    }

    func verifyStore() {
        guard let store, !failed else { return }
        phase = "verify"
        do {
            let problems = try store.verify()
            if !problems.isEmpty { fail("verify() found \(problems.count) problems: \(problems.prefix(3))") }
        } catch {
            fail("verify() threw \(error)")
        }
    }

    // MARK: Lifecycle steps

    func open() {
        phase = "open"
        do { store = try openStore() } catch { fail("opening the store failed: \(error)") }
        if configuration.followsChanges, replica == nil, let real = store as? MessageStore {
            do {
                replica = try MessageStore(path: "/replica", options: StoreOptions(), fileSystem: MemoryFileSystem())
                replicaPosition = try real.changePosition()
            } catch { fail("starting the change-stream replica failed: \(error)") }
        }
    }

    /// The replica reads every change committed since its position (from the current store,
    /// which may have been reopened or recovered since) and applies it, in pages.
    func followChanges() {
        guard let replica, let real = store as? MessageStore, let position = replicaPosition, !failed else { return }
        phase = "follow changes"
        do {
            let reader = try real.changeReader(after: position)
            while true {
                let changes = try reader.read(limit: int(1...300))
                if changes.isEmpty { break }
                replicaPages += 1
                if replicaPages % 2 == 0 {
                    let mark = ReplicaMark(source: 9, sequence: replicaPages)
                    try replica.apply(changes, mark: mark)
                    replicaMark = mark
                } else {
                    try replica.apply(changes)
                }
                count("changes applied to the replica", changes.count)
            }
            replicaPosition = reader.position
        } catch {
            fail("following the change stream failed: \(error)")
        }
    }

    /// The replica equals the model (call after `followChanges`, between steps: nothing in flight).
    func compareReplica() {
        guard let replica, !failed else { return }
        phase = "compare replica"
        do {
            let expected = dump(of: model)
            let actual = try dump(of: replica)
            if actual != expected { fail("the replica fed by the change stream differs from the model: \(actual.difference(from: expected))") }
            let mark = try replica.replicaMark()
            if mark != replicaMark { fail("the replica's mark is \(String(describing: mark)), its last apply(_:mark:) set \(String(describing: replicaMark))") }
            count("replica comparisons")
        } catch {
            fail("reading the replica failed: \(error)")
        }
    }

    func closeAndReopen() {
        guard let store, !failed else { return }
        phase = "close"
        do { try store.close() } catch {
            fail("close() threw \(error)")
            return
        }
        synced()
        do {
            _ = try store.latest(in: "c0", limit: 1)
            fail("a query on a closed store did not throw")
        } catch {
            if !errorMatches(.closed, error) { fail("a query on a closed store threw \(error), not .closed") }
        }
        self.store = nil
        open()
        adoptRecoveredState(allowed: [model])
        verifyStore()
        count("reopens")
    }

    /// Runs writes until a scheduled power loss stops one, crashes the file system, reopens
    /// (sometimes losing power again during recovery) and checks the recovered state.
    func crashAndRecover() {
        guard let store, !failed else { return }
        guard let fs = fileSystem else { return closeAndReopen() }
        phase = "run until power loss"
        fs.scheduleCrash(afterSteps: int(0...80))
        var allowed = recoverable
        var inFlight: ReferenceStore?
        var attempts = 0
        while !fs.isPoweredOff && attempts < 200 && !failed {
            attempts += 1
            if chance(3) {
                do {
                    if chance(50) { try store.checkpoint() } else { _ = try store.compact() }
                } catch {
                    if !fs.isPoweredOff { fail("checkpoint/compact failed without a power loss: \(error)") }
                    break
                }
                continue
            }
            let operation = randomWrite()
            var candidate = model
            let expected: Result<WriteResult, ScrollbackError>
            do { expected = .success(try candidate.perform(operation)) } catch {
                expected = .failure(error as! ScrollbackError)
            }
            do {
                let result = try store.perform(operation)
                guard case let .success(wanted) = expected, wanted == result else {
                    fail("\(operation): store returned \(result), model \(expected)")
                    return
                }
                model = candidate
                acknowledge()
                allowed = recoverable
            } catch {
                if case let .failure(wanted) = expected, errorMatches(wanted, error) { continue }
                guard fs.isPoweredOff else {
                    fail("\(operation) threw \(error) without a power loss (model: \(expected))")
                    return
                }
                if case .success = expected {
                    allowed.append(candidate)
                    inFlight = candidate
                }
                count("writes in flight at a crash")
            }
        }
        if !fs.isPoweredOff { fs.scheduleCrash(afterSteps: 0) }
        try? store.close()
        self.store = nil
        fs.crash(mode: pick(CrashMode.allCases), namespace: chance(80) ? .revertUnsynced : pick(NamespaceCrashMode.allCases))
        count("crashes")
        recover(fs)
        adoptRecoveredState(allowed: allowed)
        if let inFlight, inFlight == model, allowed.count > 1 { count("recoveries that kept the write in flight") }
        verifyStore()
    }

    func recover(_ fs: CrashSimulatingFileSystem) {
        phase = "recovery"
        for attempt in 0..<8 {
            if attempt < 3 && chance(25) { fs.scheduleCrash(afterSteps: int(0...30)) }
            do {
                let opened = try openStore()
                if fs.isPoweredOff {
                    try? opened.close()
                    fs.crash(mode: pick(CrashMode.allCases))
                    count("crashes during recovery")
                    continue
                }
                fs.scheduleCrash(afterSteps: Int.max)
                store = opened
                return
            } catch {
                guard fs.isPoweredOff else {
                    fail("recovery failed without a power loss: \(error)")
                    return
                }
                fs.crash(mode: pick(CrashMode.allCases))
                count("crashes during recovery")
            }
        }
        fail("the store could not be reopened")
    }

    /// A failed log sync: the write is not acknowledged, later writes are refused until the
    /// store is reopened, and the reopened store holds the state before or after that write.
    func failedSync() {
        guard let store, let fs = fileSystem, configuration.durability == .full, !failed else { return }
        phase = "failed sync"
        let operation = WriteOperation.append(randomMessage(id: freshID(), in: model))
        var candidate = model
        guard (try? candidate.perform(operation)) != nil else { return }
        fs.injectFault(.syncFails(pathSuffix: ".seg"))
        do {
            _ = try store.perform(operation)
            // The sync went elsewhere (e.g. the write did not need the log): acknowledged.
            fs.clearFaults()
            model = candidate
            acknowledge()
            return
        } catch {
            switch error as? ScrollbackError {
            case .io?, .refusesWrites?: break
            default: fail("a write whose sync failed threw \(error), not .io or .refusesWrites")
            }
        }
        fs.clearFaults()
        do {
            _ = try store.append(Message(id: freshID(), conversation: "c0", sender: "s", createdAt: 1, body: "after a failed sync"))
            fail("the store accepted a write after a failed sync")
            return
        } catch {
            if case .refusesWrites? = error as? ScrollbackError {} else {
                fail("a write after a failed sync threw \(error), not .refusesWrites")
            }
        }
        try? store.close()
        self.store = nil
        count("failed syncs")
        recover(fs)
        adoptRecoveredState(allowed: recoverable + [candidate])
        verifyStore()
    }

    // MARK: The run

    func run() {
        open()
        guard !failed else { return }
        if configuration.searchIndexStep == 0 { enableSearch() }
        checkAfter(nil)
        while step < configuration.steps && !failed {
            step += 1
            phase = "step"
            let roll = int(0...999)
            var operation: WriteOperation?
            switch roll {
            case 0..<10:
                if configuration.crashes { crashAndRecover() } else { closeAndReopen() }
            case 10..<20: closeAndReopen()
            case 20..<25: failedSync()
            case 25..<35:
                phase = "compact"
                do {
                    if let report = try store?.compact() {
                        counters["segments rewritten by compact()", default: 0] += report.segmentsRewritten
                        counters["records moved by compact()", default: 0] += report.recordsMoved
                    }
                } catch { fail("compact() threw \(error)") }
                count("compactions")
            case 35..<45:
                phase = "checkpoint"
                do { try store?.checkpoint() } catch { fail("checkpoint() threw \(error)") }
                synced()
            case 45..<60:
                phase = "sync"
                do { try store?.sync() } catch { fail("sync() threw \(error)") }
                synced()
            case 60..<64: verifyStore()
            default:
                phase = "write"
                let write = randomWrite()
                operation = write
                self.write(write)
            }
            if step == configuration.searchIndexStep || (searchEnabled && roll < 25) {
                enableSearch()
            } else if searchDisabled && roll < 25 {
                disableSearch()   // a crash may have lost the disable (.normal durability)
            }
            // Now and then the index goes off, and comes back (rebuilt from the messages).
            if searchEnabled && (64..<67).contains(roll) {
                disableSearch()
            } else if searchDisabled && (67..<82).contains(roll) {
                enableSearch()
            }
            checkAfter(operation)
            if configuration.followsChanges && step % 20 == 0 { followChanges() }
            if configuration.followsChanges && step % 250 == 0 {
                followChanges()
                compareReplica()
            }
        }
        if !failed && configuration.followsChanges {
            followChanges()
            compareReplica()
        }
        if !failed {
            closeAndReopen()
            try? store?.close()
        }
    }
}
