import Scrollback
import ScrollbackJSON
import Testing

/// `ChangeJSON` (what `scrollback watch` prints and a replication stream carries): every op
/// survives encode → decode, and malformed lines are typed errors naming what is wrong.
@Suite struct ChangeJSONTests {
    static let position = try! ChangePosition(token: "1.a0.b4.3")

    static let operations: [Change.Operation] = [
        .append(Message(id: "m1", conversation: "c\"1", sender: "ü", createdAt: 1_700_000_000_123, kind: .file, body: "hi\n👋",
                        replyTo: "m0", metadata: [0, 1, 255])),
        .append(Message(id: "m2", conversation: "c", sender: "s", createdAt: 0, body: "")),
        .edit(conversation: "c", id: "m1", body: "édité"),
        .delete(conversation: "c", id: "m1"),
        .markRead(user: "u", conversation: "c", through: "m2"),
        .markRead(user: "u", conversation: "c", through: nil),
        .join(user: "u", conversation: "c"),
        .leave(user: "u", conversation: "c"),
    ]

    @Test(arguments: operations) func roundTrip(_ operation: Change.Operation) throws {
        let change = Change(position: Self.position, operation: operation)
        let line = ChangeJSON.encode(change)
        #expect(try ChangeJSON.decode(line: Array(line.utf8)) == change)
    }

    @Test func malformedLinesAreTypedErrors() {
        let cases: [(String, MessageJSONError.Kind)] = [
            ("not json", .syntax),
            ("[1]", .syntax),
            (#"{"op":"join","user":"u","conversation":"c"}"#, .missing),
            (#"{"position":"1.a0.b4.3","op":"join","user":"u"}"#, .missing),
            (#"{"position":"1.a0.b4.3","op":"join","user":7,"conversation":"c"}"#, .wrongType),
            (#"{"position":"1.a0.b4.3","op":"rename","user":"u","conversation":"c"}"#, .invalidValue),
            (#"{"position":"2.a0.b4.3","op":"join","user":"u","conversation":"c"}"#, .invalidValue),
            (#"{"position":"1.a0.b4.3","op":"append"}"#, .missing),
            (#"{"position":"1.a0.b4.3","op":"append","message":{"id":"m"}}"#, .missing),
        ]
        for (line, kind) in cases {
            #expect(throws: MessageJSONError.self, "\(line)") { _ = try ChangeJSON.decode(line: Array(line.utf8)) }
            do {
                _ = try ChangeJSON.decode(line: Array(line.utf8))
            } catch {
                #expect(error.kind == kind, "\(line): \(error)")
            }
        }
    }
}
