// Damage fuzz target. A small valid store is built once (in memory) and read through every
// primitive (the expected answers). Each input is a file selector byte and a list of 8-byte
// damage records applied to a copy of that file; the store then opens on the damaged files and every primitive, a
// write and verify() run. Each call must throw a typed error or return exactly the expected
// answer; a trap, an untyped error, an ASan report or a wrong answer is a finding.
import FuzzSupport
import Glibc
import Scrollback
import ScrollbackFormat
import ScrollbackIO

let ids = (0..<60).map { "m\($0)" }
let conversations = ["c0", "c1", "c2", "none"]
let users = ["u0", "u1"]

func options() -> StoreOptions {
    var options = StoreOptions()
    options.cacheBytes = 1 << 20
    options.pageSize = 4096
    options.segmentBytes = 64 << 10
    options.autoCompactGarbageRatio = nil
    return options
}

/// One answer per primitive call, in a fixed order; nil = the call threw.
typealias Answers = [String: String]

/// Runs every primitive; `body` receives (name, result-or-nil) for each call.
func readAll(_ store: MessageStore, _ body: (String, String?) -> Void) {
    func call<T>(_ name: String, _ f: () throws -> T) {
        do { body(name, "\(try f())") } catch {
            expectTyped(error, name)
            body(name, nil)
        }
    }
    for id in ids { call("message(\(id))") { try store.message(id: id) } }
    for c in conversations {
        call("latest(\(c))") { try store.latest(in: c, limit: 1000) }
        call("count(\(c))") { try store.count(in: c, after: 3) }
        call("messages(\(c))") { try store.messages(in: c, from: 2, through: 30) }
        call("page-offset(\(c))") { try store.page(in: c, offset: 3, limit: 7, order: .oldestFirst) }
        call("page-cursor(\(c))") { () throws -> [[Message]] in
            var pages: [[Message]] = []
            var cursor: Cursor? = nil
            repeat {
                let page = try store.page(in: c, after: cursor, limit: 4)
                pages.append(page.messages)
                cursor = page.next
            } while cursor != nil && pages.count < 100
            return pages
        }
        for u in users { call("unread(\(u),\(c))") { try store.unreadCount(user: u, in: c) } }
    }
    call("feed") { try store.feed(conversations, limit: 1000) }
    // The search index: a word of the edits, the long "bbb…" words (kept by their first 32
    // bytes in the index, checked against the bodies), per conversation and across the store.
    for query in ["edited", "b", String(repeating: "b", count: 40)] {
        call("search(\(query.prefix(8)))") { try store.search(query, limit: 1000).messages }
        call("searchCount(\(query.prefix(8)))") { try store.searchCount(query) }
        for c in conversations { call("search(\(query.prefix(8)),\(c))") { try store.search(query, in: .conversation(c), limit: 1000).messages } }
    }
    call("latestMessage") { try store.latestMessage(in: conversations) }
    call("conversations") { try store.conversations(limit: 100) }
}

struct Healthy {
    var files: [(path: String, bytes: [UInt8])]
    var answers: Answers
}

/// The valid store, built once: a few sealed and raw log segments, a checkpointed page file
/// with several tree levels, deleted, edited and read-marked messages.
nonisolated(unsafe) let healthy: Healthy = {
    let fs = MemoryFileSystem()
    let store = try! MessageStore(path: "/db", options: options(), fileSystem: fs)
    try! store.enableSearchIndex()
    for (i, id) in ids.enumerated() {
        _ = try! store.append(Message(
            id: id, conversation: conversations[i % 3], sender: users[i % 2], createdAt: Int64(i / 2),
            body: String(repeating: "b", count: (i * 97) % 3000), replyTo: i % 5 == 4 ? ids[i - 1] : nil))
        if i % 7 == 6 { try! store.delete(id: ids[i - 3]) }
        if i % 11 == 10 { try! store.edit(id: ids[i - 1], body: "edited \(i)") }
        if i % 13 == 12 { try! store.markRead(user: users[i % 2], conversation: conversations[i % 3], through: id) }
        if i == 30 { try! store.checkpoint() }
    }
    try! store.close()
    var files: [(String, [UInt8])] = []
    func walk(_ dir: String) {
        for name in (try? fs.listDirectory(dir))?.sorted() ?? [] {
            let path = dir + "/" + name
            if let bytes = fs.contents(of: path) { files.append((path, bytes)) } else { walk(path) }
        }
    }
    walk("/db")
    if getenv("FUZZ_LIST_FILES") != nil { for (path, bytes) in files { print(path, bytes.count) } }
    let reopened = try! MessageStore(path: "/db", options: options(), fileSystem: fs)
    var answers: Answers = [:]
    readAll(reopened) { name, answer in
        guard let answer else { finding("healthy store: \(name) threw") }
        answers[name] = answer
    }
    precondition(try! reopened.verify().isEmpty)
    try! reopened.close()
    return Healthy(files: files, answers: answers)
}()

