import CLMDB
import Foundation
import Scrollback

/// LMDB through its C API (Debian liblmdb): one environment (a directory with `data.mdb`),
/// one named database per table of `KVLayout.swift`, default comparators (memcmp).
///
/// - Durability `full`: LMDB's default (each commit fsyncs the data pages and the meta page);
///   `normal`: `MDB_NOMETASYNC` (the meta page is not synced at commit: a system crash may
///   undo the last transactions, never corrupts; `checkpoint()` calls `mdb_env_sync`).
/// - Cache: LMDB has none of its own; reads go through its memory map, i.e. the OS page cache.
///   The cache budget does not apply.
/// - Readers: each session keeps one read-only transaction (`MDB_NOTLS`, so a thread may hold
///   several) that it `mdb_txn_renew`s and `mdb_txn_reset`s around every query, and a pool of
///   cursors it `mdb_cursor_renew`s: no allocation per query. Values are read in place from
///   the map; each field is copied once, into its Swift String.
/// - Writers: one write transaction at a time (LMDB's design); a load batch is one
///   transaction, its message rows inserted in key order.
/// - Compaction: `mdb_env_copy2(MDB_CP_COMPACT)` into a new file, then swapped in.
final class LMDBBackend: KVBackend {
    let name = "lmdb"
    let directory: String
    let mapBytes: Int
    let durability: Durability
    fileprivate var env: OpaquePointer?
    fileprivate var dbis = [MDB_dbi](repeating: 0, count: KVTable.allCases.count)

    init(directory parent: String, mapBytes: Int, durability: Durability) throws {
        directory = parent + "/lmdb"
        self.mapBytes = mapBytes
        self.durability = durability
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try open()
    }

    fileprivate func check(_ rc: Int32, _ what: @autoclosure () -> String) throws {
        guard rc == 0 else { throw KVError(engine: "lmdb", message: "\(what()): \(String(cString: mdb_strerror(rc)))") }
    }

    private func open() throws {
        var e: OpaquePointer?
        try check(mdb_env_create(&e), "mdb_env_create")
        env = e
        try check(mdb_env_set_mapsize(e, mapBytes), "mdb_env_set_mapsize")
        try check(mdb_env_set_maxdbs(e, MDB_dbi(KVTable.allCases.count)), "mdb_env_set_maxdbs")
        // 64 reader threads + the main thread + the writers of the concurrency phase.
        try check(mdb_env_set_maxreaders(e, 512), "mdb_env_set_maxreaders")
        var flags = UInt32(MDB_NOTLS)
        if durability == .normal { flags |= UInt32(MDB_NOMETASYNC) }
        let rc = mdb_env_open(e, directory, flags, 0o644)
        if rc != 0 {
            mdb_env_close(e)
            env = nil
            try check(rc, "mdb_env_open \(directory)")
        }
        var txn: OpaquePointer?
        try check(mdb_txn_begin(e, nil, 0, &txn), "mdb_txn_begin")
        for table in KVTable.allCases {
            var dbi: MDB_dbi = 0
            let rc = mdb_dbi_open(txn, table.name, UInt32(MDB_CREATE), &dbi)
            if rc != 0 {
                mdb_txn_abort(txn)
                try check(rc, "mdb_dbi_open \(table.name)")
            }
            dbis[table.rawValue] = dbi
        }
        try check(mdb_txn_commit(txn), "mdb_txn_commit")
    }

    func makeSession() throws -> LMDBSession {
        guard let env else { throw KVError(engine: name, message: "closed") }
        return try LMDBSession(backend: self, env: env)
    }

    func write<T>(conversations: [String], _ body: (LMDBWriter) throws -> T) throws -> T {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin (write)")
        let writer = LMDBWriter(backend: self, txn: txn!)
        let result: T
        do {
            result = try body(writer)
        } catch {
            mdb_txn_abort(txn)
            throw error
        }
        try check(mdb_txn_commit(txn), "mdb_txn_commit")
        return result
    }

    func finishLoad() throws { try checkpoint() }

    func checkpoint() throws { try check(mdb_env_sync(env, 1), "mdb_env_sync") }

    func diskBytes() throws -> UInt64 { try directoryBytes(directory) }

    func compact() throws {
        let copy = directory + ".compact"
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        try check(mdb_env_copy2(env, copy, UInt32(MDB_CP_COMPACT)), "mdb_env_copy2")
        try close()
        _ = rename(copy + "/data.mdb", directory + "/data.mdb")
        try? FileManager.default.removeItem(atPath: copy)
        try open()
    }

    func close() throws {
        if let env { mdb_env_close(env) }
        env = nil
    }

    func reopen() throws { try open() }

    fileprivate func dbi(_ t: KVTable) -> MDB_dbi { dbis[t.rawValue] }
}

/// One thread's reads: a reusable read-only transaction and a cursor pool.
final class LMDBSession: KVSession {
    unowned let backend: LMDBBackend
    fileprivate let txn: OpaquePointer
    /// cursors[table][slot], and the read number each was last renewed in.
    fileprivate var cursors: [[OpaquePointer]] = Array(repeating: [], count: KVTable.allCases.count)
    fileprivate var renewedIn: [[UInt64]] = Array(repeating: [], count: KVTable.allCases.count)
    fileprivate var readNumber: UInt64 = 0
    private var closed = false

