import ScrollbackBTree
import ScrollbackFormat
import ScrollbackLog
import ScrollbackPager
import ScrollbackStorage

/// The fixed header of a type-16 message payload, checked against the payload length.
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
              header.idLength >= 1, header.idLength <= MessageLimits.maxIDBytes, header.senderLength >= 1,
              header.replyToLength <= MessageLimits.maxIDBytes,
              (header.flags & MessageFlags.hasReplyTo != 0) == (header.replyToLength > 0),
              header.flags & ~MessageFlags.known == 0, (1...6).contains(header.kind),
              payload[L.reservedOffset] == 0, header.seq != 0,
              header.createdAt < UInt64(MessageLimits.maxCreatedAt)
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

/// The storage schema of the message layer: eight trees and the one `apply` function that
/// turns logged message-layer records into tree changes, for live commits and recovery alike
/// (spec/message-records.md).
package enum MessageSchema {
    typealias V = MessageValueLayout
    typealias T = MessageRecordType

    package static let schema = StorageSchema(
        trees: [
            .init(slot: MessageTree.messages, keyWords: 3, valueSize: V.messageValueSize),
            .init(slot: MessageTree.messageIDs, keyWords: 2, valueSize: V.idValueSize),
            .init(slot: MessageTree.names, keyWords: 3, valueSize: 0),
            .init(slot: MessageTree.conversations, keyWords: 1, valueSize: V.conversationValueSize),
            .init(slot: MessageTree.activity, keyWords: 2, valueSize: 0),
            .init(slot: MessageTree.users, keyWords: 1, valueSize: V.userValueSize),
            .init(slot: MessageTree.readMarkers, keyWords: 2, valueSize: V.markerValueSize),
            .init(slot: MessageTree.segments, keyWords: 1, valueSize: V.segmentValueSize),
        ],
        apply: { transaction, logged in try apply(transaction, logged) })

    /// Per-segment byte deltas of one transaction, applied to slot 7 at its end.
    struct SegmentDeltas {
        var ids: [UInt32] = []
        var records: [Int64] = []
        var live: [Int64] = []

        mutating func add(_ segment: UInt32, records r: Int64, live l: Int64) {
            if let i = ids.firstIndex(of: segment) {
                records[i] += r
                live[i] += l
            } else {
                ids.append(segment)
                records.append(r)
                live.append(l)
            }
        }
    }

    static func apply(_ transaction: PageTransaction, _ logged: LoggedTransaction) throws {
        let trees = try Trees(transaction)
        var deltas = SegmentDeltas()
        var scratch = [UInt8](repeating: 0, count: V.conversationValueSize)
        try logged.forEachRecord { position, type, payload in
            let frameLength = Int64(MessageLimits.frameHeaderSize + payload.count)
            let segment = LogPositions.segment(position)
            deltas.add(segment, records: frameLength, live: 0)
            switch type {
            case T.message:
                let header = try MessageHeader.parse(payload, position: position, offset: 0)
                try applyMessage(trees, header, payload, position: position, frameLength: frameLength,
                                 deltas: &deltas, scratch: &scratch)
            case T.relocate:
                guard payload.count >= MessageRecordLayout.relocatePrefix else {
                    throw MessageHeader.corrupted(position, 0, "relocate record too short")
                }
                let from = payload.loadLE(UInt64.self, at: 0)
                let body = UnsafeRawBufferPointer(rebasing: payload[MessageRecordLayout.relocatePrefix...])
                let header = try MessageHeader.parse(body, position: position, offset: 8)
                try applyRelocate(trees, header, from: from, position: position, frameLength: frameLength, deltas: &deltas)
            case T.delete:
                guard payload.count == MessageRecordLayout.deletePayloadSize else {
                    throw MessageHeader.corrupted(position, 0, "delete record of \(payload.count) bytes")
                }
                try applyDelete(trees, conversation: payload.loadLE(UInt64.self, at: 0),
                                createdAt: payload.loadLE(UInt64.self, at: 8), seq: payload.loadLE(UInt64.self, at: 16),
                                idHash: payload.loadLE(UInt64.self, at: 24), deltas: &deltas, scratch: &scratch)
            case T.markRead:
                guard payload.count == MessageRecordLayout.markReadPayloadSize else {
                    throw MessageHeader.corrupted(position, 0, "markRead record of \(payload.count) bytes")
                }
                let key = BTreeKey(payload.loadLE(UInt64.self, at: 0), payload.loadLE(UInt64.self, at: 8))
                let createdAt = payload.loadLE(UInt64.self, at: 16), seq = payload.loadLE(UInt64.self, at: 24)
                var current: (UInt64, UInt64)? = nil
                try trees.markers.withValue(for: key) { v in current = (v.loadLE(UInt64.self, at: 0), v.loadLE(UInt64.self, at: 8)) }
                if let current, !(createdAt > current.0 || (createdAt == current.0 && seq > current.1)) { return }
                var value = [UInt8](repeating: 0, count: V.markerValueSize)
                value.withUnsafeMutableBytes {
                    $0.storeLE(createdAt, at: 0)
                    $0.storeLE(seq, at: 8)
                }
                try trees.markers.upsert(key, value: value)
            case T.newConversation, T.newUser:
                guard payload.count >= 9, payload.count == 9 + Int(payload[8]), payload[8] >= 1 else {
                    throw MessageHeader.corrupted(position, 0, "name record of \(payload.count) bytes is inconsistent")
                }
                let id = payload.loadLE(UInt64.self, at: 0)
                let name = UnsafeRawBufferPointer(rebasing: payload[9...])
                let isConversation = type == T.newConversation
                let namespace = isConversation ? V.conversationNamespace : V.userNamespace
                try trees.names.insert(BTreeKey(namespace, Hash64.hash(name), id), value: UnsafeRawBufferPointer(start: nil, count: 0))
                let size = isConversation ? V.conversationValueSize : V.userValueSize
                let nameOffset = isConversation ? V.conversationNameOffset : V.userNameOffset
                var value = [UInt8](repeating: 0, count: size)
                value.withUnsafeMutableBytes { out in
                    out[nameOffset - 1] = UInt8(name.count)
                    UnsafeMutableRawBufferPointer(rebasing: out[nameOffset..<(nameOffset + name.count)]).copyMemory(from: name)
                }
                if isConversation {
                    try trees.conversations.insert(BTreeKey(id), value: value)
                    bump(transaction, MessageCounter.nextConversation, to: id &+ 1)
                } else {
                    try trees.users.insert(BTreeKey(id), value: value)
                    bump(transaction, MessageCounter.nextUser, to: id &+ 1)
                }
            case T.initialize:
                guard payload.count == MessageRecordLayout.initializePayloadSize else {
                    throw MessageHeader.corrupted(position, 0, "initialize record of \(payload.count) bytes")
                }
                transaction.state.counters[MessageCounter.formatVersion] = payload.loadLE(UInt64.self, at: 0)
                transaction.state.counters[MessageCounter.cursorSecret] = payload.loadLE(UInt64.self, at: 8)
                bump(transaction, MessageCounter.nextSeq, to: 1)
                bump(transaction, MessageCounter.nextConversation, to: 1)
                bump(transaction, MessageCounter.nextUser, to: 1)
            case T.retireSegment:
                guard payload.count >= 8, (payload.count - 8) % 8 == 0,
                      payload.loadLE(UInt64.self, at: 0) == UInt64((payload.count - 8) / 8) else {
                    throw MessageHeader.corrupted(position, 0, "retire record of \(payload.count) bytes is inconsistent")
                }
                for index in 0..<((payload.count - 8) / 8) {
                    let id = payload.loadLE(UInt64.self, at: 8 + index * 8)
                    try trees.segments.delete(BTreeKey(id))
                    if let i = deltas.ids.firstIndex(where: { UInt64($0) == id }) {
                        deltas.ids.remove(at: i)
                        deltas.records.remove(at: i)
                        deltas.live.remove(at: i)
                    }
                }
                transaction.state.counters[MessageCounter.compactions] &+= 1
            default:
                throw MessageHeader.corrupted(position, 0, "unknown message-layer record type \(type)")
            }
        }
        // Segment accounting (slot 7).
        var value = [UInt8](repeating: 0, count: V.segmentValueSize)
        for (i, id) in deltas.ids.enumerated() {
            let key = BTreeKey(UInt64(id))
            var records: Int64 = 0, live: Int64 = 0
            try trees.segments.withValue(for: key) { v in
                records = Int64(truncatingIfNeeded: v.loadLE(UInt64.self, at: V.recordBytesOffset))
                live = Int64(truncatingIfNeeded: v.loadLE(UInt64.self, at: V.liveBytesOffset))
            }
            records = max(0, records + deltas.records[i])
            live = max(0, live + deltas.live[i])
            value.withUnsafeMutableBytes {
                $0.storeLE(UInt64(records), at: V.recordBytesOffset)
                $0.storeLE(UInt64(live), at: V.liveBytesOffset)
            }
            try trees.segments.upsert(key, value: value)
        }
    }

    @inline(__always)
    static func bump(_ transaction: PageTransaction, _ counter: Int, to value: UInt64) {
        if transaction.state.counters[counter] < value { transaction.state.counters[counter] = value }
    }

    /// The eight trees of one transaction.
    package struct Trees {
        package let messages: BTree
        package let ids: BTree
        package let names: BTree
        package let conversations: BTree
        package let activity: BTree
        package let users: BTree
        package let markers: BTree
        package let segments: BTree

        package init(_ transaction: PageTransaction) throws {
            messages = try BTree(transaction, slot: MessageTree.messages)
            ids = try BTree(transaction, slot: MessageTree.messageIDs)
            names = try BTree(transaction, slot: MessageTree.names)
            conversations = try BTree(transaction, slot: MessageTree.conversations)
            activity = try BTree(transaction, slot: MessageTree.activity)
            users = try BTree(transaction, slot: MessageTree.users)
            markers = try BTree(transaction, slot: MessageTree.readMarkers)
            segments = try BTree(transaction, slot: MessageTree.segments)
        }
    }

    static func messageValue(position: UInt64, length: Int64, kind: UInt8, flags: UInt8) -> (UInt64, UInt64) {
        (position, UInt64(UInt32(truncatingIfNeeded: length)) | UInt64(kind) << 32 | UInt64(flags) << 40)
    }

    static func storeMessageValue(_ value: (UInt64, UInt64), into buffer: inout [UInt8]) {
        buffer.withUnsafeMutableBytes {
            $0.storeLE(value.0, at: 0)
            $0.storeLE(value.1, at: 8)
        }
    }

    static func applyMessage(_ trees: Trees, _ header: MessageHeader, _ payload: UnsafeRawBufferPointer,
                             position: LogPosition, frameLength: Int64, deltas: inout SegmentDeltas,
                             scratch: inout [UInt8]) throws {
        let key = BTreeKey(header.conversation, header.createdAt, header.seq)
        var value = [UInt8](repeating: 0, count: V.messageValueSize)
        storeMessageValue(messageValue(position: position, length: frameLength, kind: header.kind, flags: header.flags), into: &value)
        var old: (UInt64, Int64)? = nil
        try trees.messages.withValue(for: key) { v in
            old = (v.loadLE(UInt64.self, at: V.positionOffset), Int64(v.loadLE(UInt32.self, at: V.lengthOffset)))
        }
        deltas.add(LogPositions.segment(position), records: 0, live: frameLength)
        if let old {
            // An edit: the same key, a new record.
            deltas.add(LogPositions.segment(old.0), records: 0, live: -old.1)
            try trees.messages.update(key, value: value)
            return
        }
        try trees.messages.insert(key, value: value)
        let id = UnsafeRawBufferPointer(rebasing: payload[header.idStart..<header.senderStart])
        var idValue = [UInt8](repeating: 0, count: V.idValueSize)
        idValue.withUnsafeMutableBytes {
            $0.storeLE(header.conversation, at: 0)
            $0.storeLE(header.createdAt, at: 8)
        }
        try trees.ids.insert(BTreeKey(Hash64.hash(id), header.seq), value: idValue)
        let transaction = trees.messages.transaction
        transaction.state.counters[MessageCounter.liveMessages] &+= 1
        bump(transaction, MessageCounter.nextSeq, to: header.seq &+ 1)

        // Conversation count, newest entry and activity index.
        let conversationKey = BTreeKey(header.conversation)
        guard try trees.conversations.withValue(for: conversationKey, { v in
            scratch.withUnsafeMutableBytes { $0.copyMemory(from: v) }
        }) else {
            throw StorageError.corrupted(file: "pages", offset: 0,
                                         reason: "message \(header.seq) names conversation \(header.conversation), which does not exist")
        }
        let (count, newestAt, newestSeq) = scratch.withUnsafeBytes {
            ($0.loadLE(UInt64.self, at: V.liveCountOffset), $0.loadLE(UInt64.self, at: V.newestCreatedAtOffset),
             $0.loadLE(UInt64.self, at: V.newestSeqOffset))
        }
        let isNewest = count == 0 || header.createdAt > newestAt || (header.createdAt == newestAt && header.seq > newestSeq)
        if isNewest {
            if count > 0 { try trees.activity.delete(BTreeKey(newestAt, header.conversation)) }
            try trees.activity.insert(BTreeKey(header.createdAt, header.conversation), value: UnsafeRawBufferPointer(start: nil, count: 0))
        }
        scratch.withUnsafeMutableBytes {
            $0.storeLE(count &+ 1, at: V.liveCountOffset)
            if isNewest {
                $0.storeLE(header.createdAt, at: V.newestCreatedAtOffset)
                $0.storeLE(header.seq, at: V.newestSeqOffset)
            }
        }
        try trees.conversations.update(conversationKey, value: scratch)
    }

    static func applyRelocate(_ trees: Trees, _ header: MessageHeader, from: UInt64, position: LogPosition,
                              frameLength: Int64, deltas: inout SegmentDeltas) throws {
        let key = BTreeKey(header.conversation, header.createdAt, header.seq)
        var current: (UInt64, Int64, UInt8, UInt8)? = nil
        try trees.messages.withValue(for: key) { v in
            current = (v.loadLE(UInt64.self, at: V.positionOffset), Int64(v.loadLE(UInt32.self, at: V.lengthOffset)),
                       v[V.kindOffset], v[V.flagsOffset])
        }
        guard let current, current.0 == from else { return }   // edited or deleted since: the copy is garbage
        var value = [UInt8](repeating: 0, count: V.messageValueSize)
        storeMessageValue(messageValue(position: position, length: frameLength, kind: current.2, flags: current.3), into: &value)
        try trees.messages.update(key, value: value)
        deltas.add(LogPositions.segment(from), records: 0, live: -current.1)
        deltas.add(LogPositions.segment(position), records: 0, live: frameLength)
    }

    static func applyDelete(_ trees: Trees, conversation: UInt64, createdAt: UInt64, seq: UInt64, idHash: UInt64,
                            deltas: inout SegmentDeltas, scratch: inout [UInt8]) throws {
        let key = BTreeKey(conversation, createdAt, seq)
        var old: (UInt64, Int64)? = nil
        try trees.messages.withValue(for: key) { v in
            old = (v.loadLE(UInt64.self, at: V.positionOffset), Int64(v.loadLE(UInt32.self, at: V.lengthOffset)))
        }
        guard let old else { return }
        try trees.messages.delete(key)
        try trees.ids.delete(BTreeKey(idHash, seq))
        deltas.add(LogPositions.segment(old.0), records: 0, live: -old.1)
        let transaction = trees.messages.transaction
        transaction.state.counters[MessageCounter.liveMessages] &-= 1

        let conversationKey = BTreeKey(conversation)
        guard try trees.conversations.withValue(for: conversationKey, { v in
            scratch.withUnsafeMutableBytes { $0.copyMemory(from: v) }
        }) else {
            throw StorageError.corrupted(file: "pages", offset: 0, reason: "deleted message names conversation \(conversation), which does not exist")
        }
        let (count, newestAt, newestSeq) = scratch.withUnsafeBytes {
            ($0.loadLE(UInt64.self, at: V.liveCountOffset), $0.loadLE(UInt64.self, at: V.newestCreatedAtOffset),
             $0.loadLE(UInt64.self, at: V.newestSeqOffset))
        }
        let remaining = count > 0 ? count - 1 : 0
        var newAt = newestAt, newSeq = newestSeq
        if newestAt == createdAt && newestSeq == seq {
            try trees.activity.delete(BTreeKey(newestAt, conversation))
            newAt = 0
            newSeq = 0
            if remaining > 0 {
                var cursor = trees.messages.cursor()
                if try cursor.seek(atMost: BTreeKey(conversation, .max, .max)), let k = try cursor.key(), k.w0 == conversation {
                    newAt = k.w1
                    newSeq = k.w2
                    try trees.activity.insert(BTreeKey(newAt, conversation), value: UnsafeRawBufferPointer(start: nil, count: 0))
                }
            }
        }
        scratch.withUnsafeMutableBytes {
            $0.storeLE(remaining, at: V.liveCountOffset)
            $0.storeLE(newAt, at: V.newestCreatedAtOffset)
            $0.storeLE(newSeq, at: V.newestSeqOffset)
        }
        try trees.conversations.update(conversationKey, value: scratch)
    }
}