func fuzzOne(_ data: [UInt8]) {
    guard !healthy.files.isEmpty else { return }
    var files = healthy.files.map(\.bytes)
    var removed = Set<Int>()
    // Byte 0 picks the file every record damages (one damaged file per input: see the
    // README's "Known limitation" for damage to two files that mimics a crash state).
    let f = Int(data.first ?? 0) % files.count
    var at = 1
    while at + 8 <= data.count, at < 8 * 16 {
        let r = Array(data[at..<at + 8])
        at += 8
        let offset = Int(r[2]) | Int(r[3]) << 8 | Int(r[4]) << 16 | Int(r[5]) << 24
        let value = r[6], count = Int(r[7]) + 1
        let size = files[f].count  // r[0] is unused (kept for an 8-byte record)
        switch r[1] % 8 {
        case 0 where size > 0: files[f][offset % size] ^= value == 0 ? 1 : value      // flip bits
        case 1 where size > 0:                                                          // overwrite a run
            let start = offset % size
            for i in start..<min(size, start + count) { files[f][i] = value }
        case 2: files[f].removeLast(size == 0 ? 0 : size - offset % (size + 1))         // truncate
        case 3: files[f] += (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ Int(value)) } // append garbage
        case 4 where size >= 512:                                                       // zero a sector
            let start = (offset % size) & ~511
            for i in start..<min(size, start + 512) { files[f][i] = 0 }
        case 5 where size >= 8192:                                                      // swap two 4 KiB pages
            let pages = size / 4096
            let a = (offset % pages) * 4096, b = (Int(value) % pages) * 4096
            let pa = Array(files[f][a..<a + 4096])
            files[f].replaceSubrange(a..<a + 4096, with: files[f][b..<b + 4096])
            files[f].replaceSubrange(b..<b + 4096, with: pa)
        case 6 where size >= 4:                                                         // little-endian add to a u32
            let start = offset % (size - 3)
            var v = UInt32(files[f][start]) | UInt32(files[f][start + 1]) << 8 | UInt32(files[f][start + 2]) << 16 | UInt32(files[f][start + 3]) << 24
            v &+= UInt32(value) &- 128
            for i in 0..<4 { files[f][start + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
        case 7 where value == 0xFF: removed.insert(f)                                   // lose the file
        default: break
        }
    }
    // An empty directory is a new store, not a damaged one.
    if removed.count == files.count { return }
    let fs = MemoryFileSystem()
    try! fs.createDirectory("/db")
    for (i, file) in healthy.files.enumerated() where !removed.contains(i) {
        let parent = String(file.path[..<file.path.lastIndex(of: "/")!])
        if !fs.fileExists(parent) { try? fs.createDirectory(parent) }
        fs.setContents(of: file.path, to: files[i])
    }
    let store: MessageStore
    do {
        store = try MessageStore(path: "/db", options: options(), fileSystem: fs)
    } catch {
        expectTyped(error, "open")
        return
    }
    readAll(store) { name, answer in
        if let answer, answer != healthy.answers[name] {
            finding("\(name) returned a wrong answer on a damaged store:\n\(answer)\nexpected\n\(healthy.answers[name] ?? "?")")
        }
    }
    do { _ = try store.verify() } catch { expectTyped(error, "verify") }
    do {
        _ = try store.append(Message(id: "new", conversation: "c1", sender: "u0", createdAt: 99, body: "after damage"))
        if let got = try store.message(id: "new"), got.body != "after damage" { finding("new message reads back wrong") }
    } catch { expectTyped(error, "append after damage") }
    do { try store.checkpoint() } catch { expectTyped(error, "checkpoint") }
    do { try store.close() } catch { expectTyped(error, "close") }
}
