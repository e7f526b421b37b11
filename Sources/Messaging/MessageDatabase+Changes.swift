import ScrollbackBTree
import ScrollbackStorage

/// Where a change lies in commit order (spec/change-stream.md): the start of the transaction
/// holding it (where a reader resumes: a transaction boundary of the log), the log position of
/// its record, and its index among the changes of that record (a bulk load's record holds
/// many messages; every other record one change, index 0).
///
/// Points order by (record, index): commit order.
package struct ChangePoint: Hashable, Sendable, Comparable {
    package var transactionStart: LogPosition
    package var record: LogPosition
    package var index: UInt32

    package init(transactionStart: LogPosition, record: LogPosition, index: UInt32) {
        self.transactionStart = transactionStart
        self.record = record
        self.index = index
    }

    /// The point just before every change committed at or after `boundary` (a transaction
    /// boundary, whose offset is at least the segment header's size, so `boundary - 1` is a
    /// position of the same segment before any record).
    package static func end(_ boundary: LogPosition) -> ChangePoint {
        ChangePoint(transactionStart: boundary, record: boundary &- 1, index: .max)
    }

    package static func < (a: ChangePoint, b: ChangePoint) -> Bool {
        (a.record, a.index) < (b.record, b.index)
    }

    /// Whether the change at (`record`, `index`) comes after this point.
    @inline(__always)
    func precedes(_ record: LogPosition, _ index: UInt32) -> Bool {
        (self.record, self.index) < (record, index)
    }
}

/// One committed change, with names resolved (conversation, user and message ids as the
/// writes named them).
package enum StoredChange: Sendable, Hashable {
    case append(StoredMessage)
    /// The message's new body (every other field is unchanged).
    case edit(conversation: String, id: String, body: String)
    case delete(conversation: String, id: String)
    /// `through`: the id of the message marked; nil only for a marker restored by an upgrade
    /// whose message is gone by the time the change is read.
    case markRead(user: String, conversation: String, through: String?)
    case join(user: String, conversation: String)
    case leave(user: String, conversation: String)

    package var conversation: String {
        switch self {
        case .append(let message): message.conversation
        case .edit(let conversation, _, _), .delete(let conversation, _), .markRead(_, let conversation, _),
             .join(_, let conversation), .leave(_, let conversation):
            conversation
        }
    }
}

/// The changes of one read, and where the next read continues.
package struct ChangeBatch: Sendable {
    package var changes: [(point: ChangePoint, change: StoredChange)]
    /// After the last change delivered, or after everything read (changes filtered out
    /// included) when the read ended at the committed end.
    package var next: ChangePoint
}

/// A change point whose log is gone: the retention window (or a compaction that merged a bulk
/// load's run) has passed it, and the changes after it cannot be read.
package struct ChangeHistoryGone: Error, Sendable, Equatable {
    package var point: ChangePoint
    /// Where the log kept now begins, if known.
    package var oldest: LogPosition?
}

/// The state a follower of the change stream keeps between reads: the bytes of the log
/// segment it reads from a file, and the names it has resolved. Not thread-safe: one per
/// follower.
package struct ChangeFollower {
    var cache = LogTailCache()
    var conversations: [UInt64: String] = [:]
    var users: [UInt64: String] = [:]

    package init() {}
}

/// The change stream read from the log (spec/change-stream.md): every committed append, edit,
/// delete, marker move, join and leave, in commit order. Internal records (names, the engine's
/// own) are not changes; no-op writes log nothing, so they are not changes either.
extension MessageDatabase {
    /// Fewest appends of a bulk load one read delivers (when that many remain).
    static let bulkChunk = 65_536

    /// The point after every change committed so far (in a read-only store: as of its last refresh).
    package var changeEnd: ChangePoint { .end(engine.committedLogEnd) }

