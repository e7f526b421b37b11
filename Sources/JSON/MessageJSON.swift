import Scrollback

/// The JSON form of a message: the one codec of every tool. `generate` and `export` write it,
/// `import` and the workload's JSON-lines files read it, `exec` answers with it and reads its
/// `append` requests with it, so export∘import is the identity by construction.
///
/// The object: `{"id","conversation","sender","createdAt","kind","body","replyTo"?,"metadata"?,
/// "edited"}`, keys in that order, `createdAt` integer milliseconds, `kind` the lowercase name
/// (`MessageKind.name`), `replyTo` only when the message has one, `metadata` (padded base64,
/// RFC 4648 §4, of `Message.metadata`) only when it has some. Strings are escaped per
/// RFC 8259 (`JSONWriter`); everything else is UTF-8 as is.
///
/// Reading accepts the keys in any order, whitespace between tokens, `"replyTo": null`,
/// `"metadata": null` and every JSON escape (`\uXXXX` with surrogate pairs); what else it
/// accepts is the reader's `Dialect`. Metadata that is not canonical padded base64 is
/// `invalidValue`; its length is the store's to check (`Message.maxMetadataBytes`).
package enum MessageJSON {
    /// One line, without the newline.
    package static func encode(_ message: Message) -> String {
        var writer = JSONWriter()
        writer.message(message)
        return writer.text
    }

    /// Appends one line and a newline to `out` (the fast path for writing files).
    package static func appendLine(_ message: Message, to out: inout [UInt8]) {
        var writer = JSONWriter(continuing: out)
        out = []
        writer.message(message)
        writer.raw("\n")
        out = writer.bytes
    }

    /// What a reader accepts besides the object above.
    package struct Dialect: Sendable {
        /// Members other than the message's are an error (files) rather than ignored.
        package var rejectsUnknownMembers = false
        /// `kind` must be given (requests) rather than defaulting to text.
        package var requiresKind = false
        /// `edited` is read (files, imports) rather than ignored (requests: it is output only).
        package var readsEdited = true
        /// The spellings of other tools (imports), if accepted.
        package var otherSpellings: OtherSpellings?

        package init(rejectsUnknownMembers: Bool = false, requiresKind: Bool = false, readsEdited: Bool = true,
                     otherSpellings: OtherSpellings? = nil) {
            self.rejectsUnknownMembers = rejectsUnknownMembers
            self.requiresKind = requiresKind
            self.readsEdited = readsEdited
            self.otherSpellings = otherSpellings
        }

        /// Exactly what `encode` writes (the workload's JSON-lines files).
        package static let file = Dialect(rejectsUnknownMembers: true)
        /// An `exec` append: other members are the request's; `kind` is required.
        package static let request = Dialect(requiresKind: true, readsEdited: false)
    }

    /// The reference schema's names `conversationId`, `senderId`, `type` and `content`; ids
    /// and other text given as integers; null as absent (a null body is empty); `createdAt`
    /// as text and `kind` as any text or number, read by the given functions.
    package struct OtherSpellings: Sendable {
        package var time: @Sendable (String) -> Int64?
        package var kind: @Sendable (String) -> MessageKind?
        package init(time: @escaping @Sendable (String) -> Int64?, kind: @escaping @Sendable (String) -> MessageKind?) {
            self.time = time
            self.kind = kind
        }
    }

    /// A decoded message and its `edited` flag (false unless the dialect reads it).
    package struct Decoded: Equatable {
        package var message: Message
        package var edited: Bool
    }

    /// Reads one line (surrounding whitespace and a trailing `\r` are allowed).
    package static func decode(line: [UInt8], _ dialect: Dialect) throws(MessageJSONError) -> Decoded {
        try decode(try object(line: line), dialect)
    }

    /// A line that must hold one JSON object (`.syntax` otherwise).
    package static func object(line: [UInt8]) throws(MessageJSONError) -> JSONObject {
        let value: JSONValue
        do {
            value = try JSONParser.parse(line)
        } catch {
            throw MessageJSONError(.syntax, error.description)
        }
        guard case .object(let object) = value else {
            throw MessageJSONError(.syntax, "expected a JSON object, found \(value.typeName)")
        }
        return object
    }

    /// Reads a message object. Checks the members in the order they are written, then the
    /// kind's value, then (files) that no other member is there.
    package static func decode(_ object: JSONObject, _ dialect: Dialect) throws(MessageJSONError) -> Decoded {
        var reader = MessageObjectReader(object: object, dialect: dialect)
        let id = try reader.requiredText("id")
        let conversation = try reader.requiredText("conversation", or: "conversationId")
        let sender = try reader.requiredText("sender", or: "senderId")
        let createdAt = try reader.createdAt()
        let kindText = try reader.kindText()
        let body = try reader.body()
        let replyTo = try reader.text("replyTo")
        let metadata = try reader.metadata()
        let edited = dialect.readsEdited ? try reader.edited() : false
        let kind = try reader.kind(kindText)
        try reader.checkNoOtherMembers()
        return Decoded(message: Message(id: id, conversation: conversation, sender: sender, createdAt: createdAt, kind: kind,
                                        body: body, replyTo: replyTo, edited: edited, metadata: metadata),
                       edited: edited)
    }
}

