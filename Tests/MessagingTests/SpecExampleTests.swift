@testable import Scrollback
import ScrollbackFormat
import ScrollbackLog
@testable import ScrollbackMessaging
import Testing

/// The worked examples and test vectors of spec/message-records.md.
@Suite struct SpecExampleTests {
    static func bytes(_ hex: String) -> [UInt8] {
        let digits = Array(hex.filter { !$0.isWhitespace && $0 != "|" })
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    @Test func hashVectors() {
        let vectors: [(String, UInt64)] = [
            ("", 0xefd0_1f60_ba99_2926), ("a", 0x82a2_a958_a9be_ce5b), ("c1", 0x4ad2_19d4_c239_7083),
            ("m1", 0x5455_e9ed_ff2d_e8f3), ("general", 0x1cf2_653e_2086_7722), ("héllo", 0xc185_4127_47a0_264d),
        ]
        for (text, expected) in vectors { #expect(Hash64.hash(text) == expected, "\(text)") }
    }

    static let messageHex = """
        07 00 00 00 00 00 00 00  02 00 00 00 00 00 00 00  7b 68 e5 cf 8b 01 00 00
        01 02 04 05 04 00 08 00 00 00
        6d 2d 34 32  61 6c 69 63 65  6d 2d 34 31  68 69 20 74 68 65 72 65
        """

    @Test func messageRecordDecodes() throws {
        let payload = Self.bytes(Self.messageHex)
        #expect(payload.count == 55)
        try payload.withUnsafeBytes { raw in
            let header = try MessageHeader.parse(raw, position: 0, offset: 0)
            #expect(header.seq == 7 && header.conversation == 2 && header.createdAt == 1_700_000_000_123)
            #expect(header.kind == MessageKind.text.rawValue && header.flags == MessageFlags.hasReplyTo)
            let message = MessageDatabase.makeMessage(header, raw, conversation: "general")
            #expect(message == StoredMessage(id: "m-42", conversation: "general", sender: "alice", createdAt: 1_700_000_000_123,
                                             kind: 1, body: "hi there", replyTo: "m-41", edited: false))
        }
        // The encoder produces exactly these bytes.
        var batch = ScrollbackLog.LogBatch()
        try MessageRecord.append(
            StoredMessage(id: "m-42", conversation: "general", sender: "alice", createdAt: 1_700_000_000_123, kind: 1,
                          body: "hi there", replyTo: "m-41", edited: false),
            conversationID: 2, seq: 7, flags: 0, into: &batch)
        #expect(Array(batch.bytes.dropFirst(9)) == payload)
        #expect(batch.bytes.count == 64)
        // A damaged length is corruption, not a trap.
        var damaged = payload
        damaged[0x1E] = 9
        _ = damaged.withUnsafeBytes { raw in
            #expect(throws: StorageError.self) { try MessageHeader.parse(raw, position: 0, offset: 0) }
        }
        for cut in 0..<payload.count {
            _ = Array(payload.prefix(cut)).withUnsafeBytes { raw in
                #expect(throws: StorageError.self) { try MessageHeader.parse(raw, position: 0, offset: 0) }
            }
        }
    }

    @Test func slotZeroValueExample() {
        var value = [UInt8](repeating: 0, count: 16)
        let pointer = MessagePointer(position: 0x0000_0001_0000_0018, frameLength: 64, kind: 1, flags: 2)
        value.withUnsafeMutableBytes { pointer.store(into: $0) }
        #expect(value == Self.bytes("18 00 00 00 01 00 00 00 | 40 00 00 00 | 01 | 02 | 00 00"))
        #expect(value.withUnsafeBytes { MessagePointer($0) } == pointer)
    }

    @Test func cursorTokenExample() {
        let secret: UInt64 = 0x0123_4567_89AB_CDEF
        let position = CursorToken.Position(conversation: 2, createdAt: 1_700_000_000_123, seq: 7)
        let token = "AQIAAAAAAAAAe2jlz4sBAAAHAAAAAAAAAAhSBct0F1zb"
        #expect(CursorToken.encode(position, secret: secret) == token)
        #expect(CursorToken.decode(token, secret: secret) == position)
        #expect(CursorToken.decode(token, secret: secret &+ 1) == nil)
        // Any change of a payload byte is rejected.
        for index in token.indices {
            var characters = Array(token)
            let i = token.distance(from: token.startIndex, to: index)
            characters[i] = characters[i] == "A" ? "B" : "A"
            #expect(CursorToken.decode(String(characters), secret: secret) == nil, "position \(i)")
        }
        #expect(CursorToken.decode(token + "A", secret: secret) == nil)
        #expect(CursorToken.decode("", secret: secret) == nil)
    }
}
