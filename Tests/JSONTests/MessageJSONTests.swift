import Foundation
import Scrollback
import ScrollbackJSON
import Testing

/// The one message JSON codec: exact output, round trips over every field, escapes and
/// non-ASCII text, and what each reader's dialect accepts and rejects.
@Suite struct MessageJSONTests {
    static func decode(_ line: String, _ dialect: MessageJSON.Dialect = .file) throws -> MessageJSON.Decoded {
        try MessageJSON.decode(line: Array(line.utf8), dialect)
    }

    /// Text exercising every escape: quotes, backslash, the named control characters, the
    /// other control characters (\u00XX), DEL, a slash, non-ASCII letters, a character
    /// outside the BMP (a surrogate pair in \u form) and a line separator.
    static let nasty = "\"quoted\" back\\slash /slash nl\n cr\r tab\t bs\u{8} ff\u{C} nul\u{0} us\u{1F} del\u{7F} "
        + "héllo 日本語 😀 \u{2028} end"

    static let messages: [Message] = [
        Message(id: "m1", conversation: "c", sender: "u", createdAt: 1_700_000_000_123, kind: .image, body: "hi", replyTo: "m0"),
        Message(id: "id\"quote\\", conversation: "c\u{1}\u{1F}", sender: "ünï", createdAt: -5, kind: .video,
                body: "line\nbreak\ttab\r😀 \u{7F} /slash", replyTo: nil, edited: false),
        Message(id: nasty, conversation: nasty, sender: nasty, createdAt: .max, kind: .system, body: nasty, replyTo: nasty,
                edited: true),
        Message(id: "a", conversation: "b", sender: "c", createdAt: .min, kind: .file, body: ""),
        Message(id: "日本", conversation: "会話", sender: "送信者", createdAt: 0, kind: .audio, body: "本文 ✓", replyTo: "返信"),
        Message(id: "md", conversation: "c", sender: "s", createdAt: 3, body: "b", replyTo: "r", metadata: Array(0...255)),
        Message(id: "md1", conversation: "c", sender: "s", createdAt: 3, body: "b", metadata: [0xFF]),
    ]

    @Test func exactFormat() throws {
        let m = Self.messages[0]
        #expect(MessageJSON.encode(m)
            == #"{"id":"m1","conversation":"c","sender":"u","createdAt":1700000000123,"kind":"image","body":"hi","replyTo":"m0","edited":false}"#)
        var n = m
        n.replyTo = nil
        n.edited = true
        #expect(MessageJSON.encode(n)
            == #"{"id":"m1","conversation":"c","sender":"u","createdAt":1700000000123,"kind":"image","body":"hi","edited":true}"#)
        #expect(MessageJSON.encode(Message(id: "a", conversation: "c", sender: "s", createdAt: -1, kind: .system, body: "\u{1}\t"))
            == #"{"id":"a","conversation":"c","sender":"s","createdAt":-1,"kind":"system","body":"\u0001\t","edited":false}"#)
    }

    /// Every field, every kind, both `edited` values, with and without `replyTo`, escapes and
    /// non-ASCII text survive encode∘decode in each dialect that reads them.
    @Test func roundTripOverEveryFieldAndEscape() throws {
        var all = Self.messages
        for kind in MessageKind.allCases { all.append(Message(id: "k\(kind)", conversation: "c", sender: "s", createdAt: 7, kind: kind, body: "b")) }
        for m in all {
            let line = MessageJSON.encode(m)
            #expect(!line.contains("\n"), "one line: \(line)")
            let decoded = try Self.decode(line)
            #expect(decoded.message == m, "\(line)")
            #expect(decoded.edited == m.edited)
            var unedited = m
            unedited.edited = false
            #expect(try Self.decode(line, .request).message == unedited, "requests ignore edited: \(line)")
            // Foundation reads what the codec writes as the same strings.
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(object["id"] as? String == m.id && object["body"] as? String == m.body && object["sender"] as? String == m.sender)
            #expect(object["conversation"] as? String == m.conversation && object["replyTo"] as? String == m.replyTo)
        }
        var lines: [UInt8] = []
        for m in all { MessageJSON.appendLine(m, to: &lines) }
        let split = lines.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast()
        #expect(try split.map { try MessageJSON.decode(line: Array($0), .file).message } == all)
    }

    /// `metadata`: padded base64 after `replyTo`, absent when none; read back exactly; null
    /// is none; anything but canonical padded base64 is an invalid value, another JSON type a
    /// wrong type.
    @Test func metadataMember() throws {
        let m = Message(id: "m", conversation: "c", sender: "s", createdAt: 1, body: "b", replyTo: "r", metadata: Array("x=1".utf8))
        let line = #"{"id":"m","conversation":"c","sender":"s","createdAt":1,"kind":"text","body":"b","replyTo":"r","metadata":"eD0x","edited":false}"#
        #expect(MessageJSON.encode(m) == line)
        #expect(try Self.decode(line).message == m)
        var empty = m
        empty.metadata = []
        #expect(!MessageJSON.encode(empty).contains("metadata"))
        let base = #"{"id":"m","conversation":"c","sender":"s","createdAt":1,"body":"b","metadata":"#
        #expect(try Self.decode(base + "null}").message.metadata == nil)
        #expect(try Self.decode(base + "\"AA==\"}").message.metadata == [0])
        #expect(try Self.decode(base + "\"\"}").message.metadata == [])
        for bad in ["eD0", "eD0x=", "AB==", "A===", "e D0x", "eD-_", "=D0x", "eD0x\\n"] {
            do {
                _ = try Self.decode(base + "\"" + bad + "\"}")
                Issue.record("accepted metadata \(bad)")
            } catch {
                #expect((error as? MessageJSONError)?.kind == .invalidValue, "\(bad): \(error)")
            }
        }
        do {
            _ = try Self.decode(base + "[1,2]}")
            Issue.record("accepted an array as metadata")
        } catch {
            #expect((error as? MessageJSONError)?.kind == .wrongType)
        }
    }

