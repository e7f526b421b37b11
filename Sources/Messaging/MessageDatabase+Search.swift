import ScrollbackBTree
import ScrollbackStorage

/// A parsed search query (`SearchTokenizer` rules): its distinct words, each matched as a
/// prefix of a body word, and its distinct CJK characters and pairs, matched exactly.
package struct SearchQuery: Sendable {
    package let words: [[UInt8]]
    package let singles: [[UInt8]]
    package let pairs: [[UInt8]]
    /// The CJK characters of the query that none of its pairs holds (runs of one): the only
    /// singles looked up, each as the prefix of the terms that start with it (itself ending a
    /// run, or a pair it starts); the others are implied by the pairs.
    let loneSingles: [[UInt8]]

    /// Throws `.invalidArgument` for a query without terms.
    package init(_ text: String) throws {
        let terms = SearchTokenizer.terms(of: text)
        guard !terms.isEmpty else {
            throw MessagingError.invalidArgument(argument: "query", reason: "\"\(text)\" has no words or CJK characters to search for")
        }
        words = terms.words.map { Array($0.utf8) }.sortedDistinct()
        singles = terms.singles.map(SearchTokenizer.utf8).sortedDistinct()
        pairs = terms.pairs.map(\.utf8).sortedDistinct()
        loneSingles = terms.singles.filter { s in !terms.pairs.contains { $0.first == s || $0.second == s } }
            .map(SearchTokenizer.utf8).sortedDistinct()
    }

    /// For each of `pairs`, its group: pairs that share a character (transitively: the pairs
    /// of one CJK run) have the same.
    var pairGroups: [Int] {
        var group = Array(pairs.indices)
        func root(_ i: Int) -> Int { group[i] == i ? i : root(group[i]) }
        for i in pairs.indices {
            for j in pairs.indices where j > i {
                let a = pairs[i], b = pairs[j]
                let half = a.count / 2, otherHalf = b.count / 2
                let shares = a[half...].elementsEqual(b[..<otherHalf]) || b[otherHalf...].elementsEqual(a[..<half])
                    || a[..<half].elementsEqual(b[..<otherHalf]) || a[half...].elementsEqual(b[otherHalf...])
                if shares { group[root(j)] = root(i) }
            }
        }
        return pairs.indices.map(root)
    }

    /// Whether a body with these terms matches: every word a prefix of one of its words, every
    /// CJK character and pair among its own.
    package func matches(_ body: SearchTokenizer.Terms) -> Bool {
        if !singles.isEmpty || !pairs.isEmpty {
            let bodySingles = Set(body.singles.map(SearchTokenizer.utf8))
            let bodyPairs = Set(body.pairs.map(\.utf8))
            guard singles.allSatisfy(bodySingles.contains), pairs.allSatisfy(bodyPairs.contains) else { return false }
        }
        let bodyWords = body.words.map { Array($0.utf8) }
        return words.allSatisfy { word in bodyWords.contains { $0.starts(with: word) } }
    }

    /// A hash of the query's terms and `scope` (sorted, distinct names; nil: the whole store)
    /// that binds a search cursor to them.
    func binding(scope: [String]?) -> UInt64 {
        var bytes: [UInt8] = Array("search".utf8)
        for list in [words, singles, pairs] {
            bytes.append(0xFF)
            for term in list { bytes += term; bytes.append(0) }
        }
        bytes.append(0xFE)
        if let scope {
            for name in scope.map({ Array($0.utf8) }).sortedDistinct() {
                bytes.append(UInt8(truncatingIfNeeded: name.count))   // length-prefixed: names may hold any byte
                bytes += name
            }
        } else {
            bytes.append(0xFD)
        }
        return bytes.withUnsafeBytes { Hash64.hash($0) }
    }
}

extension MessageDatabase {
    // MARK: Building

    /// Whether the search index is on, and built.
    package func searchIndexState() throws -> (enabled: Bool, built: Bool) {
        try engine.read { snapshot in
            let coverage = SearchCoverage(snapshot.state)
            return (coverage.isEnabled, coverage.isBuilt)
        }
    }

