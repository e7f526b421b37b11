import ScrollbackStorage

// The payloads of the message layer's log records (spec/message-records.md, "Log records"),
// each decoded (bounds-checked, typed corruption errors) and encoded in one place. `apply`,
// the read paths, sealing, compaction and `dump` all use these.

/// The body record of a message: what a `.message` record holds after its key fields, and
/// what a sorted run stores under the message's key. 12-byte header (kind, flags, the
/// lengths), then the id, sender, replyTo, metadata and body bytes back to back.
package struct MessageBody: Equatable, Sendable {
    package var kind: UInt8
    package var flags: UInt8
    package var idLength: Int
    package var senderLength: Int
    package var replyToLength: Int
    package var metadataLength: Int
    package var bodyLength: Int

    static let headerSize = 12
    typealias L = MessageRecordLayout

    var idStart: Int { Self.headerSize }
    var senderStart: Int { idStart + idLength }
    var replyToStart: Int { senderStart + senderLength }
    var metadataStart: Int { replyToStart + replyToLength }
    var textStart: Int { metadataStart + metadataLength }
    var end: Int { textStart + bodyLength }

    /// Parses and bounds-checks a body record (`bytes` starts at the kind byte and holds
    /// exactly the record). Throws `.corrupted` naming where the record is (`describe`).
    @inline(__always)
    package static func parse(_ bytes: UnsafeRawBufferPointer, _ describe: @autoclosure () -> String) throws -> MessageBody {
        guard bytes.count >= headerSize else {
            throw corrupted(describe(), "message record of \(bytes.count) bytes is shorter than its header")
        }
        let o = L.bodyRecordStart
        let body = MessageBody(
            kind: bytes[L.kindOffset - o], flags: bytes[L.flagsOffset - o],
            idLength: Int(bytes[L.idLengthOffset - o]), senderLength: Int(bytes[L.senderLengthOffset - o]),
            replyToLength: Int(bytes[L.replyToLengthOffset - o]),
            metadataLength: Int(bytes.loadLE(UInt16.self, at: L.metadataLengthOffset - o)),
            bodyLength: Int(bytes.loadLE(UInt32.self, at: L.bodyLengthOffset - o)))
        guard body.end == bytes.count,
              ArgumentLimits.idBytes.contains(body.idLength), ArgumentLimits.nameBytes.contains(body.senderLength),
              body.replyToLength <= ArgumentLimits.idBytes.upperBound,
              (body.flags & MessageFlags.hasReplyTo != 0) == (body.replyToLength > 0),
              (body.flags & MessageFlags.hasMetadata != 0) == (body.metadataLength > 0),
              body.flags & ~MessageFlags.known == 0, ArgumentLimits.kinds.contains(body.kind),
              bytes[L.reservedOffset - o] == 0
        else {
            throw corrupted(describe(), "message record header is inconsistent")
        }
        return body
    }

    @inline(never)
    static func corrupted(_ location: String, _ reason: String) -> StorageError {
        .corrupted(file: location, offset: 0, reason: reason)
    }

    /// The message's text in `record` (its body record), decoded as UTF-8.
    func text(in record: UnsafeRawBufferPointer) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: record[textStart..<end]), as: UTF8.self)
    }

    /// Bytes of a body record for a message with these field lengths.
    static func size(id: Int, sender: Int, replyTo: Int, metadata: Int, body: Int) -> Int {
        headerSize + id + sender + replyTo + metadata + body
    }
}

