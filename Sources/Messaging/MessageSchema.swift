import ScrollbackBTree
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

/// The storage schema of the message layer: seven trees (slot 7 is the storage engine's
/// segment table), and the one `apply` function that turns logged message-layer records into
/// tree changes, for live commits and recovery alike (spec/message-records.md).
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
        ],
        liveness: LivenessLayout(segmentTable: MessageTree.segments, retireRecordType: T.retireSegment,
                                 retirementCounter: MessageCounter.compactions),
        checkState: { state, pageFile in try checkFormat(state, pageFile: pageFile) },
        apply: { transaction, records, liveness in try apply(transaction, records, &liveness) })

    /// Refuses a store written by a newer message-layer format (counter 6; 0 is a store
    /// whose initialize record is not written yet).
    static func checkFormat(_ state: CommittedState, pageFile: String) throws {
        let version = state.counters[MessageCounter.formatVersion]
        if version > MessageLimits.formatVersion {
            throw MessagingError.unsupportedVersion(
                path: pageFile, found: UInt32(truncatingIfNeeded: version), supported: UInt32(MessageLimits.formatVersion))
        }
    }

    static func apply(_ transaction: PageTransaction, _ records: SchemaRecords, _ deltas: inout LivenessLedger) throws {
        let trees = try Trees(transaction)
        var scratch = ConversationUpdates()
        try records.forEach { position, type, payload in
            let frameLength = Int64(StorageEngine.frameBytes(payloadCount: payload.count))
            switch type {
            case T.message:
                let header = try MessageHeader.parse(payload, position: position, offset: 0)
                try applyMessage(trees, header, payload, position: position, frameLength: frameLength,
                                 deltas: &deltas, conversations: &scratch)
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
                                idHash: payload.loadLE(UInt64.self, at: 24), deltas: &deltas, conversations: &scratch)
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
            default:
                throw MessageHeader.corrupted(position, 0, "unknown message-layer record type \(type)")
            }
        }
        try scratch.flush(trees)
    }

    @inline(__always)
    static func bump(_ transaction: PageTransaction, _ counter: Int, to value: UInt64) {
        if transaction.state.counters[counter] < value { transaction.state.counters[counter] = value }
    }

    /// The seven trees of one transaction.
    package struct Trees {
        package let messages: BTree
        package let ids: BTree
        package let names: BTree
        package let conversations: BTree
        package let activity: BTree
        package let users: BTree
        package let markers: BTree

        package init(_ transaction: PageTransaction) throws {
            messages = try BTree(transaction, slot: MessageTree.messages)
            ids = try BTree(transaction, slot: MessageTree.messageIDs)
            names = try BTree(transaction, slot: MessageTree.names)
            conversations = try BTree(transaction, slot: MessageTree.conversations)
            activity = try BTree(transaction, slot: MessageTree.activity)
            users = try BTree(transaction, slot: MessageTree.users)
            markers = try BTree(transaction, slot: MessageTree.readMarkers)
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
                             position: LogPosition, frameLength: Int64, deltas: inout LivenessLedger,
                             conversations scratch: inout ConversationUpdates) throws {
        let key = BTreeKey(header.conversation, header.createdAt, header.seq)
        var value = [UInt8](repeating: 0, count: V.messageValueSize)
        storeMessageValue(messageValue(position: position, length: frameLength, kind: header.kind, flags: header.flags), into: &value)
        var old: (UInt64, Int64)? = nil
        try trees.messages.withValue(for: key) { v in
            old = (v.loadLE(UInt64.self, at: V.positionOffset), Int64(v.loadLE(UInt32.self, at: V.lengthOffset)))
        }
        deltas.recordBecameLive(at: position, frameBytes: frameLength)
        if let old {
            // An edit: the same key, a new record.
            deltas.recordBecameDead(at: old.0, frameBytes: old.1)
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

        // Conversation count and newest entry (slot 3 and the activity index are written once
        // per transaction, by `ConversationUpdates.flush`).
        let i = try scratch.state(of: header.conversation, trees)
        var state = scratch.states[i]
        if state.count == 0 || header.createdAt > state.newestAt || (header.createdAt == state.newestAt && header.seq > state.newestSeq) {
            state.newestAt = header.createdAt
            state.newestSeq = header.seq
        }
        state.count &+= 1
        scratch.states[i] = state
    }

    static func applyRelocate(_ trees: Trees, _ header: MessageHeader, from: UInt64, position: LogPosition,
                              frameLength: Int64, deltas: inout LivenessLedger) throws {
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
        deltas.recordBecameDead(at: from, frameBytes: current.1)
        deltas.recordBecameLive(at: position, frameBytes: frameLength)
    }

    static func applyDelete(_ trees: Trees, conversation: UInt64, createdAt: UInt64, seq: UInt64, idHash: UInt64,
                            deltas: inout LivenessLedger, conversations scratch: inout ConversationUpdates) throws {
        let key = BTreeKey(conversation, createdAt, seq)
        var old: (UInt64, Int64)? = nil
        try trees.messages.withValue(for: key) { v in
            old = (v.loadLE(UInt64.self, at: V.positionOffset), Int64(v.loadLE(UInt32.self, at: V.lengthOffset)))
        }
        guard let old else { return }
        try trees.messages.delete(key)
        try trees.ids.delete(BTreeKey(idHash, seq))
        deltas.recordBecameDead(at: old.0, frameBytes: old.1)
        let transaction = trees.messages.transaction
        transaction.state.counters[MessageCounter.liveMessages] &-= 1

        let i = try scratch.state(of: conversation, trees)
        var state = scratch.states[i]
        state.count = state.count > 0 ? state.count - 1 : 0
        if state.newestAt == createdAt && state.newestSeq == seq {
            state.newestAt = 0
            state.newestSeq = 0
            if state.count > 0 {
                var cursor = trees.messages.cursor()
                if try cursor.seek(atMost: BTreeKey(conversation, .max, .max)), let k = try cursor.key(), k.w0 == conversation {
                    state.newestAt = k.w1
                    state.newestSeq = k.w2
                }
            }
        }
        scratch.states[i] = state
    }
}

/// The conversation records (slot 3) and activity entries (slot 4) one transaction changes,
/// kept in memory while its records are applied and written once at the end: a batch of many
/// messages in one conversation costs one slot-3 update and at most one activity move.
struct ConversationUpdates {
    struct State {
        var id: UInt64
        var count: UInt64
        var newestAt: UInt64
        var newestSeq: UInt64
        let originalCount: UInt64
        let originalAt: UInt64
        let originalSeq: UInt64
    }

    var states: [State] = []
    var index: [UInt64: Int] = [:]
    var value = [UInt8](repeating: 0, count: MessageValueLayout.conversationValueSize)

    /// The index of `id`'s state, loading it from slot 3 on first use.
    mutating func state(of id: UInt64, _ trees: MessageSchema.Trees) throws -> Int {
        if states.count < 4 {
            if let i = states.firstIndex(where: { $0.id == id }) { return i }
        } else if let i = index[id] {
            return i
        }
        var loaded: State? = nil
        try trees.conversations.withValue(for: BTreeKey(id)) { v in
            let count = v.loadLE(UInt64.self, at: MessageValueLayout.liveCountOffset)
            let at = v.loadLE(UInt64.self, at: MessageValueLayout.newestCreatedAtOffset)
            let seq = v.loadLE(UInt64.self, at: MessageValueLayout.newestSeqOffset)
            loaded = State(id: id, count: count, newestAt: at, newestSeq: seq, originalCount: count, originalAt: at, originalSeq: seq)
        }
        guard let loaded else {
            throw StorageError.corrupted(file: "pages", offset: 0, reason: "a message names conversation \(id), which does not exist")
        }
        states.append(loaded)
        if states.count == 4 {
            for (i, s) in states.enumerated() { index[s.id] = i }
        } else if states.count > 4 {
            index[id] = states.count - 1
        }
        return states.count - 1
    }

    /// Writes every changed conversation record and moves its activity entry.
    mutating func flush(_ trees: MessageSchema.Trees) throws {
        typealias V = MessageValueLayout
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        for state in states {
            let changed = state.count != state.originalCount || state.newestAt != state.originalAt
                || state.newestSeq != state.originalSeq
            guard changed else { continue }
            let key = BTreeKey(state.id)
            var found = false
            try trees.conversations.withValue(for: key) { v in
                found = true
                value.withUnsafeMutableBytes { $0.copyMemory(from: v) }
            }
            guard found else {
                throw StorageError.corrupted(file: "pages", offset: 0, reason: "conversation \(state.id) vanished during a transaction")
            }
            value.withUnsafeMutableBytes {
                $0.storeLE(state.count, at: V.liveCountOffset)
                $0.storeLE(state.count > 0 ? state.newestAt : 0, at: V.newestCreatedAtOffset)
                $0.storeLE(state.count > 0 ? state.newestSeq : 0, at: V.newestSeqOffset)
            }
            try trees.conversations.update(key, value: value)
            let before = state.originalCount > 0 ? BTreeKey(state.originalAt, state.id) : nil
            let after = state.count > 0 ? BTreeKey(state.newestAt, state.id) : nil
            if before != after {
                if let before { try trees.activity.delete(before) }
                if let after { try trees.activity.insert(after, value: empty) }
            }
        }
    }
}
