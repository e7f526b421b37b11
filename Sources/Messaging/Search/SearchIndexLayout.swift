import ScrollbackBTree
import ScrollbackStorage

// The bytes of the search index (spec/message-records.md, "Search index"): the keys of its two
// trees, the counters that say which messages it covers, and its three log records.

/// A term as the terms tree keys it: its UTF-8 bytes (a lowercased word, one CJK character or
/// a CJK pair), at most `maxBytes` (a longer word keeps its first 32 bytes), zero-padded and
/// packed big-endian into four words, so the words' order is the bytes' order and the terms
/// starting with a prefix are one key range. A term is never empty and never holds a zero byte.
package enum SearchTermKey {
    package static let maxBytes = 32

    /// The key of `bytes` (truncated to `maxBytes`), the rest of its 32 bytes filled with `fill`.
    @inline(__always)
    static func key(_ bytes: UnsafeRawBufferPointer, fill: UInt8 = 0) -> BTreeKey {
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &words) { out in
            for i in 0..<maxBytes { out[i] = i < bytes.count ? bytes[i] : fill }
        }
        return BTreeKey(UInt64(bigEndian: words.0), UInt64(bigEndian: words.1), UInt64(bigEndian: words.2),
                        UInt64(bigEndian: words.3))
    }

    static func key(_ bytes: [UInt8]) -> BTreeKey { bytes.withUnsafeBytes { key($0) } }

    /// The term bytes of a key (trailing zero bytes removed).
    package static func bytes(of key: BTreeKey) -> [UInt8] {
        var words = (key.w0.bigEndian, key.w1.bigEndian, key.w2.bigEndian, key.w3.bigEndian)
        var bytes = withUnsafeBytes(of: &words) { Array($0) }
        while let last = bytes.last, last == 0 { bytes.removeLast() }
        return bytes
    }

    /// The keys of every term that starts with `prefix` (inclusive bounds). A prefix of
    /// `maxBytes` or more bytes names the one key of its first 32 bytes.
    static func range(prefix: [UInt8]) -> (low: BTreeKey, high: BTreeKey) {
        prefix.withUnsafeBytes { (key($0), key($0, fill: 0xFF)) }
    }
}

/// The terms tree's value (16 bytes): the term's id (the first word of its postings' keys)
/// and how many postings it has (the term's entry is removed with its last posting).
package struct SearchTermValue: Equatable {
    package static let size = 16
    package var termID: UInt64
    package var postings: UInt64

    init(termID: UInt64, postings: UInt64) {
        self.termID = termID
        self.postings = postings
    }

    init(_ bytes: UnsafeRawBufferPointer) {
        termID = bytes.loadLE(UInt64.self, at: 0)
        postings = bytes.loadLE(UInt64.self, at: 8)
    }

    var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.size)
        out.withUnsafeMutableBytes { store(into: $0) }
        return out
    }

    /// Writes the value's `size` bytes at the start of `out`.
    func store(into out: UnsafeMutableRawBufferPointer) {
        out.storeLE(termID, at: 0)
        out.storeLE(postings, at: 8)
    }
}

/// A posting: (term id, the message's packed key). Within a term, postings are in
/// messages-tree order: by conversation, then time, then seq.
package struct SearchPostingKey {
    @inline(__always)
    static func key(termID: UInt64, _ message: MessageKey) -> BTreeKey {
        let packed = message.treeKey
        return BTreeKey(termID, packed.w0, packed.w1)
    }

    @inline(__always)
    static func message(of key: BTreeKey) -> MessageKey { MessageKey(BTreeKey(key.w1, key.w2)) }
}

