import ScrollbackMessaging

// Codable forms of the public values. A message encodes as the command-line tool's message
// object (README, "exec: the JSONL contract"):
//
//     {"id":"m1","conversation":"general","sender":"ana","createdAt":1767225600000,
//      "kind":"text","body":"hello","replyTo":"m0","metadata":"eD0x","edited":false}
//
// `createdAt` is integer milliseconds since the Unix epoch (whatever the encoder's date
// strategy), `kind` the lowercase name, `replyTo` only when the message has one, `metadata`
// (padded base64 of the bytes) only when it has some. The shape is stable: new fields will
// only be added as optional members.

extension Message: Identifiable {}

extension Message: Codable {
    enum CodingKeys: String, CodingKey {
        case id, conversation, sender, createdAt, kind, body, replyTo, metadata, edited
    }

    /// Decodes the object above. `kind` may be absent (text), `replyTo` and `metadata` absent
    /// or null, `edited` absent (false). Checks what the store checks without a store: the
    /// lengths of the ids and names, `createdAt` in `0 ..< 2^53`, `replyTo` not empty, the body
    /// within the largest limit a store can have (16 MiB), the kind's name, `metadata` canonical
    /// padded base64 of at most `Message.maxMetadataBytes` bytes. A violation is a
    /// `DecodingError.dataCorrupted` naming the member.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func text(_ key: CodingKeys, _ range: ClosedRange<Int>) throws -> String {
            let value = try container.decode(String.self, forKey: key)
            try Self.check(value.utf8.count, in: range, key, container)
            return value
        }
        let id = try text(.id, ArgumentLimits.idBytes)
        let conversation = try text(.conversation, ArgumentLimits.nameBytes)
        let sender = try text(.sender, ArgumentLimits.nameBytes)
        let createdAt = try container.decode(Int64.self, forKey: .createdAt)
        guard ArgumentLimits.createdAt.contains(createdAt) else {
            throw DecodingError.dataCorruptedError(
                forKey: .createdAt, in: container,
                debugDescription: "\(createdAt) is outside 0 ..< 2^53 (milliseconds since the Unix epoch)")
        }
        let kind = try container.decodeIfPresent(MessageKind.self, forKey: .kind) ?? .text
        let body = try container.decode(String.self, forKey: .body)
        try Self.check(body.utf8.count, in: ArgumentLimits.bodyLimit, .body, container)
        let replyTo = try container.decodeIfPresent(String.self, forKey: .replyTo)
        if let replyTo { try Self.check(replyTo.utf8.count, in: ArgumentLimits.idBytes, .replyTo, container) }
        let metadata = try Self.decodeMetadata(container)
        let edited = try container.decodeIfPresent(Bool.self, forKey: .edited) ?? false
        self.init(id: id, conversation: conversation, sender: sender, createdAt: createdAt, kind: kind, body: body,
                  replyTo: replyTo, edited: edited, metadata: metadata)
    }

    private static func decodeMetadata(_ container: KeyedDecodingContainer<CodingKeys>) throws -> [UInt8]? {
        guard let text = try container.decodeIfPresent(String.self, forKey: .metadata) else { return nil }
        guard let bytes = Base64.decode(text) else {
            throw DecodingError.dataCorruptedError(forKey: .metadata, in: container,
                                                   debugDescription: "not canonical padded base64")
        }
        guard bytes.count <= maxMetadataBytes else {
            throw DecodingError.dataCorruptedError(
                forKey: .metadata, in: container,
                debugDescription: "\(bytes.count) bytes exceed the limit of \(maxMetadataBytes)")
        }
        return bytes
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(conversation, forKey: .conversation)
        try container.encode(sender, forKey: .sender)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(kind, forKey: .kind)
        try container.encode(body, forKey: .body)
        try container.encodeIfPresent(replyTo, forKey: .replyTo)
        if let metadata, !metadata.isEmpty { try container.encode(Base64.encode(metadata), forKey: .metadata) }
        try container.encode(edited, forKey: .edited)
    }

    private static func check(_ count: Int, in range: ClosedRange<Int>, _ key: CodingKeys,
                              _ container: KeyedDecodingContainer<CodingKeys>) throws {
        guard range.contains(count) else {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: container,
                debugDescription: "\(count) UTF-8 bytes is outside \(range.lowerBound) ... \(range.upperBound)")
        }
    }
}