/// The fixed header of a `.message` record: the message's key, then its body record.
package struct MessageHeader: Equatable, Sendable {
    package var seq: UInt64
    package var conversation: UInt64
    package var createdAt: UInt64
    package var body: MessageBody

    typealias L = MessageRecordLayout

    /// The message's key in the messages tree.
    var key: MessageKey { MessageKey(conversation: conversation, createdAt: createdAt, seq: seq) }

    /// Parses and bounds-checks a `.message` payload (`payload` starts at the seq field).
    /// Throws `.corrupted` naming the record's log position on any mismatch.
    package static func parse(_ payload: UnsafeRawBufferPointer, position: UInt64, offset: UInt64) throws -> MessageHeader {
        guard payload.count >= L.headerSize else {
            throw corrupted(position, offset, "message record of \(payload.count) bytes is shorter than its header")
        }
        let header = MessageHeader(
            seq: payload.loadLE(UInt64.self, at: L.seqOffset),
            conversation: payload.loadLE(UInt64.self, at: L.conversationOffset),
            createdAt: payload.loadLE(UInt64.self, at: L.createdAtOffset),
            body: try MessageBody.parse(UnsafeRawBufferPointer(rebasing: payload[L.bodyRecordStart...]),
                                        "log position \(LogPositions.describe(position))"))
        guard header.seq != 0, header.seq <= MessageKey.maxSeq, header.conversation <= MessageLimits.maxConversationID,
              header.createdAt < UInt64(ArgumentLimits.createdAt.upperBound) else {
            throw corrupted(position, offset, "message record key fields are out of range")
        }
        return header
    }

    /// The body record inside a `.message` payload.
    @inline(__always)
    static func bodyRecord(of payload: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: payload[L.bodyRecordStart...])
    }

    /// A corruption error for the record at log `position` (the file name is built only here,
    /// off the hot path).
    @inline(never)
    package static func corrupted(_ position: UInt64, _ offset: UInt64, _ reason: String) -> StorageError {
        .corrupted(file: "log position \(LogPositions.describe(position))", offset: offset, reason: reason)
    }
}

/// Encoding of `.message` records (spec/message-records.md, "16 message").
enum MessageRecord {
    /// Encodes a `.message` record.
    static func append(_ message: StoredMessage, conversationID: UInt64, seq: UInt64, flags: UInt8,
                       into batch: inout LogBatch) throws {
        typealias L = MessageRecordLayout
        let count = L.bodyRecordStart + bodySize(message)
        try batch.append(type: .message, payloadCount: count) { out in
            out.storeLE(seq, at: L.seqOffset)
            out.storeLE(conversationID, at: L.conversationOffset)
            out.storeLE(UInt64(message.createdAt), at: L.createdAtOffset)
            writeBody(message, flags: flags, into: UnsafeMutableRawBufferPointer(rebasing: out[L.bodyRecordStart...]))
        }
    }

    /// Bytes of `message`'s body record (what a sorted run stores under its key).
    static func bodySize(_ message: StoredMessage) -> Int {
        MessageBody.size(id: message.id.utf8.count, sender: message.sender.utf8.count, replyTo: message.replyTo?.utf8.count ?? 0,
                         metadata: message.metadata?.count ?? 0, body: message.body.utf8.count)
    }

    /// Writes `message`'s body record into `out` (exactly `bodySize(message)` bytes): the
    /// header (kind, flags incl. hasReplyTo/hasMetadata, lengths), then id, sender, replyTo,
    /// metadata and body bytes.
    static func writeBody(_ message: StoredMessage, flags: UInt8, into out: UnsafeMutableRawBufferPointer) {
        typealias L = MessageRecordLayout
        let o = L.bodyRecordStart
        let idCount = message.id.utf8.count, senderCount = message.sender.utf8.count
        let replyCount = message.replyTo?.utf8.count ?? 0, bodyCount = message.body.utf8.count
        let metadataCount = message.metadata?.count ?? 0
        let allFlags = flags | (message.replyTo != nil ? MessageFlags.hasReplyTo : 0)
            | (metadataCount > 0 ? MessageFlags.hasMetadata : 0)
        out[L.kindOffset - o] = message.kind
        out[L.flagsOffset - o] = allFlags
        out[L.idLengthOffset - o] = UInt8(truncatingIfNeeded: idCount)
        out[L.senderLengthOffset - o] = UInt8(truncatingIfNeeded: senderCount)
        out[L.replyToLengthOffset - o] = UInt8(truncatingIfNeeded: replyCount)
        out[L.reservedOffset - o] = 0
        out.storeLE(UInt16(truncatingIfNeeded: metadataCount), at: L.metadataLengthOffset - o)
        out.storeLE(UInt32(truncatingIfNeeded: bodyCount), at: L.bodyLengthOffset - o)
        var offset = MessageBody.headerSize
        offset = copyUTF8(message.id, into: out, at: offset)
        offset = copyUTF8(message.sender, into: out, at: offset)
        if let replyTo = message.replyTo { offset = copyUTF8(replyTo, into: out, at: offset) }
        if let metadata = message.metadata, !metadata.isEmpty {
            metadata.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: out[offset..<(offset + metadataCount)]).copyMemory(from: $0) }
            offset += metadataCount
        }
        _ = copyUTF8(message.body, into: out, at: offset)
    }

    /// Encodes the edit of a stored message: its record again with a new body and the edited
    /// flag (key, kind, id, sender, replyTo and metadata are kept).
    static func appendEdit(of key: MessageKey, _ body: MessageBody, _ bytes: UnsafeRawBufferPointer, text: String,
                           into batch: inout LogBatch) throws {
        typealias L = MessageRecordLayout
        let bodyCount = text.utf8.count
        let keep = body.textStart
        try batch.append(type: .message, payloadCount: L.bodyRecordStart + keep + bodyCount) { out in
            out.storeLE(key.seq, at: L.seqOffset)
            out.storeLE(key.conversation, at: L.conversationOffset)
            out.storeLE(key.createdAt, at: L.createdAtOffset)
            let record = UnsafeMutableRawBufferPointer(rebasing: out[L.bodyRecordStart...])
            record.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<keep]))
            out[L.flagsOffset] = body.flags | MessageFlags.edited
            out.storeLE(UInt32(truncatingIfNeeded: bodyCount), at: L.bodyLengthOffset)
            _ = copyUTF8(text, into: out, at: L.bodyRecordStart + keep)
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

