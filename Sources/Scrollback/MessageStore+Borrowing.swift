import ScrollbackMessaging

/// A message read in place: its variable fields are views of the store's own buffers (a
/// decoded block of a sorted run, or a log record), valid **only during the call that passes
/// it** — copy what must outlive it (`message()` copies everything). For callers that
/// serialize straight to the wire: no `String`, `Array` or `Message` is made per message.
/// While the call runs, the store keeps the index page that lists the message pinned in its
/// cache (a body that blocks for long holds it there; the cache may exceed its budget
/// meanwhile rather than wait); reading the store from inside the body is fine.
///
/// Thread-safety: use it on the thread of the call that passes it.
public struct BorrowedMessage {
    // Compact (the id's address, where each later field starts from it, the scalars and the
    // conversation), with inlinable accessors: a caller in another module computes a field
    // in place, neither through a call nor by copying a large struct per message. The fields
    // lie back to back in the record, in this order (spec/message-records.md).
    @usableFromInline let start: UnsafeRawPointer?
    @usableFromInline let senderStart: UInt32
    @usableFromInline let replyToStart: UInt32
    @usableFromInline let metadataStart: UInt32
    @usableFromInline let bodyStart: UInt32
    @usableFromInline let end: UInt32
    public let createdAt: Int64
    public let kind: MessageKind
    public let edited: Bool
    /// The conversation's name, held by the read (no reference counting per message).
    let conversationName: UnsafePointer<String>

    @inline(__always)
    init(_ view: MessageView) {
        start = view.idBytes.baseAddress
        senderStart = UInt32(view.idBytes.count)
        replyToStart = senderStart + UInt32(view.senderBytes.count)
        metadataStart = replyToStart + UInt32(view.replyToBytes?.count ?? 0)
        bodyStart = metadataStart + UInt32(view.metadataBytes?.count ?? 0)
        end = bodyStart + UInt32(view.bodyBytes.count)
        createdAt = view.createdAt
        // (The word, not `view.kind` and `view.edited`: those are calls into another module.)
        let kindAndFlags = view.kindAndFlags
        kind = MessageKind(stored: UInt8(truncatingIfNeeded: kindAndFlags))
        edited = kindAndFlags & 1 << 8 != 0
        conversationName = view.conversationPointer
    }

    /// The conversation (the one the read asked for; no copy is made per message).
    public var conversation: String { conversationName.pointee }

    @inlinable @inline(__always)
    func bytes(_ from: UInt32, _ to: UInt32) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: start.map { $0 + Int(from) }, count: Int(to &- from))
    }

    /// The id's UTF-8 bytes.
    @inlinable public var idBytes: UnsafeRawBufferPointer { bytes(0, senderStart) }
    /// The sender's UTF-8 bytes.
    @inlinable public var senderBytes: UnsafeRawBufferPointer { bytes(senderStart, replyToStart) }
    /// The body's UTF-8 bytes.
    @inlinable public var bodyBytes: UnsafeRawBufferPointer { bytes(bodyStart, end) }
    /// The replied-to id's UTF-8 bytes, if any.
    @inlinable public var replyToBytes: UnsafeRawBufferPointer? {
        metadataStart == replyToStart ? nil : bytes(replyToStart, metadataStart)
    }
    /// The metadata bytes, if any.
    @inlinable public var metadataBytes: UnsafeRawBufferPointer? {
        bodyStart == metadataStart ? nil : bytes(metadataStart, bodyStart)
    }

    /// A copy as an owning `Message` (what `latest`, `page` and `messages` return).
    /// Inlined into the store's reads: returned through memory, the `Message` was stored
    /// field by field and then loaded 16 bytes at a time to be appended to the result, and
    /// the processor cannot forward a load that spans two stores (a stall per message).
    @inline(__always)
    public func message() -> Message {
        Message(id: String(decoding: idBytes, as: UTF8.self), conversation: conversation,
                sender: String(decoding: senderBytes, as: UTF8.self), createdAt: createdAt, kind: kind,
                body: String(decoding: bodyBytes, as: UTF8.self),
                replyTo: replyToBytes.map { String(decoding: $0, as: UTF8.self) }, edited: edited,
                metadata: metadataBytes.map { Array($0) })
    }
}

extension MessageStore {
    /// `latest(in:limit:)` without copies: calls `body` with each of the newest `limit`
    /// messages, newest first, each valid only during its call. O(log n + limit); no
    /// allocation per message. An error thrown by `body` stops the read and is rethrown as is.
    public func withLatest(in conversation: String, limit: Int, _ body: (BorrowedMessage) throws -> Void) throws {
        try Self.checkConversation(conversation)
        try Self.checkLimit(limit)
        try borrowing(body) { visit in try database.latest(in: conversation, limit: limit, visit) }
    }

    /// `page(in:after:limit:order:)` without copies: calls `body` with each message of the
    /// page, in `order`, and returns the cursor of the next page (nil when none remains).
    public func withPage(in conversation: String, after cursor: Cursor?, limit: Int, order: Order = .newestFirst,
                         _ body: (BorrowedMessage) throws -> Void) throws -> Cursor? {
        try Self.checkConversation(conversation)
        try Self.checkLimit(limit)
        return try borrowing(body) { visit in
            try database.page(in: conversation, after: cursor?.token, limit: limit, forward: order == .oldestFirst, visit)
                .map(Cursor.init(token:))
        }
    }

    /// `messages(in:from:through:order:limit:)` with a `limit`, without copies.
    public func withMessages(in conversation: String, from: Int64, through: Int64, order: Order = .oldestFirst, limit: Int,
                             _ body: (BorrowedMessage) throws -> Void) throws {
        try Self.checkConversation(conversation)
        try Self.checkLimit(limit)
        try borrowing(body) { visit in
            try database.messages(in: conversation, from: from, through: through, forward: order == .oldestFirst, limit: limit,
                                  visit)
        }
    }

    /// Runs a read that visits messages, passing each to `body` as a `BorrowedMessage`; the
    /// read's own errors become `ScrollbackError`, `body`'s are rethrown unchanged.
    func borrowing<R>(_ body: (BorrowedMessage) throws -> Void, _ read: (MessageVisitor) throws -> R) throws -> R {
        var thrownByBody: (any Error)? = nil
        do {
            // (The visitor never outlives the read: `withoutActuallyEscaping` only satisfies the
            // rule about nesting non-escaping closures.)
            return try withoutActuallyEscaping(body) { body in
                try mapErrors {
                    try read { view in
                        do {
                            try body(BorrowedMessage(view))
                        } catch {
                            thrownByBody = error
                            throw StoppedByBody()
                        }
                    }
                }
            }
        } catch {
            if let thrownByBody { throw thrownByBody }
            throw error
        }
    }
}

extension MessageKind {
    /// The kind stored as `raw` (`.text` for a value no kind has; reads check the kind byte
    /// first). Inlined, unlike `init(rawValue:)`: it is on a read's path once per message, and
    /// a call there loaded the byte as a wider word than was stored, which the processor
    /// cannot forward from the store just made (a stall per message in profiles).
    @inline(__always)
    init(stored raw: UInt8) {
        switch raw {
        case 2: self = .image
        case 3: self = .file
        case 4: self = .audio
        case 5: self = .video
        case 6: self = .system
        default: self = .text
        }
    }
}

/// Stops a read whose visitor's body threw (the body's error is rethrown instead).
private struct StoppedByBody: Error {}
