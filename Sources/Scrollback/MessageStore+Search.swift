/// Where a search looks.
public enum SearchScope: Sendable, Hashable {
    /// One conversation.
    case conversation(String)
    /// Several conversations (at most `MessageStore.maxConversationsPerQuery`; a name given
    /// twice counts once, an unknown one adds nothing).
    case conversations([String])
    /// Every conversation of the store.
    case wholeStore

    var names: [String]? {
        switch self {
        case .conversation(let name): [name]
        case .conversations(let names): names
        case .wholeStore: nil
        }
    }
}

/// Message search (README, "Search"): an inverted index inside the store, maintained in the
/// same commit as the messages once it is on.
///
/// **Terms.** A body's words are its maximal runs of letters and digits outside the CJK
/// ranges, decomposed (NFKD) without nonspacing marks and lowercased (`Café` → `cafe`,
/// `don't` → `don`, `t`); CJK characters form runs of their own, each character and each
/// adjacent pair a term. A query is split the same way; a message matches when every query
/// word is a prefix of one of its words and every CJK character and pair of the query is
/// among its own.
///
/// **Order.** Newest first: `createdAt` descending, then insertion order descending (as
/// `feed`). Pages continue with the `Cursor` of the previous page, which is bound to the
/// query and the scope (given with another query or scope it is `.invalidCursor`).
///
/// **Cost.** Candidates come from the postings of the query's rarest term, merged across the
/// scope's conversations (one descent per conversation and term id, then one step per
/// candidate) or, for the whole store, sorted (every posting of that term); each candidate is
/// checked against the other terms. Short prefixes that many words share cost the most.
extension MessageStore {
    /// The longest search query, in UTF-8 bytes.
    public static let maxSearchQueryBytes = 1_024

    /// Turns the search index on and builds it over the messages already in the store, in
    /// bounded steps (at most 2,000 messages each), each its own durable commit: writes and
    /// reads go on between steps, and messages written meanwhile are indexed by their own
    /// commits. After a crash or an error part-way the steps done stay; call it again to
    /// finish. Once on, the index stays on (every later write maintains it) until
    /// `disableSearchIndex()`; on a store whose index is built, this does nothing. While it
    /// builds, checkpoints wait for half the page cache (the page cache is three quarters of
    /// `cacheBytes`) of dirty pages instead of `checkpointDirtyBytes`, when that is more: each
    /// step touches a page of most terms.
    public func enableSearchIndex() throws {
        try mapErrors { try database.enableSearchIndex() }
    }

    /// Turns the search index off and returns its pages to the store's free space, in one
    /// durable commit (cost: proportional to the index's pages). Searches then throw
    /// `.invalidArgument` until `enableSearchIndex()` builds the index again from the
    /// messages — which is also how an index is rebuilt (say, after `verify()` reports terms
    /// that a toolchain with another Unicode version splits differently). On a store whose
    /// index is off, this does nothing.
    public func disableSearchIndex() throws {
        try mapErrors { try database.disableSearchIndex() }
    }

    /// Whether the search index is on and built (searches need both).
    public var isSearchIndexEnabled: Bool {
        get throws {
            try mapErrors {
                let state = try database.searchIndexState()
                return state.enabled && state.built
            }
        }
    }

    /// The newest `limit` messages matching `query` in `scope`, after `cursor` (from the newest
    /// when nil), and where the next page starts (nil exactly when no match remains).
    /// Throws `.invalidArgument` for a query without words or CJK characters, longer than
    /// `maxSearchQueryBytes`, or when the search index is not on (`enableSearchIndex()`).
    public func search(_ query: String, in scope: SearchScope = .wholeStore, after cursor: Cursor? = nil, limit: Int) throws
        -> MessagePage {
        try Self.checkSearch(query, scope)
        try Self.checkLimit(limit)
        return try mapErrors {
            var messages: [Message] = []
            messages.reserveCapacity(min(limit, 256))
            let next = try database.search(query, in: scope.names, after: cursor?.token, limit: limit) {
                messages.append(Self.message($0))
            }
            return MessagePage(messages: messages, next: next.map(Cursor.init(token:)))
        }
    }

    /// The number of messages matching `query` in `scope`. Cost: every posting of the query's
    /// rarest term in scope.
    public func searchCount(_ query: String, in scope: SearchScope = .wholeStore) throws -> Int {
        try Self.checkSearch(query, scope)
        return try mapErrors { try database.searchCount(query, in: scope.names) }
    }

    static func checkSearch(_ query: String, _ scope: SearchScope) throws {
        let count = query.utf8.count
        guard count <= maxSearchQueryBytes else {
            throw ScrollbackError.invalidArgument(
                argument: "query", reason: "\(count) UTF-8 bytes exceed the limit of \(maxSearchQueryBytes)")
        }
        switch scope {
        case .conversation(let name): try checkConversation(name)
        case .conversations(let names): try checkConversations(names)
        case .wholeStore: break
        }
    }

    // MARK: Async

    /// The asynchronous form of `enableSearchIndex()`.
    public func enableSearchIndex() async throws {
        try await offload { [self] in try enableSearchIndex() }
    }

    /// The asynchronous form of `disableSearchIndex()`.
    public func disableSearchIndex() async throws {
        try await offload { [self] in try disableSearchIndex() }
    }

    /// The asynchronous form of `search(_:in:after:limit:)`.
    public func search(_ query: String, in scope: SearchScope = .wholeStore, after cursor: Cursor? = nil, limit: Int) async throws
        -> MessagePage {
        try await offload { [self] in try search(query, in: scope, after: cursor, limit: limit) }
    }

    /// The asynchronous form of `searchCount(_:in:)`.
    public func searchCount(_ query: String, in scope: SearchScope = .wholeStore) async throws -> Int {
        try await offload { [self] in try searchCount(query, in: scope) }
    }
}
