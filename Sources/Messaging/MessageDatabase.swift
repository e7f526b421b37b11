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
    /// `MessageDatabaseOptions.searchPostingsScannedPerSeek`.
    let searchPostingsScannedPerSeek: Int
    /// `MessageDatabaseOptions.searchDecodesPerProbe`.
    let searchDecodesPerProbe: Double
    let autoCompactGarbageRatio: Double?
    /// The store's cursor secret (counter 4), fixed at creation.
    let cursorSecret: UInt64
    /// Conversation and user name → internal id for committed names (`NameIDCache`).
    let conversationCache = NameIDCache(limit: MessageDatabase.cacheLimit)
    let userCache = NameIDCache(limit: MessageDatabase.cacheLimit)
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
        self.searchPostingsScannedPerSeek = options.searchPostingsScannedPerSeek
        self.searchDecodesPerProbe = options.searchDecodesPerProbe
        self.autoCompactGarbageRatio = options.autoCompactGarbageRatio
        self.cursorSecret = secret
    }

    // MARK: Open and close

    /// Opens or creates the store in `directory`. A non-empty directory holding neither a page
    /// file nor log segments is `.notAStore` (never written into); a store of a newer message
    /// format is `.unsupportedVersion` (`MessageSchema.checkFormat`). A new store gets its
    /// initialize record (format version, a random cursor secret) in its first commit.
    /// `acceptingLegacySearchIndex`: opens a store of format 3 too (the upgrade).
    package static func open(fileSystem: any FileSystem, directory: String, options: MessageDatabaseOptions,
                             acceptingLegacySearchIndex: Bool = false) throws -> MessageDatabase {
        try refuseInterruptedUpgrade(fileSystem: fileSystem, directory: directory)
        let engine = try StorageEngine.open(fileSystem: fileSystem, directory: directory, options: options.storage,
                                            schema: acceptingLegacySearchIndex ? MessageSchema.legacySearchSchema : MessageSchema.schema)
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
    /// hash and compares the real bytes stored in the conversation or user record (and its
    /// long-name chunks); collisions are handled. O(log n).
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
                    matches = NameValue.length(in: value, space) == bytes.count
                        && equalBytes(NameValue.inline(in: value, space),
                                      UnsafeRawBufferPointer(rebasing: bytes[0..<min(bytes.count, NameValue.inlineBytes)]))
                }
                if matches && bytes.count > NameValue.inlineBytes {
                    matches = try storedName(space, id: id, transaction) == name
                }
                if matches { return id }
                valid = try cursor.next()
            }
            return nil
        }
    }

    /// The stored name of conversation or user `id`, or nil when there is none.
    static func storedName(_ space: NameSpace, id: UInt64, _ transaction: PageTransaction) throws -> String? {
        var name: String? = nil
        try BTree(transaction, space == .conversation ? .conversations : .users).withValue(for: BTreeKey(id)) { value in
            name = try storedName(space, id: id, record: value, transaction)
        }
        return name
    }

    /// The name in `record` (the value of conversation or user `id`): its inline bytes, and
    /// for a name longer than 31 bytes the rest from the long-name tree.
    static func storedName(_ space: NameSpace, id: UInt64, record: UnsafeRawBufferPointer,
                           _ transaction: PageTransaction) throws -> String {
        let inline = NameValue.inline(in: record, space)
        let length = NameValue.length(in: record, space)
        if length <= inline.count { return String(decoding: inline, as: UTF8.self) }
        var bytes = Array(inline)
        let chunks = try BTree(transaction, .longNames)
        var chunk: UInt64 = 0
        while bytes.count < length {
            var found = false
            try chunks.withValue(for: LongNameKey(space: space, id: id, chunk: chunk).treeKey) { value in
                found = true
                bytes.append(contentsOf: value.prefix(min(LongName.chunkSize, length - bytes.count)))
            }
            guard found else {
                throw StorageError.corrupted(file: "pages", offset: 0, reason: "chunk \(chunk) of the long name of \(space) \(id) is missing")
            }
            chunk += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The conversation id of `name` in `transaction` (cached for committed conversations).
    func conversationID(_ name: String, in transaction: PageTransaction) throws -> UInt64? {
        try cachedID(name, in: NameSpace.conversation, transaction, cache: conversationCache)
    }

    func userID(_ name: String, in transaction: PageTransaction) throws -> UInt64? {
        try cachedID(name, in: NameSpace.user, transaction, cache: userCache)
    }

    private func cachedID(_ name: String, in space: NameSpace, _ transaction: PageTransaction,
                          cache: NameIDCache) throws -> UInt64? {
        if let id = cache.id(of: name) { return id }
        guard let id = try Self.lookupName(name, in: space, transaction) else { return nil }
        cache.insert(name, id: id)
        return id
    }

    /// The name of conversation `id`; `.corrupted` (naming `what` refers to it) when missing.
    func conversationName(_ id: UInt64, in transaction: PageTransaction, for what: @autoclosure () -> String) throws -> String {
        guard let name = try Self.storedName(.conversation, id: id, transaction) else {
            throw StorageError.corrupted(file: engine.pageFilePath, offset: 0, reason: what())
        }
        return name
    }

    // MARK: Message ids

    /// Where a live message with this id is, in `transaction`: its key and its messages-tree
    /// value. Checks the id index entry of the id's hash and its collision entries, comparing
    /// the stored id bytes.
    struct Located {
        var key: MessageKey
        var pointer: MessagePointer
    }

    func locate(id: String, in transaction: PageTransaction) throws -> Located? {
        var copy = id
        return try copy.withUTF8 { utf8 -> Located? in
            let bytes = UnsafeRawBufferPointer(utf8)
            let hash = Hash64.hash(bytes)
            var candidate: MessageKey? = nil
            try BTree(transaction, .messageIDs).withValue(for: MessageIDKey(idHash: hash).treeKey) { candidate = MessageIDValue($0).key }
            guard let first = candidate else { return nil }
            var reader = engine.recordReader(for: transaction)
            if let located = try located(first, idBytes: bytes, transaction, &reader) { return located }
            // Other ids with the same hash.
            var cursor = try BTree(transaction, .idCollisions).cursor()
            var valid = try cursor.seek(atLeast: MessageIDCollisionKey(idHash: hash, seq: 0).treeKey)
            while valid {
                var key: MessageKey? = nil
                try cursor.withCurrent { k, v in if k.w0 == hash { key = MessageIDValue(v).key } }
                guard let key else { return nil }
                if let located = try located(key, idBytes: bytes, transaction, &reader) { return located }
                valid = try cursor.next()
            }
            return nil
        }
    }

    /// The message at `key` when its id is `idBytes`.
    private func located(_ key: MessageKey, idBytes: UnsafeRawBufferPointer, _ transaction: PageTransaction,
                         _ reader: inout RecordReader) throws -> Located? {
        var pointer: MessagePointer? = nil
        try BTree(transaction, .messages).withValue(for: key.treeKey) { pointer = MessagePointer($0) }
        guard let pointer else {
            throw StorageError.corrupted(file: engine.pageFilePath, offset: 0,
                                         reason: "id index entry names message \(key), which does not exist")
        }
        let same = try withMessage(at: pointer.position, key: key, &reader) { body, record in
            Self.equalBytes(UnsafeRawBufferPointer(rebasing: record[body.idStart..<body.senderStart]), idBytes)
        }
        return same ? Located(key: key, pointer: pointer) : nil
    }

    /// Byte equality of two buffers (memcmp when both are non-empty).
    @inline(__always)
    static func equalBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        guard a.count > 0, let pa = a.baseAddress, let pb = b.baseAddress else { return true }
        return memcmp(pa, pb, a.count) == 0
    }

    // MARK: Records

    /// Calls `body` with the parsed body record of the message `key`, written at `position`
    /// (read from the log, or from its segment's run), checking the record is that message's.
    @inline(__always)
    func withMessage<R>(at position: LogPosition, key: MessageKey, _ reader: inout RecordReader,
                        _ body: (MessageBody, UnsafeRawBufferPointer) throws -> R) throws -> R {
        func fromRun(_ record: UnsafeRawBufferPointer) throws -> R {
            try body(try MessageBody.parse(record, "run record \(key) of log position \(LogPositions.describe(position))"), record)
        }
        // The usual case in one plain call; `withRecord` reads the log (and a run bound meanwhile).
        if let record = try reader.runPayload(at: position, key: key.runKey) { return try fromRun(record) }
        return try reader.withRecord(at: position, key: key.runKey) { stored in
            switch stored {
            case .run(let record):
                return try fromRun(record)
            case .log(let type, let payload):
                guard type == MessageRecordType.message.rawValue else {
                    throw MessageHeader.corrupted(position, 0, "record of type \(type) where a message was expected")
                }
                let header = try MessageHeader.parse(payload, position: position, offset: 0)
                guard header.key == key else {
                    throw MessageHeader.corrupted(position, 0, "record holds message \(header.key), expected \(key)")
                }
                return try body(header.body, MessageHeader.bodyRecord(of: payload))
            }
        }
    }

    /// Calls `visit` with a view of the message `key`, written at `position`.
    @inline(__always)
    func visitMessage(at position: LogPosition, key: MessageKey, conversation: String, _ reader: inout RecordReader,
                      _ visit: MessageVisitor) throws {
        try withUnsafePointer(to: conversation) { try visitMessage(at: position, key: key, conversation: $0, &reader, visit) }
    }

    /// `visitMessage` with the conversation's name pinned by the caller: a scan pins it once
    /// (`withUnsafePointer`), not once per message.
    @inline(__always)
    func visitMessage(at position: LogPosition, key: MessageKey, conversation: UnsafePointer<String>,
                      _ reader: inout RecordReader, _ visit: MessageVisitor) throws {
        try withMessage(at: position, key: key, &reader) { body, record in
            try visit(MessageView(key: key, body: body, record: record, conversation: conversation))
        }
    }
}

