@testable import ScrollbackReferenceModel
import Foundation
import Scrollback
import ScrollbackIO
import Synchronization
import Testing
import TestSupport

/// Readers, writers (group commit) and compaction on one store at once. Writers record what
/// was acknowledged; every read is checked against committed state:
/// - a message read equals exactly what was written (its content is a function of its id;
///   an edited message is one of its written versions, with `edited` set accordingly);
/// - counts never decrease in append-only conversations, and each snapshot is internally
///   consistent (for a writer's conversation, `k` messages ⇔ newest `createdAt == k`);
/// - a message acknowledged before a read started is visible to it (counts, lookups and
///   complete keyset walks);
/// - a batch is visible whole or not at all;
/// - after everything stops, the store holds exactly what was acknowledged and verifies.
/// Bounded in iterations; no timing assertions. Runs under TSan:
/// `swift test --sanitize=thread --filter ConcurrencyTests`.
/// The engine's `Lock` is a pthread mutex, which TSan sees (`make tsan`); the test's own
/// locks are pthread-based too (`Locked`).
@Suite struct ConcurrencyTests {
    static let writers = 4
    static let appendsPerWriter = 250
    static let readers = 3
    static let churnOperations = 300

    /// Everything the threads share.
    final class Shared: Sendable {
        /// Acknowledged appends of writer i in its own conversation `w<i>` (messages 0..<n).
        let acked = Locked<[Int]>(Array(repeating: 0, count: ConcurrencyTests.writers))
        /// Acknowledged messages of the shared conversation.
        let ackedShared = Locked<[String]>([])
        let writersDone = Atomic<Int>(0)
        let errors = Locked<[String]>([])
        let reads = Atomic<Int>(0)
        let compactions = Atomic<Int>(0)

        func fail(_ message: String) {
            errors.withLock { if $0.count < 50 { $0.append(message) } }
        }

        var failed: Bool { errors.withLock { !$0.isEmpty } }
        var done: Bool { writersDone.load(ordering: .acquiring) == ConcurrencyTests.writers + 1 }
    }

    static func own(_ writer: Int, _ k: Int) -> Message {
        Message(id: "w\(writer)-\(k)", conversation: "w\(writer)", sender: "writer\(writer)", createdAt: Int64(k + 1),
                kind: k % 7 == 0 ? .image : .text, body: "body of w\(writer)-\(k) " + String(repeating: "x", count: k % 40))
    }

    static func shared(_ writer: Int, _ k: Int) -> Message {
        Message(id: "s\(writer)-\(k)", conversation: "shared", sender: "writer\(writer)", createdAt: Int64(k / 10 + 1),
                body: "shared \(writer) \(k)", replyTo: "w\(writer)-\(k)")
    }

    static func churn(_ k: Int, createdAt: Int64) -> Message {
        Message(id: "h\(k)", conversation: "churn", sender: "churner", createdAt: createdAt, body: "v0 h\(k) " + String(repeating: "c", count: 200))
    }

    static func churnEdit(_ id: String) -> String { "v1 \(id) " + String(repeating: "e", count: 150) }

    /// The message `id` must be, whatever thread wrote it (nil: not a message of this test).
    static func expectedVersions(of message: Message) -> [Message] {
        let id = message.id
        let parts = id.dropFirst().split(separator: "-").compactMap { Int($0) }
        switch id.first {
        case "w" where parts.count == 2: return [own(parts[0], parts[1])]
        case "s" where parts.count == 2: return [shared(parts[0], parts[1])]
        case "h" where parts.count == 1:
            var original = churn(parts[0], createdAt: message.createdAt)
            var edited = original
            edited.body = churnEdit(id)
            edited.edited = true
            original.edited = false
            return [original, edited]
        default: return []
        }
    }

    static func check(_ message: Message, _ shared: Shared, _ what: String) {
        if !expectedVersions(of: message).contains(message) { shared.fail("\(what): read \(message), which was never written") }
    }

    static func options() -> StoreOptions {
        var options = StoreOptions()
        options.segmentBytes = 64 << 10
        options.cacheBytes = 1 << 20
        options.checkpointLogBytes = 256 << 10
        options.autoCompactGarbageRatio = 0.2
        options.pageSize = 4096
        return options
    }

