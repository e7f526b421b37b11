import ScrollbackMessaging
import Testing

/// The term rules of the search index (issue: words, prefixes and CJK).
@Suite struct SearchTokenizerTests {
    func words(_ text: String) -> [String] { SearchTokenizer.terms(of: text).words }

    @Test func wordsAreLowercasedDecomposedAndWithoutMarks() {
        #expect(words("Café") == ["cafe"])
        #expect(words("naïve") == ["naive"])
        #expect(words("don't") == ["don", "t"])
        #expect(words("Cafe\u{301} au lait") == ["cafe", "au", "lait"], "decomposed input gives the same word")
        #expect(words("ＡＢＣ ﬁne Ⅻ") == ["abc", "fine", "xii"], "compatibility forms")
        #expect(words("v2.0, 3rd; e-mail!") == ["v2", "0", "3rd", "e", "mail"])
        #expect(words("ÉCOLE Straße") == ["ecole", "straße"])
        #expect(words("hello 🙂 world") == ["hello", "world"])
        #expect(words("") == [] && words("  ...  ") == [])
        #expect(words("Ελληνικά καλημέρα") == ["ελληνικα", "καλημερα"])
    }

    @Test func cjkRunsGiveSinglesAndPairs() {
        let t = SearchTokenizer.terms(of: "前言你好")
        #expect(t.words.isEmpty)
        #expect(t.singles == ["前", "言", "你", "好"].map { Unicode.Scalar($0)! })
        #expect(t.pairs.map(\.description) == ["前言", "言你", "你好"])
        #expect(t.runEnds == [Unicode.Scalar("好")])
        // The index: pairs and the last character of each run (sorted by bytes).
        #expect(SearchTokenizer.indexTerms(of: "前言你好 x 中").map { String(decoding: $0, as: UTF8.self) }
                == ["x", "中", "你好", "前言", "好", "言你"])
        let single = SearchTokenizer.terms(of: "好")
        #expect(single.singles.count == 1 && single.pairs.isEmpty)
    }

    /// Characters outside the CJK ranges that decompose (NFKD) into CJK letters — half-width
    /// katakana and Hangul jamo, squared CJK — are CJK terms; a voiced mark, like other
    /// nonspacing marks, is dropped.
    @Test func compatibilityFormsDecomposeIntoCJKTerms() {
        let kana = SearchTokenizer.terms(of: "ｶﾀｶﾅ x")
        #expect(kana.words == ["x"])
        #expect(kana.pairs.map(\.description) == ["カタ", "タカ", "カナ"])
        let era = SearchTokenizer.terms(of: "㍻")
        #expect(era.pairs.map(\.description) == ["平成"] && era.singles.count == 2)
        #expect(SearchTokenizer.terms(of: "ｶﾞ").singles == [Unicode.Scalar(0x30AB)!])
        #expect(SearchTokenizer.terms(of: "ﾡ").singles == [Unicode.Scalar(0x1100)!])
    }

    @Test func mixedTextSplitsAtScriptBoundaries() {
        let t = SearchTokenizer.terms(of: "Hello世界world, カタカナ and 한국어!")
        #expect(t.words == ["hello", "world", "and"])
        #expect(t.pairs.map(\.description) == ["世界", "カタ", "タカ", "カナ", "한국", "국어"])
        #expect(t.singles.count == 9)
    }

    /// ASCII text takes a path without strings: the same terms as a reference split, and as
    /// the general path (the same text with a non-ASCII word after it, less that word).
    @Test func asciiIndexTermsMatchTheGeneralPath() {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("abcXYZ019 .,'-_!\t\n")
        for _ in 0..<500 {
            let length = Int.random(in: 0...60, using: &rng)
            var text = String((0..<length).map { _ in alphabet.randomElement(using: &rng)! })
            if Bool.random(using: &rng) { text += String(repeating: "q", count: Int.random(in: 30...40, using: &rng)) }
            let reference = Set(text.split { !($0.isASCII && ($0.isLetter || $0.isNumber)) }
                .map { Array($0.lowercased().utf8.prefix(SearchTermKey.maxBytes)) })
                .sorted { $0.lexicographicallyPrecedes($1) }
            #expect(SearchTokenizer.indexTerms(of: text) == reference, "\(text)")
            let general = SearchTokenizer.indexTerms(of: text + " \u{E9}\u{E9}\u{E9}")
            #expect(general.filter { $0 != Array("eee".utf8) || reference.contains($0) } == reference, "\(text)")
        }
    }

    @Test func cjkRangesAreTheRulesRanges() {
        for value: UInt32 in [0x3040, 0x30FF, 0x3400, 0x4DBF, 0x4E00, 0x9FFF, 0xF900, 0xFAFF, 0xAC00, 0xD7AF,
                              0x1100, 0x11FF, 0x3130, 0x318F, 0x20000, 0x2A6DF] {
            #expect(SearchTokenizer.isCJK(value), "U+\(String(value, radix: 16))")
        }
        for value: UInt32 in [0x303F, 0x3100, 0x4DC0, 0xA000, 0xD7B0, 0x10FF, 0x1200, 0x2A6E0, 0x41, 0xE9] {
            #expect(!SearchTokenizer.isCJK(value), "U+\(String(value, radix: 16))")
        }
    }
}
