import Foundation
import Scrollback

/// The search rules of the README written out directly, for the reference model: no index, a
/// scan of every message's body.
package enum ReferenceSearchTerms {
    static let cjkRanges: [ClosedRange<UInt32>] = [
        0x3040...0x30FF, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xF900...0xFAFF, 0xAC00...0xD7AF,
        0x1100...0x11FF, 0x3130...0x318F, 0x20000...0x2A6DF,
    ]

    static func isCJK(_ scalar: Unicode.Scalar) -> Bool { cjkRanges.contains { $0.contains(scalar.value) } }

    package typealias Terms = (words: [String], singles: Set<String>, pairs: Set<String>)

    /// Terms by body: the model searches every message on every query, and bodies repeat.
    private static let lock = NSLock()
    nonisolated(unsafe) private static var cache: [String: Terms] = [:]

    /// Words (L/N runs outside CJK, NFKD without Mn, lowercased), CJK characters, CJK pairs.
    package static func terms(_ text: String) -> Terms {
        lock.lock()
        let known = cache[text]
        lock.unlock()
        if let known { return known }
        let computed = computeTerms(text)
        lock.lock()
        if cache.count > 100_000 { cache.removeAll() }
        cache[text] = computed
        lock.unlock()
        return computed
    }

    static func computeTerms(_ text: String) -> Terms {
        var words: [String] = []
        var singles = Set<String>()
        var pairs = Set<String>()
        var run: [Unicode.Scalar] = []
        var other = ""
        func addRun(_ run: [Unicode.Scalar]) {
            for scalar in run { singles.insert(String(scalar)) }
            if run.count > 1 { for i in 1..<run.count { pairs.insert(String(run[i - 1]) + String(run[i])) } }
        }
        func flushRun() {
            addRun(run)
            run = []
        }
        func flushOther() {
            // Decomposition may produce CJK letters (half-width kana, squared CJK): they form
            // runs of their own inside the stretch.
            var word = ""
            var inner: [Unicode.Scalar] = []
            func endWord() {
                if !word.isEmpty { words.append(word.lowercased()) }
                word = ""
            }
            func endInner() {
                addRun(inner)
                inner = []
            }
            for scalar in other.decomposedStringWithCompatibilityMapping.unicodeScalars {
                let category = scalar.properties.generalCategory
                if category == .nonspacingMark { continue }
                switch category {
                case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
                     .decimalNumber, .letterNumber, .otherNumber:
                    if isCJK(scalar) {
                        endWord()
                        inner.append(scalar)
                    } else {
                        endInner()
                        word.unicodeScalars.append(scalar)
                    }
                default:
                    endWord()
                    endInner()
                }
            }
            endWord()
            endInner()
            other = ""
        }
        for scalar in text.unicodeScalars {
            if isCJK(scalar) {
                flushOther()
                run.append(scalar)
            } else {
                flushRun()
                other.unicodeScalars.append(scalar)
            }
        }
        flushOther()
        flushRun()
        return (words, singles, pairs)
    }

    /// Whether `body` matches `query` (whose terms are not empty).
    package static func matches(body: String, query: (words: [String], singles: Set<String>, pairs: Set<String>)) -> Bool {
        let terms = terms(body)
        let bodyWords = terms.words.map { Array($0.utf8) }
        return query.words.allSatisfy { word in bodyWords.contains { $0.starts(with: Array(word.utf8)) } }
            && query.singles.isSubset(of: terms.singles) && query.pairs.isSubset(of: terms.pairs)
    }
}

/// A search position in the model: the last message returned.
struct ReferenceSearchCursor: Hashable, Sendable {
    var query: String
    var scope: [String]?
    var position: ReferencePosition
}

extension ReferenceStore {
    /// Every message matching `query` in `scope` (nil: the whole store), newest first.
    func allSearchMatches(_ query: String, in scope: [String]?) throws -> [Entry] {
        if let scope { try Self.checkConversationList(scope) }
        guard query.utf8.count <= MessageStore.maxSearchQueryBytes else {
            throw Self.invalid("query", "longer than \(MessageStore.maxSearchQueryBytes) bytes")
        }
        let terms = ReferenceSearchTerms.terms(query)
        if terms.words.isEmpty && terms.singles.isEmpty && terms.pairs.isEmpty {
            throw Self.invalid("query", "no terms")
        }
        let conversations = scope.map { Array(Set($0)) } ?? Array(conversationEntries.keys)
        var all: [Entry] = []
        for conversation in conversations {
            all += entries(conversation).filter { ReferenceSearchTerms.matches(body: $0.message.body, query: terms) }
        }
        return all.sorted { $0.position > $1.position }
    }

    /// See `MessageStore.search(_:in:after:limit:)`.
    func search(_ query: String, in scope: [String]?, after cursor: ReferenceSearchCursor?, limit: Int) throws
        -> (messages: [Message], next: ReferenceSearchCursor?) {
        try Self.checkLimit(limit)
        if let cursor, cursor.query != query || cursor.scope.map(Set.init) != scope.map(Set.init) {
            throw ScrollbackError.invalidCursor("cursor of another search")
        }
        let remaining = try allSearchMatches(query, in: scope).filter { cursor == nil || $0.position < cursor!.position }
        let taken = Array(remaining.prefix(limit))
        guard remaining.count > taken.count else { return (taken.map(\.message), nil) }
        // A page of limit 0 with matches left continues where it started.
        let position = taken.last?.position ?? cursor?.position ?? ReferencePosition(createdAt: .max, seq: .max)
        return (taken.map(\.message), ReferenceSearchCursor(query: query, scope: scope, position: position))
    }
}