/// A delete record (type 17): the message's key and its id.
struct DeleteRecord {
    var key: MessageKey
    /// The id's UTF-8 bytes (a view into the record while decoding; the encoder takes a String).
    var id: UnsafeRawBufferPointer

    static func decode(_ payload: UnsafeRawBufferPointer, position: LogPosition) throws -> DeleteRecord {
        let header = MessageRecordLayout.deletePayloadHeader
        guard payload.count > header, payload.count == header + Int(payload[24]),
              ArgumentLimits.idBytes.contains(Int(payload[24])) else {
            throw MessageHeader.corrupted(position, 0, "delete record of \(payload.count) bytes is inconsistent")
        }
        return DeleteRecord(key: MessageKey(conversation: payload.loadLE(UInt64.self, at: 0),
                                            createdAt: payload.loadLE(UInt64.self, at: 8), seq: payload.loadLE(UInt64.self, at: 16)),
                            id: UnsafeRawBufferPointer(rebasing: payload[header...]))
    }

    static func append(key: MessageKey, id: String, into batch: inout LogBatch) throws {
        let count = id.utf8.count
        try batch.append(type: .delete, payloadCount: MessageRecordLayout.deletePayloadHeader + count) { out in
            out.storeLE(key.conversation, at: 0)
            out.storeLE(key.createdAt, at: 8)
            out.storeLE(key.seq, at: 16)
            out[24] = UInt8(truncatingIfNeeded: count)
            _ = MessageRecord.copyUTF8(id, into: out, at: MessageRecordLayout.deletePayloadHeader)
        }
    }
}

/// A markRead record (type 18): a user's marker in a conversation moves to a message. The id
/// of that message follows the fixed fields (for the change stream); a record without it (32
/// bytes) marks a message by key only (an upgrade restoring a marker whose message is gone).
struct MarkReadRecord {
    var marker: MarkerKey
    var through: MessageKey
    /// The marked message's id bytes (a view into the record while decoding), if recorded.
    var id: UnsafeRawBufferPointer?

    static func decode(_ payload: UnsafeRawBufferPointer, position: LogPosition) throws -> MarkReadRecord {
        let fixed = MessageRecordLayout.markReadPayloadSize
        let hasID = payload.count > fixed
        guard payload.count == fixed
            || (payload.count > fixed && payload.count == fixed + 1 + Int(payload[fixed])
                && ArgumentLimits.idBytes.contains(Int(payload[fixed]))) else {
            throw MessageHeader.corrupted(position, 0, "markRead record of \(payload.count) bytes is inconsistent")
        }
        let conversation = payload.loadLE(UInt64.self, at: 8)
        return MarkReadRecord(marker: MarkerKey(user: payload.loadLE(UInt64.self, at: 0), conversation: conversation),
                              through: MessageKey(conversation: conversation, createdAt: payload.loadLE(UInt64.self, at: 16),
                                                  seq: payload.loadLE(UInt64.self, at: 24)),
                              id: hasID ? UnsafeRawBufferPointer(rebasing: payload[(fixed + 1)...]) : nil)
    }

