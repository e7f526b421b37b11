import ScrollbackBTree
import ScrollbackStorage

extension MessageDatabase {
    // MARK: Validation

    /// Checks every documented limit of an operation (`ArgumentLimits`); throws
    /// `.invalidArgument` naming the field.
    package func validate(_ operation: WriteOperation) throws {
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
            if let metadata = m.metadata, metadata.count > A.metadataBytes.upperBound {
                throw MessagingError.invalidArgument(
                    argument: "metadata", reason: "\(metadata.count) bytes exceed the limit of \(A.metadataBytes.upperBound)")
            }
        case .edit(let id, let text):
            try A.check(id, "id", bytes: A.idBytes)
            try A.check(text, "body", bytes: body)
        case .delete(let id):
            try A.check(id, "id", bytes: A.idBytes)
        case .markRead(let user, let conversation, let through):
            try A.check(user, "user", bytes: A.nameBytes)
            try A.check(conversation, "conversation", bytes: A.nameBytes)
            try A.check(through, "through", bytes: A.idBytes)
        case .join(let user, let conversation), .leave(let user, let conversation):
            try A.check(user, "user", bytes: A.nameBytes)
            try A.check(conversation, "conversation", bytes: A.nameBytes)
        case .replicaMark:
            break
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
        // Keyed by bytes (`ByteString`): canonically equivalent strings are different names and ids.
        var pending: [ByteString: PendingMessage?] = [:]
        var newConversations: [ByteString: UInt64] = [:]
        var newUsers: [ByteString: UInt64] = [:]
        var pendingMarkers: [MarkerKey: MarkerValue] = [:]
        /// Which messages the search index covers (a write batch never moves the build cursor).
        let searchCoverage: SearchCoverage
        /// Bodies of stored messages as this batch's edits leave them (a later edit or delete
        /// in the batch removes these terms, not those of the record in the store).
        var editedBodies: [ByteString: String] = [:]

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
            searchCoverage = SearchCoverage(transaction.state)
        }

        /// Logs the removal of the search postings of message `key` with body `text`, when the
        /// index covers it (before the record that edits or deletes it).
        func removePostings(of key: MessageKey, text: String, into batch: inout LogBatch) throws {
            guard searchCoverage.covers(key) else { return }
            for entry in SearchEntry.entries(key: key, terms: SearchTokenizer.indexTerms(of: text)) {
                try SearchRemoveRecord.append(entry, into: &batch)
            }
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
            if let entry = pending[ByteString(id)] {
                if let message = entry { return .batch(message) }
                return nil
            }
            return try database.locate(id: id, in: transaction).map { .stored($0) }
        }

        /// The name of the conversation a live message belongs to.
        func conversationName(of live: Live) throws -> String {
            switch live {
            case .batch(let entry): return entry.message.conversation
            case .stored(let located):
                return try database.conversationName(located.key.conversation, in: transaction,
                                                     for: "message \(located.key) names a missing conversation")
            }
        }

        mutating func conversation(_ name: String, create: Bool, batch: inout LogBatch) throws -> UInt64? {
            if let id = newConversations[ByteString(name)] { return id }
            if let id = try database.conversationID(name, in: transaction) { return id }
            guard create else { return nil }
            guard nextConversation <= MessageLimits.maxConversationID else {
                throw StorageError.limitExceeded("a store holds at most \(MessageLimits.maxConversationID) conversations")
            }
            let id = nextConversation
            nextConversation += 1
            try NameRecord.append(.conversation, id: id, name: name, into: &batch)
            newConversations[ByteString(name)] = id
            return id
        }