    @Test func onTheMemoryFileSystem() throws {
        try Self.exercise(MessageStore(path: "/db", options: Self.options(), fileSystem: MemoryFileSystem()), label: "memory")
    }

    @Test func onDisk() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("scrollback-concurrency-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try Self.exercise(MessageStore(path: directory.path, options: Self.options()), label: "disk")
    }

    /// The same workload on the (mutex-guarded) reference model: the checks themselves must
    /// hold on a correct store.
    @Test func onTheReferenceModel() throws {
        try Self.exercise(ReferenceDisk(maxBodyBytes: StoreOptions().maxBodyBytes, bug: nil).open(), label: "reference")
    }

    /// ... and must fail on a broken one (offset pages skip a message).
    @Test func catchesABrokenReferenceModel() throws {
        withKnownIssue("offset pages off by one") {
            try Self.exercise(ReferenceDisk(maxBodyBytes: StoreOptions().maxBodyBytes, bug: .offsetOffByOne).open(), label: "broken")
        }
    }

    static func exercise(_ store: any StoreUnderTest, label: String) throws {
        let shared = Shared()
        let group = DispatchGroup()
        func spawn(_ body: @escaping @Sendable () -> Void) {
            group.enter()
            let thread = Thread {
                body()
                group.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }

        // Writers: own conversation (strictly increasing createdAt), sometimes a batch that
        // also appends to the shared conversation, sometimes a read marker.
        for writer in 0..<Self.writers {
            spawn {
                var rng = SeededRandom(seed: UInt64(100 + writer))
                defer { shared.writersDone.add(1, ordering: .releasing) }
                for k in 0..<Self.appendsPerWriter where !shared.failed {
                    do {
                        if Int.random(in: 0..<5, using: &rng) == 0 {
                            var batch = WriteBatch()
                            batch.append(Self.own(writer, k))
                            batch.append(Self.shared(writer, k))
                            if k > 0 { batch.markRead(user: "watcher", conversation: "w\(writer)", through: "w\(writer)-\(k - 1)") }
                            let outcomes = try store.write(batch)
                            if outcomes != [.appended, .appended] { shared.fail("batch \(writer)-\(k) returned \(outcomes)") }
                            shared.ackedShared.withLock { $0.append(Self.shared(writer, k).id) }
                        } else {
                            let outcome = try store.append(Self.own(writer, k))
                            if outcome != .appended { shared.fail("append w\(writer)-\(k) returned \(outcome)") }
                        }
                        // A retried send is a duplicate and changes nothing.
                        if Int.random(in: 0..<10, using: &rng) == 0, try store.append(Self.own(writer, k)) != .duplicate {
                            shared.fail("a retried append of w\(writer)-\(k) was not a duplicate")
                        }
                        shared.acked.withLock { $0[writer] = k + 1 }
                    } catch {
                        shared.fail("writer \(writer) at \(k): \(error)")
                    }
                }
            }
        }

        // Churn: appends, edits and deletes (garbage for the compactor) in its own conversation,
        // mirrored in a reference model.
        let churnModel = Locked(ReferenceStore())
        spawn {
            var rng = SeededRandom(seed: 7)
            var model = ReferenceStore()
            defer {
                churnModel.withLock { $0 = model }
                shared.writersDone.add(1, ordering: .releasing)
            }
            for k in 0..<Self.churnOperations where !shared.failed {
                let live = model.entries("churn").map(\.message.id)
                do {
                    switch Int.random(in: 0..<10, using: &rng) {
                    case 0..<3 where !live.isEmpty:
                        let id = live.randomElement(using: &rng)!
                        try store.edit(id: id, body: Self.churnEdit(id))
                        try model.edit(id: id, body: Self.churnEdit(id))
                    case 3..<5 where !live.isEmpty:
                        let id = live.randomElement(using: &rng)!
                        try store.delete(id: id)
                        try model.delete(id: id)
                    default:
                        let message = Self.churn(k, createdAt: Int64.random(in: 1...20, using: &rng))
                        _ = try store.append(message)
                        try model.append(message)
                    }
                } catch {
                    shared.fail("churn at \(k): \(error)")
                }
            }
        }

        // Compaction and checkpoints until the writers finish (bounded).
        spawn {
            for round in 0..<500 where !shared.done && !shared.failed {
                do {
                    _ = try store.compact()
                    if round % 4 == 0 { try store.checkpoint() }
                    _ = try store.statistics
                    shared.compactions.add(1, ordering: .relaxed)
                } catch {
                    shared.fail("compaction round \(round): \(error)")
                }
                usleep(2000)
            }
        }

        for reader in 0..<Self.readers {
            spawn {
                var rng = SeededRandom(seed: UInt64(200 + reader))
                var lastCount = Array(repeating: 0, count: Self.writers)
                var lastShared = 0
                var iteration = 0
                // Read until the writers finish, then a little more (bounded either way).
                var extra = 50
                while iteration < 5_000 && extra > 0 && !shared.failed {
                    iteration += 1
                    if shared.done { extra -= 1 }
                    shared.reads.add(1, ordering: .relaxed)
                    do {
                        try Self.readOnce(store, shared, &rng, &lastCount, &lastShared)
                    } catch {
                        shared.fail("reader \(reader) iteration \(iteration): \(error)")
                    }
                }
            }
        }

        group.wait()
        let errors = shared.errors.withLock { $0 }
        #expect(errors.isEmpty, "\(errors.count) errors, first: \(errors.prefix(10).joined(separator: "\n"))")
        print("concurrency (\(label)): \(shared.reads.load(ordering: .relaxed)) reads, \(shared.compactions.load(ordering: .relaxed)) compaction rounds")

        // Final state: exactly what was acknowledged.
        let acked = shared.acked.withLock { $0 }
        for writer in 0..<Self.writers {
            #expect(acked[writer] == Self.appendsPerWriter)
            let all = try store.page(in: "w\(writer)", offset: 0, limit: MessageStore.maxLimit, order: .oldestFirst)
            #expect(all == (0..<acked[writer]).map { Self.own(writer, $0) }, "conversation w\(writer)")
        }
        let sharedIDs = Set(shared.ackedShared.withLock { $0 })
        let sharedMessages = try store.page(in: "shared", offset: 0, limit: MessageStore.maxLimit, order: .oldestFirst)
        #expect(Set(sharedMessages.map(\.id)) == sharedIDs && sharedMessages.count == sharedIDs.count)
        let model = churnModel.withLock { $0 }
        #expect(try store.page(in: "churn", offset: 0, limit: MessageStore.maxLimit, order: .oldestFirst)
                == model.page(in: "churn", offset: 0, limit: MessageStore.maxLimit, order: .oldestFirst))
        #expect(try store.statistics.messages == acked.reduce(0, +) + sharedIDs.count + model.liveMessageCount)
        #expect(try store.verify() == [])
        try store.close()
    }

