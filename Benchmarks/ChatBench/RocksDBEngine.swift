import CRocksDB
import Foundation
import Scrollback

/// RocksDB through its C API (Debian librocksdb): one DB, one column family per table of
/// `KVLayout.swift`, the default bytewise comparator.
///
/// - Durability `full`: every write batch with `WriteOptions.sync = true` (the WAL is
///   fsynced before the write returns; concurrent writers share syncs in RocksDB's write
///   group); `normal`: `sync = false` (the WAL is in the OS page cache; a power loss may lose
///   the latest writes, never corrupts), `checkpoint()` calls `FlushWAL(sync)` and flushes
///   the memtables.
/// - Cache: one LRU block cache of the budget shared by every column family, with index and
///   filter blocks inside it (`cache_index_and_filter_blocks`, high priority, partitioned
///   into 4 KiB pieces under a pinned top level, L0's pinned), so the budget bounds what the
///   other engines' budgets bound. Memtables (64 MiB write buffers) are extra,
///   as SQLite's WAL and Scrollback's log buffers are.
/// - Format: block-based tables, 4 KiB blocks, LZ4 on every level (RocksDB's built-in fast
///   codec; Scrollback's sealed log is LZ4 too); a 10-bit bloom filter on the point-lookup
///   column families (ids, conversations, names, markers, meta), none on messages and
///   activity, which are only scanned. Level compaction with dynamic level sizes, two
///   background jobs (2 cores).
/// - Readers share the DB handle; each session has its own `ReadOptions`; scans create one
///   iterator per conversation per query (`Seek`/`SeekForPrev`); point reads use
///   `GetPinned` (no copy on the C side).
/// - Writers: a `WriteBatch` per transaction. RocksDB has no transactions across reads and
///   writes, so a writer locks the conversations it touches (64 striped locks, in order)
///   around its read-modify-write of the conversation record; conversation ids are allocated
///   under one more lock held until the batch is written. Writers of different conversations
///   commit concurrently.
/// - Bulk load: the same batches (a `WriteBatch` of 10,000 messages, synced); at the end the
///   memtables are flushed and the load waits for background compaction to catch up. (RocksDB's own bulk path, `SstFileWriter` + ingestion, needs the
///   whole input sorted by key, which a time-ordered chat history is not.)
/// - Compaction: `CompactRange` over every column family, bottommost level forced.
final class RocksDBBackend: KVBackend {
    let name = "rocksdb"
    let directory: String
    let cacheBytes: Int
    let durability: Durability
    fileprivate var db: OpaquePointer?
    fileprivate var handles: [OpaquePointer?] = []
    private var options: OpaquePointer?
    private var familyOptions: [OpaquePointer?] = []
    private var tableOptions: [OpaquePointer?] = []
    private var cache: OpaquePointer?
    fileprivate var writeOptions: OpaquePointer?
    private let stripes = (0..<64).map { _ in NSLock() }
    private let allocationLock = NSLock()
    private var nextConversationID: UInt64 = 1

    static let familyNames = ["default"] + KVTable.allCases.map(\.name)

    init(directory parent: String, cacheBytes: Int, durability: Durability) throws {
        directory = parent + "/rocksdb"
        self.cacheBytes = cacheBytes
        self.durability = durability
        try? FileManager.default.removeItem(atPath: directory)
        try open()
    }

    fileprivate static func check(_ error: UnsafeMutablePointer<CChar>?, _ what: @autoclosure () -> String) throws {
        guard let error else { return }
        let message = String(cString: error)
        rocksdb_free(error)
        throw KVError(engine: "rocksdb", message: "\(what()): \(message)")
    }