/// Which messages the index covers, from counters 11…13: none while it is off; while it is
/// being built, those before the build cursor (in messages-tree order); all once built. The
/// write path and `apply` decide with the same function of the same state, so a message's
/// postings are added and removed by the same rule on a live commit and on replay.
package struct SearchCoverage: Equatable, Sendable {
    package static let enabledFlag: UInt64 = 1
    package static let builtFlag: UInt64 = 2

    package var flags: UInt64
    /// The packed key of the first message the build has not reached.
    package var cursor: BTreeKey

    init(_ state: CommittedState) {
        flags = state[counter: .searchFlags]
        cursor = BTreeKey(state[counter: .searchCursorHigh], state[counter: .searchCursorLow])
    }

    package var isEnabled: Bool { flags & Self.enabledFlag != 0 }
    package var isBuilt: Bool { flags & Self.builtFlag != 0 }

    @inline(__always)
    func covers(_ key: MessageKey) -> Bool {
        guard isEnabled else { return false }
        return isBuilt || key.treeKey < cursor
    }
}

/// The terms of one message in a search record: the message's key, then its distinct terms.
struct SearchEntry: Equatable {
    var key: MessageKey
    var terms: [[UInt8]]

    /// The most terms one entry holds (its count is a u16); a message with more is written as
    /// several entries with the same key (`entries(key:terms:)`).
    static let maxTerms = Int(UInt16.max)

    /// `terms` as entries of at most `maxTerms` each (none for no terms).
    static func entries(key: MessageKey, terms: [[UInt8]]) -> [SearchEntry] {
        stride(from: 0, to: terms.count, by: maxTerms).map {
            SearchEntry(key: key, terms: Array(terms[$0..<min(terms.count, $0 + maxTerms)]))
        }
    }

    /// key w0 u64, key w1 u64 (the packed `MessageKey`), term count u16, then per term its
    /// length u8 (1…255) and bytes.
    var encodedSize: Int { 18 + terms.reduce(0) { $0 + 1 + $1.count } }

    func encode(into out: UnsafeMutableRawBufferPointer, at start: Int) -> Int {
        let packed = key.treeKey
        out.storeLE(packed.w0, at: start)
        out.storeLE(packed.w1, at: start + 8)
        out.storeLE(UInt16(terms.count), at: start + 16)
        var offset = start + 18
        for term in terms {
            out[offset] = UInt8(term.count)
            term.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: out[(offset + 1)..<(offset + 1 + term.count)]).copyMemory(from: $0) }
            offset += 1 + term.count
        }
        return offset
    }

    static func decode(_ payload: UnsafeRawBufferPointer, at start: Int, position: LogPosition) throws -> (SearchEntry, Int) {
        guard start + 18 <= payload.count else {
            throw MessageHeader.corrupted(position, UInt64(start), "search entry runs past its record")
        }
        let key = MessageKey(BTreeKey(payload.loadLE(UInt64.self, at: start), payload.loadLE(UInt64.self, at: start + 8)))
        let count = Int(payload.loadLE(UInt16.self, at: start + 16))
        var offset = start + 18
        var terms: [[UInt8]] = []
        terms.reserveCapacity(count)
        for _ in 0..<count {
            guard offset < payload.count else {
                throw MessageHeader.corrupted(position, UInt64(offset), "search term runs past its record")
            }
            let length = Int(payload[offset])
            guard length > 0, length <= SearchTermKey.maxBytes, offset + 1 + length <= payload.count else {
                throw MessageHeader.corrupted(position, UInt64(offset),
                                              "search term of \(length) bytes is empty, longer than 32 bytes or runs past its record")
            }
            let term = Array(UnsafeRawBufferPointer(rebasing: payload[(offset + 1)..<(offset + 1 + length)]))
            guard !term.contains(0) else {
                throw MessageHeader.corrupted(position, UInt64(offset), "search term holds a zero byte")
            }
            terms.append(term)
            offset += 1 + length
        }
        guard key.seq != 0, key.conversation <= MessageLimits.maxConversationID else {
            throw MessageHeader.corrupted(position, UInt64(start), "search entry names an impossible message key")
        }
        return (SearchEntry(key: key, terms: terms), offset)
    }
}

