import Foundation
import Scrollback

/// What the LMDB and RocksDB backends provide to `KVEngine`. The shared part (environment,
/// DB handle) is the backend; each thread reads through its own `Session`.
protocol KVBackend: AnyObject {
    associatedtype Session: KVSession
    associatedtype Writer: KVWriteView
    var name: String { get }
    var directory: String { get }
    func makeSession() throws -> Session
    /// One write transaction on the tables, committed with the configured durability.
    /// `conversations` are the conversations it touches (RocksDB serializes writers per
    /// conversation; LMDB has one writer at a time anyway).
    func write<T>(conversations: [String], _ body: (Writer) throws -> T) throws -> T
    func finishLoad() throws
    func diskBytes() throws -> UInt64
    func compact() throws
    func checkpoint() throws
    func close() throws
    func reopen() throws
}

protocol KVSession: AnyObject {
    associatedtype View: KVReadView
    func read<T>(_ body: (View) throws -> T) throws -> T
    func close()
}

/// A chat store on an ordered key-value engine, written as a user of that engine would:
/// the layout of `KVLayout.swift`, cursors for every scan, counts by stepping a cursor from
/// the marker (the engines keep no counts), a k-way merge of per-conversation reverse
/// cursors for the feed, an activity index maintained in the same write transaction.
final class KVEngine<Backend: KVBackend>: ChatEngine {
    let backend: Backend
    private var session: Backend.Session?
    /// False for the per-thread handles of the concurrency phase (they share `backend`).
    private let ownsBackend: Bool
    private var valueBuffer: [UInt8] = []

    var name: String { backend.name }
    var directory: String { backend.directory }

    init(backend: Backend) throws {
        self.backend = backend
        ownsBackend = true
        session = try backend.makeSession()
    }

    private init(sharing backend: Backend) throws {
        self.backend = backend
        ownsBackend = false
        session = try backend.makeSession()
    }

    /// Another handle on the same store for another thread (its own read transaction or
    /// read options; the environment / DB handle is shared).
    func handle() throws -> KVEngine<Backend> { try KVEngine(sharing: backend) }

    @inline(__always)
    private func read<T>(_ body: (Backend.Session.View) throws -> T) throws -> T {
        guard let session else { throw KVError(engine: name, message: "closed") }
        return try session.read(body)
    }

    // MARK: Writes

    /// Plans and applies one batch of appends (idempotent on id) in one write transaction.
    private func append(_ batch: [Message]) throws {
        var names: [String] = []
        var seen = Set<String>()
        for m in batch where seen.insert(m.conversation).inserted { names.append(m.conversation) }
        try backend.write(conversations: names) { w in
            var conversations: [String: PendingConversation] = [:]
            var ids = Set<String>()
            var rows: [(key: [UInt8], value: [UInt8], id: String)] = []
            rows.reserveCapacity(batch.count)
            for m in batch {
                guard ids.insert(m.id).inserted, try !w.exists(.ids, Array(m.id.utf8)) else { continue }
                var p: PendingConversation
                if let existing = conversations[m.conversation] {
                    p = existing
                } else if let bytes = try w.get(.conversations, Array(m.conversation.utf8)),
                    let record = bytes.withRaw({ ConversationRecord($0) })
                {
                    p = PendingConversation(record: record, oldActivity: record.lastActivity, isNew: false)
                } else {
                    let cid = try w.allocateConversationID()
                    p = PendingConversation(record: ConversationRecord(cid: cid, lastActivity: m.createdAt, count: 0, nextSeq: 0),
                                oldActivity: nil, isNew: true)
                }
                let key = KV.messageKey(cid: p.record.cid, createdAt: UInt64(m.createdAt), seq: p.record.nextSeq)
                p.record.nextSeq += 1
                p.record.count += 1
                p.record.lastActivity = max(p.record.lastActivity, m.createdAt)
                conversations[m.conversation] = p
                KV.encodeValue(m, into: &valueBuffer)
                rows.append((key, valueBuffer, m.id))
            }
            // Key order: a B+tree (LMDB) inserts neighbours into the same pages.
            rows.sort { $0.key.lexicographicallyPrecedes($1.key) }
            for r in rows {
                try w.put(.messages, r.key, r.value)
                try w.put(.ids, Array(r.id.utf8), r.key)
            }
            for (name, p) in conversations {
                try w.put(.conversations, Array(name.utf8), p.record.bytes)
                if let old = p.oldActivity, old != p.record.lastActivity {
                    try w.delete(.activity, KV.activityKey(lastActivity: old, conversation: name))
                }
                try w.put(.activity, KV.activityKey(lastActivity: p.record.lastActivity, conversation: name), KV.u64LE(p.record.count))
                if p.isNew { try w.put(.names, KV.u64BE(p.record.cid), Array(name.utf8)) }
            }
        }
    }