    /// The replica mark of the committed state (record 30, counters 9 and 10): nil when never set.
    package var replicaMark: (source: UInt64, sequence: UInt64)? {
        let state = engine.committedState
        let source = state[counter: .replicaSource]
        return source == 0 ? nil : (source, state[counter: .replicaSequence])
    }

    /// Up to `limit` changes after `point` (a bulk load's appends: up to `max(limit, 65,536)`),
    /// in commit order, of the conversations named in
    /// `filter` (every conversation when nil), read from the committed log.
    ///
    /// Cost: reads the log from the start of `point`'s transaction (in memory for the newest
    /// segments; other segments from their files, one at a time through `follower`), plus one
    /// snapshot lookup per conversation or user id first met, and one record read per marker
    /// move of an older record without the message id. Throws `ChangeHistoryGone` when the log
    /// at `point` is no longer kept.
    package func readChanges(after point: ChangePoint, conversations filter: Set<ByteString>?, limit: Int,
                             follower: inout ChangeFollower) throws -> ChangeBatch {
        let end = engine.committedLogEnd
        guard limit > 0, point.transactionStart < end else { return ChangeBatch(changes: [], next: point) }
        let snapshot = try engine.snapshot()
        defer { snapshot.rollback() }
        var changes: [(point: ChangePoint, change: StoredChange)] = []
        var next = point
        var full = false
        var names = NameResolver(database: self, snapshot: snapshot, conversations: follower.conversations, users: follower.users)
        defer {
            follower.conversations = names.conversations
            follower.users = names.users
            if follower.conversations.count > Self.cacheLimit { follower.conversations.removeAll() }
            if follower.users.count > Self.cacheLimit { follower.users.removeAll() }
        }
        let readEnd: LogPosition
        do {
            readEnd = try engine.readCommittedTransactions(from: point.transactionStart, through: end, cache: &follower.cache) { transaction in
                let start = transaction.start
                // A bulk load's messages come in chunks of at least `bulkChunk`: resuming inside
                // a load walks its run from the start again.
                func emit(_ change: StoredChange, _ position: LogPosition, _ index: UInt32) {
                    guard !full else { return }
                    if let filter, !filter.contains(ByteString(change.conversation)) { return }
                    let at = ChangePoint(transactionStart: start, record: position, index: index)
                    changes.append((at, change))
                    if changes.count >= (index == 0 ? limit : max(limit, Self.bulkChunk)) {
                        full = true
                        next = at
                    }
                }
                try transaction.forEach { position, type, payload in
                    guard !full, let kind = MessageRecordType(rawValue: type) else { return }
                    // Names first: a record before `point` in the same transaction may name
                    // what a later one uses.
                    if kind == .newConversation || kind == .newUser {
                        names.learn(try NameRecord.decode(kind, payload, position: position))
                        return
                    }
                    if kind == .bulkLoad {
                        try bulkLoadChanges(try BulkLoadRecord.decode(payload, position: position), transaction.context,
                                            after: point, at: position, &names, emit)
                        return
                    }
                    guard point.precedes(position, 0) else { return }
                    if let change = try change(kind, payload, at: position, snapshot, &names) { emit(change, position, 0) }
                }
                return !full
            }
        } catch let gone as LogPositionRemoved {
            throw ChangeHistoryGone(point: point, oldest: gone.oldest)
        }
        if !full, readEnd != point.transactionStart { next = .end(readEnd) }
        return ChangeBatch(changes: changes, next: next)
    }

