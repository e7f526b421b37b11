@testable import Scrollback
import Dispatch
import Foundation
import ScrollbackFormat
import ScrollbackIO
import Testing
import TestSupport

/// Shared pieces of the fault tests: store options, a deterministic workload, a complete
/// observation of every query primitive, and a watchdog that bounds each case.
enum FaultFixture {
    static let directory = "/db"
    static let conversations = ["general", "random", "dev", "ops"]
    static let users = ["ann", "bob", "cy"]

    /// Small segments (sealing happens after ~64 KiB of log), small pages, no automatic
    /// compaction, rare automatic checkpoints (the tests place them).
    static func options(durability: Scrollback.Durability = .full) -> StoreOptions {
        var options = StoreOptions()
        options.cacheBytes = 1 << 20
        options.segmentBytes = 64 << 10
        options.pageSize = 4096
        options.durability = durability
        options.checkpointDirtyBytes = 8 << 20
        options.checkpointLogBytes = 8 << 20
        options.autoCompactGarbageRatio = nil
        // The liveness model of the damage tests: every log file present holds live data.
        options.changeRetentionBytes = 0
        return options
    }

    static func message(_ n: Int, bodyBytes: Int, rng: inout SeededRandom) -> Message {
        let conversation = conversations[n % conversations.count]
        let letters = Array("abcdefghijklmnopqrstuvwxyz ")
        var body = String(repeating: "x", count: 0)
        body.reserveCapacity(bodyBytes)
        for _ in 0..<bodyBytes { body.append(letters[Int(rng.next() % UInt64(letters.count))]) }
        return Message(id: "m\(n)", conversation: conversation, sender: users[n % users.count],
                       createdAt: 1_700_000_000_000 + Int64(n / 3) * 1000, kind: MessageKind.allCases[n % 6],
                       body: body, replyTo: n % 5 == 0 && n > 0 ? "m\(n - 1)" : nil)
    }

    /// One step of a workload. `isWrite` steps change the data; the others are maintenance.
    struct Step: CustomStringConvertible {
        var description: String
        var isWrite: Bool
        var run: (MessageStore) throws -> Void
    }

    /// A deterministic workload covering every write path: single appends, batches (with
    /// appends, edits, deletes, read markers), edits, deletes, read markers, checkpoints,
    /// sealing (segments fill up), a compaction and a backup. `count` messages in total.
    /// `finalCompaction`: end with a compaction (which removes segments) right before the
    /// un-checkpointed tail, instead of a checkpoint.
    static func workload(seed: UInt64, messages count: Int, bodyBytes: Int, backupPath: String? = nil,
                         finalCompaction: Bool = false) -> [Step] {
        var rng = SeededRandom(seed: seed)
        var steps: [Step] = []
        var n = 0
        var live: [Int] = []
        while n < count {
            let choice = rng.next() % 10
            if choice < 4 || live.count < 4 {
                let message = message(n, bodyBytes: bodyBytes, rng: &rng)
                steps.append(Step(description: "append \(message.id)", isWrite: true) { try $0.append(message) })
                live.append(n)
                n += 1
            } else if choice < 6 {
                var batch = WriteBatch()
                var names: [String] = []
                for _ in 0..<3 where n < count {
                    let message = message(n, bodyBytes: bodyBytes, rng: &rng)
                    batch.append(message)
                    names.append(message.id)
                    live.append(n)
                    n += 1
                }
                let edited = live[Int(rng.next() % UInt64(live.count))]
                batch.edit(id: "m\(edited)", body: "batch edit \(edited)")
                let user = users[Int(rng.next() % 3)]
                let marked = live[Int(rng.next() % UInt64(live.count))]
                batch.markRead(user: user, conversation: conversations[marked % conversations.count], through: "m\(marked)")
                let victim = live.remove(at: Int(rng.next() % UInt64(live.count)))
                batch.delete(id: "m\(victim)")
                let description = "batch \(names) edit m\(edited) mark \(user) m\(marked) delete m\(victim)"
                steps.append(Step(description: description, isWrite: true) { try $0.write(batch) })
            } else if choice < 7 {
                let edited = live[Int(rng.next() % UInt64(live.count))]
                let body = "edited \(edited) " + String(repeating: "e", count: Int(rng.next() % 200))
                steps.append(Step(description: "edit m\(edited)", isWrite: true) { try $0.edit(id: "m\(edited)", body: body) })
            } else if choice < 8 {
                let victim = live.remove(at: Int(rng.next() % UInt64(live.count)))
                steps.append(Step(description: "delete m\(victim)", isWrite: true) { try $0.delete(id: "m\(victim)") })
            } else {
                let user = users[Int(rng.next() % 3)]
                let marked = live[Int(rng.next() % UInt64(live.count))]
                let conversation = conversations[marked % conversations.count]
                steps.append(Step(description: "markRead \(user) m\(marked)", isWrite: true) {
                    try $0.markRead(user: user, conversation: conversation, through: "m\(marked)")
                })
            }
            if steps.count % 17 == 0 {
                steps.append(Step(description: "checkpoint", isWrite: false) { try $0.checkpoint() })
            }
            if steps.count == count / 2 {
                steps.append(Step(description: "compact", isWrite: false) { try $0.compact() })
            }
            if let backupPath, steps.count == (count * 3) / 4 {
                steps.append(Step(description: "backup", isWrite: false) { try $0.backup(to: backupPath) })
            }
        }
        if finalCompaction {
            steps.append(Step(description: "compact", isWrite: false) { try $0.compact() })
        } else {
            steps.append(Step(description: "checkpoint", isWrite: false) { try $0.checkpoint() })
        }
        // Un-checkpointed commits at the end.
        for i in 0..<4 {
            let message = message(count + i, bodyBytes: 40, rng: &rng)
            steps.append(Step(description: "append \(message.id)", isWrite: true) { try $0.append(message) })
        }
        return steps
    }

