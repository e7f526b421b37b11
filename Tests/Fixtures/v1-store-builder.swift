import Foundation
import Scrollback

// Builds a small format-1 store for the upgrade test: appends, batches, edits, deletes, read
// markers, equal timestamps, non-ASCII text, a compaction (relocated records, retired and
// sealed segments), a checkpoint, and then a log tail that no checkpoint covers (the process
// exits without closing). Writes the expected logical content as JSON next to it.
let out = CommandLine.arguments[1]
try? FileManager.default.removeItem(atPath: out)
try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
let storePath = out + "/store"
var options = StoreOptions()
options.segmentBytes = 64 << 10
options.pageSize = 4096
options.autoCompactGarbageRatio = nil
let store = try MessageStore(path: storePath, options: options)
var random = SystemRandomNumberGenerator()
struct LCG { var s: UInt64; mutating func next() -> UInt64 { s = s &* 6364136223846793005 &+ 1442695040888963407; return s >> 11 } }
var rng = LCG(s: 42)
let words = ["hello", "test", "message", "chat", "hey", "ok", "thanks", "sure", "great", "yes", "no", "Café", "naïve", "你好", "前言你好", "🙂", "\"quoted\"", "back\\slash"]
func body(_ n: Int) -> String { (0..<(1 + n % 12)).map { _ in words[Int(rng.next() % UInt64(words.count))] }.joined(separator: " ") }
let conversations = (0..<12).map { "conv-\($0)" } + ["Gruppe Ölfeld", "频道"]
var ids: [String] = []
var t: Int64 = 1_767_225_600_000
func one(_ i: Int) -> Message {
    t += Int64(rng.next() % 5000)
    let conversation = conversations[Int(rng.next() % UInt64(conversations.count))]
    let kind = [MessageKind.text, .text, .text, .image, .file, .audio, .video, .system][Int(rng.next() % 8)]
    let reply: String? = i % 9 == 0 && !ids.isEmpty ? ids[Int(rng.next() % UInt64(ids.count))] : nil
    // every 25th message shares its timestamp with the previous one
    if i % 25 == 0 { t -= 0 }
    return Message(id: "m\(i)", conversation: conversation, sender: "user\(rng.next() % 9)", createdAt: i % 25 == 0 ? t : t,
                   kind: kind, body: body(i), replyTo: reply)
}
var n = 0
func appendSome(_ count: Int) throws {
    for _ in 0..<count {
        let m = one(n); n += 1
        if n % 7 == 0 {
            var batch = WriteBatch()
            batch.append(m)
            let m2 = Message(id: "m\(n)-b", conversation: m.conversation, sender: "user1", createdAt: m.createdAt, kind: .text, body: "same time " + body(n))
            batch.append(m2)
            _ = try store.write(batch)
            ids.append(m.id); ids.append(m2.id)
        } else {
            _ = try store.append(m)
            ids.append(m.id)
        }
    }
}
try appendSome(450)
for i in stride(from: 3, to: 400, by: 11) { try store.edit(id: ids[i], body: "edited " + body(i)) }
var deleted = Set<String>()
for i in stride(from: 5, to: 450, by: 13) { try store.delete(id: ids[i]); deleted.insert(ids[i]) }
func mark() throws {
    for u in 0..<6 {
        for c in conversations.prefix(8) {
            if let m = try store.latest(in: c, limit: 1 + u).last { try store.markRead(user: "user\(u)", conversation: c, through: m.id) }
        }
    }
}
try mark()
let report = try store.compact()
FileHandle.standardError.write("compaction moved \(report)\n".data(using: .utf8)!)
try appendSome(200)
for i in stride(from: 500, to: 700, by: 17) where !deleted.contains(ids[i]) { try store.edit(id: ids[i], body: "late edit " + body(i)) }
try store.checkpoint()
// The tail: written and synced (full durability) but not checkpointed.
try appendSome(80)
for i in stride(from: 720, to: 800, by: 9) where !deleted.contains(ids[i]) { try store.delete(id: ids[i]); deleted.insert(ids[i]) }
try mark()

// Expected content.
var expected: [String: Any] = [:]
var convs: [[String: Any]] = []
for c in conversations {
    var page = try store.page(in: c, after: nil, limit: 10_000, order: .oldestFirst)
    var all = page.messages
    while let next = page.next { page = try store.page(in: c, after: next, limit: 10_000, order: .oldestFirst); all += page.messages }
    convs.append(["conversation": c, "messages": all.map { m -> [String: Any] in
        var d: [String: Any] = ["id": m.id, "sender": m.sender, "createdAt": m.createdAt, "kind": m.kind.name, "body": m.body, "edited": m.edited]
        if let r = m.replyTo { d["replyTo"] = r }
        return d
    }])
}
expected["conversations"] = convs
var unread: [[String: Any]] = []
for u in 0..<9 { for c in conversations { unread.append(["user": "user\(u)", "conversation": c, "unread": try store.unreadCount(user: "user\(u)", in: c)]) } }
expected["unread"] = unread
let data = try JSONSerialization.data(withJSONObject: expected, options: [.sortedKeys])
try data.write(to: URL(fileURLWithPath: out + "/expected.json"))
FileHandle.standardError.write("messages \(ids.count - deleted.count)\n".data(using: .utf8)!)
// Exit without closing: the tail stays uncheckpointed, as after a crash.
exit(0)
