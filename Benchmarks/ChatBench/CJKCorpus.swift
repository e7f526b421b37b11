import Foundation
import Scrollback
import ScrollbackWorkload

/// The CJK-bearing variant of the dataset for the search phase: messages whose bodies are
/// words of a vocabulary of CJK unified ideographs (U+4E00–U+9FA5, unchanged by NFKD and by
/// case folding), 3 or 4 characters each, separated by "，" (U+FF0C), an ASCII word now and
/// then; word frequencies skewed (a few words are common, most rare).
///
/// Invariant that makes the answers comparable: no character occurs twice in a word and no
/// adjacent pair of characters occurs in two words. A body then holds both pairs of a
/// 3-character query exactly when it holds the three characters in a row (both pairs come from
/// the one word that has them), so Scrollback's matching (every adjacent pair of the query) and
/// FTS5 `trigram`'s (the substring) find the same messages.
struct CJKCorpus {
    let messages: [Message]
    let conversations: [String]
    private let vocabulary: Set<String>

    /// `count` messages, 500 per conversation (conversations `cjk-0`, `cjk-1`, …, assigned at
    /// random), createdAt from `startMillis` 7 ms apart (no ties).
    init(messages count: Int, seed: UInt64, startMillis: Int64) {
        var random = WorkloadRandom(seed: seed, stream: 710)
        var words: [String] = []
        var pairs = Set<UInt64>()
        while words.count < 3_000 {
            let length = 3 + random.below(2)
            var scalars: [UInt32] = []
            while scalars.count < length {
                let c = UInt32(0x4E00 + random.below(0x9FA5 - 0x4E00 + 1))
                if !scalars.contains(c) { scalars.append(c) }
            }
            let wordPairs = (1..<length).map { UInt64(scalars[$0 - 1]) << 32 | UInt64(scalars[$0]) }
            guard wordPairs.allSatisfy({ !pairs.contains($0) }) else { continue }
            pairs.formUnion(wordPairs)
            words.append(String(String.UnicodeScalarView(scalars.compactMap(Unicode.Scalar.init))))
        }
        let ascii = ["ok", "deploy", "lunch", "v2", "release", "meeting"]
        let conversationCount = max(1, count / 500)
        conversations = (0..<conversationCount).map { "cjk-\($0)" }
        var made: [Message] = []
        made.reserveCapacity(count)
        for i in 0..<count {
            var parts: [String] = []
            for _ in 0..<(2 + random.below(7)) {
                parts.append(words[min(words.count - 1, Int(Double(words.count) * pow(random.unit(), 2.5)))])
            }
            var body = parts.joined(separator: "，")
            if random.below(4) == 0 { body += " " + ascii[random.below(ascii.count)] }
            made.append(Message(id: "cjk-\(i)", conversation: conversations[random.below(conversationCount)], sender: "synuser1",
                                createdAt: startMillis + Int64(i) * 7, kind: .text, body: body))
        }
        messages = made
        vocabulary = Set(words)
    }

    /// The 3-character query words of a body: each vocabulary word it holds, a 4-character one
    /// cut to its first or last three characters (alternately).
    func queryWords(_ body: String) -> [String] {
        var out: [String] = []
        for part in body.split(whereSeparator: { $0 == "，" || $0 == " " }) {
            let word = String(part)
            guard vocabulary.contains(word) else { continue }
            let characters = Array(word)
            out.append(characters.count == 3 || out.count % 2 == 0 ? String(characters.prefix(3)) : String(characters.suffix(3)))
        }
        return out
    }
}