    /// Runs the workload on the crash simulator, cuts the power without closing (so the last
    /// commits stay un-checkpointed) and returns every file's durable bytes.
    static func healthyImage(seed: UInt64, messages count: Int, bodyBytes: Int, finalCompaction: Bool = false) throws -> [String: [UInt8]] {
        let fs = CrashSimulatingFileSystem(seed: seed)
        let store = try MessageStore(path: directory, options: options(), fileSystem: fs)
        try store.enableSearchIndex()   // its two trees are damaged with the others
        for step in workload(seed: seed, messages: count, bodyBytes: bodyBytes, finalCompaction: finalCompaction) { try step.run(store) }
        fs.crash(mode: .dropAllUnsynced)
        var files: [String: [UInt8]] = [:]
        for path in fs.allFilePaths() { files[path] = fs.contents(of: path)! }
        return files
    }

    /// Every id the workload may have used (live, deleted and never used ones).
    static func allIDs(messages count: Int) -> [String] { (0..<(count + 6)).map { "m\($0)" } }
}

/// The result of every query primitive over all conversations and ids, each either a
/// value (rendered as text) or an error. Cursor tokens are left out (they depend on the
/// store's secret); their presence (`hasMore`) is kept.
struct Observation: Equatable {
    var results: [String]
    var labels: [String]
    var errors: [(index: Int, error: any Error)] = []

    static func == (a: Observation, b: Observation) -> Bool { a.results == b.results }

