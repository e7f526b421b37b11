import ScrollbackStorage

// The payloads of the message layer's log records (spec/message-records.md, "Log records"),
// each decoded (bounds-checked, typed corruption errors) and encoded in one place. `apply`,
// the read paths, compaction and `dump` all use these.

/// The fixed header of a message payload (`.message` records), checked against the payload length.
package struct MessageHeader: Equatable, Sendable {
    package var seq: UInt64
    package var conversation: UInt64
    package var createdAt: UInt64
    package var kind: UInt8
    package var flags: UInt8
    package var idLength: Int
    package var senderLength: Int
    package var replyToLength: Int
    package var bodyLength: Int

    typealias L = MessageRecordLayout

    var idStart: Int { L.headerSize }
    var senderStart: Int { idStart + idLength }
    var replyToStart: Int { senderStart + senderLength }
    var bodyStart: Int { replyToStart + replyToLength }

    /// The message's key in the messages tree.
    var key: MessageKey { MessageKey(conversation: conversation, createdAt: createdAt, seq: seq) }

    /// Parses and bounds-checks the header of a message payload (`payload` starts at the seq field).
    /// Throws `.corrupted` naming `file` and `offset` (the payload's position) on any mismatch.
    package static func parse(_ payload: UnsafeRawBufferPointer, position: UInt64, offset: UInt64) throws -> MessageHeader {
        guard payload.count >= L.headerSize else {
            throw corrupted(position, offset, "message record of \(payload.count) bytes is shorter than its header")
        }
        let header = MessageHeader(
            seq: payload.loadLE(UInt64.self, at: L.seqOffset),
            conversation: payload.loadLE(UInt64.self, at: L.conversationOffset),
            createdAt: payload.loadLE(UInt64.self, at: L.createdAtOffset),
            kind: payload[L.kindOffset], flags: payload[L.flagsOffset],
            idLength: Int(payload[L.idLengthOffset]), senderLength: Int(payload[L.senderLengthOffset]),
            replyToLength: Int(payload[L.replyToLengthOffset]),
            bodyLength: Int(payload.loadLE(UInt32.self, at: L.bodyLengthOffset)))
        guard L.headerSize + header.idLength + header.senderLength + header.replyToLength + header.bodyLength == payload.count,
              ArgumentLimits.idBytes.contains(header.idLength), header.senderLength >= 1,
              header.replyToLength <= ArgumentLimits.idBytes.upperBound,
              (header.flags & MessageFlags.hasReplyTo != 0) == (header.replyToLength > 0),
              header.flags & ~MessageFlags.known == 0, ArgumentLimits.kinds.contains(header.kind),
              payload[L.reservedOffset] == 0, header.seq != 0,
              header.createdAt < UInt64(ArgumentLimits.createdAt.upperBound)
        else {
            throw corrupted(position, offset, "message record header is inconsistent")
        }
        return header
    }

    /// A corruption error for the record at log `position` (the file name is built only here,
    /// off the hot path).
    @inline(never)
    package static func corrupted(_ position: UInt64, _ offset: UInt64, _ reason: String) -> StorageError {
        .corrupted(file: "log position \(LogPositions.describe(position))", offset: offset, reason: reason)
    }
}

/// The message a messages-tree entry points at: a `.message` record, or a `.relocate` copy made
/// by compaction (the message payload after its 8-byte prefix). The one dispatch on the record
/// type of the read paths, verify and compaction.
enum MessageRecord {
    /// The header and the message payload of the record of `type` at `position`.
    @inline(__always)
    static func message(type: UInt8, payload: UnsafeRawBufferPointer, position: LogPosition) throws
        -> (MessageHeader, UnsafeRawBufferPointer) {
        switch type {
        case MessageRecordType.message.rawValue:
            return (try MessageHeader.parse(payload, position: position, offset: 0), payload)
        case MessageRecordType.relocate.rawValue:
            let copy = try RelocateRecord.decode(payload, position: position)
            return (copy.header, copy.message)
        default:
            throw MessageHeader.corrupted(position, 0, "record of type \(type) where a message was expected")
        }
    }

