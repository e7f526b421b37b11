import Scrollback
import ScrollbackReferenceModel

/// The names a workload uses, so a comparison can ask about every one of them (and about a
/// few that never existed).
package struct Universe: Sendable {
    package var conversations: [String]
    package var users: [String]
    /// Every message id the workload ever appended (live or not).
    package var ids: [String]

    package init(conversations: [String], users: [String], ids: [String]) {
        self.conversations = conversations
        self.users = users
        self.ids = ids
    }
}

/// Compares every read primitive of a `MessageStore` with a `SweepModel`: latest, range scans
/// both ways, keyset walks both ways (every page), offset pages, counts, unread counts, feed,
/// latestMessage, conversations, message(id:) and the statistics' counts.
package enum StoreComparison {
    /// Nil when every answer matches; otherwise the first difference.
    package static func difference(_ store: MessageStore, _ model: SweepModel, _ universe: Universe, pageSize: Int = 3)
        throws -> String? {
        let conversations = universe.conversations + ["never-used"]
        func diff<T: Equatable>(_ what: String, _ got: T, _ want: T) -> String? {
            got == want ? nil : "\(what): store returned \(got), model expects \(want)"
        }
        if let d = diff("replicaMark()", try store.replicaMark(),
                        model.replicaSequence.map { ReplicaMark(source: SweepOp.replicaSource, sequence: $0) }) { return d }
        for conversation in conversations {
            let all = model.ordered(conversation, .oldestFirst)
            for limit in [0, 1, 3, MessageStore.maxLimit] {
                if let d = diff("latest(in: \(conversation), limit: \(limit))",
                                try store.latest(in: conversation, limit: limit), model.latest(conversation, limit: limit)) { return d }
            }
            let times = all.map(\.createdAt)
            let middle = times.isEmpty ? 0 : times[times.count / 2]
            let ranges: [(Int64, Int64, Int?)] = [(0, Int64(1) << 53, nil), (middle, middle, nil), (0, middle, 2), (middle + 1, Int64(1) << 53, nil), (5, 4, nil)]
            for (from, through, limit) in ranges {
                for order in [Order.oldestFirst, .newestFirst] {
                    if let d = diff("messages(in: \(conversation), from: \(from), through: \(through), order: \(order), limit: \(String(describing: limit)))",
                                    try store.messages(in: conversation, from: from, through: through, order: order, limit: limit),
                                    model.messages(conversation, from: from, through: through, order: order, limit: limit ?? MessageStore.maxLimit)) { return d }
                }
            }
            for order in [Order.oldestFirst, .newestFirst] {
                // Keyset walk: every page must be the next slice; `next` is nil exactly at the end.
                let expected = model.ordered(conversation, order)
                var cursor: Cursor? = nil
                var seen = 0
                var pages = 0
                repeat {
                    let page = try store.page(in: conversation, after: cursor, limit: pageSize, order: order)
                    let want = Array(expected[seen..<min(expected.count, seen + pageSize)])
                    if let d = diff("keyset page \(pages) of \(conversation) (\(order), size \(pageSize))", page.messages, want) { return d }
                    seen += page.messages.count
                    let more = seen < expected.count
                    if page.hasMore != more {
                        return "keyset page \(pages) of \(conversation) (\(order)): hasMore \(page.hasMore), model has \(expected.count - seen) more"
                    }
                    cursor = page.next
                    pages += 1
                } while cursor != nil && pages <= expected.count + 1
                for offset in [0, 1, 2, all.count - 1, all.count, all.count + 5] where offset >= 0 {
                    if let d = diff("page(in: \(conversation), offset: \(offset), limit: \(pageSize), order: \(order))",
                                    try store.page(in: conversation, offset: offset, limit: pageSize, order: order),
                                    model.page(conversation, offset: offset, limit: pageSize, order: order)) { return d }
                }
            }
            for after in [Int64(-1), middle - 1, middle, Int64(1) << 53] {
                if let d = diff("count(in: \(conversation), after: \(after))",
                                try store.count(in: conversation, after: after), model.count(conversation, after: after)) { return d }
            }
            for user in universe.users + ["nobody"] {
                if let d = diff("unreadCount(user: \(user), in: \(conversation))",
                                try store.unreadCount(user: user, in: conversation), model.unread(user: user, conversation)) { return d }
            }
        }
        let feeds: [([String], Int)] = [(conversations, MessageStore.maxLimit), (conversations, 5),
                                        (Array(universe.conversations.prefix(2)) + [universe.conversations[0]], 4), ([], 3)]
        for (list, limit) in feeds {
            if let d = diff("feed(\(list), limit: \(limit))", try store.feed(list, limit: limit), model.feed(list, limit: limit)) { return d }
        }
        if let d = diff("latestMessage(in: \(conversations))", try store.latestMessage(in: conversations),
                        model.latestMessage(conversations)) { return d }
        for limit in [MessageStore.maxLimit, 2, 0] {
            if let d = diff("conversations(limit: \(limit))", try store.conversations(limit: limit), model.conversations(limit: limit)) { return d }
        }
        for id in universe.ids + ["no-such-id"] {
            if let d = diff("message(id: \(id))", try store.message(id: id), model.entry(id: id)?.message) { return d }
        }
        if try store.isSearchIndexEnabled, let d = try searchDifference(store, model, conversations) { return d }
        let statistics = try store.statistics
        if let d = diff("statistics.messages", statistics.messages, model.messageCount) { return d }
        if let d = diff("statistics.conversations", statistics.conversations, model.entries.count) { return d }
        return nil
    }

    /// Searches of the workload's words (prefixes, accents, two words) in each conversation and
    /// across the store: every match, the count, and a walk in pages of 2.
    static func searchDifference(_ store: MessageStore, _ model: SweepModel, _ conversations: [String]) throws -> String? {
        let queries = ["hello", "wor", "DÉJÀ", "deja vu", "ship it", "lunch", "o", "see you", "nothing"]
        let scopes: [SearchScope] = conversations.map { .conversation($0) } + [.wholeStore]
        for query in queries {
            let terms = ReferenceSearchTerms.terms(query)
            for scope in scopes {
                let names: [String]
                switch scope {
                case .conversation(let name): names = [name]
                default: names = Array(model.entries.keys)
                }
                let want = names.flatMap { model.entries[$0] ?? [] }
                    .filter { ReferenceSearchTerms.matches(body: $0.message.body, query: terms) }
                    .sorted { $0.position > $1.position }.map(\.message)
                let got = try store.search(query, in: scope, limit: MessageStore.maxLimit).messages
                if got != want { return "search(\(query), \(scope)): store returned \(got.map(\.id)), model expects \(want.map(\.id))" }
                let count = try store.searchCount(query, in: scope)
                if count != want.count { return "searchCount(\(query), \(scope)): store returned \(count), model expects \(want.count)" }
                var walked: [Message] = []
                var page = try store.search(query, in: scope, limit: 2)
                walked += page.messages
                while let next = page.next, walked.count <= want.count {
                    page = try store.search(query, in: scope, after: next, limit: 2)
                    walked += page.messages
                }
                if walked != want { return "search(\(query), \(scope)) in pages of 2: \(walked.map(\.id)), model expects \(want.map(\.id))" }
            }
        }
        return nil
    }
}