    /// The change a record makes (nil for records that are not changes).
    private func change(_ kind: MessageRecordType, _ payload: UnsafeRawBufferPointer, at position: LogPosition,
                        _ snapshot: PageTransaction, _ names: inout NameResolver) throws -> StoredChange? {
        switch kind {
        case .message:
            let header = try MessageHeader.parse(payload, position: position, offset: 0)
            let conversation = try names.conversation(header.conversation, for: position)
            return MessageView.with(key: header.key, body: header.body, record: MessageHeader.bodyRecord(of: payload),
                                    conversation: conversation) { view in
                view.edited ? .edit(conversation: conversation, id: view.id, body: view.text) : .append(view.stored)
            }
        case .delete:
            let delete = try DeleteRecord.decode(payload, position: position)
            return .delete(conversation: try names.conversation(delete.key.conversation, for: position),
                           id: String(decoding: delete.id, as: UTF8.self))
        case .markRead:
            let mark = try MarkReadRecord.decode(payload, position: position)
            let conversation = try names.conversation(mark.marker.conversation, for: position)
            let user = try names.user(mark.marker.user, for: position)
            var through = mark.id.map { String(decoding: $0, as: UTF8.self) }
            if through == nil {
                var found: LogPosition? = nil
                try BTree(snapshot, .messages).withValue(for: mark.through.treeKey) { found = MessagePointer.position(in: $0) }
                if let found {
                    var reader = engine.recordReader(for: snapshot)
                    try visitMessage(at: found, key: mark.through, conversation: conversation, &reader) { through = $0.id }
                }
            }
            return .markRead(user: user, conversation: conversation, through: through)
        case .join, .leave:
            let membership = try MembershipRecord.decode(kind, payload, position: position)
            let user = try names.user(membership.entry.user, for: position)
            let conversation = try names.conversation(membership.entry.conversation, for: position)
            return membership.joins ? .join(user: user, conversation: conversation) : .leave(user: user, conversation: conversation)
        case .newConversation, .newUser, .initialize, .bulkLoad, .replicaMark, .searchEnable, .searchBuild, .searchRemove, .searchDisable, .relocate, .retireSegment, .sealed, .merged, .attached:
            return nil
        }
    }

    /// The appends of a bulk load, in its run's key order (index: the record's ordinal).
    private func bulkLoadChanges(_ load: BulkLoadRecord, _ context: SchemaApplyContext, after point: ChangePoint,
                                 at position: LogPosition, _ names: inout NameResolver,
                                 _ emit: (StoredChange, LogPosition, UInt32) -> Void) throws {
        guard point.record <= position else { return }
        guard context.containsRun(load.run) else {
            throw ChangeHistoryGone(point: point, oldest: nil)
        }
        var ordinal: UInt32 = 0
        try context.forEachRecord(inRun: load.run) { runKey, _, payload in
            defer { ordinal &+= 1 }
            guard point.precedes(position, ordinal) else { return }
            let key = MessageKey(runKey)
            let body = try MessageBody.parse(payload, "run \(load.run) record \(ordinal)")
            let conversation = try names.conversation(key.conversation, for: position)
            emit(.append(MessageView.with(key: key, body: body, record: payload, conversation: conversation) { $0.stored }),
                 position, ordinal)
        }
    }
}

/// Conversation and user names by internal id: from the name records read so far, else from
/// the snapshot (which holds every name of a committed transaction).
private struct NameResolver {
    let database: MessageDatabase
    let snapshot: PageTransaction
    var conversations: [UInt64: String]
    var users: [UInt64: String]

    mutating func learn(_ record: NameRecord) {
        let name = String(decoding: record.name, as: UTF8.self)
        switch record.space {
        case .conversation: conversations[record.id] = name
        case .user: users[record.id] = name
        }
    }

    mutating func conversation(_ id: UInt64, for position: LogPosition) throws -> String {
        if let name = conversations[id] { return name }
        let name = try database.conversationName(id, in: snapshot, for: "conversation \(id) of the change at log position \(LogPositions.describe(position)) has no name")
        conversations[id] = name
        return name
    }

    mutating func user(_ id: UInt64, for position: LogPosition) throws -> String {
        if let name = users[id] { return name }
        guard let name = try MessageDatabase.storedName(.user, id: id, snapshot) else {
            throw StorageError.corrupted(file: database.engine.pageFilePath, offset: 0,
                                         reason: "user \(id) of the change at log position \(LogPositions.describe(position)) has no name")
        }
        users[id] = name
        return name
    }
}
