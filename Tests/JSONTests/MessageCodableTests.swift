import Foundation
import Scrollback
import ScrollbackJSON
import Testing

/// `Message`'s `Codable` conformance (Message+Codable.swift) against the command-line tool's
/// codec: the same object both ways, and decoding that checks what the
/// store checks. Also the other values' Codable shapes, `Identifiable` and `Hashable`.
@Suite struct MessageCodableTests {
    /// Valid messages (within the store's limits) with every field and awkward text.
    static let messages: [Message] = [
        Message(id: "m1", conversation: "c", sender: "u", createdAt: 1_700_000_000_123, kind: .image, body: "hi", replyTo: "m0"),
        Message(id: "id\"quote\\", conversation: "c\u{1}\u{1F}", sender: "ünï", createdAt: 0, kind: .video,
                body: "line\nbreak\ttab\r😀 \u{7F} /slash", replyTo: nil, edited: false),
        Message(id: "a", conversation: "b", sender: "c", createdAt: (1 << 53) - 1, kind: .file, body: "", edited: true),
        Message(id: "日本", conversation: "会話", sender: "送信者", createdAt: 42, kind: .audio, body: "本文 ✓ \u{2028}", replyTo: "返信"),
        Message(id: "md", conversation: "c", sender: "s", createdAt: 9, body: "b", metadata: Array(0...255)),
        Message(id: "md2", conversation: "c", sender: "s", createdAt: 9, body: "b", replyTo: "x",
                metadata: [UInt8](repeating: 0xEE, count: Message.maxMetadataBytes)),
    ] + MessageKind.allCases.map { Message(id: "k\($0.rawValue)", conversation: "c", sender: "s", createdAt: 1, kind: $0, body: "b") }

    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }

    @Test func roundTripsThroughJSONEncoderAndDecoder() throws {
        for message in Self.messages {
            let data = try Self.encoder().encode(message)
            #expect(try JSONDecoder().decode(Message.self, from: data) == message)
        }
        let data = try JSONEncoder().encode(Self.messages)
        #expect(try JSONDecoder().decode([Message].self, from: data) == Self.messages)
    }

    /// The tool's codec reads what `JSONEncoder` writes, and `JSONDecoder` reads what the tool
    /// writes.
    @Test func sameObjectAsTheToolsCodec() throws {
        for message in Self.messages {
            let encoded = try Self.encoder().encode(message)
            let decoded = try MessageJSON.decode(line: Array(encoded), .file)
            #expect(decoded.message == message)
            let tool = MessageJSON.encode(message)
            #expect(try JSONDecoder().decode(Message.self, from: Data(tool.utf8)) == message)
        }
    }

    /// The same members with the same JSON values (`JSONEncoder` does not keep the key order).
    @Test func sameMembersAsTheToolsCodec() throws {
        for message in Self.messages {
            guard case .object(let encoded) = try JSONParser.parse(Array(try Self.encoder().encode(message))),
                  case .object(let tool) = try JSONParser.parse(Array(MessageJSON.encode(message).utf8)) else {
                Issue.record("not an object")
                continue
            }
            #expect(encoded.members == tool.members)
            #expect(Set(encoded.keys) == Set(tool.keys))
        }
    }

    /// Metadata decodes only from canonical padded base64 of at most the store's limit.
    @Test func metadataDecodingChecks() throws {
        let base = #"{"id":"m","conversation":"c","sender":"s","createdAt":5,"body":"b","metadata":"#
        #expect(try JSONDecoder().decode(Message.self, from: Data((base + "\"AAH/\"}").utf8)).metadata == [0, 1, 0xFF])
        #expect(try JSONDecoder().decode(Message.self, from: Data((base + "null}").utf8)).metadata == nil)
        let over = Base64.encode([UInt8](repeating: 1, count: Message.maxMetadataBytes + 1))
        for bad in ["\"AAH\"", "\"AAH/=\"", "\"AB==\"", "[0,1]", "\"\(over)\""] {
            #expect(throws: DecodingError.self, "\(bad.prefix(20))") {
                try JSONDecoder().decode(Message.self, from: Data((base + bad + "}").utf8))
            }
        }
    }

    @Test func optionalMembers() throws {
        let minimal = #"{"id":"m","conversation":"c","sender":"s","createdAt":5,"body":"b"}"#
        #expect(try JSONDecoder().decode(Message.self, from: Data(minimal.utf8))
            == Message(id: "m", conversation: "c", sender: "s", createdAt: 5, kind: .text, body: "b"))
        let nullReply = #"{"id":"m","conversation":"c","sender":"s","createdAt":5,"kind":"file","body":"b","replyTo":null,"edited":true}"#
        #expect(try JSONDecoder().decode(Message.self, from: Data(nullReply.utf8))
            == Message(id: "m", conversation: "c", sender: "s", createdAt: 5, kind: .file, body: "b", edited: true))
        let encoded = String(decoding: try JSONEncoder().encode(Message(id: "m", conversation: "c", sender: "s", createdAt: 5, body: "b")),
                             as: UTF8.self)
        #expect(!encoded.contains("replyTo"))
        #expect(encoded.contains(#""edited":false"#))
    }

    /// What the store would reject is a decoding error naming the member (nothing traps).
    @Test func decodingChecksTheStoresLimits() throws {
        func object(_ id: String = #""m""#, conversation: String = #""c""#, sender: String = #""s""#, createdAt: String = "5",
                    kind: String = #""text""#, body: String = #""b""#, replyTo: String = "null") -> Data {
            Data(#"{"id":\#(id),"conversation":\#(conversation),"sender":\#(sender),"createdAt":\#(createdAt),"kind":\#(kind),"body":\#(body),"replyTo":\#(replyTo)}"#.utf8)
        }
        let longID = "\"" + String(repeating: "i", count: 129) + "\""
        let longName = "\"" + String(repeating: "n", count: 256) + "\""
        let corrupted: [(Data, String)] = [
            (object(kind: #""sticker""#), "kind"),
            (object(kind: #""Text""#), "kind"),
            (object(#""""#), "id"),
            (object(longID), "id"),
            (object(conversation: #""""#), "conversation"),
            (object(conversation: longName), "conversation"),
            (object(sender: longName), "sender"),
            (object(createdAt: "-1"), "createdAt"),
            (object(createdAt: "9007199254740992"), "createdAt"),
            (object(replyTo: #""""#), "replyTo"),
            (object(replyTo: longID), "replyTo"),
        ]
        for (data, member) in corrupted {
            do {
                _ = try JSONDecoder().decode(Message.self, from: data)
                Issue.record("decoded \(String(decoding: data, as: UTF8.self))")
            } catch DecodingError.dataCorrupted(let context) {
                #expect(context.codingPath.last?.stringValue == member || (member == "kind" && context.codingPath.last?.stringValue == "kind"),
                        "\(context.codingPath.map(\.stringValue)) for \(member)")
            } catch {
                Issue.record("\(error) for \(member)")
            }
        }
        // Wrong JSON types and missing members are the decoder's own errors.
        for data in [object(createdAt: "1.5"), object(createdAt: "\"5\""), object("7"), object(body: "null"),
                     Data(#"{"id":"m","conversation":"c","sender":"s","createdAt":5}"#.utf8),
                     Data(#"{"id":"m","conversation":"c","sender":"s","body":"b"}"#.utf8)] {
            #expect(throws: DecodingError.self) { try JSONDecoder().decode(Message.self, from: data) }
        }
        // The largest body a store may accept decodes; one byte more does not.
        let maxBody = String(repeating: "x", count: 16 << 20)
        #expect(try JSONDecoder().decode(Message.self, from: object(body: "\"\(maxBody)\"")).body.utf8.count == 16 << 20)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Message.self, from: object(body: "\"\(maxBody)x\"")) }
    }

    @Test func kindsEncodeAsTheirNames() throws {
        for kind in MessageKind.allCases {
            #expect(String(decoding: try JSONEncoder().encode(kind), as: UTF8.self) == "\"\(kind.name)\"")
            #expect(try JSONDecoder().decode(MessageKind.self, from: Data("\"\(kind.name)\"".utf8)) == kind)
        }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(MessageKind.self, from: Data("1".utf8)) }
    }

    /// Pages and summaries: the shapes of the tool's `page` and `conversations` answers.
    @Test func pagesAndSummaries() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let page = MessagePage(messages: [Self.messages[0]], next: Cursor(token: "abc"))
        #expect(try JSONDecoder().decode(MessagePage.self, from: encoder.encode(page)) == page)
        let last = MessagePage(messages: [], next: nil)
        #expect(String(decoding: try encoder.encode(last), as: UTF8.self) == #"{"messages":[],"next":null}"#)
        #expect(try JSONDecoder().decode(MessagePage.self, from: encoder.encode(last)) == last)

        let summary = ConversationSummary(id: "c", lastActivity: 7, messageCount: 3)
        #expect(String(decoding: try encoder.encode(summary), as: UTF8.self) == #"{"id":"c","lastActivity":7,"messages":3}"#)
        let conversations = ConversationPage(conversations: [summary], next: ConversationCursor(token: "t"))
        #expect(String(decoding: try encoder.encode(conversations), as: UTF8.self)
            == #"{"conversations":[{"id":"c","lastActivity":7,"messages":3}],"next":"t"}"#)
        #expect(try JSONDecoder().decode(ConversationPage.self, from: encoder.encode(conversations)) == conversations)
    }

    @Test func identifiableAndHashable() {
        let message = Self.messages[0]
        #expect(message.id == "m1")
        func identity<T: Identifiable>(_ value: T) -> T.ID { value.id }
        #expect(identity(message) == "m1")
        #expect(identity(ConversationSummary(id: "c", lastActivity: 1, messageCount: 1)) == "c")
        var edited = message
        edited.edited = true
        #expect(Set([message, message, edited]).count == 2)
        #expect(Dictionary(grouping: Self.messages, by: \.id).count == Self.messages.count)
    }
}