/// `.searchBuild` (32): the new build cursor (w0 u64, w1 u64), built u8 (0 or 1), entry count
/// u32, then the entries.
struct SearchBuildRecord: Equatable {
    var cursor: BTreeKey
    var built: Bool
    var entries: [SearchEntry]

    static let headerSize = 21

    func append(into batch: inout LogBatch) throws {
        let size = Self.headerSize + entries.reduce(0) { $0 + $1.encodedSize }
        try batch.append(type: .searchBuild, payloadCount: size) { out in
            out.storeLE(cursor.w0, at: 0)
            out.storeLE(cursor.w1, at: 8)
            out[16] = built ? 1 : 0
            out.storeLE(UInt32(entries.count), at: 17)
            var offset = Self.headerSize
            for entry in entries { offset = entry.encode(into: out, at: offset) }
        }
    }

    static func decode(_ payload: UnsafeRawBufferPointer, position: LogPosition) throws -> SearchBuildRecord {
        guard payload.count >= headerSize, payload[16] <= 1 else {
            throw MessageHeader.corrupted(position, 0, "searchBuild record of \(payload.count) bytes has no valid header")
        }
        let count = Int(payload.loadLE(UInt32.self, at: 17))
        var entries: [SearchEntry] = []
        var offset = headerSize
        for _ in 0..<count {
            let (entry, next) = try SearchEntry.decode(payload, at: offset, position: position)
            entries.append(entry)
            offset = next
        }
        guard offset == payload.count else {
            throw MessageHeader.corrupted(position, UInt64(offset), "searchBuild record has \(payload.count - offset) bytes after its entries")
        }
        return SearchBuildRecord(cursor: BTreeKey(payload.loadLE(UInt64.self, at: 0), payload.loadLE(UInt64.self, at: 8)),
                                 built: payload[16] == 1, entries: entries)
    }
}

/// `.searchRemove` (33): one entry (the message whose postings go, and its terms).
enum SearchRemoveRecord {
    /// REQUIRES: at most `SearchEntry.maxTerms` terms (`SearchEntry.entries` splits more).
    static func append(_ entry: SearchEntry, into batch: inout LogBatch) throws {
        try batch.append(type: .searchRemove, payloadCount: entry.encodedSize) { out in _ = entry.encode(into: out, at: 0) }
    }

    static func decode(_ payload: UnsafeRawBufferPointer, position: LogPosition) throws -> SearchEntry {
        let (entry, end) = try SearchEntry.decode(payload, at: 0, position: position)
        guard end == payload.count else {
            throw MessageHeader.corrupted(position, UInt64(end), "searchRemove record has \(payload.count - end) bytes after its entry")
        }
        return entry
    }
}

extension SearchTokenizer {
    /// The distinct index terms of `text` as bytes, sorted (so term ids are assigned in the
    /// same order on every run): words (at most `SearchTermKey.maxBytes` bytes kept, cut at a
    /// character boundary), the last character of each CJK run, and CJK pairs.
    package static func indexTerms(of text: String) -> [[UInt8]] {
        if var words = asciiWordBytes(of: text) {
            for i in words.indices where words[i].count > SearchTermKey.maxBytes { words[i] = truncated(words[i]) }
            return words.sortedDistinct()
        }
        let terms = terms(of: text)
        return (terms.words.map { truncated(Array($0.utf8)) } + terms.runEnds.map(utf8) + terms.pairs.map(\.utf8)).sortedDistinct()
    }

    /// `bytes` cut to at most `SearchTermKey.maxBytes` at a UTF-8 character boundary.
    static func truncated(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.count > SearchTermKey.maxBytes else { return bytes }
        var end = SearchTermKey.maxBytes
        while end > 0 && bytes[end] & 0xC0 == 0x80 { end -= 1 }
        return Array(bytes[0..<end])
    }
}