/// Encodes as its lowercase name (`"text"`, `"image"`, …); decoding any other string is a
/// `DecodingError.dataCorrupted`.
extension MessageKind: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let name = try container.decode(String.self)
        guard let kind = MessageKind(name: name) else {
            let names = MessageKind.allCases.map(\.name).joined(separator: ", ")
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "unknown message kind \"\(name)\" (expected one of \(names))")
        }
        self = kind
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(name)
    }
}

/// Encodes as its token (a string).
extension Cursor: Codable {
    public init(from decoder: any Decoder) throws {
        self.init(token: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(token)
    }
}

/// Encodes as its token (a string).
extension InboxCursor: Codable {
    public init(from decoder: any Decoder) throws {
        self.init(token: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(token)
    }
}

/// Encodes as its token (a string).
extension ConversationCursor: Codable {
    public init(from decoder: any Decoder) throws {
        self.init(token: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(token)
    }
}

/// `{"messages":[…],"next":C or null}`, as the tool's `page` answer.
extension MessagePage: Codable {
    enum CodingKeys: String, CodingKey { case messages, next }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(messages: try container.decode([Message].self, forKey: .messages),
                  next: try container.decodeIfPresent(Cursor.self, forKey: .next))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(messages, forKey: .messages)
        try container.encode(next, forKey: .next)
    }
}

/// `{"id","lastActivity","messages"}`, as an entry of the tool's `conversations` answer.
extension ConversationSummary: Identifiable, Codable {
    enum CodingKeys: String, CodingKey {
        case id, lastActivity
        case messageCount = "messages"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(id: try container.decode(String.self, forKey: .id),
                  lastActivity: try container.decode(Int64.self, forKey: .lastActivity),
                  messageCount: try container.decode(Int.self, forKey: .messageCount))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(lastActivity, forKey: .lastActivity)
        try container.encode(messageCount, forKey: .messageCount)
    }
}

/// `{"conversations":[…],"next":C or null}`, as the tool's paged `conversations` answer.
extension ConversationPage: Codable {
    enum CodingKeys: String, CodingKey { case conversations, next }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(conversations: try container.decode([ConversationSummary].self, forKey: .conversations),
                  next: try container.decodeIfPresent(ConversationCursor.self, forKey: .next))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(conversations, forKey: .conversations)
        try container.encode(next, forKey: .next)
    }
}

/// `{"id","lastActivity","messages","unread"}` (`lastActivity` null when the conversation has
/// no live message), as an entry of the tool's `inbox` answer.
extension InboxEntry: Identifiable, Codable {
    enum CodingKeys: String, CodingKey {
        case id, lastActivity
        case messageCount = "messages"
        case unreadCount = "unread"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(id: try container.decode(String.self, forKey: .id),
                  lastActivity: try container.decodeIfPresent(Int64.self, forKey: .lastActivity),
                  messageCount: try container.decode(Int.self, forKey: .messageCount),
                  unreadCount: try container.decode(Int.self, forKey: .unreadCount))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(lastActivity, forKey: .lastActivity)
        try container.encode(messageCount, forKey: .messageCount)
        try container.encode(unreadCount, forKey: .unreadCount)
    }
}

/// `{"conversations":[…],"next":C or null}`, as the tool's `inbox` answer.
extension InboxPage: Codable {
    enum CodingKeys: String, CodingKey { case conversations, next }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(conversations: try container.decode([InboxEntry].self, forKey: .conversations),
                  next: try container.decodeIfPresent(InboxCursor.self, forKey: .next))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(conversations, forKey: .conversations)
        try container.encode(next, forKey: .next)
    }
}