    /// Encodes a `.message` record (spec/message-records.md, "16 message").
    static func append(_ message: StoredMessage, conversationID: UInt64, seq: UInt64, flags: UInt8,
                       into batch: inout LogBatch) throws {
        typealias L = MessageRecordLayout
        let idCount = message.id.utf8.count, senderCount = message.sender.utf8.count
        let replyCount = message.replyTo?.utf8.count ?? 0, bodyCount = message.body.utf8.count
        let allFlags = flags | (message.replyTo != nil ? MessageFlags.hasReplyTo : 0)
        let count = L.headerSize + idCount + senderCount + replyCount + bodyCount
        try batch.append(type: .message, payloadCount: count) { out in
            out.storeLE(seq, at: L.seqOffset)
            out.storeLE(conversationID, at: L.conversationOffset)
            out.storeLE(UInt64(message.createdAt), at: L.createdAtOffset)
            out[L.kindOffset] = message.kind
            out[L.flagsOffset] = allFlags
            out[L.idLengthOffset] = UInt8(truncatingIfNeeded: idCount)
            out[L.senderLengthOffset] = UInt8(truncatingIfNeeded: senderCount)
            out[L.replyToLengthOffset] = UInt8(truncatingIfNeeded: replyCount)
            out.storeLE(UInt32(truncatingIfNeeded: bodyCount), at: L.bodyLengthOffset)
            var offset = L.headerSize
            offset = copyUTF8(message.id, into: out, at: offset)
            offset = copyUTF8(message.sender, into: out, at: offset)
            if let replyTo = message.replyTo { offset = copyUTF8(replyTo, into: out, at: offset) }
            _ = copyUTF8(message.body, into: out, at: offset)
        }
    }

    /// Encodes the edit of a stored message: its record again with a new body and the edited
    /// flag (header, id, sender and replyTo are kept).
    static func appendEdit(of header: MessageHeader, _ payload: UnsafeRawBufferPointer, body: String,
                           into batch: inout LogBatch) throws {
        let bodyCount = body.utf8.count
        let keep = header.bodyStart
        try batch.append(type: .message, payloadCount: keep + bodyCount) { out in
            out.copyMemory(from: UnsafeRawBufferPointer(rebasing: payload[0..<keep]))
            out[MessageRecordLayout.flagsOffset] = header.flags | MessageFlags.edited
            out.storeLE(UInt32(truncatingIfNeeded: bodyCount), at: MessageRecordLayout.bodyLengthOffset)
            _ = copyUTF8(body, into: out, at: keep)
        }
    }

    /// Copies the UTF-8 bytes of `text` into `out` at `offset` (bounds-checked); returns the
    /// offset after them.
    @inline(__always)
    static func copyUTF8(_ text: String, into out: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        var text = text
        return text.withUTF8 { bytes -> Int in
            let end = offset + bytes.count
            guard bytes.count > 0, end <= out.count, let source = bytes.baseAddress, let target = out.baseAddress else {
                return end
            }
            (target + offset).copyMemory(from: source, byteCount: bytes.count)
            return end
        }
    }
}

/// A relocate record (type 21): the position of the record it copies, then that message.
struct RelocateRecord {
    var from: LogPosition
    var header: MessageHeader
    var message: UnsafeRawBufferPointer

    static func decode(_ payload: UnsafeRawBufferPointer, position: LogPosition) throws -> RelocateRecord {
        let prefix = MessageRecordLayout.relocatePrefix
        guard payload.count >= prefix else { throw MessageHeader.corrupted(position, 0, "relocate record too short") }
        let message = UnsafeRawBufferPointer(rebasing: payload[prefix...])
        return RelocateRecord(from: payload.loadLE(UInt64.self, at: 0),
                              header: try MessageHeader.parse(message, position: position, offset: UInt64(prefix)),
                              message: message)
    }

    /// A copy of the message `payload` (type 16) found at `from`.
    static func append(from: LogPosition, message payload: UnsafeRawBufferPointer, into batch: inout LogBatch) throws {
        let prefix = MessageRecordLayout.relocatePrefix
        try batch.append(type: .relocate, payloadCount: prefix + payload.count) { out in
            out.storeLE(from, at: 0)
            UnsafeMutableRawBufferPointer(rebasing: out[prefix...]).copyMemory(from: payload)
        }
    }
}

/// A delete record (type 17): the message's key and the hash of its id.
struct DeleteRecord {
    var key: MessageKey
    var idHash: UInt64

