import ScrollbackBTree
import ScrollbackStorage

extension MessageDatabase {
    // MARK: Validation

    static func checkText(_ value: String, _ argument: String, max: Int, allowEmpty: Bool = false) throws {
        let count = value.utf8.count
        if count == 0 && !allowEmpty {
            throw MessagingError.invalidArgument(argument: argument, reason: "must not be empty")
        }
        if count > max {
            throw MessagingError.invalidArgument(argument: argument, reason: "\(count) UTF-8 bytes exceed the limit of \(max)")
        }
    }

    /// Checks every documented limit of an operation; throws `.invalidArgument` naming the field.
    func validate(_ operation: WriteOperation) throws {
        switch operation {
        case .append(let m):
            try Self.checkText(m.id, "id", max: MessageLimits.maxIDBytes)
            try Self.checkText(m.conversation, "conversation", max: MessageLimits.maxNameBytes)
            try Self.checkText(m.sender, "sender", max: MessageLimits.maxNameBytes)
            guard m.createdAt >= 0, m.createdAt < MessageLimits.maxCreatedAt else {
                throw MessagingError.invalidArgument(argument: "createdAt", reason: "\(m.createdAt) is outside 0 ..< 2^53")
            }
            guard (1...6).contains(m.kind) else {
                throw MessagingError.invalidArgument(argument: "kind", reason: "unknown kind \(m.kind)")
            }
            try Self.checkText(m.body, "body", max: maxBodyBytes, allowEmpty: true)
            if let replyTo = m.replyTo { try Self.checkText(replyTo, "replyTo", max: MessageLimits.maxIDBytes) }
        case .edit(let id, let body):
            try Self.checkText(id, "id", max: MessageLimits.maxIDBytes)
            try Self.checkText(body, "body", max: maxBodyBytes, allowEmpty: true)
        case .delete(let id):
            try Self.checkText(id, "id", max: MessageLimits.maxIDBytes)
        case .markRead(let user, let conversation, let through):
            try Self.checkText(user, "user", max: MessageLimits.maxNameBytes)
            try Self.checkText(conversation, "conversation", max: MessageLimits.maxNameBytes)
            try Self.checkText(through, "through", max: MessageLimits.maxIDBytes)
        }
    }

    // MARK: Writing

    /// Applies `operations` atomically (all or nothing) and durably; returns, per append,
    /// true if appended and false for a duplicate id. Every operation is validated first;
    /// an invalid one throws and nothing is written.
    @discardableResult
    package func write(_ operations: [WriteOperation]) throws -> [Bool] {
        for operation in operations { try validate(operation) }
        var outcomes: [Bool] = []
        try engine.commit { transaction, batch in
            outcomes.removeAll(keepingCapacity: true)
            var context = try PrepareContext(database: self, transaction: transaction)
            for operation in operations {
                if let appended = try context.prepare(operation, into: &batch) { outcomes.append(appended) }
            }
        }
        writesSincePolicyCheck.add(1, ordering: .relaxed)
        maybeCompactAutomatically()
        return outcomes
    }

    /// Writer-side state of one batch: the write view plus what earlier operations of the same
    /// batch did (records are applied only after the whole batch is encoded).
    struct PrepareContext {
        let database: MessageDatabase
        let transaction: PageTransaction
        let markers: BTree
        var nextSeq: UInt64
        var nextConversation: UInt64
        var nextUser: UInt64
        /// Ids touched by this batch: the message's current state (nil: deleted in this batch).
        var pending: [String: PendingMessage?] = [:]
        var newConversations: [String: UInt64] = [:]
        var newUsers: [String: UInt64] = [:]
        var pendingMarkers: [BTreeKey: (UInt64, UInt64)] = [:]

        struct PendingMessage {
            var message: StoredMessage
            var conversationID: UInt64
            var seq: UInt64
        }

        init(database: MessageDatabase, transaction: PageTransaction) throws {
            self.database = database
            self.transaction = transaction
            markers = try BTree(transaction, slot: MessageTree.readMarkers)
            let counters = transaction.state.counters
            nextSeq = max(1, counters[MessageCounter.nextSeq])
            nextConversation = max(1, counters[MessageCounter.nextConversation])
            nextUser = max(1, counters[MessageCounter.nextUser])
        }

        /// Where the live message `id` is: from this batch, or from the trees.
        enum Live {
            case batch(PendingMessage)
            case stored(MessageDatabase.Located)
        }

        func live(_ id: String) throws -> Live? {
            if let entry = pending[id] {
                if let message = entry { return .batch(message) }
                return nil
            }
            return try database.locate(id: id, in: transaction).map { .stored($0) }
        }

        mutating func conversation(_ name: String, create: Bool, batch: inout LogBatch) throws -> UInt64? {
            if let id = newConversations[name] { return id }
            if let id = try database.conversationID(name, in: transaction) { return id }
            guard create else { return nil }
            let id = nextConversation
            nextConversation += 1
            try Self.appendName(type: MessageRecordType.newConversation, id: id, name: name, into: &batch)
            newConversations[name] = id
            return id
        }

        mutating func user(_ name: String, batch: inout LogBatch) throws -> UInt64 {
            if let id = newUsers[name] { return id }
            if let id = try database.userID(name, in: transaction) { return id }
            let id = nextUser
            nextUser += 1
            try Self.appendName(type: MessageRecordType.newUser, id: id, name: name, into: &batch)
            newUsers[name] = id
            return id
        }

