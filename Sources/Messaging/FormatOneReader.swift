import ScrollbackBTree
import ScrollbackStorage

/// The logical content of a format-1 store (spec/message-records.md, "Version history"):
/// what its trees held at the last checkpoint plus the log after it, read without writing.
package struct FormatOneContent {
    /// Live messages in insertion (seq) order, with their seq.
    package var messages: [(seq: UInt64, message: StoredMessage)]
    /// Every conversation name, in id order (conversations whose messages are all deleted too).
    package var conversations: [String]
    /// Read markers: user, conversation and the key of the message marked.
    package var markers: [(user: String, conversation: String, createdAt: UInt64, seq: UInt64)]
}

/// Reads a store of message format 1 (page file format 1, the format-1 trees and records)
/// without changing a byte: the page file through a pager that refuses writes, the log through
/// `LogReader`. Recovery's replay is re-enacted in memory: the records after the checkpoint's
/// log position (appends, edits, deletes, markers, names, compaction copies) are applied to the
/// checkpointed trees' content exactly as format 1's apply did.
///
/// Cost: one pass over the checkpointed trees and two over the log (the tail, then every
/// segment to fetch the records live messages point at); memory: every live message.
package enum FormatOneReader {
    // Format-1 layout (spec/message-records.md, "Version history"); on disk, never change.
    static let messagesSlot = 0, conversationsSlot = 3, usersSlot = 5, markersSlot = 6
    static let formatVersionCounter = 6
    static let messageHeaderSize = 34
    enum RecordType: UInt8 { case message = 16, delete = 17, markRead = 18, newConversation = 19, newUser = 20, relocate = 21 }

    package static func read(fileSystem: any FileSystem, directory: String) throws -> FormatOneContent {
        let store = try FrozenStore(fileSystem: fileSystem, directory: directory)
        defer { store.close() }
        let pagesPath = store.pagesPath
        let state = store.state
        let version = state.counters.count > formatVersionCounter ? state.counters[formatVersionCounter] : 0
        if version == MessageLimits.formatVersion {
            throw StorageError.invalidArgument("\(directory) is in store format \(version) already: nothing to upgrade")
        }
        guard version == 1 else {
            throw StorageError.unsupportedVersion(file: pagesPath, found: UInt32(truncatingIfNeeded: version), supported: 1)
        }

        // 1. The checkpointed trees.
        var conversations: [UInt64: String] = [:]
        try store.forEachEntry(slot: conversationsSlot) { key, value in
            conversations[key.w0] = try name(value, lengthAt: 0x18, file: pagesPath, what: "conversation \(key.w0)")
        }
        var users: [UInt64: String] = [:]
        try store.forEachEntry(slot: usersSlot) { key, value in
            users[key.w0] = try name(value, lengthAt: 0, file: pagesPath, what: "user \(key.w0)")
        }
        var live: [MessageKey: UInt64] = [:]  // message key → position of its current record (type 16 or 21)
        try store.forEachEntry(slot: messagesSlot) { key, value in
            guard value.count >= 8 else { throw corrupt(pagesPath, "messages tree value of \(value.count) bytes") }
            live[MessageKey(conversation: key.w0, createdAt: key.w1, seq: key.w2)] = value.loadLE(UInt64.self, at: 0)
        }
        var markers: [MarkerKey: MessageKey] = [:]
        try store.forEachEntry(slot: markersSlot) { key, value in
            guard value.count >= 16 else { throw corrupt(pagesPath, "read marker value of \(value.count) bytes") }
            markers[MarkerKey(user: key.w0, conversation: key.w1)] =
                MessageKey(conversation: key.w1, createdAt: value.loadLE(UInt64.self, at: 0), seq: value.loadLE(UInt64.self, at: 8))
        }

        // 2. The log after the checkpoint, as format 1's recovery replays it.
        try store.forEachLogRecord(from: state.logPosition) { position, type, payload in
            switch RecordType(rawValue: type) {
            case .message:
                let key = try messageKey(payload, at: 0, position)
                live[key] = position
            case .relocate:
                guard payload.count >= 8 else { throw MessageHeader.corrupted(position, 0, "format-1 compaction copy of \(payload.count) bytes") }
                let source = payload.loadLE(UInt64.self, at: 0)
                let key = try messageKey(payload, at: 8, position)
                // Format 1 repoints only when the entry still names the copied record.
                if live[key] == source { live[key] = position }
            case .delete:
                guard payload.count == 32 else { throw MessageHeader.corrupted(position, 0, "format-1 delete record of \(payload.count) bytes") }
                live[MessageKey(conversation: payload.loadLE(UInt64.self, at: 0), createdAt: payload.loadLE(UInt64.self, at: 8),
                                seq: payload.loadLE(UInt64.self, at: 16))] = nil
            case .markRead:
                guard payload.count == 32 else { throw MessageHeader.corrupted(position, 0, "format-1 markRead record of \(payload.count) bytes") }
                let marker = MarkerKey(user: payload.loadLE(UInt64.self, at: 0), conversation: payload.loadLE(UInt64.self, at: 8))
                let through = MessageKey(conversation: marker.conversation, createdAt: payload.loadLE(UInt64.self, at: 16),
                                         seq: payload.loadLE(UInt64.self, at: 24))
                if let current = markers[marker], !through.isAfter(current) { break }
                markers[marker] = through
            case .newConversation, .newUser:
                guard payload.count >= 9, payload.count == 9 + Int(payload[8]), payload[8] > 0 else {
                    throw MessageHeader.corrupted(position, 0, "format-1 name record of \(payload.count) bytes")
                }
                let text = String(decoding: UnsafeRawBufferPointer(rebasing: payload[9...]), as: UTF8.self)
                if type == RecordType.newConversation.rawValue {
                    conversations[payload.loadLE(UInt64.self, at: 0)] = text
                } else {
                    users[payload.loadLE(UInt64.self, at: 0)] = text
                }
            case nil:
                break  // initialize (22), retire (23): nothing for the content
            }
        }

        // 3. The records the live messages point at, in one pass over the log.
        var wanted: [UInt64: MessageKey] = [:]
        wanted.reserveCapacity(live.count)
        for (key, position) in live { wanted[position] = key }
        var messages: [(seq: UInt64, message: StoredMessage)] = []
        messages.reserveCapacity(live.count)
        try store.forEachLogRecord(from: 0) { position, type, payload in
            guard let key = wanted.removeValue(forKey: position) else { return }
            let offset = type == RecordType.relocate.rawValue ? 8 : 0
            guard type == RecordType.message.rawValue || type == RecordType.relocate.rawValue else {
                throw MessageHeader.corrupted(position, 0, "format-1 messages tree points at a record of type \(type)")
            }
            guard let conversation = conversations[key.conversation] else {
                throw MessageHeader.corrupted(position, 0, "format-1 message of unknown conversation \(key.conversation)")
            }
            messages.append((key.seq, try message(payload, at: offset, key: key, conversation: conversation, position)))
        }
        if let (position, key) = wanted.first {
            throw StorageError.corrupted(file: directory, offset: 0,
                                         reason: "format-1 message \(key) points at log position \(LogPositions.describe(position)), which the log does not hold")
        }
        messages.sort { $0.seq < $1.seq }
        var markerList: [(user: String, conversation: String, createdAt: UInt64, seq: UInt64)] = []
        for (marker, through) in markers.sorted(by: { ($0.key.user, $0.key.conversation) < ($1.key.user, $1.key.conversation) }) {
            guard let user = users[marker.user], let conversation = conversations[marker.conversation] else {
                throw corrupt(pagesPath, "format-1 read marker of unknown user \(marker.user) or conversation \(marker.conversation)")
            }
            markerList.append((user, conversation, through.createdAt, through.seq))
        }
        return FormatOneContent(messages: messages, conversations: conversations.sorted { $0.key < $1.key }.map(\.value),
                                markers: markerList)
    }

    private static func name(_ value: UnsafeRawBufferPointer, lengthAt offset: Int, file: String, what: String) throws -> String {
        guard value.count > offset else { throw corrupt(file, "\(what): value of \(value.count) bytes") }
        let length = Int(value[offset])
        guard length > 0, offset + 1 + length <= value.count else { throw corrupt(file, "\(what): name length \(length)") }
        return String(decoding: UnsafeRawBufferPointer(rebasing: value[(offset + 1)..<(offset + 1 + length)]), as: UTF8.self)
    }

    private static func corrupt(_ file: String, _ reason: String) -> StorageError {
        .corrupted(file: file, offset: 0, reason: reason)
    }

    private static func messageKey(_ payload: UnsafeRawBufferPointer, at base: Int, _ position: UInt64) throws -> MessageKey {
        guard payload.count >= base + messageHeaderSize else {
            throw MessageHeader.corrupted(position, 0, "format-1 message record of \(payload.count) bytes")
        }
        return MessageKey(conversation: payload.loadLE(UInt64.self, at: base + 8), createdAt: payload.loadLE(UInt64.self, at: base + 16),
                          seq: payload.loadLE(UInt64.self, at: base))
    }

    /// Decodes a format-1 `message` payload at `base`: seq, conversationID, createdAt u64;
    /// kind, flags (bit 0 edited, bit 1 has replyTo), idLen, senderLen, replyToLen, reserved
    /// u8; bodyLen u32; then id, sender, replyTo and body bytes.
    private static func message(_ payload: UnsafeRawBufferPointer, at base: Int, key: MessageKey, conversation: String,
                                _ position: UInt64) throws -> StoredMessage {
        let p = UnsafeRawBufferPointer(rebasing: payload[base...])
        guard p.count >= messageHeaderSize else { throw MessageHeader.corrupted(position, 0, "format-1 message record of \(p.count) bytes") }
        let kind = p[0x18], flags = p[0x19]
        let idLength = Int(p[0x1A]), senderLength = Int(p[0x1B]), replyLength = Int(p[0x1C])
        let bodyLength = Int(p.loadLE(UInt32.self, at: 0x1E))
        guard messageHeaderSize + idLength + senderLength + replyLength + bodyLength == p.count,
              idLength > 0, senderLength > 0, flags & ~3 == 0, (flags & 2 != 0) == (replyLength > 0),
              ArgumentLimits.kinds.contains(kind), p.loadLE(UInt64.self, at: 0) == key.seq else {
            throw MessageHeader.corrupted(position, 0, "format-1 message record header is inconsistent")
        }
        func text(_ start: Int, _ count: Int) -> String {
            String(decoding: UnsafeRawBufferPointer(rebasing: p[start..<(start + count)]), as: UTF8.self)
        }
        var offset = messageHeaderSize
        let id = text(offset, idLength); offset += idLength
        let sender = text(offset, senderLength); offset += senderLength
        let replyTo = replyLength > 0 ? text(offset, replyLength) : nil; offset += replyLength
        let body = text(offset, bodyLength)
        return StoredMessage(id: id, conversation: conversation, sender: sender, createdAt: Int64(key.createdAt), kind: kind,
                             body: body, replyTo: replyTo, edited: flags & 1 != 0)
    }
}