    static func readOnce(
        _ store: any StoreUnderTest, _ shared: Shared, _ rng: inout SeededRandom, _ lastCount: inout [Int], _ lastShared: inout Int
    ) throws {
        let writer = Int.random(in: 0..<writers, using: &rng)
        let conversation = "w\(writer)"
        let acked = shared.acked.withLock { $0[writer] }
        switch Int.random(in: 0..<8, using: &rng) {
        case 0:  // newest messages: contiguous, exact, include everything acknowledged
            let latest = try store.latest(in: conversation, limit: 20)
            for message in latest { check(message, shared, "latest(\(conversation))") }
            let ks = latest.map { Int($0.createdAt) - 1 }
            if let top = ks.first {
                if top + 1 < acked { shared.fail("latest(\(conversation)) starts at \(top), but \(acked) were acknowledged") }
                if ks != Array(stride(from: top, to: top - ks.count, by: -1)) { shared.fail("latest(\(conversation)) not contiguous: \(ks)") }
                if ks.count < min(20, top + 1) { shared.fail("latest(\(conversation)) returned \(ks.count) messages below \(top)") }
            } else if acked > 0 {
                shared.fail("latest(\(conversation)) is empty after \(acked) acknowledged appends")
            }
        case 1:  // counts: monotonic, at least what was acknowledged
            let count = try store.count(in: conversation, after: 0)
            if count < acked { shared.fail("count(\(conversation)) = \(count) < \(acked) acknowledged") }
            if count < lastCount[writer] { shared.fail("count(\(conversation)) went from \(lastCount[writer]) to \(count)") }
            lastCount[writer] = count
            let unread = try store.unreadCount(user: "watcher", in: conversation)
            let after = try store.count(in: conversation, after: 0)
            if unread < 0 || unread > after { shared.fail("unreadCount(watcher, \(conversation)) = \(unread) with \(after) messages") }
            if acked > 0, try store.message(id: "w\(writer)-\(acked - 1)") != own(writer, acked - 1) {
                shared.fail("acknowledged message w\(writer)-\(acked - 1) is not readable")
            }
        case 2:  // a complete keyset walk sees every message that existed when it started, once
            var cursor: Cursor?
            var ks: [Int] = []
            for _ in 0..<1000 {
                let page = try store.page(in: conversation, after: cursor, limit: Int.random(in: 1...40, using: &rng), order: .oldestFirst)
                for message in page.messages { check(message, shared, "keyset walk of \(conversation)") }
                ks += page.messages.map { Int($0.createdAt) - 1 }
                guard let next = page.next else { break }
                cursor = next
            }
            if ks != Array(0..<ks.count) { shared.fail("keyset walk of \(conversation) is not 0..<n: \(ks.prefix(5))… (\(ks.count))") }
            if ks.count < acked { shared.fail("keyset walk of \(conversation) saw \(ks.count) messages, \(acked) were acknowledged before it") }
        case 3:  // offset pages
            let offset = Int.random(in: 0...max(0, acked), using: &rng)
            let page = try store.page(in: conversation, offset: offset, limit: 10, order: .oldestFirst)
            for message in page { check(message, shared, "offset page of \(conversation)") }
            if page.map({ Int($0.createdAt) - 1 }) != Array(offset..<offset + page.count) {
                shared.fail("offset page \(offset) of \(conversation) is \(page.map(\.id))")
            }
            if page.count < min(10, acked - offset) { shared.fail("offset page \(offset) of \(conversation) is short: \(page.count)") }
        case 4:  // feed: newest first, no duplicates, exact contents
            let conversations = (0..<writers).map { "w\($0)" } + ["shared", "churn", "w0"]
            let feed = try store.feed(conversations, limit: 40)
            for message in feed { check(message, shared, "feed") }
            if Set(feed.map(\.id)).count != feed.count { shared.fail("feed has duplicates") }
            if zip(feed, feed.dropFirst()).contains(where: { $0.createdAt < $1.createdAt }) { shared.fail("feed is not newest first") }
        case 5:  // shared conversation and batch atomicity
            let sharedAcked = shared.ackedShared.withLock { $0 }
            let count = try store.count(in: "shared", after: 0)
            if count < sharedAcked.count { shared.fail("count(shared) = \(count) < \(sharedAcked.count) acknowledged") }
            if count < lastShared { shared.fail("count(shared) went from \(lastShared) to \(count)") }
            lastShared = count
            for message in try store.latest(in: "shared", limit: 10) {
                check(message, shared, "latest(shared)")
                // Its batch also appended the writer's own message: it must be visible too.
                if let replyTo = message.replyTo, try store.message(id: replyTo) == nil {
                    shared.fail("\(message.id) is visible but \(replyTo) from the same batch is not")
                }
            }
            if let id = sharedAcked.randomElement(using: &rng), try store.message(id: id) == nil {
                shared.fail("acknowledged \(id) is not readable")
            }
        case 6:  // churn: every message is one of its written versions
            for message in try store.latest(in: "churn", limit: 50) { check(message, shared, "latest(churn)") }
            _ = try store.latestMessage(in: ["churn", "w0", "nope"])
        default:  // conversation list: one snapshot, internally consistent
            for summary in try store.conversations(limit: 100) where summary.id.hasPrefix("w") {
                guard let index = Int(summary.id.dropFirst()) else { continue }
                if summary.lastActivity != Int64(summary.messageCount) {
                    shared.fail("\(summary.id): \(summary.messageCount) messages but newest createdAt \(summary.lastActivity)")
                }
                if index == writer && summary.messageCount < acked {
                    shared.fail("\(summary.id): \(summary.messageCount) messages < \(acked) acknowledged")
                }
            }
        }
    }
}
