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

    private init(engine: StorageEngine, directory: String, fileSystem: any FileSystem, options: MessageDatabaseOptions,
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
    /// format is `.unsupportedVersion` (`MessageSchema.checkState`).
    package static func open(fileSystem: any FileSystem, directory: String, options: MessageDatabaseOptions) throws
        -> MessageDatabase {
        let engine = try StorageEngine.open(fileSystem: fileSystem, directory: directory, options: options.storage,
                                            schema: MessageSchema.schema)
        do {
            var counters = engine.committedState.counters
            if counters[MessageCounter.formatVersion] == 0 {
                var generator = SystemRandomNumberGenerator()
                var secret: UInt64 = 0
                while secret == 0 { secret = generator.next() }
                try engine.commit { _, batch in
                    try batch.append(type: MessageRecordType.initialize, payloadCount: MessageRecordLayout.initializePayloadSize) {
                        $0.storeLE(MessageLimits.formatVersion, at: 0)
                        $0.storeLE(secret, at: 8)
                    }
                }
                try engine.checkpoint()
                counters = engine.committedState.counters
            }
            return MessageDatabase(engine: engine, directory: directory, fileSystem: fileSystem, options: options,
                                   secret: counters[MessageCounter.cursorSecret])
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

    /// The internal id of a name in `namespace`, or nil. Scans every entry with the name's
    /// hash and compares the real bytes (collisions are handled). O(log n).
    static func lookupName(_ name: String, namespace: UInt64, in transaction: PageTransaction) throws -> UInt64? {
        let names = try BTree(transaction, slot: MessageTree.names)
        let isConversation = namespace == MessageValueLayout.conversationNamespace
        let target = try BTree(transaction, slot: isConversation ? MessageTree.conversations : MessageTree.users)
        let nameOffset = isConversation ? MessageValueLayout.conversationNameOffset : MessageValueLayout.userNameOffset
        var copy = name
        return try copy.withUTF8 { utf8 -> UInt64? in
            let bytes = UnsafeRawBufferPointer(utf8)
            let hash = Hash64.hash(bytes)
            var cursor = names.cursor()
            var valid = try cursor.seek(atLeast: BTreeKey(namespace, hash, 0))
            while valid {
                guard let key = try cursor.key(), key.w0 == namespace, key.w1 == hash else { return nil }
                var matches = false
                try target.withValue(for: BTreeKey(key.w2)) { value in
                    let length = Int(value[nameOffset - 1])
                    matches = length == bytes.count && nameOffset + length <= value.count
                        && Self.equalBytes(UnsafeRawBufferPointer(rebasing: value[nameOffset..<(nameOffset + length)]), bytes)
                }
                if matches { return key.w2 }
                valid = try cursor.next()
            }
            return nil
        }
    }

    /// The conversation id of `name` in `transaction` (cached for committed conversations).
    func conversationID(_ name: String, in transaction: PageTransaction) throws -> UInt64? {
        if let id = conversationCache.withLock({ $0[name] }) { return id }
        guard let id = try Self.lookupName(name, namespace: MessageValueLayout.conversationNamespace, in: transaction) else {
            return nil
        }
        conversationCache.withLock { cache in
            if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[name] = id
        }
        return id
    }

    func userID(_ name: String, in transaction: PageTransaction) throws -> UInt64? {
        if let id = userCache.withLock({ $0[name] }) { return id }
        guard let id = try Self.lookupName(name, namespace: MessageValueLayout.userNamespace, in: transaction) else {
            return nil
        }
        userCache.withLock { cache in
            if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[name] = id
        }
        return id
    }

    /// The name stored in a conversation's slot-3 value.
    static func conversationName(_ value: UnsafeRawBufferPointer) -> String {
        let length = min(Int(value[MessageValueLayout.conversationNameOffset - 1]), MessageLimits.maxNameBytes)
        let start = MessageValueLayout.conversationNameOffset
        return String(decoding: UnsafeRawBufferPointer(rebasing: value[start..<(start + length)]), as: UTF8.self)
    }

    // MARK: Message ids

    /// Where a live message with this id is, in `transaction`: its key and its slot-0 value
    /// fields. Scans the id index entries with the id's hash and compares the stored id bytes.
    struct Located {
        var key: BTreeKey
        var position: UInt64
        var length: UInt32
        var kind: UInt8
        var flags: UInt8
    }

    func locate(id: String, in transaction: PageTransaction) throws -> Located? {
        let ids = try BTree(transaction, slot: MessageTree.messageIDs)
        let messages = try BTree(transaction, slot: MessageTree.messages)
        var copy = id
        return try copy.withUTF8 { utf8 -> Located? in
            let bytes = UnsafeRawBufferPointer(utf8)
            let hash = Hash64.hash(bytes)
            var cursor = ids.cursor()
            var valid = try cursor.seek(atLeast: BTreeKey(hash, 0))
            while valid {
                var found: (BTreeKey, UInt64, UInt64)? = nil
                try cursor.withCurrent { key, value in
                    if key.w0 == hash { found = (key, value.loadLE(UInt64.self, at: 0), value.loadLE(UInt64.self, at: 8)) }
                }
                guard let (key, conversation, createdAt) = found else { return nil }
                let messageKey = BTreeKey(conversation, createdAt, key.w1)
                var located: Located? = nil
                try messages.withValue(for: messageKey) { v in
                    located = Located(key: messageKey, position: v.loadLE(UInt64.self, at: MessageValueLayout.positionOffset),
                                      length: v.loadLE(UInt32.self, at: MessageValueLayout.lengthOffset),
                                      kind: v[MessageValueLayout.kindOffset], flags: v[MessageValueLayout.flagsOffset])
                }
                guard let located else {
                    throw StorageError.corrupted(file: engine.pageFilePath, offset: 0,
                                                 reason: "id index entry \(key) names message \(messageKey), which does not exist")
                }
                let same = try withMessagePayload(at: located.position) { header, payload in
                    header.idLength == bytes.count
                        && Self.equalBytes(UnsafeRawBufferPointer(rebasing: payload[header.idStart..<header.senderStart]), bytes)
                }
                if same { return located }
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

    /// Calls `body` with the parsed header and the type-16 payload of the message record at
    /// `position` (a type-21 record is presented without its prefix).
    func withMessagePayload<R>(at position: UInt64, _ body: (MessageHeader, UnsafeRawBufferPointer) throws -> R) throws -> R {
        try engine.withRecord(at: position) { type, payload in
            let message: UnsafeRawBufferPointer
            switch type {
            case MessageRecordType.message:
                message = payload
            case MessageRecordType.relocate where payload.count >= MessageRecordLayout.relocatePrefix:
                message = UnsafeRawBufferPointer(rebasing: payload[MessageRecordLayout.relocatePrefix...])
            default:
                throw MessageHeader.corrupted(position, 0, "record of type \(type) where a message was expected")
            }
            let header = try MessageHeader.parse(message, position: position, offset: 0)
            return try body(header, message)
        }
    }

    /// Calls `visit` with a view of the message at `position`, checking that it belongs to `key`.
    @inline(__always)
    func visitMessage(at position: UInt64, key: BTreeKey, conversation: String, _ visit: MessageVisitor) throws {
        try engine.withRecord(at: position) { type, payload in
            let message: UnsafeRawBufferPointer
            if type == MessageRecordType.message {
                message = payload
            } else if type == MessageRecordType.relocate && payload.count >= MessageRecordLayout.relocatePrefix {
                message = UnsafeRawBufferPointer(rebasing: payload[MessageRecordLayout.relocatePrefix...])
            } else {
                throw MessageHeader.corrupted(position, 0, "record of type \(type) where a message was expected")
            }
            let header = try MessageHeader.parse(message, position: position, offset: 0)
            guard header.conversation == key.w0, header.createdAt == key.w1, header.seq == key.w2 else {
                throw MessageHeader.corrupted(position, 0, "record holds message \(header.conversation)/\(header.createdAt)/\(header.seq), expected \(key)")
            }
            try visit(MessageView(header: header, payload: message, conversation: conversation))
        }
    }

    /// Decodes the message at `position` into a `StoredMessage`.
    func decodeMessage(at position: UInt64, key: BTreeKey, conversation: String) throws -> StoredMessage {
        var result: StoredMessage? = nil
        try visitMessage(at: position, key: key, conversation: conversation) { result = $0.stored }
        guard let result else { throw MessageHeader.corrupted(position, 0, "record not decoded") }
        return result
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
