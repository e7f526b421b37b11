// Decoder fuzz target: the first byte selects a decoder, the rest are the bytes it decodes.
// Every outcome must be a value or a thrown StorageError / ScrollbackError; a trap, an
// untyped error or an AddressSanitizer report is a finding.
import FuzzSupport
import Glibc
@testable import Scrollback
import ScrollbackBTree
import ScrollbackFormat
import ScrollbackIO
@testable import ScrollbackLog
@testable import ScrollbackMessaging
import ScrollbackPager
@testable import ScrollbackStorage

enum Decoder: UInt8, CaseIterable {
    case logSegment = 0, sealedSegment, btreePage, metaPage, freeListPage, messageRecord, cursorToken
    /// A sorted-run file (spec/sorted-run.md), a body record, an engine record (spec/storage-records.md).
    case sortedRun, bodyRecord, engineRecord
    /// A search posting block (spec/message-records.md): its 24-byte key, then its value.
    case postingBlock
}

let pageSize = 4096
let logOptions = LogOptions(segmentSize: 64 << 10, blockSize: 4096, blockCacheBytes: 1 << 20, saltSeed: 7)

func fuzzOne(_ input: [UInt8]) {
    guard let first = input.first else { return }
    // Bit 7 is a flag of some decoders: the selector is the low seven bits.
    let decoder = Decoder(rawValue: (first & 0x7F) % UInt8(Decoder.allCases.count))!
    let body = Array(input.dropFirst())
    switch decoder {
    case .logSegment, .sealedSegment:
        // body[0] is the segment id (the header names it), the rest the file.
        let id = UInt32(max(1, body.first ?? 1))
        scanLog(id, SegmentFileName.name(id, decoder == .logSegment ? .raw : .sealed), Array(body.dropFirst()))
    case .btreePage: btreePage(body, fixChecksum: first & 0x80 != 0)
    case .metaPage: metaPage(body, fixChecksum: first & 0x80 != 0)
    case .freeListPage: freeListPage(body)
    case .messageRecord: messageRecord(body)
    case .cursorToken: cursorToken(body, encodeFirst: first & 0x80 != 0)
    case .sortedRun: sortedRun(body)
    case .bodyRecord: bodyRecord(body)
    case .engineRecord: engineRecord(body)
    case .postingBlock: postingBlock(body)
    }
}

/// The postings of the block `key` → `value`, or nil when it does not read (a typed error).
func readPostings(_ key: BTreeKey, _ value: [UInt8], _ context: String) -> [Posting]? {
    do {
        return try value.withUnsafeBytes { raw in
            var reader = try PostingBlockReader(key: key, value: raw, file: "fuzz")
            var list: [Posting] = []
            while let p = try reader.next() { list.append(p) }
            return list
        }
    } catch {
        expectTyped(error, context)
        return nil
    }
}

/// A posting block: bytes 0..<24 its key (three little-endian words), the rest its value.
/// It reads as a list or throws a typed error; a list that reads encodes (when it fits with
/// the encoder's parameters) to a block that reads as the same list; a posting added in place
/// (`PostingBlock.inserting`) reads back as the list with it, and one already there is
/// `.present`.
func postingBlock(_ bytes: [UInt8]) {
    guard bytes.count >= 24 else { return }
    let key = bytes.withUnsafeBytes { BTreeKey($0.loadLE(UInt64.self, at: 0), $0.loadLE(UInt64.self, at: 8), $0.loadLE(UInt64.self, at: 16)) }
    let value = Array(bytes[24...])
    guard let list = readPostings(key, value, "posting block read"), let first = list.first else { return }
    if let encoded = PostingBlock.encode(list[...]) {
        guard readPostings(first.blockKey, encoded, "posting block re-read") == list else {
            fatalError("a posting block's list does not read back after encoding")
        }
    }
    let middle = list[list.count / 2]
    guard middle.seq < MessageKey.maxSeq else { return }
    let added = Posting(term: middle.term, conversation: middle.conversation, createdAt: middle.createdAt, seq: middle.seq + 1)
    var out = [UInt8](repeating: 0, count: PostingBlock.valueSize)
    do {
        let splice = try value.withUnsafeBytes { raw in
            try out.withUnsafeMutableBytes { try PostingBlock.inserting(added, key: key, value: raw, into: $0, file: "fuzz") }
        }
        switch splice {
        case .present:
            if !list.contains(added) { fatalError("inserting reports a posting present that the block does not hold") }
        case .inserted:
            guard readPostings(key, out, "posting block after insert") == (list + [added]).sorted() else {
                fatalError("a posting inserted in place does not read back with the block's list")
            }
        case .doesNotFit:
            break
        }
    } catch {
        expectTyped(error, "posting block insert")
    }
}

