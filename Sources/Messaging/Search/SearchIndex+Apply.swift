import ScrollbackBTree
import ScrollbackStorage

/// The search index's side of `apply`: postings added for the messages the index covers,
/// removed by `.searchRemove`, built step by step by `.searchBuild`. Deterministic: term ids
/// come from counter 14 in the order of the sorted terms.
///
/// Cost per message: one terms-tree descent (read and update) and one postings insert per
/// distinct term.
enum SearchIndex {
    /// The index's two trees in one transaction (opened only when the index is on: stores
    /// that never turned it on may lack them when opened read-only).
    struct Trees {
        let terms: BTree
        let postings: BTree

        init(_ transaction: PageTransaction) throws {
            terms = try BTree(transaction, .searchTerms)
            postings = try BTree(transaction, .searchPostings)
        }

        var transaction: PageTransaction { terms.transaction }
    }

    /// Adds a posting of `key` for each of `terms` (distinct), creating terms that are new.
    static func add(_ terms: [[UInt8]], of key: MessageKey, _ trees: Trees) throws {
        for term in terms {
            let termKey = SearchTermKey.key(term)
            var value: SearchTermValue? = nil
            try trees.terms.withValue(for: termKey) { value = SearchTermValue($0) }
            var entry: SearchTermValue
            if let value {
                entry = value
            } else {
                let state = trees.transaction.state
                entry = SearchTermValue(termID: max(1, state[counter: .nextTermID]), postings: 0)
                trees.transaction.state[counter: .nextTermID] = entry.termID &+ 1
            }
            guard try trees.postings.insert(SearchPostingKey.key(termID: entry.termID, key), value: []) else { continue }
            entry.postings &+= 1
            if value == nil {
                try trees.terms.insert(termKey, value: entry.bytes)
            } else {
                try trees.terms.update(termKey, value: entry.bytes)
            }
        }
    }

    /// Removes the postings of `key` for `terms` (a term without postings left goes too).
    static func remove(_ terms: [[UInt8]], of key: MessageKey, _ trees: Trees) throws {
        for term in terms {
            let termKey = SearchTermKey.key(term)
            var value: SearchTermValue? = nil
            try trees.terms.withValue(for: termKey) { value = SearchTermValue($0) }
            guard var entry = value,
                  try trees.postings.delete(SearchPostingKey.key(termID: entry.termID, key)) else { continue }
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
        let trees = try Trees(transaction)
        try trees.postings.freeAllPages()
        try trees.terms.freeAllPages()
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
        let trees = try Trees(transaction)
        for entry in build.entries {
            guard coverage.cursor <= entry.key.treeKey, entry.key.treeKey < build.cursor || build.built else {
                throw MessageHeader.corrupted(position, 0, "searchBuild entry \(entry.key) lies outside the step's range")
            }
            try add(entry.terms, of: entry.key, trees)
        }
        transaction.state[counter: .searchCursorHigh] = build.cursor.w0
        transaction.state[counter: .searchCursorLow] = build.cursor.w1
        if build.built { transaction.state[counter: .searchFlags] |= SearchCoverage.builtFlag }
    }

    static func applyRemove(_ entry: SearchEntry, _ transaction: PageTransaction) throws {
        guard SearchCoverage(transaction.state).isEnabled else { return }
        try remove(entry.terms, of: entry.key, try Trees(transaction))
    }
}
