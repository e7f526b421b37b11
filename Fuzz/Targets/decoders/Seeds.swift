// FUZZ_WRITE_SEEDS=<dir> ./fuzz-decoders writes a seed corpus made of valid structures: the
// log segments, sealed segments and pages of a small store, its meta pages, record payloads
// and cursor tokens, each behind its selector byte.
import FuzzSupport
import Glibc
@testable import Scrollback
import ScrollbackBTree
import ScrollbackFormat
import ScrollbackIO
@testable import ScrollbackLog
@testable import ScrollbackMessaging
@testable import ScrollbackStorage

func writeSeeds(to directory: String) {
    var seeds: [[UInt8]] = []
    func add(_ decoder: Decoder, _ bytes: [UInt8], flag: Bool = false) {
        seeds.append([decoder.rawValue | (flag ? 0x80 : 0)] + bytes)
    }
    // A log with sealed segments: tiny segments so appends roll and seal.
    let fs = MemoryFileSystem()
    try! fs.createDirectory("/log")
    let options = LogOptions(segmentSize: 4096, blockSize: 1024, blockCacheBytes: 1 << 20, saltSeed: 7)
    let log = try! Log.open(fileSystem: fs, directory: "/log", options: options, replayFrom: 0) { _ in }
    for i in 0..<40 {
        var batch = LogBatch()
        for j in 0..<(1 + i % 3) {
            _ = try! batch.append(type: UInt8(16 + j), payload: Array("record \(i).\(j) ".utf8) + [UInt8](repeating: UInt8(i), count: i * 3))
        }
        let result = try! log.append(batch)
        try! log.sync(through: result.end)
    }
    _ = try! log.sealFullSegments()
    try! log.close()
    for name in try! fs.listDirectory("/log").sorted() {
        let bytes = fs.contents(of: "/log/" + name)!
        guard let (id, kind) = SegmentFileName.parse(name), id < 256 else { continue }
        add(kind == .sealed ? .sealedSegment : .logSegment, [UInt8(id)] + bytes)
    }
    // A small store: pages (B+tree, free list), meta pages, records.
    let storeFS = MemoryFileSystem()
    var storeOptions = StoreOptions()
    storeOptions.cacheBytes = 1 << 20
    storeOptions.pageSize = 4096
    storeOptions.segmentBytes = 64 << 10
    let store = try! MessageStore(path: "/s", options: storeOptions, fileSystem: storeFS)
    for i in 0..<200 {
        _ = try! store.append(Message(id: "m\(i)", conversation: "c\(i % 5)", sender: "u\(i % 3)", createdAt: Int64(i),
                                      body: String(repeating: "x", count: i % 40), replyTo: i % 7 == 0 ? "m0" : nil))
        if i % 9 == 0 { try! store.delete(id: "m\(i)") }
        if i % 11 == 0 { try? store.edit(id: "m\(i)", body: "edited") }
        if i % 50 == 49 { try! store.checkpoint() }
    }
    try! store.markRead(user: "u1", conversation: "c1", through: "m101")
    let token = try! store.page(in: "c1", after: nil, limit: 3).next?.token
    try! store.close()
    let pages = storeFS.contents(of: "/s/pages") ?? []
    add(.metaPage, Array(pages.prefix(512)))
    add(.metaPage, Array(pages.dropFirst(4096).prefix(512)))
    add(.metaPage, Array(pages.prefix(512)), flag: true)
    var pageNumber = 2
    while (pageNumber + 1) * 4096 <= pages.count, seeds.count < 60 {
        let page = Array(pages[pageNumber * 4096..<(pageNumber + 1) * 4096])
        if page[4] == 3 { add(.freeListPage, [UInt8(truncatingIfNeeded: pages.count / 4096 >> 4)] + page) } else if page[4] != 0 { add(.btreePage, page) }
        pageNumber += 1
    }
    for i in 0..<6 {
        var payload = [UInt8](repeating: 0, count: MessageRecordLayout.headerSize)
        let id = Array("m\(i)".utf8), sender = Array("u".utf8), body = Array(String(repeating: "b", count: i * 5).utf8)
        payload.withUnsafeMutableBytes { raw in
            raw.storeLE(UInt64(i + 1), at: MessageRecordLayout.seqOffset)
            raw.storeLE(UInt64(3), at: MessageRecordLayout.conversationOffset)
            raw.storeLE(UInt64(100 + i), at: MessageRecordLayout.createdAtOffset)
            raw[MessageRecordLayout.kindOffset] = 1
            raw[MessageRecordLayout.idLengthOffset] = UInt8(id.count)
            raw[MessageRecordLayout.senderLengthOffset] = UInt8(sender.count)
            raw.storeLE(UInt32(body.count), at: MessageRecordLayout.bodyLengthOffset)
        }
        add(.messageRecord, payload + id + sender + body)
    }
    // Sorted runs: a bulk-loaded store (one run), its body records and engine records.
    let runFS = MemoryFileSystem()
    let runStore = try! MessageStore(path: "/r", options: storeOptions, fileSystem: runFS)
    try! runStore.load((0..<300).map { i in
        Message(id: "r\(i)", conversation: "c\(i % 4)", sender: "u", createdAt: Int64(i / 2), body: String(repeating: "y", count: i % 60),
                replyTo: i % 9 == 0 ? "r0" : nil)
    })
    try! runStore.close()
    for name in try! runFS.listDirectory("/r").sorted() where name.hasSuffix(".run") {
        let bytes = runFS.contents(of: "/r/" + name)!
        add(.sortedRun, bytes)
        let runs = try! RunStore(fileSystem: runFS, directory: "/r", cacheBytes: 1 << 20)
        var cursor = try! runs.cursor(SortedRun.id(fromFileName: name)!)
        var valid = try! cursor.seekFirst()
        var count = 0
        while valid && count < 4 {
            add(.bodyRecord, Array(cursor.payload))
            valid = try! cursor.next()
            count += 1
        }
    }
    func record(_ selector: UInt8, _ fill: (inout LogBatch) throws -> Void) {
        var batch = LogBatch()
        try! fill(&batch)
        // The first record's payload: after its frame header (spec/log-segment.md).
        let bytes = batch.bytes
        let length = Int(bytes[LogSegmentLayout.frameLengthOffset]) | Int(bytes[LogSegmentLayout.frameLengthOffset + 1]) << 8
        add(.engineRecord, [selector] + Array(bytes[LogSegmentLayout.frameHeaderSize..<(LogSegmentLayout.frameHeaderSize + length)]))
    }
    record(0) { try RetirementRecord.encode([3, 4], type: 23, into: &$0) }
    record(1) { try RunBindingRecord(segment: 5, run: RunAccount(id: 2, records: 10, fileBytes: 4096, flags: 0)).encode(type: 24, into: &$0) }
    record(2) { try MergeRecord(result: RunAccount(id: 9, records: 7, fileBytes: 999, flags: 1), sources: [2, 3]).encode(type: 25, into: &$0) }
    record(8) { try ReplicaMarkRecord(source: 0x1122_3344_5566_7788, sequence: 1000).append(into: &$0) }
    let searchEntry = SearchEntry(key: MessageKey(conversation: 2, createdAt: 1_700_000_000_000, seq: 7),
                                  terms: [Array("cafe".utf8), Array("你好".utf8)])
    record(9) {
        try SearchBuildRecord(cursor: MessageKey(conversation: 2, createdAt: 1_700_000_000_123, seq: 8).treeKey, built: false,
                              entries: [searchEntry]).append(into: &$0)
    }
    record(10) { try SearchRemoveRecord.append(searchEntry, into: &$0) }
    if let token { add(.cursorToken, Array(token.utf8)) }
    add(.cursorToken, Array(CursorToken.encode(.init(conversation: 1, createdAt: 5, seq: 3), secret: 1,
                                               version: CursorToken.newestFirstVersion).utf8))
    add(.cursorToken, [UInt8](repeating: 0x41, count: 24), flag: true)
    add(.cursorToken, Array("not a token".utf8))
    // A run of several index pages (one record per 64-byte block): page table, page loads
    // and lookups across pages (spec/sorted-run.md, version 2).
    let pagedFS = MemoryFileSystem()
    try! pagedFS.createDirectory("/p")
    let paged = try! RunStore(fileSystem: pagedFS, directory: "/p", cacheBytes: 0, blockSize: 64)
    let pagedWriter = try! paged.writer(id: 1, compression: .fast)
    for i in 0..<300 {
        try! [UInt8](repeating: UInt8(i % 251), count: 16).withUnsafeBytes {
            try pagedWriter.append(RunKey(UInt64(i / 50), UInt64(i) * 1_000, UInt64(i)), tag: UInt32(i % 5), payload: $0)
        }
    }
    _ = try! pagedWriter.finish()
    add(.sortedRun, pagedFS.contents(of: "/p/" + SortedRun.fileName(1))!)
    // Posting blocks: a common word's (conversations change often), a long run in one
    // conversation, and several terms in one block.
    func block(_ postings: [Posting]) {
        guard let value = PostingBlock.encode(postings[...]) else { return }
        let key = postings[0].blockKey
        var bytes: [UInt8] = []
        for word in [key.w0, key.w1, key.w2] { withUnsafeBytes(of: word.littleEndian) { bytes += $0 } }
        add(.postingBlock, bytes + value)
    }
    let base: UInt64 = 1_700_000_000_000
    var common: [Posting] = []
    for i in UInt64(0)..<40 {
        common.append(Posting(term: 9, conversation: 3 + (i / 3) * 2, createdAt: base + i * 60_000, seq: 100 + i * 7))
    }
    block(common)
    var run: [Posting] = []
    for i in UInt64(0)..<150 { run.append(Posting(term: 4, conversation: 12, createdAt: base + i * 8_640, seq: 5_000 + i)) }
    block(run)
    var terms: [Posting] = []
    for i in UInt64(0)..<30 { terms.append(Posting(term: 20 + i / 10, conversation: 1 + i % 10, createdAt: base + i, seq: 1 + i)) }
    block(terms)
    for (i, seed) in seeds.enumerated() {
        let path = directory + "/seed-\(i)"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = seed.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }
    print("wrote \(seeds.count) seeds to \(directory)")
}