    /// Encodes a markRead record; `id` (1…128 UTF-8 bytes) is the marked message's, when known.
    static func append(marker: MarkerKey, through: MessageKey, id: String?, into batch: inout LogBatch) throws {
        let fixed = MessageRecordLayout.markReadPayloadSize
        let idCount = id?.utf8.count ?? 0
        try batch.append(type: .markRead, payloadCount: fixed + (id == nil ? 0 : 1 + idCount)) { out in
            out.storeLE(marker.user, at: 0)
            out.storeLE(marker.conversation, at: 8)
            out.storeLE(through.createdAt, at: 16)
            out.storeLE(through.seq, at: 24)
            if let id {
                out[fixed] = UInt8(truncatingIfNeeded: idCount)
                _ = MessageRecord.copyUTF8(id, into: out, at: fixed + 1)
            }
        }
    }
}

/// A join or leave record (type 27 or 28): a user becomes or stops being a member.
struct MembershipRecord {
    var entry: MarkerKey
    var joins: Bool

    static func decode(_ type: MessageRecordType, _ payload: UnsafeRawBufferPointer, position: LogPosition) throws -> MembershipRecord {
        guard payload.count == MessageRecordLayout.membershipPayloadSize else {
            throw MessageHeader.corrupted(position, 0, "\(type) record of \(payload.count) bytes")
        }
        return MembershipRecord(entry: MarkerKey(user: payload.loadLE(UInt64.self, at: 0), conversation: payload.loadLE(UInt64.self, at: 8)),
                                joins: type == .join)
    }

    func append(into batch: inout LogBatch) throws {
        try batch.append(type: joins ? .join : .leave, payloadCount: MessageRecordLayout.membershipPayloadSize) { out in
            out.storeLE(entry.user, at: 0)
            out.storeLE(entry.conversation, at: 8)
        }
    }
}

/// A replicaMark record (type 30): the source and sequence of the last change a replica applied.
struct ReplicaMarkRecord: Equatable {
    var source: UInt64
    var sequence: UInt64

    static func decode(_ payload: UnsafeRawBufferPointer, position: LogPosition) throws -> ReplicaMarkRecord {
        guard payload.count == MessageRecordLayout.replicaMarkPayloadSize else {
            throw MessageHeader.corrupted(position, 0, "replicaMark record of \(payload.count) bytes")
        }
        return ReplicaMarkRecord(source: payload.loadLE(UInt64.self, at: 0), sequence: payload.loadLE(UInt64.self, at: 8))
    }

    func append(into batch: inout LogBatch) throws {
        try batch.append(type: .replicaMark, payloadCount: MessageRecordLayout.replicaMarkPayloadSize) { out in
            out.storeLE(source, at: 0)
            out.storeLE(sequence, at: 8)
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

/// A bulk-load record (type 29): the messages of run `run`, attached under virtual segment
/// `segment` in the same transaction, enter the trees (`count` records, in key order).
struct BulkLoadRecord {
    var run: UInt32
    var segment: UInt32
    var count: UInt64

    static func decode(_ payload: UnsafeRawBufferPointer, position: LogPosition) throws -> BulkLoadRecord {
        guard payload.count == MessageRecordLayout.bulkLoadPayloadSize else {
            throw MessageHeader.corrupted(position, 0, "bulk load record of \(payload.count) bytes")
        }
        return BulkLoadRecord(run: payload.loadLE(UInt32.self, at: 0), segment: payload.loadLE(UInt32.self, at: 4),
                              count: payload.loadLE(UInt64.self, at: 8))
    }

    func append(into batch: inout LogBatch) throws {
        try batch.append(type: .bulkLoad, payloadCount: MessageRecordLayout.bulkLoadPayloadSize) { out in
            out.storeLE(run, at: 0)
            out.storeLE(segment, at: 4)
            out.storeLE(count, at: 8)
        }
    }
}
