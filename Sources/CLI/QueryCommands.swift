import ArgumentParser
import Scrollback

/// `--order` values: newestFirst/oldestFirst (also newest-first, newest, …).
struct OrderArgument: ExpressibleByArgument, Equatable {
    var order: Order
    init(_ order: Order) { self.order = order }
    init?(argument: String) {
        switch argument.lowercased() {
        case "newestfirst", "newest-first", "newest", "desc": order = .newestFirst
        case "oldestfirst", "oldest-first", "oldest", "asc": order = .oldestFirst
        default: return nil
        }
    }
    static var allValueStrings: [String] { ["newestFirst", "oldestFirst"] }
    var defaultValueDescription: String { order == .newestFirst ? "newestFirst" : "oldestFirst" }
}

/// A time argument: integer milliseconds or ISO-8601.
struct TimeArgument: ExpressibleByArgument {
    var ms: Int64
    init?(argument: String) {
        guard let ms = Timestamp.parse(argument) else { return nil }
        self.ms = ms
    }
}

struct Query: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one query and print a table (or --json).",
        discussion: """
            Operations and their operands:
              latest CONVERSATION [--limit N]
              page CONVERSATION [--limit N] [--order O] [--cursor C]
              offset CONVERSATION --offset K [--limit N] [--order O]
              range CONVERSATION --from T --through T [--order O] [--limit N] [--cursor C]
              count CONVERSATION --after T
              unread USER CONVERSATION
              unread-counts USER CONVERSATION...
              marker USER CONVERSATION
              inbox USER [--limit N] [--cursor C]
              feed CONVERSATION... [--limit N]
              heads CONVERSATION...
              conversations [--limit N] [--cursor C]
              get MESSAGE-ID
              search QUERY [--conversation C]... [--limit N] [--cursor C]

            Tables show the first 60 characters of each body (--wide: all; get: always all). Times T are integer milliseconds since the epoch or ISO-8601 (2024-05-01T09:30:00Z). \
            Order O is newestFirst or oldestFirst (page and offset default to newestFirst, range \
            to oldestFirst). --limit defaults to 20, except for range: up to 10,000 (page and range print the \
            cursor of the next page, or (none) when nothing remains; so does inbox). marker prints the id of the \
            message the user's read marker points at, or (none). search finds messages whose words start with \
            every word of QUERY (and that hold its CJK characters), newest first, in the --conversation \
            conversations (repeatable) or the whole store; it needs the search index (scrollback search-index STORE).

            --json prints exactly the line `exec` answers for the same request when it succeeds; \
            an error is reported like any other (one line on stderr, exit 1).
            """)

    enum Operation: String, ExpressibleByArgument, CaseIterable {
        case latest, page, offset, range, count, unread
        case unreadCounts = "unread-counts"
        case marker, inbox, feed, heads, conversations, get, search
    }

    @Argument(help: "The store directory.")
    var store: String

    @Argument(help: "The query: latest, page, offset, range, count, unread, unread-counts, marker, inbox, feed, heads, conversations, get or search.")
    var operation: Operation

    @Argument(help: "Conversation ids, a user and conversations (unread, unread-counts, marker), a user (inbox), a message id (get) or the search text (search).")
    var operands: [String] = []

    @Option(name: .customLong("conversation"), help: "search: look only in this conversation (repeat for several; default: the whole store).")
    var searchConversations: [String] = []

    @Option(help: "Most messages (or conversations) to return.")
    var limit: Int?

    @Option(help: "newestFirst or oldestFirst.")
    var order: OrderArgument?

    @Option(help: "page, range, conversations, inbox: continue after this cursor (the 'next' of the previous page).")
    var cursor: String?

    @Option(help: "offset: position of the first message in the order.")
    var offset: Int?

    @Option(help: "range: earliest createdAt (inclusive).")
    var from: TimeArgument?

    @Option(help: "range: latest createdAt (inclusive).")
    var through: TimeArgument?

    @Option(help: "count: count messages with createdAt after this time.")
    var after: TimeArgument?

    @Flag(help: "Print the JSON line of the exec contract instead of a table.")
    var json = false

    @Flag(help: "Show whole message bodies in the table (default: the first \(Query.bodyPreview) characters).")
    var wide = false

    /// The request this command line stands for (usage errors throw ValidationError).
    func request() throws -> ExecRequest {
        func operandCount(_ expected: Int, _ what: String) throws {
            guard operands.count == expected else {
                throw ValidationError("\(operation.rawValue) takes \(what), got \(operands.count) operand\(operands.count == 1 ? "" : "s")")
            }
        }
        func unused(_ names: [String: Bool]) throws {
            for (name, given) in names.sorted(by: { $0.key < $1.key }) where given {
                throw ValidationError("--\(name) does not apply to \(operation.rawValue)")
            }
        }
        let n = limit ?? 20
        if operation != .search && !searchConversations.isEmpty {
            throw ValidationError("--conversation does not apply to \(operation.rawValue)")
        }
        switch operation {
        case .search:
            try operandCount(1, "the search text (quote it when it holds spaces)")
            try unused(["order": order != nil, "offset": offset != nil, "from": from != nil, "through": through != nil,
                        "after": after != nil])
            return .search(query: operands[0], conversations: searchConversations.isEmpty ? nil : searchConversations, limit: n,
                           cursor: cursor.map(Cursor.init(token:)))
        case .latest:
            try operandCount(1, "one conversation")
            try unused(["order": order != nil, "cursor": cursor != nil, "offset": offset != nil, "from": from != nil,
                        "through": through != nil, "after": after != nil])
            return .latest(conversation: operands[0], limit: n)
        case .page:
            try operandCount(1, "one conversation")
            try unused(["offset": offset != nil, "from": from != nil, "through": through != nil, "after": after != nil])
            return .page(conversation: operands[0], limit: n, order: order?.order ?? .newestFirst,
                         cursor: cursor.map(Cursor.init(token:)))
        case .offset:
            try operandCount(1, "one conversation")
            guard let offset else { throw ValidationError("offset needs --offset K") }
            try unused(["cursor": cursor != nil, "from": from != nil, "through": through != nil, "after": after != nil])
            return .offset(conversation: operands[0], offset: offset, limit: n, order: order?.order ?? .newestFirst)
        case .range:
            try operandCount(1, "one conversation")
            guard let from, let through else { throw ValidationError("range needs --from T and --through T") }
            try unused(["offset": offset != nil, "after": after != nil])
            return .range(conversation: operands[0], from: from.ms, through: through.ms,
                          order: order?.order ?? .oldestFirst, limit: limit, cursor: cursor.map(Cursor.init(token:)))
        case .count:
            try operandCount(1, "one conversation")
            guard let after else { throw ValidationError("count needs --after T") }
            try unused(["limit": limit != nil, "order": order != nil, "cursor": cursor != nil, "offset": offset != nil,
                        "from": from != nil, "through": through != nil])
            return .count(conversation: operands[0], after: after.ms)
        case .unread:
            try operandCount(2, "a user and a conversation")
            try unused(["limit": limit != nil, "order": order != nil, "cursor": cursor != nil, "offset": offset != nil,
                        "from": from != nil, "through": through != nil, "after": after != nil])
            return .unread(user: operands[0], conversation: operands[1])
        case .unreadCounts:
            guard operands.count >= 2 else { throw ValidationError("unread-counts takes a user and one or more conversations") }
            try unused(["limit": limit != nil, "order": order != nil, "cursor": cursor != nil, "offset": offset != nil,
                        "from": from != nil, "through": through != nil, "after": after != nil])
            return .unreadCounts(user: operands[0], conversations: Array(operands.dropFirst()))
        case .marker:
            try operandCount(2, "a user and a conversation")
            try unused(["limit": limit != nil, "order": order != nil, "cursor": cursor != nil, "offset": offset != nil,
                        "from": from != nil, "through": through != nil, "after": after != nil])
            return .marker(user: operands[0], conversation: operands[1])
        case .inbox:
            try operandCount(1, "one user")
            try unused(["order": order != nil, "offset": offset != nil, "from": from != nil, "through": through != nil,
                        "after": after != nil])
            return .inbox(user: operands[0], limit: n, after: cursor.map(InboxCursor.init(token:)))
        case .feed:
            guard !operands.isEmpty else { throw ValidationError("feed takes one or more conversations") }
            try unused(["order": order != nil, "cursor": cursor != nil, "offset": offset != nil, "from": from != nil,
                        "through": through != nil, "after": after != nil])
            return .feed(conversations: operands, limit: n)
        case .heads:
            guard !operands.isEmpty else { throw ValidationError("heads takes one or more conversations") }
            try unused(["limit": limit != nil, "order": order != nil, "cursor": cursor != nil, "offset": offset != nil,
                        "from": from != nil, "through": through != nil, "after": after != nil])
            return .heads(conversations: operands)
        case .conversations:
            try operandCount(0, "no operands")
            try unused(["order": order != nil, "offset": offset != nil, "from": from != nil, "through": through != nil,
                        "after": after != nil])
            return .conversations(limit: n, after: cursor.map(ConversationCursor.init(token:)), paged: cursor != nil)
        case .get:
            try operandCount(1, "one message id")
            try unused(["limit": limit != nil, "order": order != nil, "cursor": cursor != nil, "offset": offset != nil,
                        "from": from != nil, "through": through != nil, "after": after != nil])
            return .get(id: operands[0])
        }
    }

    func validate() throws { _ = try request() }

    func run() throws {
        let request = try request()
        let store = try StoreAccess.openReadOnly(self.store)
        defer { try? store.close() }
        let out = Output.standardOutput
        if json {
            out.line(try request.run(on: store))
        } else {
            try Self.printTable(request, store: store, to: out, bodyLimit: wide ? nil : Self.bodyPreview)
        }
        out.flush()
    }

    /// Characters of a body shown in a table without --wide.
    static let bodyPreview = 60

    static func printTable(_ request: ExecRequest, store: any MessageStoring, to out: Output, bodyLimit: Int?) throws {
        func printMessages(_ messages: [Message], to out: Output) {
            Query.printMessages(messages, to: out, bodyLimit: bodyLimit)
        }
        func bodyCell(_ m: Message) -> String { Query.bodyCell(m, limit: bodyLimit) }
        switch request {
        case .latest(let c, let limit):
            printMessages(try store.latest(in: c, limit: limit), to: out)
        case .page(let c, let limit, let order, let cursor):
            let page = try store.page(in: c, after: cursor, limit: limit, order: order)
            printMessages(page.messages, to: out)
            out.line("next: \(page.next?.token ?? "(none)")")
        case .offset(let c, let offset, let limit, let order):
            printMessages(try store.page(in: c, offset: offset, limit: limit, order: order), to: out)
        case .range(let c, let from, let through, let order, let limit, let cursor):
            let page = try store.page(in: c, from: from, through: through, after: cursor, limit: limit ?? MessageStore.maxLimit,
                                      order: order)
            printMessages(page.messages, to: out)
            out.line("next: \(page.next?.token ?? "(none)")")
        case .count(let c, let after):
            out.line(String(try store.count(in: c, after: after)))
        case .unread(let user, let c):
            out.line(String(try store.unreadCount(user: user, in: c)))
        case .unreadCounts(let user, let cs):
            var rows = [["CONVERSATION", "UNREAD"]]
            for (c, n) in zip(cs, try store.unreadCounts(user: user, conversations: cs)) { rows.append([c, String(n)]) }
            printRows(rows, to: out)
        case .marker(let user, let c):
            out.line(try store.readMarker(user: user, conversation: c) ?? "(none)")
        case .inbox(let user, let limit, let after):
            let page = try store.inbox(user: user, after: after, limit: limit)
            var rows = [["CONVERSATION", "LAST ACTIVITY", "MESSAGES", "UNREAD"]]
            for c in page.conversations {
                rows.append([c.id, c.lastActivity.map { Timestamp.format($0) } ?? "-", String(c.messageCount), String(c.unreadCount)])
            }
            printRows(rows, to: out)
            out.line("next: \(page.next?.token ?? "(none)")")
        case .feed(let cs, let limit):
            printMessages(try store.feed(cs, limit: limit), to: out)
        case .search(let query, let cs, let limit, let cursor):
            let page = try store.search(query, in: cs.map { .conversations($0) } ?? .wholeStore, after: cursor, limit: limit)
            printMessages(page.messages, to: out)
            out.line("next: \(page.next?.token ?? "(none)")")
        case .heads(let cs):
            let heads = try store.latestMessage(in: cs)
            var rows = [["CONVERSATION", "CREATED AT", "ID", "SENDER", "KIND", "BODY"]]
            for (c, head) in zip(cs, heads) {
                if let m = head {
                    rows.append([c, Timestamp.format(m.createdAt), m.id, m.sender, m.kind.name, bodyCell(m)])
                } else {
                    rows.append([c, "-", "-", "-", "-", "(no messages)"])
                }
            }
            printRows(rows, to: out)
        case .conversations(let limit, let after, _):
            var rows = [["CONVERSATION", "LAST ACTIVITY", "MESSAGES"]]
            for c in try store.conversations(after: after, limit: limit).conversations {
                rows.append([c.id, Timestamp.format(c.lastActivity), String(c.messageCount)])
            }
            printRows(rows, to: out)
        case .get(let id):
            if let m = try store.message(id: id) {
                Query.printMessages([m], to: out, bodyLimit: nil)
            } else {
                out.line("no message with id \(id)")
            }
        case .append, .batch, .edit, .delete, .markRead, .join, .leave:
            break
        }
    }

    /// A body for a table cell: control characters escaped, so one message is one line.
    static func bodyCell(_ m: Message, limit: Int?) -> String {
        var text = ""
        var shown = 0
        for scalar in m.body.unicodeScalars {
            if let limit, shown >= limit {
                text += "…"
                break
            }
            shown += 1
            switch scalar {
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    text += "\\u{" + String(scalar.value, radix: 16) + "}"
                } else {
                    text.unicodeScalars.append(scalar)
                }
            }
        }
        var extras: [String] = []
        if let reply = m.replyTo { extras.append("reply to \(reply)") }
        if m.edited { extras.append("edited") }
        if !extras.isEmpty { text += " (" + extras.joined(separator: ", ") + ")" }
        return text
    }

    static func printMessages(_ messages: [Message], to out: Output, bodyLimit: Int?) {
        var rows = [["CREATED AT", "CONVERSATION", "ID", "SENDER", "KIND", "BODY"]]
        for m in messages {
            rows.append([Timestamp.format(m.createdAt), m.conversation, m.id, m.sender, m.kind.name, bodyCell(m, limit: bodyLimit)])
        }
        printRows(rows, to: out)
        out.line("(\(messages.count) message\(messages.count == 1 ? "" : "s"))")
    }

    /// Left-aligned columns separated by two spaces; the last column is not padded.
    static func printRows(_ rows: [[String]], to out: Output) {
        guard let columns = rows.first?.count else { return }
        var widths = [Int](repeating: 0, count: columns)
        for row in rows {
            for (i, cell) in row.enumerated() where i < columns - 1 { widths[i] = max(widths[i], cell.count) }
        }
        for row in rows {
            var line = ""
            for (i, cell) in row.enumerated() {
                line += cell
                if i < columns - 1 { line += String(repeating: " ", count: widths[i] - cell.count + 2) }
            }
            out.line(line)
        }
    }
}

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Scripting interface: JSON requests on stdin, one JSON result line each on stdout.",
        discussion: """
            Reads one JSON object per line and writes exactly one JSON line per input line, in \
            order. A write is committed durably before its result line is printed, so "ok":true \
            acknowledges it. A malformed line gets {"ok":false,"error":{"code":"invalidRequest",…}} \
            and processing continues. Answers are flushed whenever the input has no complete line \
            waiting, so a client may send one request and wait for its answer.

            Requests (M = message fields id, conversation, sender, createdAt (ms), kind, body, replyTo?,
            metadata? (base64)):
              {"op":"append",M…}
                  -> {"ok":true,"duplicate":false|true}  (true: the id is live in this conversation;
                     live in another one is the error idConflict)
              {"op":"batch","ops":[append|edit|delete|markRead|join|leave…]}
                  -> {"ok":true} (atomic: all or nothing)
              {"op":"edit","id","body"}, {"op":"delete","id"}
                  -> {"ok":true}
              {"op":"markRead","user","conversation","through"}
                  -> {"ok":true}
              {"op":"join"|"leave","user","conversation"}
                  -> {"ok":true} (idempotent)
              {"op":"get","id"}
                  -> {"ok":true,"message":M|null}
              {"op":"latest","conversation","limit"}
                  -> {"ok":true,"messages":[…]}
              {"op":"page","conversation","limit","order","cursor"}
                  -> {"ok":true,"messages":[…],"next":C|null}
              {"op":"offset","conversation","offset","limit","order"}
                  -> {"ok":true,"messages":[…]}
              {"op":"range","conversation","from","through","order","limit"?,"cursor"?}
                  -> {"ok":true,"messages":[…],"next":C|null}
              {"op":"count","conversation","after"}
                  -> {"ok":true,"count":N}
              {"op":"unread","user","conversation"}
                  -> {"ok":true,"count":N}
              {"op":"unreadCounts","user","conversations":[…]}
                  -> {"ok":true,"counts":[N, … one per conversation]}
              {"op":"marker","user","conversation"}
                  -> {"ok":true,"through":ID|null}
              {"op":"inbox","user","limit","after"?:C|null}
                  -> {"ok":true,"conversations":[{"id","lastActivity","messages","unread"}],"next":C|null}
              {"op":"feed","conversations":[…],"limit"}
                  -> {"ok":true,"messages":[…]}
              {"op":"heads","conversations":[…]}
                  -> {"ok":true,"messages":[M|null, …]}
              {"op":"conversations","limit","after"?:C|null}
                  -> {"ok":true,"conversations":[{"id","lastActivity","messages"}],"next"?:C|null}
                  ("next" answers a request with "after", null for the first page)
              {"op":"search","query","conversations"?:[…],"limit","cursor"?:C|null}
                  -> {"ok":true,"messages":[…],"next":C|null}
                  (no "conversations": the whole store; needs the search index: scrollback search-index STORE)
            order is "newestFirst" or "oldestFirst". Error codes: invalidRequest (not a request), \
            invalidArgument, notFound, invalidCursor (also a cursor given back with the other order), \
            idConflict (an append of an id live in another conversation), readOnly (a write under \
            --read-only), corrupted, io.

            exec is the store's writer: while it runs, another exec, import, generate, checkpoint \
            or compact on the store is refused (exit 1, naming this process), and a second exec \
            cannot start either. Readers (query, stats, verify, export, backup, dump, and \
            exec --read-only) work meanwhile and see every write exec has answered.

            Exit status 0 once every line is answered (errors are reported in-band); 1 if the \
            store cannot be opened (e.g. another writer has it) or stdin cannot be read.
            """)

    @Argument(help: "The store directory (created if missing, unless --read-only).")
    var store: String

    @Flag(help: "Serve queries on a store another process writes: open it read-only and move to its newest durable state before each request. Writes are answered with the error code readOnly.")
    var readOnly = false

    func run() throws {
        // The contract acknowledges a write only once it is durable: always full durability.
        var options = StoreOptions()
        options.durability = .full
        let store = readOnly
            ? try StoreAccess.openReadOnly(self.store, options: options)
            : try StoreAccess.openOrCreate(self.store, command: "exec", options: options)
        let out = Output.standardOutput
        let reader = LineReader(fd: 0)
        reader.beforeBlocking = { out.flush() }
        do {
            while let line = try reader.next() {
                switch line {
                case .line(let bytes):
                    if readOnly {
                        // Each answer includes every write acknowledged before the request.
                        do {
                            try store.refresh()
                        } catch {
                            out.line(RequestError(mapping: error).jsonLine)
                            continue
                        }
                    }
                    out.line(ExecRequest.respond(to: bytes, store: store))
                case .tooLong(let n):
                    out.line(RequestError.invalidRequest("line of \(n) bytes is longer than \(reader.maxLineBytes)").jsonLine)
                }
            }
        } catch {
            out.flush()
            try? store.close()
            throw error
        }
        out.flush()
        try store.close()
    }
}