/// A message record seen in place (no copy): valid only during the call it is passed to.
/// The string accessors decode the UTF-8 bytes of the record.
///
/// The fields a read passes on per message are stored, computed once when the view is made:
/// the layer above reads them as fields (a package type's accessors are not inlined across
/// modules, and a call per field per message showed in profiles of the borrowing read).
package struct MessageView {
    package let key: MessageKey
    package let idBytes: UnsafeRawBufferPointer
    package let senderBytes: UnsafeRawBufferPointer
    package let bodyBytes: UnsafeRawBufferPointer
    /// The replied-to id's bytes (nil for none).
    package let replyToBytes: UnsafeRawBufferPointer?
    /// The metadata bytes (nil for none).
    package let metadataBytes: UnsafeRawBufferPointer?
    package let createdAt: Int64
    /// The kind byte, and `MessageFlags.edited` shifted left by 8 when set: one 32-bit word,
    /// stored and loaded whole. (Two byte fields were stored as bytes and loaded by the
    /// caller's code as one wider word, which the processor cannot forward from the stores
    /// just made: a stall per message in profiles of the borrowing read.)
    package let kindAndFlags: UInt32
    /// The conversation's name, held by the read that passes the view (no reference counting
    /// per message): valid during the call, as the bytes are.
    package let conversationPointer: UnsafePointer<String>

    /// The conversation's name.
    package var conversation: String { conversationPointer.pointee }
    package var kind: UInt8 { UInt8(truncatingIfNeeded: kindAndFlags) }
    package var edited: Bool { kindAndFlags & 1 << 8 != 0 }

    /// Calls `use` with a view of `record` (see the initializer) naming `conversation`.
    @inline(__always)
    package static func with<R>(key: MessageKey, body: MessageBody, record: UnsafeRawBufferPointer, conversation: String,
                                _ use: (MessageView) throws -> R) rethrows -> R {
        try withUnsafePointer(to: conversation) { try use(MessageView(key: key, body: body, record: record, conversation: $0)) }
    }

    /// A view of `record`, the body record (from the kind byte on) that `body` was parsed from,
    /// in the conversation `conversation` names (which must outlive the view).
    @inline(__always)
    package init(key: MessageKey, body: MessageBody, record: UnsafeRawBufferPointer, conversation: UnsafePointer<String>) {
        func bytes(_ start: Int, _ end: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: record[start..<end]) }
        self.key = key
        idBytes = bytes(body.idStart, body.senderStart)
        senderBytes = bytes(body.senderStart, body.replyToStart)
        bodyBytes = bytes(body.textStart, body.end)
        replyToBytes = body.replyToLength == 0 ? nil : bytes(body.replyToStart, body.metadataStart)
        metadataBytes = body.metadataLength == 0 ? nil : bytes(body.metadataStart, body.textStart)
        createdAt = Int64(key.createdAt)
        kindAndFlags = UInt32(body.kind) | (body.flags & MessageFlags.edited != 0 ? 1 << 8 : 0)
        conversationPointer = conversation
    }

    package var id: String { String(decoding: idBytes, as: UTF8.self) }
    package var sender: String { String(decoding: senderBytes, as: UTF8.self) }
    package var replyTo: String? { replyToBytes.map { String(decoding: $0, as: UTF8.self) } }
    package var text: String { String(decoding: bodyBytes, as: UTF8.self) }
    package var metadata: [UInt8]? { metadataBytes.map { Array($0) } }
    package var seq: UInt64 { key.seq }

    package var stored: StoredMessage {
        StoredMessage(id: id, conversation: conversation, sender: sender, createdAt: createdAt, kind: kind, body: text,
                      replyTo: replyTo, edited: edited, metadata: metadata)
    }
}

/// Receives each message of a query, in order.
package typealias MessageVisitor = (MessageView) throws -> Void

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
