import ScrollbackStorage

/// Errors of the message layer that the storage core does not know. The public module maps
/// them (and `StorageError`) to `ScrollbackError` in one place.
package enum MessagingError: Error, Equatable, Sendable {
    case invalidArgument(argument: String, reason: String)
    case notFound(String)
    case invalidCursor(String)
    /// An append names an id that a live message of another conversation has.
    case idConflict(id: String, conversation: String)
    case unsupportedVersion(path: String, found: UInt32, supported: UInt32)
}

/// A message as the message layer reads and writes it (the public `Message` without the
/// public type). `kind` is the on-disk kind byte (1…6).
package struct StoredMessage: Sendable, Hashable {
    package var id: String
    package var conversation: String
    package var sender: String
    package var createdAt: Int64
    package var kind: UInt8
    package var body: String
    package var replyTo: String?
    package var edited: Bool
    /// Opaque bytes the application attaches (nil or empty: none).
    package var metadata: [UInt8]?

    package init(id: String, conversation: String, sender: String, createdAt: Int64, kind: UInt8, body: String,
                 replyTo: String?, edited: Bool, metadata: [UInt8]? = nil) {
        self.metadata = metadata
        self.id = id
        self.conversation = conversation
        self.sender = sender
        self.createdAt = createdAt
        self.kind = kind
        self.body = body
        self.replyTo = replyTo
        self.edited = edited
    }
}

/// One operation of an atomic write.
package enum WriteOperation: Sendable {
    case append(StoredMessage)
    case edit(id: String, body: String)
    case delete(id: String)
    case markRead(user: String, conversation: String, through: String)
    case join(user: String, conversation: String)
    case leave(user: String, conversation: String)
    /// Sets the replica mark (counters 9 and 10) in the same commit as the batch's other
    /// operations (`MessageStore.apply(_:mark:)`).
    case replicaMark(source: UInt64, sequence: UInt64)
}

/// A conversation of the conversation list.
package struct ConversationEntry: Sendable, Hashable {
    package var name: String
    package var lastActivity: Int64
    package var messageCount: Int
}

/// Options of a `MessageDatabase`.
package struct MessageDatabaseOptions: Sendable {
    package var storage = StorageOptions()
    package var maxBodyBytes = ArgumentLimits.defaultBodyBytes
    package var autoCompactGarbageRatio: Double? = 0.5
    /// A scoped search walks its rarest term's postings forward through the scope's
    /// conversations (rounds of the newest, checked a round at once) instead of seeking each
    /// conversation's newest when the term has at most this many postings per seek the merge
    /// would make. Tests set 0 (always merge) or a huge value (always walk).
    package var searchPostingsScannedPerSeek = 128
    /// A search whose two rarest terms are single terms checks its candidates by a merge of
    /// their postings (skipping by seeks) instead of probing each candidate when the merge
    /// decodes fewer postings than this many per probe it saves (a probe: a descent and part
    /// of a block). Tests set 0 (always probe) or a huge value (always merge).
    package var searchDecodesPerProbe: Double = 70
    package init() {}
}

/// Counters of a `MessageDatabase`.
package struct MessageDatabaseStatistics: Sendable {
    package var messages: Int
    package var conversations: Int
    package var pageFileBytes: UInt64
    package var rawLogBytes: UInt64
    package var sealedLogBytes: UInt64
    package var garbageRatio: Double
    package var storage: StorageEngine.Statistics
    package var compactions: UInt64
    package var lastCompactionBytesBefore: UInt64
    package var lastCompactionBytesAfter: UInt64
}

/// What one compaction did.
package struct CompactionSummary: Sendable, Equatable {
    /// Runs merged away and segments retired.
    package var segmentsRewritten = 0
    /// Records written into merged runs.
    package var recordsMoved = 0
    /// Bytes of the log and the runs before and after.
    package var logBytesBefore: UInt64 = 0
    package var logBytesAfter: UInt64 = 0
    /// Bytes of the page file before and after (an explicit compaction returns its free
    /// space: `StorageEngine.compactPageFile`).
    package var pageFileBytesBefore: UInt64 = 0
    package var pageFileBytesAfter: UInt64 = 0
}