    func load(_ batch: [Message]) throws { try append(batch) }

    func finishLoad() throws { try backend.finishLoad() }

    func send(_ message: Message) throws { try append([message]) }

    func markRead(user: String, conversation: String, through messageID: String) throws {
        try backend.write(conversations: [conversation]) { w in
            guard let key = try w.get(.ids, Array(messageID.utf8)), key.count == KV.keySize else {
                throw ScrollbackError.notFound(messageID)
            }
            guard let bytes = try w.get(.conversations, Array(conversation.utf8)),
                let record = bytes.withRaw({ ConversationRecord($0) }),
                key.withRaw({ KV.loadBE($0.baseAddress!, 0) }) == record.cid
            else {
                throw ScrollbackError.invalidArgument(argument: "through", reason: "message of another conversation")
            }
            let marked = Array(key[8..<24])  // createdAt, seq (big-endian: byte order = numeric order)
            let markerKey = KV.markerKey(user: user, conversation: conversation)
            if let current = try w.get(.markers, markerKey), !current.lexicographicallyPrecedes(marked) { return }
            try w.put(.markers, markerKey, marked)
        }
    }

    func concurrentSends(_ messages: [[Message]]) throws {
        try sendFromThreads(try messages.map { _ in try handle() }, messages)
    }

    // MARK: Reads

    /// The conversation's record, or nil for an unknown conversation.
    @inline(__always)
    private func conversation(_ view: Backend.Session.View, _ name: String) throws -> ConversationRecord? {
        var copy = name
        return try copy.withUTF8 { try ConversationRecord(view.get(.conversations, UnsafeRawBufferPointer($0))) }
    }

    @inline(__always)
    private func withKey<T>(cid: UInt64, createdAt: UInt64, seq: UInt64, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try withUnsafeTemporaryAllocation(byteCount: KV.keySize, alignment: 8) { b in
            KV.messageKey(b.baseAddress!, cid: cid, createdAt: createdAt, seq: seq)
            return try body(UnsafeRawBufferPointer(b))
        }
    }

    @inline(__always)
    private func inConversation(_ c: some KVCursor, _ cid: UInt64) -> Bool {
        KV.loadBE(c.key.baseAddress!, 0) == cid
    }

    /// Positions `c` at the newest message of `cid` at or before (createdAt, seq).
    @inline(__always)
    private func seekNewest(_ c: inout some KVCursor, cid: UInt64, createdAt: UInt64 = .max, seq: UInt64 = .max) throws -> Bool {
        try withKey(cid: cid, createdAt: createdAt, seq: seq) { try c.seekLE($0) } && inConversation(c, cid)
    }

    /// Up to `limit` messages newest first from the cursor's position, skipping `skip`.
    private func collectBackward(_ c: inout some KVCursor, cid: UInt64, conversation: String, skip: Int, limit: Int,
                                 from: Int64 = .min) throws -> [Message] {
        var out: [Message] = []
        out.reserveCapacity(min(limit, 256))
        var skipped = 0
        while skipped < skip {
            guard try c.prev(), inConversation(c, cid) else { return out }
            skipped += 1
        }
        while out.count < limit {
            let key = c.key.baseAddress!
            if from != .min, Int64(bitPattern: KV.loadBE(key, 8)) < from { break }
            out.append(KV.decode(key: key, value: c.value, conversation: conversation))
            guard out.count < limit, try c.prev(), inConversation(c, cid) else { break }
        }
        return out
    }

    func latest(_ conversation: String, limit: Int) throws -> [Message] {
        try page(conversation, offset: 0, limit: limit)
    }

    func latestInPlace(_ conversation: String, limit: Int) throws -> BorrowedDigest {
        try read { view in
            var digest = BorrowedDigest()
            guard limit > 0, let record = try self.conversation(view, conversation) else { return digest }
            var c = try view.cursor(.messages, slot: 0)
            guard try seekNewest(&c, cid: record.cid) else { return digest }
            while digest.count < limit {
                KV.digest(key: c.key.baseAddress!, value: c.value, into: &digest)
                guard digest.count < limit, try c.prev(), inConversation(c, record.cid) else { break }
            }
            return digest
        }
    }

    func page(_ conversation: String, offset: Int, limit: Int) throws -> [Message] {
        try read { view in
            guard limit > 0, let record = try self.conversation(view, conversation) else { return [] }
            var c = try view.cursor(.messages, slot: 0)
            guard try seekNewest(&c, cid: record.cid) else { return [] }
            return try collectBackward(&c, cid: record.cid, conversation: conversation, skip: offset, limit: limit)
        }
    }