    private func makeFamilyOptions(_ family: String) -> OpaquePointer? {
        let o = rocksdb_options_create()
        rocksdb_options_set_compression(o, Int32(rocksdb_lz4_compression))
        rocksdb_options_set_level_compaction_dynamic_level_bytes(o, 1)
        let t = rocksdb_block_based_options_create()
        rocksdb_block_based_options_set_block_cache(t, cache)
        // Index and filter blocks live in the block cache (so the budget bounds them), split
        // into 4 KiB partitions under a pinned top level: a whole-file filter or index block of
        // a large SST is megabytes, and re-reading it on every miss made point lookups cost
        // milliseconds at 5M messages (RocksDB's advice for caching index and filter blocks).
        rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1)
        rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(t, 1)
        rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(t, 1)
        rocksdb_block_based_options_set_pin_top_level_index_and_filter(t, 1)
        rocksdb_block_based_options_set_index_type(t, Int32(rocksdb_block_based_table_index_type_two_level_index_search))
        rocksdb_block_based_options_set_metadata_block_size(t, 4096)
        if family != "messages" && family != "activity" {
            rocksdb_block_based_options_set_filter_policy(t, rocksdb_filterpolicy_create_bloom_full(10))
            rocksdb_block_based_options_set_partition_filters(t, 1)
        }
        rocksdb_options_set_block_based_table_factory(o, t)
        tableOptions.append(t)
        return o
    }

    private func open() throws {
        cache = rocksdb_cache_create_lru(cacheBytes)
        let o = rocksdb_options_create()
        rocksdb_options_set_create_if_missing(o, 1)
        rocksdb_options_set_create_missing_column_families(o, 1)
        rocksdb_options_increase_parallelism(o, 2)
        rocksdb_options_set_max_background_jobs(o, 2)
        options = o
        familyOptions = Self.familyNames.map { makeFamilyOptions($0) }
        var error: UnsafeMutablePointer<CChar>?
        var out = [OpaquePointer?](repeating: nil, count: Self.familyNames.count)
        let cNames = Self.familyNames.map { strdup($0) }
        defer { for p in cNames { free(p) } }
        let namePointers = cNames.map { UnsafePointer($0) }
        let familyOptionPointers: [OpaquePointer?] = familyOptions
        db = namePointers.withUnsafeBufferPointer { names in
            familyOptionPointers.withUnsafeBufferPointer { opts in
                rocksdb_open_column_families(o, directory, Int32(Self.familyNames.count), names.baseAddress, opts.baseAddress,
                                             &out, &error)
            }
        }
        try Self.check(error, "open \(directory)")
        handles = Array(out.dropFirst())  // indexed by KVTable
        handles.insert(out[0], at: handles.count)  // "default" last (unused)
        writeOptions = rocksdb_writeoptions_create()
        rocksdb_writeoptions_set_sync(writeOptions, durability == .full ? 1 : 0)
        // The next conversation id, from `meta`.
        let ro = rocksdb_readoptions_create()
        defer { rocksdb_readoptions_destroy(ro) }
        var length = 0
        let value = KV.metaNextConversationID.withUnsafeBytes { k in
            rocksdb_get_cf(db, ro, handle(.meta), k.baseAddress!.assumingMemoryBound(to: CChar.self), k.count, &length, &error)
        }
        try Self.check(error, "get meta")
        if let value {
            nextConversationID = length >= 8 ? KV.loadLE(value, 0) : 1
            rocksdb_free(value)
        } else {
            nextConversationID = 1
        }
    }

    @inline(__always)
    fileprivate func handle(_ t: KVTable) -> OpaquePointer? { handles[t.rawValue] }

    func makeSession() throws -> RocksDBSession {
        guard db != nil else { throw KVError(engine: name, message: "closed") }
        return RocksDBSession(backend: self)
    }

    func write<T>(conversations: [String], _ body: (RocksDBWriter) throws -> T) throws -> T {
        var indices = Set<Int>()
        for c in conversations { indices.insert(Int(UInt(bitPattern: c.hashValue) % UInt(stripes.count))) }
        let ordered = indices.sorted()
        for i in ordered { stripes[i].lock() }
        defer { for i in ordered.reversed() { stripes[i].unlock() } }
        let writer = RocksDBWriter(backend: self)
        defer {
            if writer.allocated { allocationLock.unlock() }
            writer.finish()
        }
        let result = try body(writer)
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_write(db, writeOptions, writer.batch, &error)
        try Self.check(error, "write")
        return result
    }

    fileprivate func allocateConversationID(_ writer: RocksDBWriter) -> UInt64 {
        if !writer.allocated {
            allocationLock.lock()  // held until the batch is written (see `write`)
            writer.allocated = true
        }
        let id = nextConversationID
        nextConversationID += 1
        KV.metaNextConversationID.withUnsafeBytes { k in
            KV.u64LE(nextConversationID).withUnsafeBytes { v in
                rocksdb_writebatch_put_cf(writer.batch, handle(.meta), k.baseAddress!.assumingMemoryBound(to: CChar.self), k.count,
                                          v.baseAddress!.assumingMemoryBound(to: CChar.self), v.count)
            }
        }
        return id
    }

    private func flushAll() throws {
        let f = rocksdb_flushoptions_create()
        defer { rocksdb_flushoptions_destroy(f) }
        rocksdb_flushoptions_set_wait(f, 1)
        var error: UnsafeMutablePointer<CChar>?
        for t in KVTable.allCases {
            rocksdb_flush_cf(db, f, handle(t), &error)
            try Self.check(error, "flush \(t.name)")
        }
    }

    /// Flushes the memtables and waits until background compaction has caught up: the load
    /// is not over while RocksDB still owes compaction work for it (which would otherwise run
    /// during the next engines' measurements on this 2-core machine).
    func finishLoad() throws {
        try checkpoint()
        while true {
            var busy: UInt64 = 0
            for property in ["rocksdb.num-running-compactions", "rocksdb.num-running-flushes"] {
                var v: UInt64 = 0
                if rocksdb_property_int(db, property, &v) == 0 { busy += v }
            }
            for t in KVTable.allCases {
                var v: UInt64 = 0
                if rocksdb_property_int_cf(db, handle(t), "rocksdb.compaction-pending", &v) == 0 { busy += v }
            }
            if busy == 0 { return }
            usleep(10_000)
        }
    }

    func checkpoint() throws {
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_flush_wal(db, 1, &error)
        try Self.check(error, "FlushWAL")
        try flushAll()
    }

    func diskBytes() throws -> UInt64 { try directoryBytes(directory) }

    func compact() throws {
        try flushAll()
        let c = rocksdb_compactoptions_create()
        defer { rocksdb_compactoptions_destroy(c) }
        rocksdb_compactoptions_set_bottommost_level_compaction(c, 2)  // kForce
        for t in KVTable.allCases { rocksdb_compact_range_cf_opt(db, handle(t), c, nil, 0, nil, 0) }
    }

    func close() throws {
        guard let db else { return }
        for h in handles { rocksdb_column_family_handle_destroy(h) }
        handles = []
        rocksdb_close(db)
        self.db = nil
        rocksdb_writeoptions_destroy(writeOptions)
        for o in familyOptions { rocksdb_options_destroy(o) }
        for t in tableOptions { rocksdb_block_based_options_destroy(t) }
        familyOptions = []
        tableOptions = []
        rocksdb_options_destroy(options)
        rocksdb_cache_destroy(cache)
    }

    func reopen() throws { try open() }
}