    /// Turns the search index on and builds it over the messages already stored, in steps of
    /// at most `stepMessages` messages (and about 64 KiB of terms), each its own durable
    /// commit: writers and readers go on between steps, and a crash keeps the steps done (call
    /// again to finish). Messages written meanwhile are indexed by their own commits. A store
    /// whose index is on already: finishes an interrupted build, else nothing. Calls
    /// `progress` with the messages indexed so far after each step.
    package func enableSearchIndex(stepMessages: Int = 2_000, progress: ((Int) -> Void)? = nil) throws {
        guard stepMessages > 0 else {
            throw MessagingError.invalidArgument(argument: "stepMessages", reason: "\(stepMessages) is not positive")
        }
        let state = try searchIndexState()
        if state.enabled && state.built { return }
        if !state.enabled {
            try engine.commit { transaction, batch in
                if !SearchCoverage(transaction.state).isEnabled {
                    try batch.append(type: .searchEnable, payloadCount: 0) { _ in }
                }
            }
        }
        var indexed = 0
        // Each step dirties a postings leaf of most of its terms: checkpoints at the usual
        // dirty-page threshold would write the same leaves over and over.
        try engine.withRaisedDirtyPageThreshold {
            while let step = try buildSearchIndexStep(stepMessages: stepMessages) {
                indexed += step
                progress?(indexed)
            }
        }
    }

    /// Turns the search index off: one durable commit that frees every page of its two trees
    /// (O(pages of the index)). Searching then throws `.invalidArgument` until
    /// `enableSearchIndex` builds it again from the messages (the way to rebuild an index, e.g.
    /// after `verify` reports terms a newer Unicode version splits differently). Nothing when
    /// the index is off.
    package func disableSearchIndex() throws {
        try engine.commit { transaction, batch in
            if SearchCoverage(transaction.state).isEnabled {
                try batch.append(type: .searchDisable, payloadCount: 0) { _ in }
            }
        }
    }

    /// One build step: the postings of the next messages after the build cursor, in one
    /// commit. Returns the messages it indexed, or nil when the index is built (or off).
    package func buildSearchIndexStep(stepMessages: Int, stepBytes: Int = 64 << 10) throws -> Int? {
        var indexed: Int? = nil
        try engine.commit { transaction, batch in
            indexed = nil
            let coverage = SearchCoverage(transaction.state)
            guard coverage.isEnabled, !coverage.isBuilt else { return }
            var cursor = try BTree(transaction, .messages).cursor()
            var valid = try cursor.seek(atLeast: coverage.cursor)
            var reader = engine.recordReader(for: transaction)
            var entries: [SearchEntry] = []
            var bytes = 0
            var next: BTreeKey? = nil
            var count = 0
            while valid {
                var treeKey = BTreeKey.min
                var position: LogPosition = 0
                _ = try cursor.withCurrent { k, v in
                    treeKey = k
                    position = MessagePointer.position(in: v)
                }
                if count == stepMessages || bytes >= stepBytes {
                    next = treeKey
                    break
                }
                let key = MessageKey(treeKey)
                let terms = try withMessage(at: position, key: key, &reader) { body, record in
                    SearchTokenizer.indexTerms(of: body.text(in: record))
                }
                for entry in SearchEntry.entries(key: key, terms: terms) {
                    bytes += entry.encodedSize
                    entries.append(entry)
                }
                count += 1
                valid = try cursor.next()
            }
            let record = SearchBuildRecord(cursor: next ?? BTreeKey(.max, .max), built: next == nil, entries: entries)
            try record.append(into: &batch)
            indexed = count
        }
        return indexed
    }

    // MARK: Querying

    /// Visits the newest `limit` messages matching `query` in `scope` (conversation names; nil:
    /// the whole store), newest first (createdAt descending, then insertion order descending),
    /// after the position of `token` (from the newest when nil). Returns the token of the last
    /// message visited when another match follows, else nil. Throws `.invalidArgument` when
    /// the index is off, `.invalidCursor` for a token of another query, scope or store.
    package func search(_ text: String, in scope: [String]?, after token: String?, limit: Int,
                        _ visit: MessageVisitor) throws -> String? {
        let query = try SearchQuery(text)
        return try engine.read { snapshot in
            // The binding is hashed only when a cursor is read or made (most searches end on
            // their first page).
            func secret() -> UInt64 { snapshot.state[counter: .cursorSecret] ^ query.binding(scope: scope) }
            var after: CursorToken.Position? = nil
            if let token {
                guard let position = CursorToken.decode(token, secret: secret(), version: CursorToken.searchVersion) else {
                    throw MessagingError.invalidCursor("the cursor is damaged, or belongs to another search, scope or store")
                }
                after = position
            }
            var last: CursorToken.Position? = nil
            var names: [UInt64: String] = [:]
            let more = try searchMatches(query, in: scope, after: after, limit: limit, snapshot) { key, position, reader in
                let name: String
                if let known = names[key.conversation] {
                    name = known
                } else {
                    name = try conversationName(key.conversation, in: snapshot, for: "message \(key) names a missing conversation")
                    names[key.conversation] = name
                }
                try visitMessage(at: position, key: key, conversation: name, &reader, visit)
                last = CursorToken.Position(conversation: key.conversation, createdAt: key.createdAt, seq: key.seq)
            }
            guard more else { return nil }
            // A page of limit 0 with matches left continues where it started.
            let position = last ?? after ?? CursorToken.Position(conversation: 0, createdAt: MessageKey.maxCreatedAt + 1, seq: 0)
            return CursorToken.encode(position, secret: secret(), version: CursorToken.searchVersion)
        }
    }

