import Scrollback

// The data layout of the two key-value peers (LMDB and RocksDB): what a user of an ordered
// key-value store would write for a chat history. Both engines use exactly these tables
// (LMDB named databases, RocksDB column families) and byte formats, so they differ only in
// the store underneath.
//
//   messages       (conversation id u64, createdAt u64, seq u64), big-endian (24 bytes)
//                  → value record (below)
//   ids            message id (UTF-8) → the 24-byte message key
//   conversations  conversation name (UTF-8) → ConversationRecord (32 bytes)
//   activity       (~lastActivity u64 big-endian, conversation name) → live count (u64):
//                  the conversation list, newest activity first, ties by name ascending
//   names          conversation id u64 big-endian → conversation name (for get by id)
//   markers        (user length u8, user, conversation name) → (createdAt, seq) of the
//                  marked message (16 bytes)
//   meta           "cid" → next conversation id (u64)
//
// `seq` is the conversation's insertion counter: (createdAt, seq) orders a conversation the
// way Scrollback does (createdAt, then insertion order). The generated timestamps are unique
// across the dataset, so no two conversations tie on createdAt and a feed merged on
// (createdAt, seq) is in the same order as Scrollback's.

enum KVTable: Int, CaseIterable {
    case messages, ids, conversations, activity, names, markers, meta

    var name: String {
        switch self {
        case .messages: "messages"
        case .ids: "ids"
        case .conversations: "conversations"
        case .activity: "activity"
        case .names: "names"
        case .markers: "markers"
        case .meta: "meta"
        }
    }
}

/// A failed call into LMDB or RocksDB.
struct KVError: Error, CustomStringConvertible {
    var engine: String
    var message: String
    var description: String { "\(engine): \(message)" }
}

enum KV {
    static let keySize = 24
    static let metaNextConversationID: [UInt8] = Array("cid".utf8)

    @inline(__always)
    static func storeBE(_ value: UInt64, _ p: UnsafeMutableRawPointer, _ offset: Int) {
        p.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt64.self)
    }

    @inline(__always)
    static func loadBE(_ p: UnsafeRawPointer, _ offset: Int) -> UInt64 {
        UInt64(bigEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    @inline(__always)
    static func storeLE(_ value: UInt64, _ p: UnsafeMutableRawPointer, _ offset: Int) {
        p.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt64.self)
    }

    @inline(__always)
    static func loadLE(_ p: UnsafeRawPointer, _ offset: Int) -> UInt64 {
        UInt64(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// Writes the 24-byte message key into `p`.
    @inline(__always)
    static func messageKey(_ p: UnsafeMutableRawPointer, cid: UInt64, createdAt: UInt64, seq: UInt64) {
        storeBE(cid, p, 0)
        storeBE(createdAt, p, 8)
        storeBE(seq, p, 16)
    }

    static func messageKey(cid: UInt64, createdAt: UInt64, seq: UInt64) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: keySize) { b, n in
            messageKey(UnsafeMutableRawPointer(b.baseAddress!), cid: cid, createdAt: createdAt, seq: seq)
            n = keySize
        }
    }

    static func u64BE(_ v: UInt64) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 8) { b, n in
            storeBE(v, UnsafeMutableRawPointer(b.baseAddress!), 0)
            n = 8
        }
    }

    static func u64LE(_ v: UInt64) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 8) { b, n in
            storeLE(v, UnsafeMutableRawPointer(b.baseAddress!), 0)
            n = 8
        }
    }

    static func activityKey(lastActivity: Int64, conversation: String) -> [UInt8] {
        var key = u64BE(~UInt64(bitPattern: lastActivity))
        key.append(contentsOf: conversation.utf8)
        return key
    }

    static func markerKey(user: String, conversation: String) -> [UInt8] {
        var key: [UInt8] = [UInt8(truncatingIfNeeded: min(255, user.utf8.count))]
        key.append(contentsOf: user.utf8.prefix(255))
        key.append(contentsOf: conversation.utf8)
        return key
    }

    // MARK: Value record

    // kind u8, flags u8 (1: edited, 2: has replyTo), then LEB128 length + UTF-8 bytes of id,
    // sender, body and (if flagged) replyTo. The conversation and createdAt are in the key.

    @inline(__always)
    static func appendVarint(_ value: Int, to out: inout [UInt8]) {
        var v = UInt(value)
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    static func appendField(_ s: String, to out: inout [UInt8]) {
        var copy = s
        copy.withUTF8 { bytes in
            appendVarint(bytes.count, to: &out)
            out.append(contentsOf: bytes)
        }
    }

    static func encodeValue(_ m: Message, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        out.append(m.kind.rawValue)
        out.append((m.edited ? 1 : 0) | (m.replyTo != nil ? 2 : 0))
        appendField(m.id, to: &out)
        appendField(m.sender, to: &out)
        appendField(m.body, to: &out)
        if let r = m.replyTo { appendField(r, to: &out) }
    }

    /// The fields of a message value in place: kind, flags, then id, sender, body and replyTo
    /// (when flag bit 1 is set), each behind its varint length. Views into `value`.
    @inline(__always)
    static func withFields<R>(_ value: UnsafeRawBufferPointer,
                              _ body: (_ kind: UInt8, _ flags: UInt8, _ id: UnsafeRawBufferPointer, _ sender: UnsafeRawBufferPointer,
                                       _ text: UnsafeRawBufferPointer, _ replyTo: UnsafeRawBufferPointer?) -> R) -> R {
        let base = value.baseAddress!
        var offset = 2
        @inline(__always) func field() -> UnsafeRawBufferPointer {
            var length = 0
            var shift = 0
            while true {
                let b = base.load(fromByteOffset: offset, as: UInt8.self)
                offset += 1
                length |= Int(b & 0x7f) << shift
                if b < 0x80 { break }
                shift += 7
            }
            defer { offset += length }
            return UnsafeRawBufferPointer(start: base + offset, count: length)
        }
        let kind = base.load(as: UInt8.self)
        let flags = base.load(fromByteOffset: 1, as: UInt8.self)
        let id = field()
        let sender = field()
        let text = field()
        let replyTo = flags & 2 != 0 ? field() : nil
        return body(kind, flags, id, sender, text, replyTo)
    }

    /// The fields of a message value hashed in place (`BorrowedDigest`), no copy.
    static func digest(key: UnsafeRawPointer, value: UnsafeRawBufferPointer, into digest: inout BorrowedDigest) {
        withFields(value) { kind, flags, id, sender, text, _ in
            digest.add(id: id, sender: sender, body: text, createdAt: Int64(bitPattern: loadBE(key, 8)), kind: kind, edited: flags & 1 != 0)
        }
    }

    /// Builds the Swift value from a key and a value record (one String per field; the
    /// conversation String is the caller's).
    @inline(__always)
    static func decode(key: UnsafeRawPointer, value: UnsafeRawBufferPointer, conversation: String) -> Message {
        withFields(value) { kind, flags, id, sender, text, replyTo in
            func string(_ bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes, as: UTF8.self) }
            return Message(
                id: string(id), conversation: conversation, sender: string(sender), createdAt: Int64(bitPattern: loadBE(key, 8)),
                kind: MessageKind(rawValue: kind) ?? .text, body: string(text), replyTo: replyTo.map(string), edited: flags & 1 != 0)
        }
    }
}