/// One thread's reads: its own ReadOptions; the iterators and pinned values of a query are
/// released when the query ends.
final class RocksDBSession: KVSession {
    unowned let backend: RocksDBBackend
    fileprivate let readOptions: OpaquePointer?
    fileprivate var iterators: [OpaquePointer?] = []
    fileprivate var pinned: [OpaquePointer?] = []

    init(backend: RocksDBBackend) {
        self.backend = backend
        readOptions = rocksdb_readoptions_create()
    }

    @inline(__always)
    func read<T>(_ body: (RocksDBView) throws -> T) throws -> T {
        defer {
            for i in iterators { rocksdb_iter_destroy(i) }
            iterators.removeAll(keepingCapacity: true)
            for p in pinned { rocksdb_pinnableslice_destroy(p) }
            pinned.removeAll(keepingCapacity: true)
        }
        return try body(RocksDBView(session: self))
    }

    func close() {}

    deinit { rocksdb_readoptions_destroy(readOptions) }
}

struct RocksDBView: KVReadView {
    unowned let session: RocksDBSession

    @inline(__always)
    func get(_ table: KVTable, _ key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer? {
        var error: UnsafeMutablePointer<CChar>?
        let p = rocksdb_get_pinned_cf(session.backend.db, session.readOptions, session.backend.handle(table),
                                      key.baseAddress?.assumingMemoryBound(to: CChar.self), key.count, &error)
        try RocksDBBackend.check(error, "get \(table.name)")
        guard let p else { return nil }
        session.pinned.append(p)
        var length = 0
        let value = rocksdb_pinnableslice_value(p, &length)
        return UnsafeRawBufferPointer(start: value, count: length)
    }

    @inline(__always)
    func cursor(_ table: KVTable, slot: Int) throws -> RocksDBCursor {
        let it = rocksdb_create_iterator_cf(session.backend.db, session.readOptions, session.backend.handle(table))
        session.iterators.append(it)
        return RocksDBCursor(iterator: it)
    }
}

struct RocksDBCursor: KVCursor {
    let iterator: OpaquePointer?
    var key = UnsafeRawBufferPointer(start: nil, count: 0)
    /// Fetched only when asked for (a count steps over keys only).
    var value: UnsafeRawBufferPointer {
        var n = 0
        let p = rocksdb_iter_value(iterator, &n)
        return UnsafeRawBufferPointer(start: p, count: n)
    }