    /// The number of messages matching `query` in `scope` (nil: the whole store). Cost: every
    /// posting of its rarest term in scope, and a check of each.
    package func searchCount(_ text: String, in scope: [String]?) throws -> Int {
        let query = try SearchQuery(text)
        return try engine.read { snapshot in
            var count = 0
            _ = try searchMatches(query, in: scope, after: nil, limit: .max, snapshot) { _, _, _ in count += 1 }
            return count
        }
    }

    /// The core of `search` and `searchCount`: candidates from the postings of the query's
    /// rarest term (a k-way merge over the scope's conversations, or — across the store, or
    /// for a scope when the term has at most `searchPostingsScannedPerSeek` postings per seek
    /// the merge would make — rounds of top-k over a scan of the term's postings), each
    /// checked against the other terms (by their postings when they have few term ids: a
    /// round's candidates at once, in key order, by `RoundFilter`; a merged candidate by a
    /// `SearchPostings.Probe` each; else by the terms of the message's body). When the rarest
    /// term and the rarest check are single terms and probing would cost more
    /// (`joinIsCheaper`), the candidates are instead
    /// the messages holding both, from a merge of the two terms' postings. Calls `match` for
    /// up to `limit` matches in order; returns whether another match follows.
    private func searchMatches(
        _ query: SearchQuery, in scope: [String]?, after: CursorToken.Position?, limit: Int, _ snapshot: PageTransaction,
        _ match: (MessageKey, LogPosition, inout RecordReader) throws -> Void
    ) throws -> Bool {
        let coverage = SearchCoverage(snapshot.state)
        guard coverage.isEnabled else {
            throw MessagingError.invalidArgument(
                argument: "search", reason: "the search index of \(directory) is off: turn it on with enableSearchIndex() "
                    + "(scrollback search-index STORE)")
        }
        guard coverage.isBuilt else {
            throw MessagingError.invalidArgument(
                argument: "search", reason: "the search index of \(directory) is still being built: finish it with "
                    + "enableSearchIndex() (scrollback search-index STORE)")
        }
        let index = try SearchIndex.Trees(snapshot)
        guard case .blocks(let postings) = index.postings else {
            throw MessagingError.invalidArgument(
                argument: "search", reason: "the search index of \(directory) has the layout of format 3: run scrollback upgrade STORE")
        }
        // Each term's group: the pairs of one CJK run share one (a message with one of them
        // mostly has the others); every other term has its own.
        var resolved: [(term: ResolvedTerm, group: Int)] = []
        for word in query.words {
            let term = try ResolvedTerm(prefix: word, index.terms)
            if term.ids.isEmpty { return false }
            resolved.append((term, -1 - resolved.count))
        }
        for single in query.loneSingles {
            // Exact: the terms starting with a CJK character are it and the pairs it starts.
            let term = try ResolvedTerm(prefix: single, index.terms)
            if term.ids.isEmpty { return false }
            resolved.append((term, -1 - resolved.count))
        }
        let groups = query.pairGroups
        for (i, exact) in query.pairs.enumerated() {
            let term = try ResolvedTerm(exact: exact, index.terms)
            if term.ids.isEmpty { return false }
            resolved.append((term, groups[i]))
        }
        // A query has at least one term (SearchQuery), so `resolved` is never empty.
        guard let driverIndex = resolved.indices.min(by: { resolved[$0].term.postings < resolved[$1].term.postings }) else {
            return false
        }
        let driver = resolved[driverIndex].term
        var grouped: [(term: ResolvedTerm, withDriver: Bool)] = []
        var needsBody = !driver.isExact
        for (i, entry) in resolved.enumerated() where i != driverIndex {
            if entry.term.checkByPostings {
                grouped.append((entry.term, entry.group == resolved[driverIndex].group))
            } else {
                needsBody = true
            }
        }
        // Terms of other groups first, the rarest first: a candidate without one is rejected
        // after one probe (a candidate of the driver mostly holds the rest of its run).
        grouped.sort { $0.withDriver != $1.withDriver ? !$0.withDriver : $0.term.postings < $1.term.postings }
        let checks = grouped.map(\.term)

        // The scope's conversation ids, sorted, each once (a name given twice counts once).
        var scopeIDs: [UInt64]? = nil
        if let scope {
            var ids: [UInt64] = []
            ids.reserveCapacity(scope.count)
            for name in scope {
                if let id = try conversationID(name, in: snapshot) { ids.append(id) }
            }
            scopeIDs = ids.sortedDistinct(by: <)
        }
        // The messages holding the driver and every check of one term id, by a merge of their
        // postings, when that decodes fewer postings than the probes it saves would cost.
        var joined = Array(repeating: false, count: checks.count)
        var stream: CandidateStream
        let single = checks.indices.filter { checks[$0].ids.count == 1 }
        if driver.ids.count == 1, !single.isEmpty,
           try joinIsCheaper(driver.postings, single.map { checks[$0].postings }, rate: grouped.first { !$0.withDriver }?.term.postings,
                             scope: scopeIDs, limit: limit, snapshot) {
            let keys = try Self.joinedCandidates([driver.ids[0]] + single.map { checks[$0].ids[0] }, in: scopeIDs,
                                                 below: after, postings)
            stream = CandidateStream(sortedKeys: keys)
            for i in single { joined[i] = true }
        } else {
            // Few postings in a scope: one scan of them, filtered by conversation, costs less
            // than a seek per (conversation, term id). Across the store: always a scan.
            var scan = true
            if let ids = scopeIDs {
                let seeks = UInt64(ids.count * driver.ids.count)
                let (budget, overflow) = seeks.multipliedReportingOverflow(by: UInt64(max(0, searchPostingsScannedPerSeek)))
                scan = !ids.isEmpty && driver.postings <= (overflow ? .max : budget)
            }
            if scan {
                // Rounds of the newest candidates, each checked against every check term at
                // once (`RoundFilter`). The first round keeps one more than the page plus a
                // margin for candidates the checks reject; `searchCount` (limit .max) takes
                // big rounds from the start.
                let filter = RoundFilter(checks: checks.map(\.ids), postings: postings)
                stream = try CandidateStream(sorting: driver.ids, in: scopeIDs, below: after, postings,
                                             firstRound: limit == .max ? 1 << 16 : min(limit, 1 << 16) * 2 + 8, filter: filter)
                for i in checks.indices { joined[i] = true }
            } else {
                stream = try CandidateStream(merging: driver.ids, conversations: scopeIDs ?? [], below: after, postings)
            }
        }

        var probes = checks.indices.map { joined[$0] ? nil : SearchPostings.Probe(postings) }
        let messages = try BTree(snapshot, .messages)
        var reader = engine.recordReader(for: snapshot)
        var taken = 0
        candidates: while let key = try stream.next() {
            for i in checks.indices where !joined[i] { if !(try checks[i].hasPosting(key, &probes[i]!)) { continue candidates } }
            var found: LogPosition? = nil
            try messages.withValue(for: key.treeKey) { found = MessagePointer.position(in: $0) }
            guard let position = found else {
                throw StorageError.corrupted(file: engine.pageFilePath, offset: 0,
                                             reason: "search posting names message \(key), which does not exist")
            }
            if needsBody {
                let matches = try withMessage(at: position, key: key, &reader) { body, record in
                    query.matches(SearchTokenizer.terms(of: body.text(in: record)))
                }
                if !matches { continue }
            }
            if taken == limit { return true }
            taken += 1
            try match(key, position, &reader)
        }
        return false
    }
}