        mutating func user(_ name: String, batch: inout LogBatch) throws -> UInt64 {
            if let id = newUsers[ByteString(name)] { return id }
            if let id = try database.userID(name, in: transaction) { return id }
            let id = nextUser
            nextUser += 1
            try NameRecord.append(.user, id: id, name: name, into: &batch)
            newUsers[ByteString(name)] = id
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
            case .join(let user, let conversation):
                try prepareMembership(user: user, conversation: conversation, joins: true, into: &batch)
            case .leave(let user, let conversation):
                try prepareMembership(user: user, conversation: conversation, joins: false, into: &batch)
            case .replicaMark(let source, let sequence):
                try ReplicaMarkRecord(source: source, sequence: sequence).append(into: &batch)
            }
            return nil
        }

        /// An append of an id that is live (in the store or earlier in the batch) in the same
        /// conversation is a duplicate (nothing changes); live in another conversation, it is
        /// `idConflict` (the append would otherwise be silently dropped).
        mutating func prepareAppend(_ message: StoredMessage, into batch: inout LogBatch) throws -> Bool {
            if let existing = try live(message.id) {
                let ownerID = existing.key.conversation
                let target = try conversation(message.conversation, create: false, batch: &batch)
                if target == ownerID { return false }
                throw MessagingError.idConflict(id: message.id, conversation: try conversationName(of: existing))
            }
            guard let conversationID = try conversation(message.conversation, create: true, batch: &batch) else { return false }
            guard nextSeq <= MessageLimits.maxSeq else {
                throw StorageError.limitExceeded("a store holds at most \(MessageLimits.maxSeq) messages over its lifetime")
            }
            let seq = nextSeq
            nextSeq += 1
            var message = message
            message.edited = false
            try MessageRecord.append(message, conversationID: conversationID, seq: seq, flags: 0, into: &batch)
            pending[ByteString(message.id)] = PendingMessage(message: message, conversationID: conversationID, seq: seq)
            return true
        }

        /// An edit writes the whole message again, with the new body and the edited flag.
        mutating func prepareEdit(id: String, body: String, into batch: inout LogBatch) throws {
            switch try live(id) {
            case nil:
                throw MessagingError.notFound("message \(id)")
            case .batch(var entry)?:
                try removePostings(of: entry.key, text: entry.message.body, into: &batch)
                entry.message.body = body
                entry.message.edited = true
                try MessageRecord.append(entry.message, conversationID: entry.conversationID, seq: entry.seq,
                                         flags: MessageFlags.edited, into: &batch)
                pending[ByteString(id)] = entry
            case .stored(let located)?:
                var reader = database.engine.recordReader(for: transaction)
                let editedBefore = editedBodies[ByteString(id)]
                try database.withMessage(at: located.pointer.position, key: located.key, &reader) { stored, record in
                    if searchCoverage.covers(located.key) {
                        let text = editedBefore
                            ?? stored.text(in: record)
                        try removePostings(of: located.key, text: text, into: &batch)
                    }
                    try MessageRecord.appendEdit(of: located.key, stored, record, text: body, into: &batch)
                }
                if searchCoverage.isEnabled { editedBodies[ByteString(id)] = body }
            }
        }

        mutating func prepareDelete(id: String, into batch: inout LogBatch) throws {
            guard let message = try live(id) else { throw MessagingError.notFound("message \(id)") }
            if searchCoverage.covers(message.key) {
                switch message {
                case .batch(let entry):
                    try removePostings(of: entry.key, text: entry.message.body, into: &batch)
                case .stored(let located):
                    var text = editedBodies[ByteString(id)]
                    if text == nil {
                        var reader = database.engine.recordReader(for: transaction)
                        text = try database.withMessage(at: located.pointer.position, key: located.key, &reader) { stored, record in
                            stored.text(in: record)
                        }
                    }
                    try removePostings(of: located.key, text: text ?? "", into: &batch)
                }
            }
            try DeleteRecord.append(key: message.key, id: id, into: &batch)
            pending[ByteString(id)] = .some(nil)
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
            try moveMarker(MarkerKey(user: try user(userName, batch: &batch), conversation: conversationID), through: key,
                           id: through, into: &batch)
        }

        /// Moves `marker` to `key` (the message may be deleted; `id` is its id when known) if that
        /// is forward; else no-op.
        mutating func moveMarker(_ marker: MarkerKey, through key: MessageKey, id: String?, into batch: inout LogBatch) throws {
            let current = try entry(marker)
            let value = MarkerValue(createdAt: key.createdAt, seq: key.seq, flags: current.flags | MarkerValue.hasMarker)
            if !value.isAfter(current) { return }
            try MarkReadRecord.append(marker: marker, through: key, id: id, into: &batch)
            pendingMarkers[marker] = value
        }

        /// A user's entry in a conversation as this batch leaves it (marker and membership).
        func entry(_ marker: MarkerKey) throws -> MarkerValue {
            if let pending = pendingMarkers[marker] { return pending }
            var current = MarkerValue(createdAt: 0, seq: 0, flags: 0)
            try markers.withValue(for: marker.treeKey) { current = MarkerValue($0) }
            return current
        }

        /// Joining a conversation one is a member of, or leaving one one is not, is a no-op
        /// (nothing is logged). Joining creates the conversation (and the user) when new.
        mutating func prepareMembership(user userName: String, conversation conversationName: String, joins: Bool,
                                        into batch: inout LogBatch) throws {
            guard let conversationID = try conversation(conversationName, create: joins, batch: &batch) else { return }
            if !joins, try database.userID(userName, in: transaction) == nil, newUsers[ByteString(userName)] == nil { return }
            let marker = MarkerKey(user: try user(userName, batch: &batch), conversation: conversationID)
            var current = try entry(marker)
            guard current.member != joins else { return }
            try MembershipRecord(entry: marker, joins: joins).append(into: &batch)
            current.flags = joins ? current.flags | MarkerValue.isMember : current.flags & ~MarkerValue.isMember
            pendingMarkers[marker] = current
        }
    }
}
