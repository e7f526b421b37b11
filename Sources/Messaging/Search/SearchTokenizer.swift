import Foundation

/// Splits text into the terms of the search index (and of search queries):
///
/// - **Words**: maximal runs of letters and digits (Unicode general categories L* and N*)
///   outside the CJK ranges, after NFKD decomposition with nonspacing marks (Mn) removed,
///   lowercased: `Café` → `cafe`, `naïve` → `naive`, `don't` → `don`, `t`.
/// - **CJK**: characters in `cjkRanges` form runs of their own. Every CJK character is a
///   *single* term; every adjacent pair inside a run is a *pair* term. The index keeps every
///   pair and only the *last* character of each run as a single (`runEnds`): a character
///   occurs in a body exactly when it ends a run or starts a pair, so a one-character query
///   is the prefix of its UTF-8 over the CJK terms (half the postings of keeping every
///   character).
///
/// ASCII text takes a fast path without decomposition. The decomposition tables are
/// Foundation's (the standard library ships no NFKD), so the terms depend on the Unicode
/// version of the toolchain; `verify` rebuilds the index after a toolchain change reports
/// differences rather than wrong answers.
///
/// Thread-safety: pure functions.
package enum SearchTokenizer {
    /// The CJK ranges of the search rules (hiragana/katakana, CJK extension A, unified
    /// ideographs, compatibility ideographs, Hangul syllables, Hangul jamo and compatibility
    /// jamo, CJK extension B).
    package static let cjkRanges: [ClosedRange<UInt32>] = [
        0x3040...0x30FF, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xF900...0xFAFF, 0xAC00...0xD7AF,
        0x1100...0x11FF, 0x3130...0x318F, 0x20000...0x2A6DF,
    ]

    @inline(__always)
    package static func isCJK(_ value: UInt32) -> Bool {
        if value < 0x1100 { return false }
        for range in cjkRanges where range.contains(value) { return true }
        return false
    }

    /// The terms of `text`, in order of appearance (words may repeat).
    package struct Terms: Equatable, Sendable {
        /// Words, lowercased and without marks, in order.
        package var words: [String] = []
        /// CJK characters (each a one-character term), in order.
        package var singles: [Unicode.Scalar] = []
        /// Adjacent CJK pairs, in order.
        package var pairs: [CJKPair] = []
        /// The last character of each CJK run, in order (a run of one: its character).
        package var runEnds: [Unicode.Scalar] = []

        package var isEmpty: Bool { words.isEmpty && singles.isEmpty && pairs.isEmpty }

        /// Adds a CJK run: each character, and each adjacent pair.
        mutating func appendRun(_ run: [Unicode.Scalar]) {
            guard let last = run.last else { return }
            singles.append(contentsOf: run)
            runEnds.append(last)
            if run.count > 1 {
                for i in 0..<(run.count - 1) { pairs.append(CJKPair(run[i], run[i + 1])) }
            }
        }
    }

    package struct CJKPair: Hashable, Sendable, CustomStringConvertible {
        package var first: Unicode.Scalar
        package var second: Unicode.Scalar
        package init(_ first: Unicode.Scalar, _ second: Unicode.Scalar) {
            self.first = first
            self.second = second
        }
        package var description: String { String(first) + String(second) }
        /// The pair's UTF-8 bytes (its term in the index), without making a string.
        package var utf8: [UInt8] { SearchTokenizer.utf8(first) + SearchTokenizer.utf8(second) }
    }

    /// The UTF-8 bytes of `scalar` (a CJK character's term), without making a string.
    package static func utf8(_ scalar: Unicode.Scalar) -> [UInt8] {
        var bytes: [UInt8] = []
        UTF8.encode(scalar) { bytes.append($0) }
        return bytes
    }

    /// Splits `text` into terms.
    package static func terms(of text: String) -> Terms {
        var terms = Terms()
        if text.utf8.allSatisfy({ $0 < 0x80 }) {   // one stretch without CJK
            appendASCIIWords(of: text, to: &terms.words)
            return terms
        }
        var other = String.UnicodeScalarView()      // the current non-CJK stretch
        var cjkRun: [Unicode.Scalar] = []
        func flushOther() {
            if !other.isEmpty { appendWords(of: String(other), to: &terms) }
            other.removeAll()
        }
        func flushCJK() {
            terms.appendRun(cjkRun)
            cjkRun.removeAll(keepingCapacity: true)
        }
        for scalar in text.unicodeScalars {
            if isCJK(scalar.value) {
                flushOther()
                cjkRun.append(scalar)
            } else {
                if !cjkRun.isEmpty { flushCJK() }
                other.append(scalar)
            }
        }
        flushOther()
        flushCJK()
        return terms
    }

    /// Appends the terms of a stretch without CJK characters: its words, and the CJK
    /// characters its decomposition produces (half-width katakana and Hangul, squared CJK
    /// such as ㍻ → 平成), which form CJK runs of their own inside the stretch.
    static func appendWords(of stretch: String, to terms: inout Terms) {
        if stretch.utf8.allSatisfy({ $0 < 0x80 }) {
            appendASCIIWords(of: stretch, to: &terms.words)
            return
        }
        let decomposed = stretch.decomposedStringWithCompatibilityMapping
        var word = String.UnicodeScalarView()
        var run: [Unicode.Scalar] = []
        func flushWord() {
            if !word.isEmpty { terms.words.append(String(word).lowercased()) }
            word.removeAll()
        }
        func flushRun() {
            terms.appendRun(run)
            run.removeAll()
        }
        for scalar in decomposed.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .nonspacingMark:
                continue
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
                 .decimalNumber, .letterNumber, .otherNumber:
                if isCJK(scalar.value) {
                    flushWord()
                    run.append(scalar)
                } else {
                    flushRun()
                    word.append(scalar)
                }
            default:
                flushWord()
                flushRun()
            }
        }
        flushWord()
        flushRun()
    }

    /// The words of ASCII `text` as lowercased bytes (nil when `text` is not ASCII): the
    /// same words as `terms(of:)`, without building strings.
    static func asciiWordBytes(of text: String) -> [[UInt8]]? {
        var words: [[UInt8]] = []
        var word: [UInt8] = []
        for b in text.utf8 {
            if b >= 0x80 { return nil }
            if (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x7A) {
                word.append(b)
            } else if b >= 0x41 && b <= 0x5A {
                word.append(b | 0x20)
            } else if !word.isEmpty {
                words.append(word)
                word.removeAll(keepingCapacity: true)
            }
        }
        if !word.isEmpty { words.append(word) }
        return words
    }

    static func appendASCIIWords(of stretch: String, to words: inout [String]) {
        var start: String.UTF8View.Index? = nil
        let utf8 = stretch.utf8
        var index = utf8.startIndex
        func isWordByte(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
        }
        while index != utf8.endIndex {
            if isWordByte(utf8[index]) {
                if start == nil { start = index }
            } else if let s = start {
                words.append(String(stretch[s..<index]).lowercased())
                start = nil
            }
            index = utf8.index(after: index)
        }
        if let s = start { words.append(String(stretch[s..<utf8.endIndex]).lowercased()) }
    }
}
