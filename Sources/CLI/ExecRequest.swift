import Scrollback
import ScrollbackJSON

/// The store operations `exec`, `query` and `export` use. `MessageStore` conforms; tests may
/// substitute a model.
protocol MessageStoring: AnyObject {
    @discardableResult func append(_ message: Message) throws -> AppendOutcome
    @discardableResult func write(_ batch: WriteBatch) throws -> [AppendOutcome]
    func edit(id: String, body: String) throws
    func delete(id: String) throws
    func markRead(user: String, conversation: String, through messageID: String) throws
    func join(user: String, conversation: String) throws
    func leave(user: String, conversation: String) throws
    func message(id: String) throws -> Message?
    func latest(in conversation: String, limit: Int) throws -> [Message]
    func messages(in conversation: String, from: Int64, through: Int64, order: Order, limit: Int?) throws -> [Message]
    func page(in conversation: String, from: Int64, through: Int64, after cursor: Cursor?, limit: Int, order: Order) throws
        -> MessagePage
    func page(in conversation: String, after cursor: Cursor?, limit: Int, order: Order) throws -> MessagePage
    func page(in conversation: String, offset: Int, limit: Int, order: Order) throws -> [Message]
    func count(in conversation: String, after: Int64) throws -> Int
    func unreadCount(user: String, in conversation: String) throws -> Int
    func unreadCounts(user: String, conversations: [String]) throws -> [Int]
    func readMarker(user: String, conversation: String) throws -> String?
    func inbox(user: String, after cursor: InboxCursor?, limit: Int) throws -> InboxPage
    func feed(_ conversations: [String], limit: Int) throws -> [Message]
    func latestMessage(in conversations: [String]) throws -> [Message?]
    func conversations(limit: Int) throws -> [ConversationSummary]
    func conversations(after cursor: ConversationCursor?, limit: Int) throws -> ConversationPage
    func search(_ query: String, in scope: SearchScope, after cursor: Cursor?, limit: Int) throws -> MessagePage
}

extension MessageStore: MessageStoring {}

/// One request of the `exec` contract, validated (shape and JSON types) but not yet run.
enum ExecRequest: Equatable {
    case append(Message)
    case batch([WriteBatch.Operation])
    case edit(id: String, body: String)
    case delete(id: String)
    case markRead(user: String, conversation: String, through: String)
    case join(user: String, conversation: String)
    case leave(user: String, conversation: String)
    case get(id: String)
    case latest(conversation: String, limit: Int)
    case page(conversation: String, limit: Int, order: Order, cursor: Cursor?)
    case offset(conversation: String, offset: Int, limit: Int, order: Order)
    /// A page of the range: `limit` nil is `MessageStore.maxLimit`; the answer's `next` says
    /// whether more of the range remains.
    case range(conversation: String, from: Int64, through: Int64, order: Order, limit: Int?, cursor: Cursor?)
    case count(conversation: String, after: Int64)
    case unread(user: String, conversation: String)
    case unreadCounts(user: String, conversations: [String])
    case marker(user: String, conversation: String)
    case inbox(user: String, limit: Int, after: InboxCursor?)
    case feed(conversations: [String], limit: Int)
    case heads(conversations: [String])
    /// `paged`: the request has an `after` member (null for the first page), and the answer
    /// has `next`; without it the answer is the unpaged list of the first `limit`.
    case conversations(limit: Int, after: ConversationCursor?, paged: Bool)
    /// `conversations` nil: the whole store.
    case search(query: String, conversations: [String]?, limit: Int, cursor: Cursor?)

    /// Every `op` the contract defines, in the contract's order.
    static let operations = [
        "append", "batch", "edit", "delete", "markRead", "join", "leave", "get", "latest", "page", "offset", "range", "count",
        "unread", "unreadCounts", "marker", "feed", "heads", "conversations", "inbox", "search",
    ]
    /// The operations a `batch` may hold.
    static let batchOperations = ["append", "edit", "delete", "markRead", "join", "leave"]

