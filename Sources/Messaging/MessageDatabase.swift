import ScrollbackBTree
import ScrollbackStorage
import Synchronization

/// The message layer: conversations, the message-id index, read markers, queries and
/// compaction, over one `StorageEngine` (spec/message-records.md).
///
/// Writes validate against the writer's view of the trees and encode log records in the
/// engine's `prepare` step; `MessageSchema.apply` turns them into tree changes (for live
/// commits and recovery alike). Reads run on one snapshot each and never wait for writers.
///
/// The concerns live in one file each: name and id lookups and record access here, queries
/// (+Read), the conversation list (+Conversations), writes (+Write), compaction
/// (+Compaction), statistics and backup (+Operations), verify (+Verify).
///
/// Thread-safety: every method may be called from any thread.
package final class MessageDatabase: Sendable {
    /// The storage engine (its named operations only; white-box tests reach it too).
    package let engine: StorageEngine
    package let directory: String
    let fileSystem: any FileSystem
    package let maxBodyBytes: Int
    let autoCompactGarbageRatio: Double?
    /// The store's cursor secret (counter 4), fixed at creation.
    let cursorSecret: UInt64
    /// Conversation name → internal id for committed conversations. Ids are never reused or
    /// removed, so an entry never becomes wrong; a snapshot older than the conversation simply
    /// finds no messages under its id.
    let conversationCache = Lock<[String: UInt64]>([:])
    let userCache = Lock<[String: UInt64]>([:])
    static let cacheLimit = 1 << 17
    /// Serializes compactions (explicit and automatic).
    let compactionLock = Lock(())
    let compactionBytes = Lock<(before: UInt64, after: UInt64)>((0, 0))
    let writesSincePolicyCheck = Atomic<Int>(0)
    let compactionRunning = Atomic<Bool>(false)

    init(engine: StorageEngine, directory: String, fileSystem: any FileSystem, options: MessageDatabaseOptions,
                 secret: UInt64) {
        self.engine = engine
        self.directory = directory
        self.fileSystem = fileSystem
        self.maxBodyBytes = options.maxBodyBytes
        self.autoCompactGarbageRatio = options.autoCompactGarbageRatio
        self.cursorSecret = secret
    }

    // MARK: Open and close

    /// Opens or creates the store in `directory`. A non-empty directory holding neither a page
    /// file nor log segments is `.notAStore` (never written into); a store of a newer message
    /// format is `.unsupportedVersion` (`MessageSchema.checkFormat`). A new store gets its
    /// initialize record (format version, a random cursor secret) in its first commit.
    package static func open(fileSystem: any FileSystem, directory: String, options: MessageDatabaseOptions) throws
        -> MessageDatabase {
        let engine = try StorageEngine.open(fileSystem: fileSystem, directory: directory, options: options.storage,
                                            schema: MessageSchema.schema)
        do {
            if engine.committedState[counter: .formatVersion] == 0 {
                var generator = SystemRandomNumberGenerator()
                var secret: UInt64 = 0
                while secret == 0 { secret = generator.next() }
                let initialize = InitializeRecord(formatVersion: MessageLimits.formatVersion, cursorSecret: secret)
                try engine.commit { _, batch in try initialize.append(into: &batch) }
                try engine.checkpoint()
            }
            return MessageDatabase(engine: engine, directory: directory, fileSystem: fileSystem, options: options,
                                   secret: engine.committedState[counter: .cursorSecret])
        } catch {
            try? engine.close()
            throw error
        }
    }

    package func close() throws {
        try engine.close()
    }

    /// Whether `path` holds a store (a page file), as `StorageEngine.open` decides it.
    package static func storeExists(fileSystem: any FileSystem, at path: String) -> Bool {
        StoreDirectory.inspect(fileSystem: fileSystem, directory: path).kind == .store
    }

    // MARK: Name lookups

    /// The internal id of a name in `space`, or nil. Scans every names entry with the name's
    /// hash and compares the real bytes stored in the conversation or user record
    /// (collisions are handled). O(log n).
    static func lookupName(_ name: String, in space: NameSpace, _ transaction: PageTransaction) throws -> UInt64? {
        let names = try BTree(transaction, .names)
        let records = try BTree(transaction, space == .conversation ? .conversations : .users)
        var copy = name
        return try copy.withUTF8 { utf8 -> UInt64? in
            let bytes = UnsafeRawBufferPointer(utf8)
            let hash = Hash64.hash(bytes)
            var cursor = names.cursor()
            var valid = try cursor.seek(atLeast: NameKey(space: space, nameHash: hash, id: 0).treeKey)
            while valid {
                guard let key = try cursor.key(), key.w0 == space.rawValue, key.w1 == hash else { return nil }
                let id = key.w2
                var matches = false
                try records.withValue(for: BTreeKey(id)) { value in
                    let stored = space == .conversation ? ConversationRecord.nameBytes(in: value) : UserRecord.nameBytes(in: value)
                    matches = Self.equalBytes(stored, bytes)
                }
                if matches { return id }
                valid = try cursor.next()
            }
            return nil
        }
    }

    /// The conversation id of `name` in `transaction` (cached for committed conversations).
    func conversationID(_ name: String, in transaction: PageTransaction) throws -> UInt64? {
        try cachedID(name, in: NameSpace.conversation, transaction, cache: conversationCache)
    }

    func userID(_ name: String, in transaction: PageTransaction) throws -> UInt64? {
        try cachedID(name, in: NameSpace.user, transaction, cache: userCache)
    }

    private func cachedID(_ name: String, in space: NameSpace, _ transaction: PageTransaction,
                          cache: borrowing Lock<[String: UInt64]>) throws -> UInt64? {
        if let id = cache.withLock({ $0[name] }) { return id }
        guard let id = try Self.lookupName(name, in: space, transaction) else { return nil }
        cache.withLock { cache in
            if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[name] = id
        }
        return id
    }

    /// The name of conversation `id`; `.corrupted` (naming `what` refers to it) when missing.
    func conversationName(_ id: UInt64, in transaction: PageTransaction, for what: @autoclosure () -> String) throws -> String {
        var name: String? = nil
        try BTree(transaction, .conversations).withValue(for: ConversationKey(id).treeKey) { name = ConversationRecord.name(in: $0) }
        guard let name else {
            throw StorageError.corrupted(file: engine.pageFilePath, offset: 0, reason: what())
        }
        return name
    }

    // MARK: Message ids

    /// Where a live message with this id is, in `transaction`: its key and its messages-tree
    /// value. Scans the id index entries with the id's hash and compares the stored id bytes.
    struct Located {
        var key: MessageKey
        var pointer: MessagePointer
    }

    func locate(id: String, in transaction: PageTransaction) throws -> Located? {
        let ids = try BTree(transaction, .messageIDs)
        let messages = try BTree(transaction, .messages)
        var copy = id
        return try copy.withUTF8 { utf8 -> Located? in
            let bytes = UnsafeRawBufferPointer(utf8)
            let hash = Hash64.hash(bytes)
            var cursor = ids.cursor()
            var valid = try cursor.seek(atLeast: MessageIDKey(idHash: hash, seq: 0).treeKey)
            while valid {
                var found: (MessageIDKey, MessageIDValue)? = nil
                try cursor.withCurrent { key, value in
                    if key.w0 == hash { found = (MessageIDKey(key), MessageIDValue(value)) }
                }
                guard let (idKey, idValue) = found else { return nil }
                let messageKey = idValue.messageKey(seq: idKey.seq)
                var pointer: MessagePointer? = nil
                try messages.withValue(for: messageKey.treeKey) { pointer = MessagePointer($0) }
                guard let pointer else {
                    throw StorageError.corrupted(file: engine.pageFilePath, offset: 0,
                                                 reason: "id index entry \(idKey) names message \(messageKey), which does not exist")
                }
                let same = try withMessageRecord(at: pointer.position) { header, payload in
                    header.idLength == bytes.count
                        && Self.equalBytes(UnsafeRawBufferPointer(rebasing: payload[header.idStart..<header.senderStart]), bytes)
                }
                if same { return Located(key: messageKey, pointer: pointer) }
                valid = try cursor.next()
            }
            return nil
        }
    }

    /// Byte equality of two buffers (memcmp when both are non-empty).
    @inline(__always)
    static func equalBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        guard a.count > 0, let pa = a.baseAddress, let pb = b.baseAddress else { return true }
        return memcmp(pa, pb, a.count) == 0
    }

    // MARK: Records

    /// Calls `body` with the parsed header and the message payload of the message record at
    /// `position` (a compaction copy is presented without its prefix).
    @inline(__always)
    func withMessageRecord<R>(at position: LogPosition, _ body: (MessageHeader, UnsafeRawBufferPointer) throws -> R) throws -> R {
        try engine.withRecord(at: position) { type, payload in
            let (header, message) = try MessageRecord.message(type: type, payload: payload, position: position)
            return try body(header, message)
        }
    }

    /// Calls `visit` with a view of the message at `position`, checking that it belongs to `key`.
    @inline(__always)
    func visitMessage(at position: LogPosition, key: MessageKey, conversation: String, _ visit: MessageVisitor) throws {
        try engine.withRecord(at: position) { type, payload in
            let (header, message) = try MessageRecord.message(type: type, payload: payload, position: position)
            guard header.key == key else {
                throw MessageHeader.corrupted(position, 0, "record holds message \(header.conversation)/\(header.createdAt)/\(header.seq), expected \(key)")
            }
            try visit(MessageView(header: header, payload: message, conversation: conversation))
        }
    }

    static func makeMessage(_ header: MessageHeader, _ payload: UnsafeRawBufferPointer, conversation: String) -> StoredMessage {
        MessageView(header: header, payload: payload, conversation: conversation).stored
    }
}