extension MessageDatabase {
    /// Whether merging the postings of the driver (`driver` postings) and of the checks
    /// (`checks`) decodes fewer postings than probing the candidates would cost
    /// (`searchDecodesPerProbe` each). The probes: the driver's candidates until `limit` + 1
    /// matches, at the rate the share of the messages holding the `rate` term (the rarest
    /// check outside the driver's group; terms taken as independent; nil: every candidate
    /// matches) predicts; a scope takes its share of the conversations, and a seek per term
    /// each.
    fileprivate func joinIsCheaper(_ driver: UInt64, _ checks: [UInt64], rate: UInt64?, scope: [UInt64]?, limit: Int,
                                   _ snapshot: PageTransaction) throws -> Bool {
        let messages = Double(max(1, snapshot.state[counter: .liveMessages]))
        let terms = Double(1 + checks.count)
        var share = 1.0, seeks = terms
        if let scope {
            let conversations = Double(max(1, try BTree(snapshot, .conversations).count))
            share = min(1, Double(scope.count) / conversations)
            seeks = terms * Double(scope.count)
        }
        let candidates = Double(driver) * share
        let holding = Double(max(1, min(rate ?? .max, UInt64(messages))))
        let wanted = limit == .max ? candidates : min(candidates, (Double(limit) + 1) * messages / holding)
        let merge = checks.reduce(Double(driver)) { $0 + Double($1) } * share + seeks * searchDecodesPerProbe
        return merge < wanted * searchDecodesPerProbe
    }

