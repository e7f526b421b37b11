import Foundation
import Scrollback

// Builds a small store of message format 3 (format 2 with the search index on, postings as
// one 24-byte B-tree key each: the layout before posting blocks) for the upgrade test:
// appends with Latin words, diacritics and CJK text, edits and deletes (re-indexed and
// removed postings), the index turned on part-way (a build over stored messages, then
// messages indexed by their own commits), a checkpoint, then a log tail of indexed writes
// that no checkpoint covers (the files are copied while the store is open, as after a
// crash). Writes the expected answers of a set of searches as JSON next to it.
//
// Run once with the build that wrote format 3 (see the commit that added it); the test
// target held it as a test behind SCROLLBACK_V3_FIXTURE_OUT.
func buildFormatThreeFixture(out: String) throws {
    try? FileManager.default.removeItem(atPath: out)
    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    let storePath = out + "/store"
    var options = StoreOptions()
    options.segmentBytes = 64 << 10
    options.pageSize = 4096
    options.autoCompactGarbageRatio = nil
    let store = try MessageStore(path: storePath, options: options)
    struct LCG { var s: UInt64; mutating func next() -> UInt64 { s = s &* 6364136223846793005 &+ 1442695040888963407; return s >> 11 } }
    var rng = LCG(s: 7)
    let words = ["hello", "help", "test", "testing", "message", "chat", "Café", "cafe", "naïve", "don't", "v2", "2026",
                 "你好", "前言你好", "東京", "東京タワー", "한국어", "🙂", "deploy", "déployer"]
    func body(_ n: Int) -> String {
        (0..<(1 + n % 9)).map { _ in words[Int(rng.next() % UInt64(words.count))] }.joined(separator: n % 3 == 0 ? ", " : " ")
    }
    let conversations = (0..<6).map { "room-\($0)" } + ["频道"]
    var t: Int64 = 1_767_225_600_000
    var ids: [String] = []
    func append(_ count: Int) throws {
        for _ in 0..<count {
            t += Int64(rng.next() % 4000)
            let i = ids.count
            let id = "m\(i)"
            _ = try store.append(Message(id: id, conversation: conversations[Int(rng.next() % UInt64(conversations.count))],
                                     sender: "user\(i % 5)", createdAt: t, kind: .text, body: body(i)))
            ids.append(id)
        }
    }
    try append(300)
    try store.enableSearchIndex()
    try append(150)
    for i in stride(from: 3, to: 400, by: 11) { try store.edit(id: ids[i], body: "edited " + body(i + 1)) }
    for i in stride(from: 7, to: 400, by: 19) { try store.delete(id: ids[i]) }
    try store.checkpoint()
    try append(60)
    for i in stride(from: 402, to: 480, by: 7) { try store.edit(id: ids[i], body: "tail edit 東京 " + body(i)) }
    for i in stride(from: 405, to: 480, by: 13) { try? store.delete(id: ids[i]) }
    try FileManager.default.copyItem(atPath: storePath, toPath: out + "/v3-store")
    let queries = ["hello", "hel", "cafe", "café", "naive", "don", "t", "東京", "你好", "前言", "한국", "tail", "edited hello",
                   "test chat", "2026", "v2", "deploy", "dep", "東", "タワー"]
    var expected: [[String: Any]] = []
    for query in queries {
        for scope in [SearchScope.wholeStore, .conversation("room-1"), .conversations(["room-2", "频道"])] {
            var found: [String] = []
            var page = try store.search(query, in: scope, limit: 7)
            found += page.messages.map(\.id)
            while let next = page.next {
                page = try store.search(query, in: scope, after: next, limit: 7)
                found += page.messages.map(\.id)
            }
            let scopeName: Any
            switch scope {
            case .wholeStore: scopeName = NSNull()
            case .conversation(let name): scopeName = [name]
            case .conversations(let names): scopeName = names
            }
            expected.append(["query": query, "scope": scopeName, "ids": found])
        }
    }
    let data = try JSONSerialization.data(withJSONObject: expected, options: [.sortedKeys, .prettyPrinted])
    try data.write(to: URL(fileURLWithPath: out + "/v3-store-expected.json"))
    try store.close()
}