    func keysetPage(_ conversation: String, after cursor: KeysetCursor?, limit: Int) throws
        -> (messages: [Message], next: KeysetCursor?)
    {
        var createdAt = UInt64.max
        var seq = UInt64.max
        switch cursor {
        case nil: break
        case let .key(c, s):
            // The page after (c, s): the newest key strictly below it.
            if s > 0 { createdAt = UInt64(c); seq = s - 1 } else if c > 0 { createdAt = UInt64(c) - 1 } else { return ([], nil) }
        default: throw KVError(engine: name, message: "a cursor of another engine")
        }
        return try read { view in
            guard limit > 0, let record = try self.conversation(view, conversation) else { return ([], nil) }
            var c = try view.cursor(.messages, slot: 0)
            guard try seekNewest(&c, cid: record.cid, createdAt: createdAt, seq: seq) else { return ([], nil) }
            var out: [Message] = []
            out.reserveCapacity(limit)
            var last = (createdAt: Int64(0), seq: UInt64(0))
            while out.count < limit {
                let key = c.key.baseAddress!
                out.append(KV.decode(key: key, value: c.value, conversation: conversation))
                last = (Int64(bitPattern: KV.loadBE(key, 8)), KV.loadBE(key, 16))
                guard try c.prev(), inConversation(c, record.cid) else {
                    return (out, nil)
                }
            }
            // The cursor stands on an older message: there is a next page.
            return (out, .key(createdAt: last.createdAt, seq: last.seq))
        }
    }

    /// Messages of `cid` after (createdAt, seq), counted by stepping a cursor.
    private func countAfter(_ view: Backend.Session.View, cid: UInt64, createdAt: UInt64, seq: UInt64) throws -> Int {
        var c = try view.cursor(.messages, slot: 0)
        guard try withKey(cid: cid, createdAt: createdAt, seq: seq, { try c.seekGE($0) }) else { return 0 }
        var n = 0
        while inConversation(c, cid) {
            n += 1
            guard try c.next() else { break }
        }
        return n
    }

    func count(_ conversation: String, after: Int64) throws -> Int {
        try read { view in
            guard let record = try self.conversation(view, conversation) else { return 0 }
            if after == .max { return 0 }
            return try countAfter(view, cid: record.cid, createdAt: UInt64(max(0, after + 1)), seq: 0)
        }
    }

    func unreadCount(user: String, conversation: String) throws -> Int {
        try read { view in
            guard let record = try self.conversation(view, conversation) else { return 0 }
            let markerKey = KV.markerKey(user: user, conversation: conversation)
            guard let marker = try markerKey.withRaw({ try view.get(.markers, $0) }), marker.count == 16 else {
                return Int(record.count)
            }
            let createdAt = KV.loadBE(marker.baseAddress!, 0)
            let seq = KV.loadBE(marker.baseAddress!, 8)
            return try countAfter(view, cid: record.cid, createdAt: seq == .max ? createdAt + 1 : createdAt,
                                  seq: seq == .max ? 0 : seq + 1)
        }
    }

    func feed(_ conversations: [String], limit: Int) throws -> [Message] {
        try read { view in
            var unique: [String] = []
            var seen = Set<String>()
            for c in conversations where seen.insert(c).inserted { unique.append(c) }
            var cursors: [Backend.Session.View.Cursor] = []
            var cids: [UInt64] = []
            var names: [String] = []
            // Max-heap of (createdAt, seq, cursor index), one entry per conversation.
            var heap: [(UInt64, UInt64, Int)] = []
            cursors.reserveCapacity(unique.count)
            for name in unique {
                guard let record = try self.conversation(view, name) else { continue }
                var c = try view.cursor(.messages, slot: cursors.count)
                guard try seekNewest(&c, cid: record.cid) else { continue }
                let key = c.key.baseAddress!
                heap.append((KV.loadBE(key, 8), KV.loadBE(key, 16), cursors.count))
                cursors.append(c)
                cids.append(record.cid)
                names.append(name)
            }
            @inline(__always) func above(_ a: (UInt64, UInt64, Int), _ b: (UInt64, UInt64, Int)) -> Bool {
                a.0 != b.0 ? a.0 > b.0 : a.1 > b.1
            }
            func siftDown(_ start: Int) {
                var i = start
                while true {
                    let l = 2 * i + 1
                    let r = l + 1
                    var m = i
                    if l < heap.count, above(heap[l], heap[m]) { m = l }
                    if r < heap.count, above(heap[r], heap[m]) { m = r }
                    if m == i { return }
                    heap.swapAt(i, m)
                    i = m
                }
            }
            for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
            var out: [Message] = []
            out.reserveCapacity(min(limit, 256))
            while out.count < limit, let top = heap.first {
                let i = top.2
                out.append(KV.decode(key: cursors[i].key.baseAddress!, value: cursors[i].value, conversation: names[i]))
                if try cursors[i].prev(), inConversation(cursors[i], cids[i]) {
                    let key = cursors[i].key.baseAddress!
                    heap[0] = (KV.loadBE(key, 8), KV.loadBE(key, 16), i)
                } else {
                    heap[0] = heap[heap.count - 1]
                    heap.removeLast()
                }
                siftDown(0)
            }
            return out
        }
    }