/// The `conversations` table's value: 32 bytes little-endian.
struct ConversationRecord {
    var cid: UInt64
    var lastActivity: Int64
    var count: UInt64
    var nextSeq: UInt64

    init(cid: UInt64, lastActivity: Int64, count: UInt64, nextSeq: UInt64) {
        self.cid = cid
        self.lastActivity = lastActivity
        self.count = count
        self.nextSeq = nextSeq
    }

    init?(_ bytes: UnsafeRawBufferPointer?) {
        guard let bytes, bytes.count >= 32, let p = bytes.baseAddress else { return nil }
        cid = KV.loadLE(p, 0)
        lastActivity = Int64(bitPattern: KV.loadLE(p, 8))
        count = KV.loadLE(p, 16)
        nextSeq = KV.loadLE(p, 24)
    }

    var bytes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 32) { b, n in
            let p = UnsafeMutableRawPointer(b.baseAddress!)
            KV.storeLE(cid, p, 0)
            KV.storeLE(UInt64(bitPattern: lastActivity), p, 8)
            KV.storeLE(count, p, 16)
            KV.storeLE(nextSeq, p, 24)
            n = 32
        }
    }
}

// MARK: Backend primitives

/// An ordered cursor over one table (LMDB cursor, RocksDB iterator). `key`/`value` are valid
/// until the cursor moves or the read ends.
protocol KVCursor {
    /// First entry ≥ key.
    mutating func seekGE(_ key: UnsafeRawBufferPointer) throws -> Bool
    /// Last entry ≤ key.
    mutating func seekLE(_ key: UnsafeRawBufferPointer) throws -> Bool
    mutating func first() throws -> Bool
    mutating func next() throws -> Bool
    mutating func prev() throws -> Bool
    var key: UnsafeRawBufferPointer { get }
    var value: UnsafeRawBufferPointer { get }
}

/// One consistent read (LMDB read transaction, RocksDB reads on the live DB).
protocol KVReadView {
    associatedtype Cursor: KVCursor
    /// The value of `key`, valid until the read ends.
    func get(_ table: KVTable, _ key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer?
    /// A cursor on `table`; `slot` distinguishes cursors open at the same time (the feed).
    func cursor(_ table: KVTable, slot: Int) throws -> Cursor
}

/// One write transaction (LMDB write transaction; RocksDB WriteBatch + reads of the DB).
protocol KVWriteView {
    func get(_ table: KVTable, _ key: [UInt8]) throws -> [UInt8]?
    func exists(_ table: KVTable, _ key: [UInt8]) throws -> Bool
    func put(_ table: KVTable, _ key: [UInt8], _ value: [UInt8]) throws
    func delete(_ table: KVTable, _ key: [UInt8]) throws
    /// A new conversation id (persisted in `meta` by the same write).
    func allocateConversationID() throws -> UInt64
}

extension Array where Element == UInt8 {
    @inline(__always)
    func withRaw<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try withUnsafeBytes(body)
    }
}
