import Scrollback

/// One message read by `import` (or made by `generate`), with where it came from.
struct ImportRecord {
    var message: Message
    /// `edited` in an exported file: re-applied after the append so a round trip keeps it.
    var edited: Bool
    /// "line 17", "row 5", … for error messages.
    var origin: String
}

/// Why an input record cannot be imported (reported with its line or row and skipped).
struct RecordError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Reading message fields from the inputs `import` accepts.
enum RecordDecoding {
    /// A message kind by name (any case: `text`, `TEXT`, `Image`…) or by its stored number 1…6.
    static func kind(name: String) -> MessageKind? {
        let lower = name.trimmingSpaces.lowercased()
        if let kind = MessageKind(name: lower) { return kind }
        if let n = UInt8(lower) { return MessageKind(rawValue: n) }
        return nil
    }

    static let kindNames = MessageKind.allCases.map(\.name).joined(separator: ", ")

    /// A JSONL line: the `exec` message object `{"id","conversation","sender","createdAt",
    /// "kind","body","replyTo"?,"edited"?}`. Also accepted, for files written by other tools:
    /// the reference schema's names `conversationId`, `senderId`, `type`, `content`; ids given
    /// as integers; `createdAt` as ISO-8601 text; `kind` in any case (default `text`).
    static func jsonLine(_ line: [UInt8], origin: String) throws(RecordError) -> ImportRecord {
        let value: JSONValue
        do {
            value = try JSONParser.parse(line)
        } catch {
            throw RecordError(error.description)
        }
        guard case .object(let object) = value else { throw RecordError("expected a JSON object, found \(value.typeName)") }

        func member(_ names: String...) throws(RecordError) -> (String, JSONValue)? {
            var found: (String, JSONValue)?
            for name in names {
                if let v = object[name] {
                    if let (other, _) = found { throw RecordError("both \"\(other)\" and \"\(name)\" are given") }
                    found = (name, v)
                }
            }
            return found
        }
        func text(_ names: String...) throws(RecordError) -> String? {
            var found: (String, JSONValue)?
            for name in names {
                if let v = object[name] {
                    if let (other, _) = found { throw RecordError("both \"\(other)\" and \"\(name)\" are given") }
                    found = (name, v)
                }
            }
            guard let (name, v) = found else { return nil }
            switch v {
            case .string(let s): return s
            case .number(let n) where !n.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }): return n
            case .null: return nil
            default: throw RecordError("\"\(name)\" must be a string, not \(v.typeName)")
            }
        }
        guard let id = try text("id") else { throw RecordError("missing \"id\"") }
        guard let conversation = try text("conversation", "conversationId") else { throw RecordError("missing \"conversation\"") }
        guard let sender = try text("sender", "senderId") else { throw RecordError("missing \"sender\"") }
        guard let (createdName, createdValue) = try member("createdAt") else { throw RecordError("missing \"createdAt\"") }
        let createdAt: Int64
        switch createdValue {
        case .number(let n):
            guard let ms = Int64(n) else { throw RecordError("\"\(createdName)\" must be integer milliseconds, not \(n)") }
            createdAt = ms
        case .string(let s):
            guard let ms = Timestamp.parse(s) else {
                throw RecordError("\"\(createdName)\" is neither integer milliseconds nor ISO-8601: \"\(s)\"")
            }
            createdAt = ms
        default:
            throw RecordError("\"\(createdName)\" must be integer milliseconds or ISO-8601 text, not \(createdValue.typeName)")
        }
        var kind = MessageKind.text
        if let (kindName, kindValue) = try member("kind", "type") {
            switch kindValue {
            case .string(let s):
                guard let k = RecordDecoding.kind(name: s) else {
                    throw RecordError("\"\(kindName)\" must be one of \(kindNames), not \"\(s)\"")
                }
                kind = k
            case .number(let n):
                guard let k = RecordDecoding.kind(name: n) else { throw RecordError("\"\(kindName)\" \(n) is not a kind number 1…6") }
                kind = k
            case .null: break
            default: throw RecordError("\"\(kindName)\" must be a string, not \(kindValue.typeName)")
            }
        }
        guard try member("body", "content") != nil else { throw RecordError("missing \"body\"") }
        let body = try text("body", "content") ?? ""
        let replyTo = try text("replyTo")
        var edited = false
        if let v = object["edited"] {
            switch v {
            case .bool(let b): edited = b
            case .null: break
            default: throw RecordError("\"edited\" must be a boolean, not \(v.typeName)")
            }
        }
        let message = Message(
            id: id, conversation: conversation, sender: sender, createdAt: createdAt, kind: kind, body: body, replyTo: replyTo)
        return ImportRecord(message: message, edited: edited, origin: origin)
    }
}