    func range(_ conversation: String, from: Int64, through: Int64) throws -> [Message] {
        try read { view in
            guard from <= through, through >= 0, let record = try self.conversation(view, conversation) else { return [] }
            var c = try view.cursor(.messages, slot: 0)
            guard try seekNewest(&c, cid: record.cid, createdAt: UInt64(through)) else { return [] }
            return try collectBackward(&c, cid: record.cid, conversation: conversation, skip: 0, limit: rangeLimit, from: from)
        }
    }

    func latestMessage(_ conversations: [String]) throws -> [Message?] {
        try read { view in
            var out: [Message?] = []
            out.reserveCapacity(conversations.count)
            var c = try view.cursor(.messages, slot: 0)
            for name in conversations {
                guard let record = try self.conversation(view, name), try seekNewest(&c, cid: record.cid) else {
                    out.append(nil)
                    continue
                }
                out.append(KV.decode(key: c.key.baseAddress!, value: c.value, conversation: name))
            }
            return out
        }
    }

    func conversations(limit: Int) throws -> [ConversationSummary] {
        try read { view in
            var out: [ConversationSummary] = []
            guard limit > 0 else { return out }
            out.reserveCapacity(limit)
            var c = try view.cursor(.activity, slot: 0)
            guard try c.first() else { return out }
            repeat {
                let key = c.key
                let name = String(decoding: UnsafeRawBufferPointer(rebasing: key[8...]), as: UTF8.self)
                let lastActivity = Int64(bitPattern: ~KV.loadBE(key.baseAddress!, 0))
                out.append(ConversationSummary(id: name, lastActivity: lastActivity, messageCount: Int(KV.loadLE(c.value.baseAddress!, 0))))
                guard out.count < limit, try c.next() else { break }
            } while true
            return out
        }
    }

    func message(id: String) throws -> Message? {
        try read { view in
            var copy = id
            guard let key = try copy.withUTF8({ try view.get(.ids, UnsafeRawBufferPointer($0)) }), key.count == KV.keySize,
                let value = try view.get(.messages, key),
                let name = try view.get(.names, UnsafeRawBufferPointer(rebasing: key[0..<8]))
            else { return nil }
            return KV.decode(key: key.baseAddress!, value: value, conversation: String(decoding: name, as: UTF8.self))
        }
    }

    // MARK: Files

    func diskBytes() throws -> UInt64 { try backend.diskBytes() }
    func compact() throws {
        // LMDB's compaction closes the environment: no transaction may outlive it.
        session?.close()
        session = nil
        try backend.compact()
        session = try backend.makeSession()
    }
    func checkpoint() throws { try backend.checkpoint() }

    func close() throws {
        session?.close()
        session = nil
        if ownsBackend { try backend.close() }
    }

    func reopen() throws {
        if ownsBackend { try backend.reopen() }
        session = try backend.makeSession()
    }

    var storePaths: [String] { [backend.directory] }

    func concurrentHandle(cacheBytes: Int) throws -> any ChatEngine { try handle() }

    /// Closes a per-thread handle (not the shared store).
    func closeHandle() {
        session?.close()
        session = nil
    }
}

/// The conversation record of a write being planned.
struct PendingConversation {
    var record: ConversationRecord
    var oldActivity: Int64?
    var isNew: Bool
}

/// Each handle sends its list on its own thread, one durable append at a time; closes the
/// handles.
func sendFromThreads(_ handles: [any ChatEngine], _ messages: [[Message]]) throws {
    let failures = FailureBox()
    try runThreads(zip(handles, messages).map { h, list in
        let box = UncheckedBox(h)
        return {
            do {
                for m in list { try box.value.send(m) }
            } catch {
                failures.record("\(error)")
            }
            box.value.closeHandle()
        }
    })
    if let failure = failures.first { throw KVError(engine: handles.first?.name ?? "?", message: failure) }
}

/// Hands a non-Sendable value to exactly one other thread.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