    init(backend: LMDBBackend, env: OpaquePointer) throws {
        self.backend = backend
        var t: OpaquePointer?
        try backend.check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &t), "mdb_txn_begin (read)")
        txn = t!
        mdb_txn_reset(txn)
    }

    @inline(__always)
    func read<T>(_ body: (LMDBView) throws -> T) throws -> T {
        try backend.check(mdb_txn_renew(txn), "mdb_txn_renew")
        readNumber &+= 1
        defer { mdb_txn_reset(txn) }
        return try body(LMDBView(session: self))
    }

    fileprivate func cursor(_ table: KVTable, slot: Int) throws -> OpaquePointer {
        let t = table.rawValue
        while cursors[t].count <= slot {
            var c: OpaquePointer?
            try backend.check(mdb_cursor_open(txn, backend.dbi(table), &c), "mdb_cursor_open")
            cursors[t].append(c!)
            renewedIn[t].append(readNumber)
        }
        let c = cursors[t][slot]
        if renewedIn[t][slot] != readNumber {
            try backend.check(mdb_cursor_renew(txn, c), "mdb_cursor_renew")
            renewedIn[t][slot] = readNumber
        }
        return c
    }

    func close() {
        guard !closed else { return }
        closed = true
        for list in cursors { for c in list { mdb_cursor_close(c) } }
        cursors = []
        mdb_txn_abort(txn)
    }

    deinit { close() }
}

struct LMDBView: KVReadView {
    unowned let session: LMDBSession

    @inline(__always)
    func get(_ table: KVTable, _ key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer? {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val()
        let rc = mdb_get(session.txn, session.backend.dbi(table), &k, &v)
        if rc == MDB_NOTFOUND { return nil }
        try session.backend.check(rc, "mdb_get")
        return UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
    }

    @inline(__always)
    func cursor(_ table: KVTable, slot: Int) throws -> LMDBCursor {
        LMDBCursor(cursor: try session.cursor(table, slot: slot))
    }
}

struct LMDBCursor: KVCursor {
    let cursor: OpaquePointer
    var k = MDB_val()
    var v = MDB_val()

    init(cursor: OpaquePointer) { self.cursor = cursor }

    @inline(__always)
    private mutating func op(_ o: MDB_cursor_op) throws -> Bool {
        let rc = mdb_cursor_get(cursor, &k, &v, o)
        if rc == 0 { return true }
        if rc == MDB_NOTFOUND { return false }
        throw KVError(engine: "lmdb", message: "mdb_cursor_get: \(String(cString: mdb_strerror(rc)))")
    }

    @inline(__always)
    mutating func seekGE(_ key: UnsafeRawBufferPointer) throws -> Bool {
        k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        return try op(MDB_SET_RANGE)
    }

    @inline(__always)
    mutating func seekLE(_ key: UnsafeRawBufferPointer) throws -> Bool {
        guard try seekGE(key) else { return try op(MDB_LAST) }
        if k.mv_size == key.count, memcmp(k.mv_data, key.baseAddress!, key.count) == 0 { return true }
        return try op(MDB_PREV)
    }

    @inline(__always) mutating func first() throws -> Bool { try op(MDB_FIRST) }
    @inline(__always) mutating func next() throws -> Bool { try op(MDB_NEXT) }
    @inline(__always) mutating func prev() throws -> Bool { try op(MDB_PREV) }
    var key: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size) }
    var value: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size) }
}

/// One write transaction. Reads see the transaction's own writes.
struct LMDBWriter: KVWriteView {
    unowned let backend: LMDBBackend
    let txn: OpaquePointer

    private func raw(_ table: KVTable, _ key: [UInt8]) throws -> MDB_val? {
        var v = MDB_val()
        let rc = key.withUnsafeBytes { b -> Int32 in
            var k = MDB_val(mv_size: b.count, mv_data: UnsafeMutableRawPointer(mutating: b.baseAddress))
            return mdb_get(txn, backend.dbi(table), &k, &v)
        }
        if rc == MDB_NOTFOUND { return nil }
        try backend.check(rc, "mdb_get")
        return v
    }

    func get(_ table: KVTable, _ key: [UInt8]) throws -> [UInt8]? {
        try raw(table, key).map { Array(UnsafeRawBufferPointer(start: $0.mv_data, count: $0.mv_size)) }
    }

    func exists(_ table: KVTable, _ key: [UInt8]) throws -> Bool { try raw(table, key) != nil }

    func put(_ table: KVTable, _ key: [UInt8], _ value: [UInt8]) throws {
        let rc = key.withUnsafeBytes { kb in
            value.withUnsafeBytes { vb -> Int32 in
                var k = MDB_val(mv_size: kb.count, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
                var v = MDB_val(mv_size: vb.count, mv_data: UnsafeMutableRawPointer(mutating: vb.baseAddress))
                return mdb_put(txn, backend.dbi(table), &k, &v, 0)
            }
        }
        try backend.check(rc, "mdb_put \(table.name)")
    }

    func delete(_ table: KVTable, _ key: [UInt8]) throws {
        let rc = key.withUnsafeBytes { kb -> Int32 in
            var k = MDB_val(mv_size: kb.count, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
            return mdb_del(txn, backend.dbi(table), &k, nil)
        }
        if rc == MDB_NOTFOUND { return }
        try backend.check(rc, "mdb_del \(table.name)")
    }

    func allocateConversationID() throws -> UInt64 {
        let next = try get(.meta, KV.metaNextConversationID).map { $0.withRaw { KV.loadLE($0.baseAddress!, 0) } } ?? 1
        try put(.meta, KV.metaNextConversationID, KV.u64LE(next + 1))
        return next
    }
}
