import ScrollbackMessaging

/// The kind of a message. Stored on disk as its raw value: never renumber.
public enum MessageKind: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case text = 1
    case image = 2
    case file = 3
    case audio = 4
    case video = 5
    case system = 6

    /// The lowercase name used by the command-line tool and JSON (`text`, `image`, …).
    public var name: String {
        switch self {
        case .text: "text"
        case .image: "image"
        case .file: "file"
        case .audio: "audio"
        case .video: "video"
        case .system: "system"
        }
    }

    /// The kind named `name` (`MessageKind.name`), or nil.
    public init?(name: String) {
        guard let kind = MessageKind.allCases.first(where: { $0.name == name }) else { return nil }
        self = kind
    }

    public var description: String { name }
}

/// A chat message.
///
/// Limits (checked by every write; a violation is `ScrollbackError.invalidArgument` naming
/// the field, and nothing is written):
/// - `id`: 1…128 UTF-8 bytes, unique in the store among live messages;
/// - `conversation`, `sender`: 1…255 UTF-8 bytes;
/// - `createdAt`: milliseconds since the Unix epoch, `0 ≤ createdAt < 2^53`;
/// - `body`: at most `StoreOptions.maxBodyBytes` UTF-8 bytes (default 64 KiB; may be empty);
/// - `replyTo`: nil, or 1…128 UTF-8 bytes (a message id; it need not exist);
/// - `metadata`: nil, or at most 16,384 bytes (`Message.maxMetadataBytes`). An empty array is
///   stored as no metadata: reads return nil.
///
/// Order: messages of a conversation are ordered by `(createdAt, insertion order)`; equal
/// timestamps keep the order in which they were appended.
public struct Message: Sendable, Hashable {
    /// Unique among the store's live messages: 1…128 UTF-8 bytes. `Identifiable.id`.
    public var id: String
    /// The conversation (1…255 UTF-8 bytes); messages are ordered within it.
    public var conversation: String
    /// Who wrote it (1…255 UTF-8 bytes).
    public var sender: String
    /// Milliseconds since the Unix epoch, `0 ≤ createdAt < 2^53` (`date` as a `Date`).
    public var createdAt: Int64
    /// What the body holds.
    public var kind: MessageKind
    /// Set by `MessageStore.edit`; ignored on append (a new message is never edited).
    public var edited: Bool
    /// The text, at most `StoreOptions.maxBodyBytes` UTF-8 bytes (may be empty).
    public var body: String
    /// The id of the message this one answers (1…128 UTF-8 bytes; it need not exist), or nil.
    public var replyTo: String?
    /// Opaque bytes the application attaches (attachments, reactions, a client's own kind):
    /// stored and returned as given, never interpreted; at most `maxMetadataBytes`. An edit
    /// keeps them. nil (or empty: read back as nil) for none.
    public var metadata: [UInt8]?

    /// Most bytes `metadata` may hold (16,384).
    public static let maxMetadataBytes = ArgumentLimits.metadataBytes.upperBound

}

extension Message {
    // Declared here, the initializer leaves the struct its implicit memberwise one and builds
    // the message with it. Assigned field by field, Swift 6.3's optimizer built each message
    // twice: a retain and a release of each string more per message read (8% of a keyset
    // page's samples). The memberwise initializer takes `kind` and `edited` before `body`,
    // both without a default (the order of the stored properties), so no call can mean both.
    public init(
        id: String, conversation: String, sender: String, createdAt: Int64,
        kind: MessageKind = .text, body: String, replyTo: String? = nil, edited: Bool = false, metadata: [UInt8]? = nil
    ) {
        self.init(id: id, conversation: conversation, sender: sender, createdAt: createdAt, kind: kind, edited: edited,
                  body: body, replyTo: replyTo, metadata: metadata)
    }
}

/// Direction of a scan within a conversation.
public enum Order: Sendable, Hashable {
    /// Descending `(createdAt, insertion order)`.
    case newestFirst
    /// Ascending `(createdAt, insertion order)`.
    case oldestFirst
}

/// What `append` did.
public enum AppendOutcome: Sendable, Hashable {
    case appended
    /// A live message with this id exists; nothing was changed.
    case duplicate
}

/// One page of a keyset walk.
public struct MessagePage: Sendable, Hashable {
    /// The page's messages, in the walk's order.
    public var messages: [Message]
    /// Where the next page starts; nil exactly when no message remains in that direction.
    public var next: Cursor?
    public var hasMore: Bool { next != nil }

    public init(messages: [Message], next: Cursor?) {
        self.messages = messages
        self.next = next
    }
}

/// One page of the conversation list.
public struct ConversationPage: Sendable, Hashable {
    /// The page's conversations, by last activity (newest first).
    public var conversations: [ConversationSummary]
    /// Where the next page starts; nil exactly when no conversation remains.
    public var next: ConversationCursor?

    public init(conversations: [ConversationSummary], next: ConversationCursor?) {
        self.conversations = conversations
        self.next = next
    }
}

/// A conversation in the conversation list.
public struct ConversationSummary: Sendable, Hashable {
    /// The conversation id.
    public var id: String
    /// `createdAt` of its newest live message.
    public var lastActivity: Int64
    /// Number of live messages.
    public var messageCount: Int

    public init(id: String, lastActivity: Int64, messageCount: Int) {
        self.id = id
        self.lastActivity = lastActivity
        self.messageCount = messageCount
    }
}