    init(iterator: OpaquePointer?) { self.iterator = iterator }

    @inline(__always)
    private mutating func load() throws -> Bool {
        guard rocksdb_iter_valid(iterator) != 0 else {
            var error: UnsafeMutablePointer<CChar>?
            rocksdb_iter_get_error(iterator, &error)
            try RocksDBBackend.check(error, "iterator")
            return false
        }
        var n = 0
        key = UnsafeRawBufferPointer(start: rocksdb_iter_key(iterator, &n), count: n)
        return true
    }

    @inline(__always)
    mutating func seekGE(_ k: UnsafeRawBufferPointer) throws -> Bool {
        rocksdb_iter_seek(iterator, k.baseAddress?.assumingMemoryBound(to: CChar.self), k.count)
        return try load()
    }

    @inline(__always)
    mutating func seekLE(_ k: UnsafeRawBufferPointer) throws -> Bool {
        rocksdb_iter_seek_for_prev(iterator, k.baseAddress?.assumingMemoryBound(to: CChar.self), k.count)
        return try load()
    }

    @inline(__always) mutating func first() throws -> Bool {
        rocksdb_iter_seek_to_first(iterator)
        return try load()
    }

    @inline(__always) mutating func next() throws -> Bool {
        rocksdb_iter_next(iterator)
        return try load()
    }

    @inline(__always) mutating func prev() throws -> Bool {
        rocksdb_iter_prev(iterator)
        return try load()
    }
}

/// A WriteBatch; reads go to the DB (the batch's own writes are tracked by the caller).
final class RocksDBWriter: KVWriteView {
    unowned let backend: RocksDBBackend
    let batch: OpaquePointer?
    let readOptions: OpaquePointer?
    var allocated = false

    init(backend: RocksDBBackend) {
        self.backend = backend
        batch = rocksdb_writebatch_create()
        readOptions = rocksdb_readoptions_create()
    }

    func finish() {
        rocksdb_writebatch_destroy(batch)
        rocksdb_readoptions_destroy(readOptions)
    }

    private func pinned(_ table: KVTable, _ key: [UInt8]) throws -> OpaquePointer? {
        var error: UnsafeMutablePointer<CChar>?
        let p = key.withUnsafeBytes { k in
            rocksdb_get_pinned_cf(backend.db, readOptions, backend.handle(table), k.baseAddress?.assumingMemoryBound(to: CChar.self),
                                  k.count, &error)
        }
        try RocksDBBackend.check(error, "get \(table.name)")
        return p
    }

    func get(_ table: KVTable, _ key: [UInt8]) throws -> [UInt8]? {
        guard let p = try pinned(table, key) else { return nil }
        defer { rocksdb_pinnableslice_destroy(p) }
        var length = 0
        let value = rocksdb_pinnableslice_value(p, &length)
        return Array(UnsafeRawBufferPointer(start: value, count: length))
    }

    func exists(_ table: KVTable, _ key: [UInt8]) throws -> Bool {
        guard let p = try pinned(table, key) else { return false }
        rocksdb_pinnableslice_destroy(p)
        return true
    }

    func put(_ table: KVTable, _ key: [UInt8], _ value: [UInt8]) throws {
        key.withUnsafeBytes { k in
            value.withUnsafeBytes { v in
                rocksdb_writebatch_put_cf(batch, backend.handle(table), k.baseAddress?.assumingMemoryBound(to: CChar.self), k.count,
                                          v.baseAddress?.assumingMemoryBound(to: CChar.self), v.count)
            }
        }
    }

    func delete(_ table: KVTable, _ key: [UInt8]) throws {
        key.withUnsafeBytes { k in
            rocksdb_writebatch_delete_cf(batch, backend.handle(table), k.baseAddress?.assumingMemoryBound(to: CChar.self), k.count)
        }
    }

    func allocateConversationID() throws -> UInt64 { backend.allocateConversationID(self) }
}
