import ScrollbackBTree
import ScrollbackStorage

extension MessageDatabase {
    // MARK: Validation

    /// Checks every documented limit of an operation (`ArgumentLimits`); throws
    /// `.invalidArgument` naming the field.
    func validate(_ operation: WriteOperation) throws {
        typealias A = ArgumentLimits
        let body = 0...maxBodyBytes
        switch operation {
        case .append(let m):
            try A.check(m.id, "id", bytes: A.idBytes)
            try A.check(m.conversation, "conversation", bytes: A.nameBytes)
            try A.check(m.sender, "sender", bytes: A.nameBytes)
            guard A.createdAt.contains(m.createdAt) else {
                throw MessagingError.invalidArgument(argument: "createdAt", reason: "\(m.createdAt) is outside 0 ..< 2^53")
            }
            guard A.kinds.contains(m.kind) else {
                throw MessagingError.invalidArgument(argument: "kind", reason: "unknown kind \(m.kind)")
            }
            try A.check(m.body, "body", bytes: body)
            if let replyTo = m.replyTo { try A.check(replyTo, "replyTo", bytes: A.idBytes) }
        case .edit(let id, let text):
            try A.check(id, "id", bytes: A.idBytes)
            try A.check(text, "body", bytes: body)
        case .delete(let id):
            try A.check(id, "id", bytes: A.idBytes)
        case .markRead(let user, let conversation, let through):
            try A.check(user, "user", bytes: A.nameBytes)
            try A.check(conversation, "conversation", bytes: A.nameBytes)
            try A.check(through, "through", bytes: A.idBytes)
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
        var pendingMarkers: [MarkerKey: MarkerValue] = [:]

        struct PendingMessage {
            var message: StoredMessage
            var conversationID: UInt64
            var seq: UInt64

            var key: MessageKey { MessageKey(conversation: conversationID, createdAt: UInt64(message.createdAt), seq: seq) }
        }

        init(database: MessageDatabase, transaction: PageTransaction) throws {
            self.database = database
            self.transaction = transaction
            markers = try BTree(transaction, .readMarkers)
            nextSeq = max(1, transaction.state[counter: .nextSeq])
            nextConversation = max(1, transaction.state[counter: .nextConversation])
            nextUser = max(1, transaction.state[counter: .nextUser])
        }

        /// Where the live message `id` is: from this batch, or from the trees.
        enum Live {
            case batch(PendingMessage)
            case stored(MessageDatabase.Located)

            var key: MessageKey {
                switch self {
                case .batch(let entry): entry.key
                case .stored(let located): located.key
                }
            }
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
            try NameRecord.append(.conversation, id: id, name: name, into: &batch)
            newConversations[name] = id
            return id
        }

        mutating func user(_ name: String, batch: inout LogBatch) throws -> UInt64 {
            if let id = newUsers[name] { return id }
            if let id = try database.userID(name, in: transaction) { return id }
            let id = nextUser
            nextUser += 1
            try NameRecord.append(.user, id: id, name: name, into: &batch)
            newUsers[name] = id
            return id
        }

        /// Encodes one operation. Returns the append outcome (true: appended), nil for others.
        mutating func prepare(_ operation: WriteOperation, into batch: inout LogBatch) throws -> Bool? {
            switch operation {
            case .append(let message):
                return try prepareAppend(message, into: &batch)
            case .edit(let id, let body):
                try prepareEdit(id: id, body: body, into: &batch)
            case .delete(let id):
                try prepareDelete(id: id, into: &batch)
            case .markRead(let user, let conversation, let through):
                try prepareMarkRead(user: user, conversation: conversation, through: through, into: &batch)
            }
            return nil
        }

        /// An append of an id that is live (in the store or earlier in the batch) is a duplicate.
        mutating func prepareAppend(_ message: StoredMessage, into batch: inout LogBatch) throws -> Bool {
            if try live(message.id) != nil { return false }
            guard let conversationID = try conversation(message.conversation, create: true, batch: &batch) else { return false }
            let seq = nextSeq
            nextSeq += 1
            var message = message
            message.edited = false
            try MessageRecord.append(message, conversationID: conversationID, seq: seq, flags: 0, into: &batch)
            pending[message.id] = PendingMessage(message: message, conversationID: conversationID, seq: seq)
            return true
        }

        /// An edit writes the whole message again, with the new body and the edited flag.
        mutating func prepareEdit(id: String, body: String, into batch: inout LogBatch) throws {
            switch try live(id) {
            case nil:
                throw MessagingError.notFound("message \(id)")
            case .batch(var entry)?:
                entry.message.body = body
                entry.message.edited = true
                try MessageRecord.append(entry.message, conversationID: entry.conversationID, seq: entry.seq,
                                         flags: MessageFlags.edited, into: &batch)
                pending[id] = entry
            case .stored(let located)?:
                try database.withMessageRecord(at: located.pointer.position) { header, payload in
                    try MessageRecord.appendEdit(of: header, payload, body: body, into: &batch)
                }
            }
        }

        mutating func prepareDelete(id: String, into batch: inout LogBatch) throws {
            guard let message = try live(id) else { throw MessagingError.notFound("message \(id)") }
            try DeleteRecord(key: message.key, idHash: Hash64.hash(id)).append(into: &batch)
            pending[id] = .some(nil)
        }

        /// Markers move forward only: marking an older message than the current marker is a no-op.
        mutating func prepareMarkRead(user userName: String, conversation conversationName: String, through: String,
                                      into batch: inout LogBatch) throws {
            guard let message = try live(through) else { throw MessagingError.notFound("message \(through)") }
            let key = message.key
            guard let conversationID = try conversation(conversationName, create: false, batch: &batch),
                  conversationID == key.conversation else {
                throw MessagingError.invalidArgument(
                    argument: "through", reason: "message \(through) belongs to another conversation than \(conversationName)")
            }
            let marker = MarkerKey(user: try user(userName, batch: &batch), conversation: conversationID)
            var current = pendingMarkers[marker]
            if current == nil {
                try markers.withValue(for: marker.treeKey) { current = MarkerValue($0) }
            }
            let value = MarkerValue(through: key)
            if let current, !value.isAfter(current) { return }
            try MarkReadRecord(marker: marker, through: value).append(into: &batch)
            pendingMarkers[marker] = value
        }
    }
}
