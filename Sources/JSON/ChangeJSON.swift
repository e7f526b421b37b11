import Scrollback

/// The JSON form of a change (`Change`): what `scrollback watch` prints, one object per line,
/// and what a replication stream carries. `{"position":P,"op":O,…}` with, per op:
/// `append` → `"message"` (the `MessageJSON` object); `edit` → `"conversation","id","body"`;
/// `delete` → `"conversation","id"`; `markRead` → `"user","conversation","through"` (null
/// when the marked message is unknown); `join`/`leave` → `"user","conversation"`.
/// `decode(line:)` reads exactly what `encode` writes (the members in any order).
package enum ChangeJSON {
    /// One change as its JSON line (without the newline).
    package static func encode(_ change: Change) -> String {
        var w = JSONWriter()
        w.raw("{\"position\":")
        w.string(change.position.token)
        func member(_ name: String, _ value: String?) {
            w.raw(",\"\(name)\":")
            if let value { w.string(value) } else { w.null() }
        }
        switch change.operation {
        case .append(let message):
            w.raw(",\"op\":\"append\",\"message\":")
            w.message(message)
        case let .edit(conversation, id, body):
            w.raw(",\"op\":\"edit\"")
            member("conversation", conversation)
            member("id", id)
            member("body", body)
        case let .delete(conversation, id):
            w.raw(",\"op\":\"delete\"")
            member("conversation", conversation)
            member("id", id)
        case let .markRead(user, conversation, through):
            w.raw(",\"op\":\"markRead\"")
            member("user", user)
            member("conversation", conversation)
            member("through", through)
        case let .join(user, conversation), let .leave(user, conversation):
            if case .join = change.operation { w.raw(",\"op\":\"join\"") } else { w.raw(",\"op\":\"leave\"") }
            member("user", user)
            member("conversation", conversation)
        }
        w.raw("}")
        return w.text
    }

    /// Reads a change line. Throws `MessageJSONError` naming what is wrong (not JSON, a
    /// missing or mistyped member, an unknown op, a position that is not a token).
    package static func decode(line: [UInt8]) throws(MessageJSONError) -> Change {
        let object = try MessageJSON.object(line: line)
        func text(_ name: String, nullable: Bool = false) throws(MessageJSONError) -> String? {
            switch object[name] {
            case .string(let s): return s
            case .null where nullable: return nil
            case nil: throw MessageJSONError(.missing, "missing member \"\(name)\"")
            case let other?: throw MessageJSONError(.wrongType, "member \"\(name)\" must be a string, not \(other.typeName)")
            }
        }
        func required(_ name: String) throws(MessageJSONError) -> String { try text(name)! }
        let position: ChangePosition
        do {
            position = try ChangePosition(token: try required("position"))
        } catch let error as MessageJSONError {
            throw error
        } catch {
            throw MessageJSONError(.invalidValue, "member \"position\": \(error)")
        }
        let operation: Change.Operation
        switch try required("op") {
        case "append":
            guard case .object(let message)? = object["message"] else {
                throw MessageJSONError(.missing, "an append needs the member \"message\" (an object)")
            }
            operation = .append(try MessageJSON.decode(message, MessageJSON.Dialect()).message)
        case "edit":
            operation = .edit(conversation: try required("conversation"), id: try required("id"), body: try required("body"))
        case "delete":
            operation = .delete(conversation: try required("conversation"), id: try required("id"))
        case "markRead":
            operation = .markRead(user: try required("user"), conversation: try required("conversation"),
                                  through: try text("through", nullable: true))
        case "join":
            operation = .join(user: try required("user"), conversation: try required("conversation"))
        case "leave":
            operation = .leave(user: try required("user"), conversation: try required("conversation"))
        case let other:
            throw MessageJSONError(.invalidValue, "unknown op \"\(other.prefix(32))\"")
        }
        return Change(position: position, operation: operation)
    }
}