/// The bytes as run 1's file: open (header, footer, index), verify, a full cursor scan, and
/// keyed lookups of the index's first keys.
func sortedRun(_ bytes: [UInt8]) {
    let fs = MemoryFileSystem()
    do {
        try fs.createDirectory("/runs")
        fs.setContents(of: "/runs/" + SortedRun.fileName(1), to: bytes)
        let store = try RunStore(fileSystem: fs, directory: "/runs", cacheBytes: 1 << 20)
        let run = try store.run(1)
        do { try run.verify() } catch { expectTyped(error, "run verify") }
        do {
            var cursor = try store.cursor(1)
            var valid = try cursor.seekFirst()
            var steps = 0
            while valid && steps < 100_000 {
                _ = (cursor.key, cursor.tag, cursor.payload.count)
                valid = try cursor.next()
                steps += 1
            }
        } catch { expectTyped(error, "run cursor") }
        // The first keys of the first index page (read and checked on first use); then every
        // page.
        do {
            if run.pageCount > 0 {
                for entry in try run.page(0).entries.prefix(8) {
                    do { _ = try store.withRecord(run: 1, key: entry.firstKey) { _ in } } catch { expectTyped(error, "run lookup") }
                }
            }
        } catch { expectTyped(error, "run index page") }
        do { _ = try run.allEntries() } catch { expectTyped(error, "run index") }
    } catch {
        expectTyped(error, "run open")
    }
}

/// The body record a run stores under a message's key.
func bodyRecord(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { raw in
        do { _ = try MessageBody.parse(raw, "fuzz") } catch { expectTyped(error, "body record parse") }
    }
}

/// The storage engine's records (retire, seal/attach binding, merge) and the message layer's
/// small records (delete, markRead, membership, names, bulk load, replica mark, search build
/// and remove; a search record that decodes must encode back to the same bytes).
func engineRecord(_ bytes: [UInt8]) {
    let selector = bytes.first ?? 0
    let payload = Array(bytes.dropFirst())
    payload.withUnsafeBytes { raw in
        let position: LogPosition = 1 << 32 | 64
        do {
            switch selector % 11 {
            case 0: _ = try RetirementRecord.decode(raw, position: position)
            case 1: _ = try RunBindingRecord.decode(raw, position: position)
            case 2: _ = try MergeRecord.decode(raw, position: position)
            case 3: _ = try DeleteRecord.decode(raw, position: position)
            case 4: _ = try MarkReadRecord.decode(raw, position: position)
            case 5: _ = try MembershipRecord.decode(.join, raw, position: position)
            case 6: _ = try NameRecord.decode(.newConversation, raw, position: position)
            case 7: _ = try BulkLoadRecord.decode(raw, position: position)
            case 8: _ = try ReplicaMarkRecord.decode(raw, position: position)
            case 9:
                let build = try SearchBuildRecord.decode(raw, position: position)
                var batch = LogBatch()
                try build.append(into: &batch)
                let encoded = Array(batch.bytes.dropFirst(LogSegmentLayout.frameHeaderSize))
                if encoded != payload { fatalError("searchBuild record does not re-encode to its bytes") }
            default:
                let entry = try SearchRemoveRecord.decode(raw, position: position)
                var batch = LogBatch()
                try SearchRemoveRecord.append(entry, into: &batch)
                let encoded = Array(batch.bytes.dropFirst(LogSegmentLayout.frameHeaderSize))
                if encoded != payload { fatalError("searchRemove record does not re-encode to its bytes") }
            }
        } catch {
            expectTyped(error, "record decode \(selector % 11)")
        }
    }
}

/// The bytes as the only file of a log directory: recovery scan, then every read path.
func scanLog(_ id: UInt32, _ name: String, _ bytes: [UInt8]) {
    let fs = MemoryFileSystem()
    do {
        try fs.createDirectory("/log")
        fs.setContents(of: "/log/" + name, to: bytes)
        var positions: [LogPosition] = []
        let log = try Log.open(fileSystem: fs, directory: "/log", options: logOptions, replayFrom: 0) { txn in
            txn.forEachRecord { position, _, _ in positions.append(position) }
        }
        defer { try? log.close() }
        for position in positions {
            _ = try? log.withRecord(at: position) { type, payload in (type, payload.count) }
        }
        do { try log.verify() } catch { expectTyped(error, "log verify") }
        do { try log.forEachTransaction(inSegment: id) { _ in } } catch { expectTyped(error, "forEachTransaction") }
    } catch {
        expectTyped(error, "log open")
    }
}

