import ScrollbackBTree

// The keys of the message layer's trees (spec/message-records.md, "Trees"), each converting
// to and from the B+tree's words in one place. Their descriptions are the tree key's, so
// errors and verify reports read as before.

/// A message's place in the messages tree: its conversation's history in time order, equal
/// times in insertion order (`seq`).
package struct MessageKey: Hashable, Sendable, CustomStringConvertible {
    package var conversation: UInt64
    package var createdAt: UInt64
    package var seq: UInt64

    @inline(__always)
    package init(conversation: UInt64, createdAt: UInt64, seq: UInt64) {
        self.conversation = conversation
        self.createdAt = createdAt
        self.seq = seq
    }

    @inline(__always)
    package init(_ key: BTreeKey) {
        self.init(conversation: key.w0, createdAt: key.w1, seq: key.w2)
    }

    @inline(__always)
    package var treeKey: BTreeKey { BTreeKey(conversation, createdAt, seq) }

    /// Before every message of `conversation`.
    static func first(of conversation: UInt64) -> MessageKey { MessageKey(conversation: conversation, createdAt: 0, seq: 0) }
    /// After every message of `conversation`.
    static func last(of conversation: UInt64) -> MessageKey { MessageKey(conversation: conversation, createdAt: .max, seq: .max) }

    /// Whether this position comes after `other` in the conversation's order.
    func isAfter(_ other: MessageKey) -> Bool {
        createdAt > other.createdAt || (createdAt == other.createdAt && seq > other.seq)
    }

    package var description: String { treeKey.description }
}

/// An entry of the message-id index: the id's hash and the message's seq (several ids may
/// share a hash: a lookup compares the id bytes of the record).
package struct MessageIDKey: Hashable, Sendable, CustomStringConvertible {
    package var idHash: UInt64
    package var seq: UInt64

    package init(idHash: UInt64, seq: UInt64) {
        self.idHash = idHash
        self.seq = seq
    }

    package init(_ key: BTreeKey) { self.init(idHash: key.w0, seq: key.w1) }

    package var treeKey: BTreeKey { BTreeKey(idHash, seq) }
    package var description: String { treeKey.description }
}

/// The two name spaces of the names tree. on disk: never renumber.
package enum NameSpace: UInt64, Sendable {
    case conversation = 1
    case user = 2
}

/// An entry of the names tree: (name space, hash of the name, internal id).
package struct NameKey: Hashable, Sendable, CustomStringConvertible {
    package var space: NameSpace
    package var nameHash: UInt64
    package var id: UInt64

    package init(space: NameSpace, nameHash: UInt64, id: UInt64) {
        self.space = space
        self.nameHash = nameHash
        self.id = id
    }

    package var treeKey: BTreeKey { BTreeKey(space.rawValue, nameHash, id) }
    package var description: String { treeKey.description }
}

/// A conversation's record in the conversations tree (its internal id).
package struct ConversationKey: Hashable, Sendable {
    package var id: UInt64
    package init(_ id: UInt64) { self.id = id }
    package init(_ key: BTreeKey) { id = key.w0 }
    package var treeKey: BTreeKey { BTreeKey(id) }
}

/// A user's record in the users tree (its internal id).
package struct UserKey: Hashable, Sendable {
    package var id: UInt64
    package init(_ id: UInt64) { self.id = id }
    package var treeKey: BTreeKey { BTreeKey(id) }
}

/// An entry of the activity index: a conversation with live messages, at the `createdAt` of
/// its newest one.
package struct ActivityKey: Hashable, Sendable {
    package var newestCreatedAt: UInt64
    package var conversation: UInt64

    package init(newestCreatedAt: UInt64, conversation: UInt64) {
        self.newestCreatedAt = newestCreatedAt
        self.conversation = conversation
    }

    package init(_ key: BTreeKey) { self.init(newestCreatedAt: key.w0, conversation: key.w1) }

    package var treeKey: BTreeKey { BTreeKey(newestCreatedAt, conversation) }
}

/// A user's read marker in a conversation.
package struct MarkerKey: Hashable, Sendable {
    package var user: UInt64
    package var conversation: UInt64

    package init(user: UInt64, conversation: UInt64) {
        self.user = user
        self.conversation = conversation
    }

    package var treeKey: BTreeKey { BTreeKey(user, conversation) }
}