/// A message record seen in place (no copy): valid only during the call it is passed to.
/// The string accessors decode the UTF-8 bytes of the record.
package struct MessageView {
    package let header: MessageHeader
    package let payload: UnsafeRawBufferPointer
    package let conversation: String

    package var id: String {
        String(decoding: UnsafeRawBufferPointer(rebasing: payload[header.idStart..<header.senderStart]), as: UTF8.self)
    }
    package var sender: String {
        String(decoding: UnsafeRawBufferPointer(rebasing: payload[header.senderStart..<header.replyToStart]), as: UTF8.self)
    }
    package var replyTo: String? {
        header.replyToLength == 0 ? nil
            : String(decoding: UnsafeRawBufferPointer(rebasing: payload[header.replyToStart..<header.bodyStart]), as: UTF8.self)
    }
    package var body: String {
        String(decoding: UnsafeRawBufferPointer(rebasing: payload[header.bodyStart..<(header.bodyStart + header.bodyLength)]),
               as: UTF8.self)
    }
    package var createdAt: Int64 { Int64(header.createdAt) }
    package var kind: UInt8 { header.kind }
    package var edited: Bool { header.flags & MessageFlags.edited != 0 }
    package var seq: UInt64 { header.seq }

    package var stored: StoredMessage {
        StoredMessage(id: id, conversation: conversation, sender: sender, createdAt: createdAt, kind: kind, body: body,
                      replyTo: replyTo, edited: edited)
    }
}

/// Receives each message of a query, in order.
package typealias MessageVisitor = (MessageView) throws -> Void

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