    /// The messages that hold every one of `terms` (term ids, at least one), in
    /// `conversations` (sorted; nil: all), below `after`, newest first (createdAt, then seq,
    /// descending): a merge of the terms' postings in key order in which each cursor behind
    /// skips to the message the one ahead is at (inside its block, or by a seek).
    fileprivate static func joinedCandidates(_ terms: [UInt64], in conversations: [UInt64]?, below after: CursorToken.Position?,
                                             _ postings: SearchPostings) throws -> [MessageKey] {
        var keys: [MessageKey] = []
        var cursors = terms.map { _ in PostingForwardCursor(postings) }
        /// The message at cursor i as a posting of term 0 (for comparisons across terms), or
        /// nil when the cursor has left its term or `last`.
        func message(_ i: Int, _ last: UInt64) -> Posting? {
            let p = cursors[i].current
            guard p.term == terms[i], p.conversation <= last else { return nil }
            return Posting(term: 0, conversation: p.conversation, createdAt: p.createdAt, seq: p.seq)
        }
        func merge(from first: UInt64, through last: UInt64) throws {
            for i in terms.indices {
                guard try cursors[i].seek(atLeast: Posting(term: terms[i], conversation: first, createdAt: 0, seq: 0)) else { return }
            }
            while true {
                // The furthest cursor's message; every other cursor skips to it.
                var target = Posting(term: 0, conversation: 0, createdAt: 0, seq: 0)
                for i in terms.indices {
                    guard let m = message(i, last) else { return }
                    if target < m { target = m }
                }
                var agree = true
                for i in terms.indices {
                    guard let m = message(i, last) else { return }
                    if m < target {
                        guard try cursors[i].advance(to: Posting(term: terms[i], target.message)) else { return }
                        guard let moved = message(i, last) else { return }
                        if moved != target { agree = false }
                    }
                }
                guard agree else { continue }
                if after?.isAbove(target.message) ?? true { keys.append(target.message) }
                for i in terms.indices {
                    guard try cursors[i].next() else { return }
                }
            }
        }
        if let conversations {
            for conversation in conversations { try merge(from: conversation, through: conversation) }
        } else {
            try merge(from: 0, through: .max)
        }
        keys.sort { $0.createdAt != $1.createdAt ? $0.createdAt > $1.createdAt : $0.seq > $1.seq }
        return keys
    }
}

extension CursorToken.Position {
    /// Whether a search page that continues after this position may hold `key`: the key is
    /// below it in search order (createdAt, then seq, descending).
    @inline(__always)
    func isAbove(_ key: MessageKey) -> Bool {
        key.createdAt < createdAt || (key.createdAt == createdAt && key.seq < seq)
    }
}

/// One query term resolved against the terms tree: its term ids and their postings.
private struct ResolvedTerm {
    var ids: [UInt64] = []
    var postings: UInt64 = 0
    /// Whether the term's postings are exactly its matches (false for a word longer than the
    /// terms tree keeps: its ids are those of its first 32 bytes).
    var isExact = true
    /// Whether a candidate is checked against the term by its postings (exact, few ids); else
    /// by the terms of its body.
    var checkByPostings: Bool { isExact && ids.count <= Self.maxIDsCheckedByPostings }

    static let maxIDsCheckedByPostings = 8