        static func appendName(type: UInt8, id: UInt64, name: String, into batch: inout LogBatch) throws {
            let count = name.utf8.count
            try batch.append(type: type, payloadCount: 9 + count) { out in
                out.storeLE(id, at: 0)
                out[8] = UInt8(truncatingIfNeeded: count)
                _ = copyUTF8(name, into: out, at: 9)
            }
        }

        /// Encodes one operation. Returns the append outcome (true: appended), nil for others.
        mutating func prepare(_ operation: WriteOperation, into batch: inout LogBatch) throws -> Bool? {
            switch operation {
            case .append(var message):
                if try live(message.id) != nil { return false }
                guard let conversationID = try conversation(message.conversation, create: true, batch: &batch) else { return false }
                let seq = nextSeq
                nextSeq += 1
                message.edited = false
                try Self.appendMessage(message, conversationID: conversationID, seq: seq, flags: 0, into: &batch)
                pending[message.id] = PendingMessage(message: message, conversationID: conversationID, seq: seq)
                return true

            case .edit(let id, let body):
                switch try live(id) {
                case nil:
                    throw MessagingError.notFound("message \(id)")
                case .batch(var entry)?:
                    entry.message.body = body
                    entry.message.edited = true
                    try Self.appendMessage(entry.message, conversationID: entry.conversationID, seq: entry.seq,
                                           flags: MessageFlags.edited, into: &batch)
                    pending[id] = entry
                case .stored(let located)?:
                    let bodyCount = body.utf8.count
                    try database.withMessagePayload(at: located.position) { header, payload in
                        let keep = header.bodyStart   // header, id, sender, replyTo are kept
                        try batch.append(type: MessageRecordType.message, payloadCount: keep + bodyCount) { out in
                            out.copyMemory(from: UnsafeRawBufferPointer(rebasing: payload[0..<keep]))
                            out[MessageRecordLayout.flagsOffset] = header.flags | MessageFlags.edited
                            out.storeLE(UInt32(truncatingIfNeeded: bodyCount), at: MessageRecordLayout.bodyLengthOffset)
                            _ = Self.copyUTF8(body, into: out, at: keep)
                        }
                    }
                }
                return nil

            case .delete(let id):
                let key: BTreeKey
                switch try live(id) {
                case nil: throw MessagingError.notFound("message \(id)")
                case .batch(let entry)?: key = BTreeKey(entry.conversationID, UInt64(entry.message.createdAt), entry.seq)
                case .stored(let located)?: key = located.key
                }
                let hash = Hash64.hash(id)
                try batch.append(type: MessageRecordType.delete, payloadCount: MessageRecordLayout.deletePayloadSize) { out in
                    out.storeLE(key.w0, at: 0)
                    out.storeLE(key.w1, at: 8)
                    out.storeLE(key.w2, at: 16)
                    out.storeLE(hash, at: 24)
                }
                pending[id] = .some(nil)
                return nil

            case .markRead(let userName, let conversationName, let through):
                let key: BTreeKey
                switch try live(through) {
                case nil: throw MessagingError.notFound("message \(through)")
                case .batch(let entry)?: key = BTreeKey(entry.conversationID, UInt64(entry.message.createdAt), entry.seq)
                case .stored(let located)?: key = located.key
                }
                guard let conversationID = try conversation(conversationName, create: false, batch: &batch),
                      conversationID == key.w0 else {
                    throw MessagingError.invalidArgument(
                        argument: "through", reason: "message \(through) belongs to another conversation than \(conversationName)")
                }
                let userID = try user(userName, batch: &batch)
                let markerKey = BTreeKey(userID, conversationID)
                var current = pendingMarkers[markerKey]
                if current == nil {
                    try markers.withValue(for: markerKey) { v in current = (v.loadLE(UInt64.self, at: 0), v.loadLE(UInt64.self, at: 8)) }
                }
                if let current, !(key.w1 > current.0 || (key.w1 == current.0 && key.w2 > current.1)) { return nil }
                try batch.append(type: MessageRecordType.markRead, payloadCount: MessageRecordLayout.markReadPayloadSize) { out in
                    out.storeLE(userID, at: 0)
                    out.storeLE(conversationID, at: 8)
                    out.storeLE(key.w1, at: 16)
                    out.storeLE(key.w2, at: 24)
                }
                pendingMarkers[markerKey] = (key.w1, key.w2)
                return nil
            }
        }

        /// Encodes a type-16 record (spec/message-records.md, "message").
        static func appendMessage(_ message: StoredMessage, conversationID: UInt64, seq: UInt64, flags: UInt8,
                                  into batch: inout LogBatch) throws {
            typealias L = MessageRecordLayout
            let idCount = message.id.utf8.count, senderCount = message.sender.utf8.count
            let replyCount = message.replyTo?.utf8.count ?? 0, bodyCount = message.body.utf8.count
            let allFlags = flags | (message.replyTo != nil ? MessageFlags.hasReplyTo : 0)
            let count = L.headerSize + idCount + senderCount + replyCount + bodyCount
            try batch.append(type: MessageRecordType.message, payloadCount: count) { out in
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
}
