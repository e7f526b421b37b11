import ScrollbackBTree
import ScrollbackStorage

/// The search index's side of `apply`: postings added for the messages the index covers,
/// removed by `.searchRemove`, built step by step by `.searchBuild`. Deterministic: term ids
/// come from counter 14 in the order in which terms first occur (messages in order, each
/// message's terms sorted).
///
/// Cost per message: one terms-tree descent (read and update) and one posting-block insert
/// (a descent, one block decoded and written back) per distinct term; a build step and a bulk
/// load batch their messages (`addAll`: one terms-tree read and write per distinct term of
/// the batch, the postings inserted in key order, each block they fall in written once).
enum SearchIndex {
    /// The index's trees in one transaction (opened only when the index is on: stores that
    /// never turned it on may lack them when opened read-only).
    struct Trees {
        let terms: BTree
        let postings: PostingStore

        init(_ transaction: PageTransaction) throws {
            terms = try BTree(transaction, .searchTerms)
            postings = transaction.state[counter: .formatVersion] == MessageLimits.legacySearchFormatVersion
                ? .legacy(try BTree(transaction, .searchPostings))
                : .blocks(try SearchPostings(transaction))
        }

        var transaction: PageTransaction { terms.transaction }

        /// Frees every page of the index's trees.
        func freeAllPages() throws {
            switch postings {
            case .blocks(let blocks): try blocks.freeAllPages()
            case .legacy(let tree): try tree.freeAllPages()
            }
            try terms.freeAllPages()
        }
    }

    /// Where the postings are: in blocks (slot 13, format 4), or — in a store of format 3 until
    /// `scrollback upgrade` rebuilds its index — one key per posting (slot 12), kept up to date
    /// only so that the log tail of such a store replays as the build that wrote it would.
    enum PostingStore {
        case blocks(SearchPostings)
        case legacy(BTree)

        /// Adds `postings` (sorted, distinct), calling `added` for each that was not there.
        func insert(sorted postings: [Posting], added: (Posting) -> Void) throws {
            switch self {
            case .blocks(let blocks):
                try blocks.insert(sorted: postings, added: added)
            case .legacy(let tree):
                for posting in postings where try tree.insert(SearchPostingKey.key(termID: posting.term, posting.message), value: []) {
                    added(posting)
                }
            }
        }

        /// Adds `posting`; false when it is there already.
        func insert(_ posting: Posting) throws -> Bool {
            switch self {
            case .blocks(let blocks): try blocks.insert(posting)
            case .legacy(let tree): try tree.insert(SearchPostingKey.key(termID: posting.term, posting.message), value: [])
            }
        }

        /// Removes `posting`; false when it is not there.
        func remove(_ posting: Posting) throws -> Bool {
            switch self {
            case .blocks(let blocks): try blocks.remove(posting)
            case .legacy(let tree): try tree.delete(SearchPostingKey.key(termID: posting.term, posting.message))
            }
        }
    }

    /// Adds a posting of `key` for each of `terms` (distinct), creating terms that are new.
    static func add(_ terms: [[UInt8]], of key: MessageKey, _ trees: Trees) throws {
        for term in terms {
            let termKey = SearchTermKey.key(term)
            // A known term: its count goes up in the descent that reads it (and back down in
            // the rare case the posting was there already: only on a damaged index).
            var known: SearchTermValue? = nil
            try trees.terms.modify(termKey) { value in
                var entry = SearchTermValue(UnsafeRawBufferPointer(value))
                known = entry
                entry.postings &+= 1
                entry.store(into: value)
            }
            if let known {
                if !(try trees.postings.insert(Posting(term: known.termID, key))) {
                    try trees.terms.modify(termKey) { known.store(into: $0) }
                }
                continue
            }
            var (entry, isNew) = try termEntry(termKey, trees)
            guard try trees.postings.insert(Posting(term: entry.termID, key)) else { continue }
            entry.postings &+= 1
            try storeTermEntry(termKey, entry, isNew: isNew, trees)
        }
    }