    /// True for the operations that change the store.
    var isWrite: Bool {
        switch self {
        case .append, .batch, .edit, .delete, .markRead, .join, .leave: true
        default: false
        }
    }

    /// Parses one input line (without its newline). Errors: not UTF-8, not JSON, not an
    /// object, no or unknown `op`, a missing member or a member of the wrong JSON type →
    /// `invalidRequest`; a value of the right type the operation does not accept (an unknown
    /// `kind` or `order`, an integer beyond 64 bits) → `invalidArgument`. Members the
    /// operation does not use are ignored.
    static func parse(line: [UInt8]) throws(RequestError) -> ExecRequest {
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) {
            throw .invalidRequest("empty line: expected a JSON object")
        }
        let value: JSONValue
        do {
            value = try JSONParser.parse(line)
        } catch {
            throw .invalidRequest(error.description)
        }
        guard case .object(let object) = value else {
            throw .invalidRequest("expected a JSON object, found \(value.typeName)")
        }
        return try parse(object: object, context: "", allowed: operations)
    }

    private static func parse(object: JSONObject, context: String, allowed: [String]) throws(RequestError) -> ExecRequest {
        guard let opValue = object["op"] else { throw .invalidRequest("\(context)missing member \"op\"") }
        guard case .string(let op) = opValue else {
            throw .invalidRequest("\(context)member \"op\" must be a string, not \(opValue.typeName)")
        }
        guard allowed.contains(op) else {
            if operations.contains(op) {
                throw .invalidRequest("\(context)op \"\(op)\" is not allowed here (a batch holds \(batchOperations.joined(separator: ", ")))")
            }
            throw .invalidRequest("\(context)unknown op \"\(op)\"")
        }
        let f = Fields(object, context: "\(context)op \"\(op)\": ")
        switch op {
        case "append":
            return .append(try f.message())
        case "batch":
            guard let opsValue = object["ops"] else { throw .invalidRequest("op \"batch\": missing member \"ops\"") }
            guard case .array(let elements) = opsValue else {
                throw .invalidRequest("op \"batch\": member \"ops\" must be an array, not \(opsValue.typeName)")
            }
            var operations: [WriteBatch.Operation] = []
            operations.reserveCapacity(elements.count)
            for (i, element) in elements.enumerated() {
                guard case .object(let inner) = element else {
                    throw .invalidRequest("op \"batch\": ops[\(i)] must be an object, not \(element.typeName)")
                }
                let request = try parse(object: inner, context: "op \"batch\": ops[\(i)]: ", allowed: batchOperations)
                switch request {
                case .append(let m): operations.append(.append(m))
                case .edit(let id, let body): operations.append(.edit(id: id, body: body))
                case .delete(let id): operations.append(.delete(id: id))
                case .markRead(let user, let conversation, let through):
                    operations.append(.markRead(user: user, conversation: conversation, through: through))
                case .join(let user, let conversation): operations.append(.join(user: user, conversation: conversation))
                case .leave(let user, let conversation): operations.append(.leave(user: user, conversation: conversation))
                default: throw .invalidRequest("op \"batch\": ops[\(i)] is not a write")  // unreachable: filtered above
                }
            }
            return .batch(operations)
        case "edit":
            return .edit(id: try f.string("id"), body: try f.string("body"))
        case "delete":
            return .delete(id: try f.string("id"))
        case "markRead":
            return .markRead(user: try f.string("user"), conversation: try f.string("conversation"), through: try f.string("through"))
        case "join":
            return .join(user: try f.string("user"), conversation: try f.string("conversation"))
        case "leave":
            return .leave(user: try f.string("user"), conversation: try f.string("conversation"))
        case "get":
            return .get(id: try f.string("id"))
        case "latest":
            return .latest(conversation: try f.string("conversation"), limit: try f.int("limit"))
        case "page":
            let conversation = try f.string("conversation")
            let limit = try f.int("limit")
            let order = try f.order("order")
            let cursor = try f.optionalString("cursor").map(Cursor.init(token:))
            return .page(conversation: conversation, limit: limit, order: order, cursor: cursor)
        case "offset":
            let conversation = try f.string("conversation")
            let offset = try f.int("offset")
            let limit = try f.int("limit")
            return .offset(conversation: conversation, offset: offset, limit: limit, order: try f.order("order"))
        case "range":
            let conversation = try f.string("conversation")
            let from = try f.integer("from")
            let through = try f.integer("through")
            let order = try f.order("order")
            let limit = try f.optionalInt("limit")
            let cursor = try f.optionalString("cursor").map(Cursor.init(token:))
            return .range(conversation: conversation, from: from, through: through, order: order, limit: limit, cursor: cursor)
        case "count":
            return .count(conversation: try f.string("conversation"), after: try f.integer("after"))
        case "unread":
            return .unread(user: try f.string("user"), conversation: try f.string("conversation"))
        case "unreadCounts":
            return .unreadCounts(user: try f.string("user"), conversations: try f.stringArray("conversations"))
        case "marker":
            return .marker(user: try f.string("user"), conversation: try f.string("conversation"))
        case "inbox":
            let user = try f.string("user")
            let limit = try f.int("limit")
            return .inbox(user: user, limit: limit, after: try f.optionalString("after").map(InboxCursor.init(token:)))
        case "feed":
            return .feed(conversations: try f.stringArray("conversations"), limit: try f.int("limit"))
        case "heads":
            return .heads(conversations: try f.stringArray("conversations"))
        case "conversations":
            let limit = try f.int("limit")
            let after = try f.optionalString("after").map(ConversationCursor.init(token:))
            return .conversations(limit: limit, after: after, paged: f.has("after"))
        case "search":
            let query = try f.string("query")
            var conversations: [String]? = nil
            if f.has("conversations") { conversations = try f.stringArray("conversations") }
            let limit = try f.int("limit")
            return .search(query: query, conversations: conversations, limit: limit,
                           cursor: try f.optionalString("cursor").map(Cursor.init(token:)))
        default:
            throw .invalidRequest("\(context)unknown op \"\(op)\"")
        }
    }

    /// Runs the request and returns its `"ok":true` result line (without the newline). A
    /// write has been committed (durably, with the store's default durability) when this returns.
    func run(on store: any MessageStoring) throws -> String {
        var w = JSONWriter()
        w.raw("{\"ok\":true")
        switch self {
        case .append(let message):
            let outcome = try store.append(message)
            w.raw(",\"duplicate\":")
            w.bool(outcome == .duplicate)
        case .batch(let operations):
            var batch = WriteBatch()
            for operation in operations {
                switch operation {
                case .append(let m): batch.append(m)
                case .edit(let id, let body): batch.edit(id: id, body: body)
                case .delete(let id): batch.delete(id: id)
                case .markRead(let user, let conversation, let through):
                    batch.markRead(user: user, conversation: conversation, through: through)
                case .join(let user, let conversation): batch.join(user: user, conversation: conversation)
                case .leave(let user, let conversation): batch.leave(user: user, conversation: conversation)
                }
            }
            try store.write(batch)
        case .edit(let id, let body):
            try store.edit(id: id, body: body)
        case .delete(let id):
            try store.delete(id: id)
        case .markRead(let user, let conversation, let through):
            try store.markRead(user: user, conversation: conversation, through: through)
        case .join(let user, let conversation):
            try store.join(user: user, conversation: conversation)
        case .leave(let user, let conversation):
            try store.leave(user: user, conversation: conversation)
        case .get(let id):
            let message = try store.message(id: id)
            w.raw(",\"message\":")
            if let message { w.message(message) } else { w.null() }
        case .latest(let conversation, let limit):
            let list = try store.latest(in: conversation, limit: limit)
            w.raw(",\"messages\":")
            w.messages(list)
        case .search(let query, let conversations, let limit, let cursor):
            let page = try store.search(query, in: conversations.map { .conversations($0) } ?? .wholeStore, after: cursor, limit: limit)
            w.raw(",\"messages\":")
            w.messages(page.messages)
            w.raw(",\"next\":")
            if let next = page.next { w.string(next.token) } else { w.null() }
        case .page(let conversation, let limit, let order, let cursor):
            let page = try store.page(in: conversation, after: cursor, limit: limit, order: order)
            w.raw(",\"messages\":")
            w.messages(page.messages)
            w.raw(",\"next\":")
            if let next = page.next { w.string(next.token) } else { w.null() }
        case .offset(let conversation, let offset, let limit, let order):
            let list = try store.page(in: conversation, offset: offset, limit: limit, order: order)
            w.raw(",\"messages\":")
            w.messages(list)
        case .range(let conversation, let from, let through, let order, let limit, let cursor):
            let page = try store.page(in: conversation, from: from, through: through, after: cursor,
                                      limit: limit ?? MessageStore.maxLimit, order: order)
            w.raw(",\"messages\":")
            w.messages(page.messages)
            w.raw(",\"next\":")
            if let next = page.next { w.string(next.token) } else { w.null() }
        case .count(let conversation, let after):
            let n = try store.count(in: conversation, after: after)
            w.raw(",\"count\":")
            w.integer(n)
        case .unread(let user, let conversation):
            let n = try store.unreadCount(user: user, in: conversation)
            w.raw(",\"count\":")
            w.integer(n)
        case .unreadCounts(let user, let conversations):
            let counts = try store.unreadCounts(user: user, conversations: conversations)
            w.raw(",\"counts\":[")
            for (i, n) in counts.enumerated() {
                if i > 0 { w.raw(",") }
                w.integer(n)
            }
            w.raw("]")
        case .marker(let user, let conversation):
            let through = try store.readMarker(user: user, conversation: conversation)
            w.raw(",\"through\":")
            if let through { w.string(through) } else { w.null() }
        case .inbox(let user, let limit, let after):
            let page = try store.inbox(user: user, after: after, limit: limit)
            w.raw(",\"conversations\":[")
            for (i, c) in page.conversations.enumerated() {
                if i > 0 { w.raw(",") }
                w.raw("{\"id\":")
                w.string(c.id)
                w.raw(",\"lastActivity\":")
                if let lastActivity = c.lastActivity { w.integer(lastActivity) } else { w.null() }
                w.raw(",\"messages\":")
                w.integer(c.messageCount)
                w.raw(",\"unread\":")
                w.integer(c.unreadCount)
                w.raw("}")
            }
            w.raw("],\"next\":")
            if let next = page.next { w.string(next.token) } else { w.null() }
        case .feed(let conversations, let limit):
            let list = try store.feed(conversations, limit: limit)
            w.raw(",\"messages\":")
            w.messages(list)
        case .heads(let conversations):
            let heads = try store.latestMessage(in: conversations)
            w.raw(",\"messages\":[")
            for (i, head) in heads.enumerated() {
                if i > 0 { w.raw(",") }
                if let head { w.message(head) } else { w.null() }
            }
            w.raw("]")
        case .conversations(let limit, let after, let paged):
            let page = paged
                ? try store.conversations(after: after, limit: limit)
                : ConversationPage(conversations: try store.conversations(limit: limit), next: nil)
            w.raw(",\"conversations\":[")
            for (i, c) in page.conversations.enumerated() {
                if i > 0 { w.raw(",") }
                w.raw("{\"id\":")
                w.string(c.id)
                w.raw(",\"lastActivity\":")
                w.integer(c.lastActivity)
                w.raw(",\"messages\":")
                w.integer(c.messageCount)
                w.raw("}")
            }
            w.raw("]")
            if paged {
                w.raw(",\"next\":")
                if let next = page.next { w.string(next.token) } else { w.null() }
            }
        }
        w.raw("}")
        return w.text
    }

    /// The whole contract for one line: parse, run, and the result or error line.
    static func respond(to line: [UInt8], store: any MessageStoring) -> String {
        do {
            let request = try parse(line: line)
            return try request.run(on: store)
        } catch {
            return RequestError(mapping: error).jsonLine
        }
    }
}
