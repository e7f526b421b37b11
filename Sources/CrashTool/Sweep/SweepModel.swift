import Scrollback

/// Where a message sits in its conversation: `(createdAt, insertion sequence)`.
package struct ModelPosition: Comparable, Hashable, Sendable {
    package var createdAt: Int64
    package var seq: Int
    package static func < (a: Self, b: Self) -> Bool { (a.createdAt, a.seq) < (b.createdAt, b.seq) }
}

/// A compact reference model of the committed state of a `MessageStore`, for the write
/// operations the crash workloads use (every operation the generators emit is valid, so the
/// model does no argument checking). Value type: copying it snapshots the state; the sweep
/// keeps the state after every acknowledged batch. Semantics: the doc comments of
/// `Sources/Scrollback/*.swift` (the same as Tests/ScrollbackTests/ReferenceStore.swift).
package struct SweepModel: Equatable, Sendable {
    package struct Entry: Equatable, Sendable {
        package var message: Message
        package var seq: Int
        package var position: ModelPosition { ModelPosition(createdAt: message.createdAt, seq: seq) }
    }

    /// Live messages per conversation, ascending by position. No empty arrays.
    package private(set) var entries: [String: [Entry]] = [:]
    /// Live id → conversation.
    package private(set) var conversationOf: [String: String] = [:]
    /// user → conversation → marker position.
    package private(set) var markers: [String: [String: ModelPosition]] = [:]
    /// user → the conversations the user is a member of.
    package private(set) var memberships: [String: Set<String>] = [:]
    package private(set) var nextSeq = 1
    /// The replica mark's sequence of the last `apply(_:mark:)` (nil: never).
    package var replicaSequence: UInt64? = nil

    package init() {}

    package var liveIDs: [String] { conversationOf.keys.sorted() }
    package var messageCount: Int { conversationOf.count }

    package func entry(id: String) -> Entry? {
        guard let conversation = conversationOf[id] else { return nil }
        return entries[conversation]?.first { $0.message.id == id }
    }

    /// Applies one operation (an append of a live id is a duplicate and changes nothing).
    package mutating func apply(_ operation: WriteBatch.Operation) {
        switch operation {
        case .append(var message):
            guard conversationOf[message.id] == nil else { return }
            message.edited = false
            let entry = Entry(message: message, seq: nextSeq)
            nextSeq += 1
            var list = entries[message.conversation] ?? []
            let index = list.firstIndex { $0.position > entry.position } ?? list.endIndex
            list.insert(entry, at: index)
            entries[message.conversation] = list
            conversationOf[message.id] = message.conversation
        case let .edit(id, body):
            guard let conversation = conversationOf[id],
                let index = entries[conversation]?.firstIndex(where: { $0.message.id == id }) else { return }
            entries[conversation]![index].message.body = body
            entries[conversation]![index].message.edited = true
        case let .delete(id):
            guard let conversation = conversationOf[id],
                let index = entries[conversation]?.firstIndex(where: { $0.message.id == id }) else { return }
            entries[conversation]!.remove(at: index)
            if entries[conversation]!.isEmpty { entries[conversation] = nil }
            conversationOf[id] = nil
        case let .markRead(user, conversation, through):
            guard let position = entry(id: through)?.position else { return }
            if let old = markers[user]?[conversation], old >= position { return }
            markers[user, default: [:]][conversation] = position
        case let .join(user, conversation):
            memberships[user, default: []].insert(conversation)
        case let .leave(user, conversation):
            memberships[user]?.remove(conversation)
            if memberships[user]?.isEmpty == true { memberships[user] = nil }
        }
    }

    package mutating func apply(_ batch: WriteBatch) {
        for operation in batch.operations { apply(operation) }
    }

    // MARK: Queries (the store's semantics, computed the obvious way)

    package func ascending(_ conversation: String) -> [Entry] { entries[conversation] ?? [] }

    package func ordered(_ conversation: String, _ order: Order) -> [Message] {
        let list = ascending(conversation).map(\.message)
        return order == .oldestFirst ? list : list.reversed()
    }

    package func latest(_ conversation: String, limit: Int) -> [Message] {
        Array(ordered(conversation, .newestFirst).prefix(limit))
    }

    package func messages(_ conversation: String, from: Int64, through: Int64, order: Order, limit: Int) -> [Message] {
        Array(ordered(conversation, order).filter { from <= $0.createdAt && $0.createdAt <= through }.prefix(limit))
    }

    package func page(_ conversation: String, offset: Int, limit: Int, order: Order) -> [Message] {
        Array(ordered(conversation, order).dropFirst(offset).prefix(limit))
    }

    package func count(_ conversation: String, after: Int64) -> Int {
        ascending(conversation).filter { $0.message.createdAt > after }.count
    }

    package func unread(user: String, _ conversation: String) -> Int {
        guard let marker = markers[user]?[conversation] else { return ascending(conversation).count }
        return ascending(conversation).filter { $0.position > marker }.count
    }

    package func feed(_ conversations: [String], limit: Int) -> [Message] {
        var all: [Entry] = []
        for conversation in Set(conversations) { all += ascending(conversation) }
        all.sort { $0.position > $1.position }
        return all.prefix(limit).map(\.message)
    }

    package func latestMessage(_ conversations: [String]) -> [Message?] {
        conversations.map { ascending($0).last?.message }
    }

    package func conversations(limit: Int) -> [ConversationSummary] {
        let all = entries.map { name, list in
            ConversationSummary(id: name, lastActivity: list.last!.message.createdAt, messageCount: list.count)
        }.sorted { a, b in
            if a.lastActivity != b.lastActivity { return a.lastActivity > b.lastActivity }
            return a.id.utf8.lexicographicallyPrecedes(b.id.utf8)
        }
        return Array(all.prefix(limit))
    }
}