    /// The terms-tree entry of `termKey`, or a new one (not stored yet) with the next term id
    /// from counter 14, which is advanced.
    private static func termEntry(_ termKey: BTreeKey, _ trees: Trees) throws -> (entry: SearchTermValue, isNew: Bool) {
        var value: SearchTermValue? = nil
        try trees.terms.withValue(for: termKey) { value = SearchTermValue($0) }
        if let value { return (value, false) }
        let termID = max(1, trees.transaction.state[counter: .nextTermID])
        trees.transaction.state[counter: .nextTermID] = termID &+ 1
        return (SearchTermValue(termID: termID, postings: 0), true)
    }

    private static func storeTermEntry(_ termKey: BTreeKey, _ entry: SearchTermValue, isNew: Bool, _ trees: Trees) throws {
        if isNew {
            try trees.terms.insert(termKey, value: entry.bytes)
        } else {
            try trees.terms.update(termKey, value: entry.bytes)
        }
    }

    /// Adds the postings of many messages (a build step): the same term ids as `add` called
    /// for each message in turn (a new term takes the next id at its first occurrence), with
    /// one terms-tree read per distinct term, the postings inserted in key order (each term's
    /// run of new postings goes into neighbouring leaves instead of one descent into a random
    /// leaf per posting), and one terms-tree write per term that gained postings.
    static func addAll(_ entries: [SearchEntry], _ trees: Trees) throws {
        var known: [BTreeKey: (entry: SearchTermValue, isNew: Bool)] = [:]
        var postings: [Posting] = []
        postings.reserveCapacity(entries.reduce(0) { $0 + $1.terms.count })
        for entry in entries {
            for term in entry.terms {
                let termKey = SearchTermKey.key(term)
                let termID: UInt64
                if let seen = known[termKey] {
                    termID = seen.entry.termID
                } else {
                    let found = try termEntry(termKey, trees)
                    known[termKey] = found
                    termID = found.entry.termID
                }
                postings.append(Posting(term: termID, entry.key))
            }
        }
        postings.sort()
        var added: [UInt64: UInt64] = [:]
        try trees.postings.insert(sorted: postings) { added[$0.term, default: 0] &+= 1 }
        for (termKey, term) in known.sorted(by: { $0.key < $1.key }) {
            // No posting added: the term is left as it was (as `add`). Only on a damaged index
            // (postings under an id the counter has not handed out yet) can a new term's first
            // insert fail; `add` then gives its next occurrence another id, this batch reuses
            // the first — deterministic either way, as replay runs the same code.
            guard let count = added[term.entry.termID] else { continue }
            var entry = term.entry
            entry.postings &+= count
            try storeTermEntry(termKey, entry, isNew: term.isNew, trees)
        }
    }

    /// Removes the postings of `key` for `terms` (a term without postings left goes too).
    static func remove(_ terms: [[UInt8]], of key: MessageKey, _ trees: Trees) throws {
        for term in terms {
            let termKey = SearchTermKey.key(term)
            var value: SearchTermValue? = nil
            try trees.terms.withValue(for: termKey) { value = SearchTermValue($0) }
            guard var entry = value, try trees.postings.remove(Posting(term: entry.termID, key)) else { continue }
            entry.postings &-= 1
            if entry.postings == 0 {
                try trees.terms.delete(termKey)
            } else {
                try trees.terms.update(termKey, value: entry.bytes)
            }
        }
    }

    /// A message (new, or an edit whose old postings a `.searchRemove` took away): its body's
    /// terms when the index covers it.
    @inline(__always)
    static func messageApplied(_ key: MessageKey, text: UnsafeRawBufferPointer, _ transaction: PageTransaction) throws {
        if transaction.state[counter: .searchFlags] == 0 { return }    // off: the common case, no copy of the state
        guard SearchCoverage(transaction.state).covers(key) else { return }
        let terms = SearchTokenizer.indexTerms(of: String(decoding: text, as: UTF8.self))
        if terms.isEmpty { return }
        try add(terms, of: key, try Trees(transaction))
    }