extension JSONWriter {
    /// The message object, keys in order (see `MessageJSON`).
    package mutating func message(_ m: Message) {
        raw("{\"id\":")
        string(m.id)
        raw(",\"conversation\":")
        string(m.conversation)
        raw(",\"sender\":")
        string(m.sender)
        raw(",\"createdAt\":")
        integer(m.createdAt)
        raw(",\"kind\":")
        string(m.kind.name)
        raw(",\"body\":")
        string(m.body)
        if let replyTo = m.replyTo {
            raw(",\"replyTo\":")
            string(replyTo)
        }
        if let metadata = m.metadata, !metadata.isEmpty {
            raw(",\"metadata\":\"")
            raw(Base64.encode(metadata))
            raw("\"")
        }
        raw(",\"edited\":")
        bool(m.edited)
        raw("}")
    }

    /// A JSON array of message objects.
    package mutating func messages(_ list: [Message]) {
        raw("[")
        for (i, m) in list.enumerated() {
            if i > 0 { raw(",") }
            message(m)
        }
        raw("]")
    }
}

/// Why a message object cannot be read. `kind` tells a request that is not well formed
/// (`syntax`, `missing`, `wrongType`) from a value outside what a message accepts
/// (`invalidValue`: an unknown kind, an integer beyond 64 bits).
package struct MessageJSONError: Error, Equatable, CustomStringConvertible {
    package enum Kind: Sendable, Equatable {
        case syntax, missing, wrongType, invalidValue
    }

    package var kind: Kind
    package var description: String

    init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// The member-by-member reading of one message object in a dialect.
private struct MessageObjectReader {
    let object: JSONObject
    let dialect: MessageJSON.Dialect
    /// The members read so far (for `checkNoOtherMembers`).
    var read: Set<String> = []

    init(object: JSONObject, dialect: MessageJSON.Dialect) {
        self.object = object
        self.dialect = dialect
    }

    /// The member `name`, or (other spellings) `alias`; both given is an error.
    mutating func member(_ name: String, or alias: String? = nil) throws(MessageJSONError) -> (String, JSONValue)? {
        read.insert(name)
        let value = object[name]
        guard let alias, dialect.otherSpellings != nil, let other = object[alias] else { return value.map { (name, $0) } }
        read.insert(alias)
        if value != nil { throw MessageJSONError(.syntax, "both \"\(name)\" and \"\(alias)\" are given") }
        return (alias, other)
    }

    func wrongType(_ name: String, _ expected: String, _ value: JSONValue) -> MessageJSONError {
        MessageJSONError(.wrongType, "member \"\(name)\" must be \(expected), not \(value.typeName)")
    }

    static func isInteger(_ literal: String) -> Bool { !literal.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) }

    /// A text member: a string, or null (absent). Other spellings: an integer literal too.
    mutating func text(_ name: String, or alias: String? = nil) throws(MessageJSONError) -> String? {
        guard let (found, value) = try member(name, or: alias) else { return nil }
        switch value {
        case .string(let s): return s
        case .null: return nil
        case .number(let n) where dialect.otherSpellings != nil && Self.isInteger(n): return n
        default: throw wrongType(found, name == "replyTo" ? "a string or null" : "a string", value)
        }
    }

    mutating func requiredText(_ name: String, or alias: String? = nil) throws(MessageJSONError) -> String {
        guard let (found, value) = try member(name, or: alias) else { throw MessageJSONError(.missing, "missing member \"\(name)\"") }
        if case .null = value, dialect.otherSpellings != nil { throw MessageJSONError(.missing, "missing member \"\(name)\"") }
        switch value {
        case .string(let s): return s
        case .number(let n) where dialect.otherSpellings != nil && Self.isInteger(n): return n
        default: throw wrongType(found, "a string", value)
        }
    }

    mutating func createdAt() throws(MessageJSONError) -> Int64 {
        guard let (_, value) = try member("createdAt") else { throw MessageJSONError(.missing, "missing member \"createdAt\"") }
        switch value {
        case .number(let n):
            guard Self.isInteger(n) else { throw MessageJSONError(.wrongType, "member \"createdAt\" must be an integer, not \(n)") }
            guard let ms = Int64(n) else { throw MessageJSONError(.invalidValue, "member \"createdAt\" is out of range: \(n)") }
            return ms
        case .string(let s) where dialect.otherSpellings != nil:
            guard let ms = dialect.otherSpellings?.time(s) else {
                throw MessageJSONError(.invalidValue, "member \"createdAt\" is neither integer milliseconds nor ISO-8601: \"\(s)\"")
            }
            return ms
        default:
            throw wrongType("createdAt", "an integer", value)
        }
    }

    /// The kind as given (nil: absent), checked by `kind(_:)` once the other members are read.
    mutating func kindText() throws(MessageJSONError) -> (member: String, text: String)? {
        guard let (found, value) = try member("kind", or: "type") else {
            if dialect.requiresKind { throw MessageJSONError(.missing, "missing member \"kind\"") }
            return nil
        }
        switch value {
        case .string(let s): return (found, s)
        case .number(let n) where dialect.otherSpellings != nil: return (found, n)
        case .null where dialect.otherSpellings != nil: return nil
        default: throw wrongType(found, "a string", value)
        }
    }

    func kind(_ given: (member: String, text: String)?) throws(MessageJSONError) -> MessageKind {
        guard let given else { return .text }
        let kind = dialect.otherSpellings.map { $0.kind(given.text) } ?? MessageKind(name: given.text)
        guard let kind else {
            let names = MessageKind.allCases.map(\.name).joined(separator: ", ")
            throw MessageJSONError(.invalidValue, "member \"\(given.member)\" must be one of \(names), not \"\(given.text)\"")
        }
        return kind
    }

    /// The body: required; other spellings: `content`, and null is empty.
    mutating func body() throws(MessageJSONError) -> String {
        guard let (found, value) = try member("body", or: "content") else { throw MessageJSONError(.missing, "missing member \"body\"") }
        switch value {
        case .string(let s): return s
        case .null where dialect.otherSpellings != nil: return ""
        case .number(let n) where dialect.otherSpellings != nil && Self.isInteger(n): return n
        default: throw wrongType(found, "a string", value)
        }
    }

    /// The metadata: absent or null (none), or a string of canonical padded base64.
    mutating func metadata() throws(MessageJSONError) -> [UInt8]? {
        guard let (_, value) = try member("metadata") else { return nil }
        switch value {
        case .null: return nil
        case .string(let text):
            guard let bytes = Base64.decode(text) else {
                throw MessageJSONError(.invalidValue, "member \"metadata\" is not canonical padded base64")
            }
            return bytes
        default: throw wrongType("metadata", "a base64 string or null", value)
        }
    }

    mutating func edited() throws(MessageJSONError) -> Bool {
        guard let (_, value) = try member("edited") else { return false }
        switch value {
        case .bool(let b): return b
        case .null: return false
        default: throw wrongType("edited", "a boolean", value)
        }
    }

    func checkNoOtherMembers() throws(MessageJSONError) {
        guard dialect.rejectsUnknownMembers else { return }
        if let other = object.keys.first(where: { !read.contains($0) }) {
            throw MessageJSONError(.syntax, "unknown member \"\(other)\"")
        }
    }
}