    init(prefix word: [UInt8], _ terms: BTree) throws {
        let cut = SearchTokenizer.truncated(word)
        let (low, high) = SearchTermKey.range(prefix: cut)
        var cursor = terms.cursor()
        var valid = try cursor.seek(atLeast: low)
        while valid {
            var inRange = false
            _ = try cursor.withCurrent { key, value in
                guard key <= high else { return }
                inRange = true
                let entry = SearchTermValue(value)
                ids.append(entry.termID)
                postings &+= entry.postings
            }
            if !inRange { break }
            valid = try cursor.next()
        }
        isExact = cut.count == word.count
    }

    init(exact term: [UInt8], _ terms: BTree) throws {
        try terms.withValue(for: SearchTermKey.key(term)) { value in
            let entry = SearchTermValue(value)
            ids = [entry.termID]
            postings = entry.postings
        }
    }

    func hasPosting(_ key: MessageKey, _ probe: inout SearchPostings.Probe) throws -> Bool {
        for id in ids where try probe.contains(Posting(term: id, key)) { return true }
        return false
    }
}

/// The driver term's postings as message keys, newest first (createdAt, then seq,
/// descending), each once, below an optional position: a heap merge of per-conversation
/// reverse scans for a scope, rounds of top-k selection for the whole store.
private struct CandidateStream {
    // Scoped: one reverse cursor per (conversation, term id), merged by a heap.
    private var cursors: [PostingReverseCursor] = []
    private var heap = FeedHeap()
    // Whole store: the term's postings, sorted.
    private var sorted: [MessageKey] = []
    private var nextSorted = 0
    private let merging: Bool
    private var lastSeq: UInt64? = nil

    /// The key just below `position` in conversation `conversation` (nil: none is).
    private static func upperBound(_ conversation: UInt64, below position: CursorToken.Position?) -> MessageKey? {
        guard let p = position else { return .last(of: conversation) }
        if p.seq > 0 { return MessageKey(conversation: conversation, createdAt: p.createdAt, seq: p.seq - 1) }
        if p.createdAt > 0 {
            return MessageKey(conversation: conversation, createdAt: min(p.createdAt - 1, MessageKey.maxCreatedAt), seq: MessageKey.maxSeq)
        }
        return nil
    }

    init(merging termIDs: [UInt64], conversations: [UInt64], below position: CursorToken.Position?, _ postings: SearchPostings) throws {
        merging = true
        for conversation in conversations {
            guard let upper = Self.upperBound(conversation, below: position) else { continue }
            for termID in termIDs {
                var cursor = PostingReverseCursor(postings)
                guard try cursor.seek(atMost: Posting(term: termID, upper)) else { continue }
                let head = cursor.current
                guard head.term == termID && head.conversation == conversation else { continue }
                heap.push(FeedHeap.Entry(createdAt: head.createdAt, seq: head.seq, source: cursors.count))
                cursors.append(cursor)
            }
        }
    }

    /// Over `keys`, already in order.
    init(sortedKeys keys: [MessageKey]) {
        merging = false
        sorted = keys
    }

    init(sorting termIDs: [UInt64], in conversations: [UInt64]? = nil, below position: CursorToken.Position?, _ postings: SearchPostings,
         firstRound: Int, filter: RoundFilter? = nil) throws {
        merging = false
        self.termIDs = termIDs
        self.conversations = conversations
        self.postings = postings
        self.filter = filter
        roundSize = max(1, firstRound)
        try selectRound(below: position)
    }

    // Whole store (or a scope whose driver has few postings): rounds of top-k selection. Each
    // round reads the term's postings once (in a scope, only those of its conversations, by a
    // forward walk) and keeps the newest `roundSize` below the previous round's last key in a
    // heap (O(P log k), no array of every posting); a consumer that needs more starts another
    // round, twice as big.
    private var termIDs: [UInt64] = []
    /// The scope's conversation ids, sorted: a round walks the term's postings forward through
    /// them.
    private var conversations: [UInt64]? = nil

    private var postings: SearchPostings? = nil
    private var roundSize = 0
    private var roundWasFull = false
    /// The last key of the round before filtering: the next round starts below it.
    private var roundLast: MessageKey? = nil
    /// Applied to each round (nil: the round as selected).
    private var filter: RoundFilter? = nil