/// Pads or cuts the bytes to one page.
func page(_ bytes: [UInt8]) -> [UInt8] {
    var page = Array(bytes.prefix(pageSize))
    page += [UInt8](repeating: 0, count: pageSize - page.count)
    return page
}

func btreePage(_ bytes: [UInt8], fixChecksum: Bool) {
    var page = page(bytes)
    // The pager only verifies pages inside its page space (number < pageCount, and
    // pageCount * pageSize is a file size), so the number is bounded the same way here.
    let number = PageNumber(page.withUnsafeBytes { $0.loadLE(UInt64.self, at: 8) }) % (1 << 40)
    if fixChecksum {
        page.withUnsafeMutableBytes { raw in
            raw.storeLE(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[4...])), at: 0)
        }
    }
    page.withUnsafeBytes { raw in
        do { try Pager.verifyPage(raw, number: number, maxSequence: .max, file: "pages") } catch {
            expectTyped(error, "verifyPage")
        }
        do { _ = try BTree.decodePage(raw, pageNumber: number) } catch { expectTyped(error, "decodePage") }
    }
}

func metaPage(_ bytes: [UInt8], fixChecksum: Bool) {
    var body = bytes
    if fixChecksum, body.count >= MetaPageLayout.bodySize {
        body.withUnsafeMutableBytes { raw in
            raw.storeLE(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<MetaPageLayout.checksum])),
                        at: MetaPageLayout.checksum)
        }
    }
    for slot: UInt64 in [0, 1] {
        _ = body.withUnsafeBytes { MetaPage.decode($0, fileOffset: slot * UInt64(pageSize), expectedSlot: slot) }
    }
}

func freeListPage(_ bytes: [UInt8]) {
    let pageCount = UInt64(bytes.first ?? 0) << 4 | 2
    let page = page(Array(bytes.dropFirst()))
    page.withUnsafeBytes { raw in
        do { _ = try FreeListPage.decode(raw, pageCount: pageCount, file: "pages", fileOffset: 8192) } catch {
            expectTyped(error, "free-list decode")
        }
    }
}

func messageRecord(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { raw in
        do { _ = try MessageHeader.parse(raw, position: 1 << 32 | 64, offset: 64) } catch {
            expectTyped(error, "message record parse")
        }
    }
}

/// A small store whose cursor decoding runs on fuzzed tokens (built once).
nonisolated(unsafe) let cursorStore: MessageStore = {
    var options = StoreOptions()
    options.cacheBytes = 1 << 20
    options.pageSize = 4096
    options.segmentBytes = 64 << 10
    let store = try! MessageStore(path: "/store", options: options, fileSystem: MemoryFileSystem())
    for i in 0..<20 {
        _ = try! store.append(Message(id: "m\(i)", conversation: "c\(i % 2)", sender: "u", createdAt: Int64(i / 3), body: "b\(i)"))
    }
    return store
}()

func cursorToken(_ bytes: [UInt8], encodeFirst: Bool) {
    let secret = cursorStore.database.cursorSecret
    var token = String(decoding: bytes, as: UTF8.self)
    if encodeFirst {
        // Well-formed tokens for arbitrary positions: exercises the store's seek past the check.
        let b = bytes + [UInt8](repeating: 0, count: 25)
        let position = b.withUnsafeBytes { raw in
            CursorToken.Position(conversation: raw.loadLE(UInt64.self, at: 0) % 4, createdAt: raw.loadLE(UInt64.self, at: 8),
                                 seq: raw.loadLE(UInt64.self, at: 16))
        }
        // Any version byte: the message versions (1 legacy, 3, 4), the list's (2) and unknown ones.
        let version = b[24] % 6
        token = CursorToken.encode(position, secret: secret, version: version)
        guard CursorToken.decode(token, secret: secret, version: version) == position,
              CursorToken.decode(token, secret: secret)?.version == version else { finding("cursor token does not round-trip") }
    } else {
        _ = CursorToken.decode(token, secret: secret)
        _ = Base64URL.decode(token)
    }
    for conversation in ["c0", "c1", "none"] {
        for order in [Order.newestFirst, .oldestFirst] {
            do { _ = try cursorStore.page(in: conversation, after: Cursor(token: token), limit: 3, order: order) } catch {
                expectTyped(error, "page(after:)")
            }
        }
    }
}