    static func decode(_ payload: UnsafeRawBufferPointer, position: LogPosition) throws -> DeleteRecord {
        guard payload.count == MessageRecordLayout.deletePayloadSize else {
            throw MessageHeader.corrupted(position, 0, "delete record of \(payload.count) bytes")
        }
        return DeleteRecord(key: MessageKey(conversation: payload.loadLE(UInt64.self, at: 0),
                                            createdAt: payload.loadLE(UInt64.self, at: 8), seq: payload.loadLE(UInt64.self, at: 16)),
                            idHash: payload.loadLE(UInt64.self, at: 24))
    }

    func append(into batch: inout LogBatch) throws {
        try batch.append(type: .delete, payloadCount: MessageRecordLayout.deletePayloadSize) { out in
            out.storeLE(key.conversation, at: 0)
            out.storeLE(key.createdAt, at: 8)
            out.storeLE(key.seq, at: 16)
            out.storeLE(idHash, at: 24)
        }
    }
}

/// A markRead record (type 18): a user's marker in a conversation moves to a message.
struct MarkReadRecord {
    var marker: MarkerKey
    var through: MarkerValue

    static func decode(_ payload: UnsafeRawBufferPointer, position: LogPosition) throws -> MarkReadRecord {
        guard payload.count == MessageRecordLayout.markReadPayloadSize else {
            throw MessageHeader.corrupted(position, 0, "markRead record of \(payload.count) bytes")
        }
        return MarkReadRecord(marker: MarkerKey(user: payload.loadLE(UInt64.self, at: 0), conversation: payload.loadLE(UInt64.self, at: 8)),
                              through: MarkerValue(createdAt: payload.loadLE(UInt64.self, at: 16), seq: payload.loadLE(UInt64.self, at: 24)))
    }

    func append(into batch: inout LogBatch) throws {
        try batch.append(type: .markRead, payloadCount: MessageRecordLayout.markReadPayloadSize) { out in
            out.storeLE(marker.user, at: 0)
            out.storeLE(marker.conversation, at: 8)
            out.storeLE(through.createdAt, at: 16)
            out.storeLE(through.seq, at: 24)
        }
    }
}

/// A newConversation or newUser record (type 19 or 20): an internal id and its name.
struct NameRecord {
    var space: NameSpace
    var id: UInt64
    /// The name's UTF-8 bytes (a view into the record).
    var name: UnsafeRawBufferPointer

    static func decode(_ type: MessageRecordType, _ payload: UnsafeRawBufferPointer, position: LogPosition) throws -> NameRecord {
        let header = MessageRecordLayout.namePayloadHeader
        guard payload.count >= header, payload.count == header + Int(payload[8]), payload[8] >= 1 else {
            throw MessageHeader.corrupted(position, 0, "name record of \(payload.count) bytes is inconsistent")
        }
        return NameRecord(space: type == .newConversation ? .conversation : .user, id: payload.loadLE(UInt64.self, at: 0),
                          name: UnsafeRawBufferPointer(rebasing: payload[header...]))
    }

    static func append(_ space: NameSpace, id: UInt64, name: String, into batch: inout LogBatch) throws {
        let count = name.utf8.count
        let type: MessageRecordType = space == .conversation ? .newConversation : .newUser
        try batch.append(type: type, payloadCount: MessageRecordLayout.namePayloadHeader + count) { out in
            out.storeLE(id, at: 0)
            out[8] = UInt8(truncatingIfNeeded: count)
            _ = MessageRecord.copyUTF8(name, into: out, at: MessageRecordLayout.namePayloadHeader)
        }
    }
}

/// The initialize record (type 22): the layer's format version and the store's cursor secret.
struct InitializeRecord {
    var formatVersion: UInt64
    var cursorSecret: UInt64

    static func decode(_ payload: UnsafeRawBufferPointer, position: LogPosition) throws -> InitializeRecord {
        guard payload.count == MessageRecordLayout.initializePayloadSize else {
            throw MessageHeader.corrupted(position, 0, "initialize record of \(payload.count) bytes")
        }
        return InitializeRecord(formatVersion: payload.loadLE(UInt64.self, at: 0), cursorSecret: payload.loadLE(UInt64.self, at: 8))
    }

    func append(into batch: inout LogBatch) throws {
        try batch.append(type: .initialize, payloadCount: MessageRecordLayout.initializePayloadSize) {
            $0.storeLE(formatVersion, at: 0)
            $0.storeLE(cursorSecret, at: 8)
        }
    }
}