    /// The postings of a bulk load's messages, added in batches through `addAll` (the same
    /// result as `messageApplied` per message, in fewer and more local tree operations).
    struct BatchedPostings {
        private let coverage: SearchCoverage?
        private var pending: [SearchEntry] = []
        private var pendingTerms = 0
        /// Terms held before a batch is added: bounds the memory of a large load.
        static let batchTerms = 1 << 16

        init(_ transaction: PageTransaction) {
            let coverage = SearchCoverage(transaction.state)
            self.coverage = coverage.isEnabled ? coverage : nil
        }

        /// Queues the terms of message `key` when the index covers it.
        mutating func message(_ key: MessageKey, text: UnsafeRawBufferPointer, _ transaction: PageTransaction) throws {
            guard let coverage, coverage.covers(key) else { return }
            let terms = SearchTokenizer.indexTerms(of: String(decoding: text, as: UTF8.self))
            if terms.isEmpty { return }
            pending.append(SearchEntry(key: key, terms: terms))
            pendingTerms += terms.count
            if pendingTerms >= Self.batchTerms { try flush(transaction) }
        }

        /// Adds what is queued. Call once after the last message.
        mutating func flush(_ transaction: PageTransaction) throws {
            guard !pending.isEmpty else { return }
            try addAll(pending, try Trees(transaction))
            pending.removeAll(keepingCapacity: true)
            pendingTerms = 0
        }
    }

    static func applyEnable(_ transaction: PageTransaction) {
        guard !SearchCoverage(transaction.state).isEnabled else { return }
        transaction.state[counter: .searchFlags] = SearchCoverage.enabledFlag
        transaction.state[counter: .searchCursorHigh] = 0
        transaction.state[counter: .searchCursorLow] = 0
        transaction.state.raise(.nextTermID, to: 1)
        transaction.state.raise(.formatVersion, to: MessageLimits.searchFormatVersion)
    }

    /// Turns the index off: frees every page of both trees and clears counters 11–14 (the
    /// message-format counter stays: the log may still hold records 31–34). Nothing when the
    /// index is off. O(pages of the index).
    static func applyDisable(_ transaction: PageTransaction) throws {
        guard SearchCoverage(transaction.state).isEnabled else { return }
        try Trees(transaction).freeAllPages()
        transaction.state[counter: .searchFlags] = 0
        transaction.state[counter: .searchCursorHigh] = 0
        transaction.state[counter: .searchCursorLow] = 0
        transaction.state[counter: .nextTermID] = 0
    }

    static func applyBuild(_ build: SearchBuildRecord, at position: LogPosition, _ transaction: PageTransaction) throws {
        let coverage = SearchCoverage(transaction.state)
        guard coverage.isEnabled, !coverage.isBuilt, coverage.cursor <= build.cursor else {
            throw MessageHeader.corrupted(position, 0, "searchBuild record does not continue the index's build")
        }
        for entry in build.entries {
            guard coverage.cursor <= entry.key.treeKey, entry.key.treeKey < build.cursor || build.built else {
                throw MessageHeader.corrupted(position, 0, "searchBuild entry \(entry.key) lies outside the step's range")
            }
        }
        let trees = try Trees(transaction)
        try addAll(build.entries, trees)
        transaction.state[counter: .searchCursorHigh] = build.cursor.w0
        transaction.state[counter: .searchCursorLow] = build.cursor.w1
        if build.built {
            transaction.state[counter: .searchFlags] |= SearchCoverage.builtFlag
            // The build's inserts left blocks and leaves part-full: pack them.
            if case .blocks(let blocks) = trees.postings { try blocks.repack() }
        }
    }

    static func applyRemove(_ entry: SearchEntry, _ transaction: PageTransaction) throws {
        guard SearchCoverage(transaction.state).isEnabled else { return }
        try remove(entry.terms, of: entry.key, try Trees(transaction))
    }
}