    /// RFC 4648 §10 test vectors, and every byte value.
    @Test func base64Vectors() {
        for (plain, text) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
                              ("foobar", "Zm9vYmFy")] {
            #expect(Base64.encode(Array(plain.utf8)) == text)
            #expect(Base64.decode(text) == Array(plain.utf8))
        }
        for count in 0..<7 {
            let bytes = (0..<256).map { UInt8(($0 * 7 + count) & 0xFF) }.prefix(250 + count)
            #expect(Base64.decode(Base64.encode(Array(bytes))) == Array(bytes))
        }
    }

    @Test func readsEveryJSONEscape() throws {
        let line = #"  { "body" : "x\u00e9\ud83d\ude00\/\"\\\b\f\n\r\t\u0000\u001F" , "createdAt": 5, "sender":"s", "conversation":"c", "id":"i", "replyTo": null }  "#
        let m = try Self.decode(line).message
        #expect(m == Message(id: "i", conversation: "c", sender: "s", createdAt: 5, kind: .text, body: "xé😀/\"\\\u{8}\u{C}\n\r\t\u{0}\u{1F}"))
        #expect(try Self.decode(#"{"id":"i","conversation":"c","sender":"s","createdAt":1,"body":"b"}"# + "\r").message.id == "i")
    }

    @Test func fileDialectRejectsBadLines() {
        let bad = [
            "", "{", "[]", #"{"id":"i"}"#,
            #"{"id":"i","conversation":"c","sender":"s","createdAt":1.5,"body":"b"}"#,
            #"{"id":"i","conversation":"c","sender":"s","createdAt":1,"body":"b","kind":"sticker"}"#,
            #"{"id":"i","conversation":"c","sender":"s","createdAt":1,"body":"b","extra":1}"#,
            #"{"id":"i","conversation":"c","sender":"s","createdAt":1,"body":"b"} x"#,
            #"{"id":"i","conversation":"c","sender":"s","createdAt":99999999999999999999,"body":"b"}"#,
            #"{"id":"\ud800","conversation":"c","sender":"s","createdAt":1,"body":"b"}"#,
            "{\"id\":\"a\u{1}\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":1,\"body\":\"b\"}",
            #"{"id":"i","conversationId":"c","sender":"s","createdAt":1,"body":"b"}"#,
            #"{"id":null,"conversation":"c","sender":"s","createdAt":1,"body":"b"}"#,
            #"{"id":"i","conversation":"c","sender":"s","createdAt":1,"body":null}"#,
        ]
        for line in bad {
            #expect(throws: MessageJSONError.self, "\(line)") { try Self.decode(line) }
        }
    }

    /// Requests: kind required, other members and `edited` ignored; a value outside what a
    /// message accepts is told from a malformed request.
    @Test func requestDialect() throws {
        let base = #""id":"m","conversation":"c","sender":"s","createdAt":1,"body":"""#
        #expect(try Self.decode("{" + base + #","kind":"text","edited":"whatever","op":"append"}"#, .request).message.kind == .text)
        func kind(_ line: String) -> MessageJSONError.Kind? {
            do { _ = try Self.decode(line, .request); return nil } catch { return (error as? MessageJSONError)?.kind }
        }
        #expect(kind("{" + base + "}") == .missing)
        #expect(kind("{" + base + #","kind":"sticker"}"#) == .invalidValue)
        #expect(kind("{" + base + #","kind":5}"#) == .wrongType)
        #expect(kind(#"{"id":"m","conversation":"c","sender":"s","createdAt":99999999999999999999,"body":"","kind":"text"}"#) == .invalidValue)
        #expect(kind(#"{"id":"m","conversation":"c","sender":"s","createdAt":"1","body":"","kind":"text"}"#) == .wrongType)
        #expect(kind(#"{"id":"m","conversation":"c","sender":"s","createdAt":1,"body":"","kind":"text","replyTo":3}"#) == .wrongType)
    }

    /// Imports: the reference schema's spellings, through the functions the reader gives.
    @Test func otherSpellings() throws {
        let dialect = MessageJSON.Dialect(otherSpellings: MessageJSON.OtherSpellings(
            time: { $0 == "yesterday" ? 42 : nil }, kind: { MessageKind(name: $0.lowercased()) }))
        let decoded = try Self.decode(#"{"id":17,"conversationId":"c","senderId":"u","createdAt":"yesterday","type":"IMAGE","content":null,"edited":true}"#, dialect)
        #expect(decoded.message == Message(id: "17", conversation: "c", sender: "u", createdAt: 42, kind: .image, body: "", edited: true))
        #expect(decoded.edited)
        #expect(throws: MessageJSONError.self) {
            try Self.decode(#"{"id":"i","conversation":"c","conversationId":"d","sender":"s","createdAt":1,"body":""}"#, dialect)
        }
        #expect(throws: MessageJSONError.self) {
            try Self.decode(#"{"id":"i","conversation":"c","sender":"s","createdAt":"soon","body":""}"#, dialect)
        }
    }
}