    /// Runs every primitive (with `searches`, searches too: the store's search index must be
    /// on). Errors are recorded per query (a failed read must not stop the others). Cost: a
    /// few hundred queries.
    static func observe(_ store: MessageStore, ids: [String], searches: Bool = false) -> Observation {
        var results: [String] = []
        var labels: [String] = []
        var errors: [(Int, any Error)] = []
        func record(_ label: String, _ body: () throws -> String) {
            labels.append(label)
            do {
                results.append(try body())
            } catch {
                errors.append((results.count, error))
                results.append("error: \(error)")
            }
        }
        func text(_ messages: [Message]) -> String { messages.map(describe).joined(separator: "\n") }
        for id in ids { record("message(id: \(id))") { try store.message(id: id).map(describe) ?? "nil" } }
        let conversations = FaultFixture.conversations + ["nobody"]
        for c in conversations {
            record("latest(\(c), 5)") { text(try store.latest(in: c, limit: 5)) }
            record("latest(\(c), max)") { text(try store.latest(in: c, limit: MessageStore.maxLimit)) }
            record("messages(\(c)) asc") { text(try store.messages(in: c, from: 0, through: Int64.max)) }
            record("messages(\(c)) desc range") {
                text(try store.messages(in: c, from: 1_700_000_010_000, through: 1_700_000_090_000, order: .newestFirst, limit: 50))
            }
            for order in [Order.newestFirst, .oldestFirst] {
                record("cursor walk \(c) \(order)") {
                    var pages: [String] = []
                    var cursor: Cursor? = nil
                    repeat {
                        let page = try store.page(in: c, after: cursor, limit: 7, order: order)
                        pages.append(text(page.messages) + " more: \(page.hasMore)")
                        cursor = page.next
                        if pages.count > 10_000 { throw ScrollbackError.limitExceeded("cursor walk does not end") }
                    } while cursor != nil
                    return pages.joined(separator: "\n--\n")
                }
                for offset in [0, 3, 11, 40] {
                    record("offset \(c) \(order) \(offset)") { text(try store.page(in: c, offset: offset, limit: 6, order: order)) }
                }
            }
            for after in [Int64(0), 1_700_000_020_000, 1_700_000_060_000, Int64.max] {
                record("count(\(c), \(after))") { "\(try store.count(in: c, after: after))" }
            }
            for user in FaultFixture.users + ["nobody"] {
                record("unread(\(user), \(c))") { "\(try store.unreadCount(user: user, in: c))" }
            }
        }
        record("feed 50") { text(try store.feed(conversations, limit: 50)) }
        record("feed max") { text(try store.feed(conversations, limit: MessageStore.maxLimit)) }
        record("latestMessage") { try store.latestMessage(in: conversations).map { $0.map(describe) ?? "nil" }.joined(separator: "\n") }
        record("conversations") { "\(try store.conversations(limit: 100))" }
        if searches {
            // Prefixes of the random-letter words, an edit's words, and two words at once.
            for query in ["a", "qu", "zx", "batch edit", "e", "m k"] {
                record("search(\(query))") { text(try store.search(query, limit: 50).messages) }
                record("searchCount(\(query))") { "\(try store.searchCount(query))" }
                for c in conversations {
                    record("search(\(query), \(c))") { text(try store.search(query, in: .conversation(c), limit: 20).messages) }
                }
            }
        }
        return Observation(results: results, labels: labels, errors: errors)
    }

    static func describe(_ m: Message) -> String {
        "\(m.id)|\(m.conversation)|\(m.sender)|\(m.createdAt)|\(m.kind)|\(m.replyTo ?? "-")|\(m.edited)|\(m.body.utf8.count):\(m.body.hashValue)"
    }

    /// Index of the first result that differs from `expected` and is not an error.
    func firstWrongResult(comparedTo expected: Observation) -> Int? {
        if results.count != expected.results.count { return 0 }
        let errorIndices = Set(errors.map(\.index))
        for i in results.indices where !errorIndices.contains(i) && results[i] != expected.results[i] { return i }
        return nil
    }
}

/// Bounds one case: runs `body` on a thread of its own and returns false if it does not
/// finish within `seconds` (a hang; the thread is abandoned). A thread of its own, not a
/// global dispatch queue: with the whole suite running, the queue's threads can all be busy
/// and a case would wait for one past its bound without hanging.
func finishes(within seconds: Double, _ body: @escaping @Sendable () -> Void) -> Bool {
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        body()
        done.signal()
    }
    thread.stackSize = 8 << 20
    thread.start()
    return done.wait(timeout: .now() + seconds) == .success
}

/// A mutable box to carry a case's outcome out of `finishes`.
final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

/// Number of cases to run: `SCROLLBACK_FAULT_SCALE` multiplies the defaults (e.g. 10 for a
/// long run).
func scaled(_ count: Int) -> Int {
    if let text = getenvString("SCROLLBACK_FAULT_SCALE"), let factor = Double(text), factor > 0 {
        return max(1, Int(Double(count) * factor))
    }
    return count
}