    /// One round: the newest `roundSize` postings below `position`. The heap is the feed's
    /// max-heap over complemented (createdAt, seq), so its top is the oldest posting kept.
    private mutating func selectRound(below position: CursorToken.Position?) throws {
        guard let postings else { return }
        var kept = FeedHeap()
        kept.items.reserveCapacity(roundSize)
        let k = roundSize
        func consider(_ key: MessageKey) {
            if let position, !position.isAbove(key) { return }
            let entry = FeedHeap.Entry(createdAt: ~key.createdAt, seq: ~key.seq, source: Int(key.conversation))
            if kept.items.count < k {
                kept.push(entry)
            } else if kept.items[0].isAbove(entry) {   // newer than the oldest kept
                _ = kept.popMax()
                kept.push(entry)
            }
        }
        for termID in termIDs {
            guard let conversations else {
                try postings.forEach(term: termID) { posting in
                    consider(posting.message)
                    return true
                }
                continue
            }
            // The scope's conversations in order, with one forward cursor: the blocks between
            // them are stepped over by key (or sought past), not decoded.
            var cursor = PostingForwardCursor(postings)
            scope: for conversation in conversations {
                guard try cursor.advance(to: Posting(term: termID, conversation: conversation, createdAt: 0, seq: 0)) else { break }
                while cursor.current.term == termID && cursor.current.conversation == conversation {
                    consider(cursor.current.message)
                    guard try cursor.next() else { break scope }
                }
                if cursor.current.term != termID { break }
            }
        }
        roundWasFull = kept.items.count == k
        sorted = kept.items.map { MessageKey(conversation: UInt64($0.source), createdAt: ~$0.createdAt, seq: ~$0.seq) }
            .sorted { $0.createdAt != $1.createdAt ? $0.createdAt > $1.createdAt : $0.seq > $1.seq }
        roundLast = sorted.last
        if let filter { try filter.apply(&sorted) }
        nextSorted = 0
    }

    mutating func next() throws -> MessageKey? {
        while true {
            let key: MessageKey
            if merging {
                guard let top = heap.popMax() else { return nil }
                let current = cursors[top.source].current
                key = current.message
                if try cursors[top.source].previous() {
                    let next = cursors[top.source].current
                    if next.term == current.term && next.conversation == current.conversation {
                        heap.push(FeedHeap.Entry(createdAt: next.createdAt, seq: next.seq, source: top.source))
                    }
                }
            } else {
                while nextSorted == sorted.count {
                    // The round is used up: another, below its last key, if it was full.
                    guard roundWasFull, let last = roundLast else { return nil }
                    roundSize = min(roundSize * 2, 1 << 20)
                    try selectRound(below: CursorToken.Position(conversation: last.conversation, createdAt: last.createdAt,
                                                                seq: last.seq))
                }
                key = sorted[nextSorted]
                nextSorted += 1
            }
            // A message with several of the driver's term ids comes once per id, adjacently.
            if key.seq == lastSeq { continue }
            lastSeq = key.seq
            return key
        }
    }
}

/// The candidates of a round checked against the other terms at once: in key order (by
/// conversation, then time), each check term's postings are walked forward with one cursor
/// per term id, which reads on inside a block or steps over a few blocks by their keys rather
/// than descending the tree for every candidate. A candidate passes a check when one of its
/// term ids holds it; the checks go in order, each over the candidates the ones before passed.
/// Cost per round and term id: one descent, the blocks between its first and last candidate
/// (stepped over by key, or a seek past `PostingForwardCursor.maxSteps` of them), and the
/// postings of the blocks holding candidates up to the last candidate in each.
struct RoundFilter {
    let checks: [[UInt64]]
    let postings: SearchPostings

    /// Keeps the keys of `keys` (in any order, kept as it is) that pass every check.
    func apply(_ keys: inout [MessageKey]) throws {
        guard !checks.isEmpty, !keys.isEmpty else { return }
        var order = keys.map { Posting(term: 0, $0) }.sorted()
        for ids in checks {
            var passed = Array(repeating: false, count: order.count)
            for id in ids {
                var cursor = PostingForwardCursor(postings)
                for i in order.indices where !passed[i] {
                    let target = Posting(term: id, order[i].message)
                    guard try cursor.advance(to: target) else { break }
                    if cursor.current == target { passed[i] = true }
                }
            }
            order = order.indices.filter { passed[$0] }.map { order[$0] }
            if order.isEmpty { break }
        }
        keys.removeAll { !order.sortedContains(Posting(term: 0, $0)) }
    }
}
