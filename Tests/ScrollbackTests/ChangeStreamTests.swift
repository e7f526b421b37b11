import Foundation
@testable import Scrollback
import ScrollbackIO
import ScrollbackMessaging
import Synchronization
import TestSupport
import Testing

/// The change stream (MessageStore+Changes.swift, spec/change-stream.md): order and content of
/// every kind of change, no-ops that are no change, resuming from every position, the
/// conversation filter, retention across sealing and compaction and its typed error, bulk
/// loads, the async sequence (delivery, waiting, cancellation, close), and a replica that
/// applies a leader's stream becoming equal to it. Across processes: Tests/ProcessLockTests.
@Suite struct ChangeStreamTests {
    static func options(segmentBytes: Int = 64 << 10, retention: Int = 16 << 20) -> StoreOptions {
        var options = StoreOptions()
        options.pageSize = 4096
        options.cacheBytes = 1 << 20
        options.segmentBytes = segmentBytes
        options.checkpointDirtyBytes = 64 << 10
        options.checkpointLogBytes = 128 << 10
        options.changeRetentionBytes = retention
        options.autoCompactGarbageRatio = nil
        return options
    }

    static func message(_ n: Int, in conversation: String = "c", at time: Int64? = nil, body: String? = nil) -> Message {
        Message(id: "m\(n)", conversation: conversation, sender: "s\(n % 3)", createdAt: time ?? Int64(1000 + n),
                kind: n % 4 == 0 ? .image : .text, body: body ?? "body \(n)", replyTo: n % 5 == 0 && n > 0 ? "m\(n - 1)" : nil,
                metadata: n % 3 == 0 ? [UInt8(n & 0xFF), 0, 0xFF] : nil)
    }

    static func all(_ store: MessageStore, after position: ChangePosition?, conversations: [String]? = nil) throws -> [Change] {
        var result: [Change] = []
        var at = position
        while true {
            let page = try store.changes(after: at, limit: 1000, conversations: conversations)
            result += page.changes
            if page.changes.isEmpty { return result }
            at = page.next
        }
    }

    /// Every kind of change, in commit order, with its content; positions strictly increase and
    /// survive a round trip through their token.
    @Test func everyChangeInCommitOrder() throws {
        let store = try MessageStore(path: "/db", options: Self.options(), fileSystem: MemoryFileSystem())
        let start = try store.changePosition()
        try store.append(Self.message(1))
        try store.write { batch in
            batch.append(Self.message(2, in: "d"))
            batch.edit(id: "m1", body: "edited")
            batch.markRead(user: "u", conversation: "c", through: "m1")
        }
        try store.write { batch in
            batch.join(user: "u", conversation: "d")
            batch.leave(user: "u", conversation: "d")
        }
        try store.delete(id: "m2")
        let changes = try Self.all(store, after: start)
        var edited = Self.message(1)
        edited.body = "edited"
        #expect(changes.map(\.operation) == [
            .append(Self.message(1)), .append(Self.message(2, in: "d")), .edit(conversation: "c", id: "m1", body: "edited"),
            .markRead(user: "u", conversation: "c", through: "m1"), .join(user: "u", conversation: "d"),
            .leave(user: "u", conversation: "d"), .delete(conversation: "d", id: "m2"),
        ])
        #expect(changes.map(\.conversation) == ["c", "d", "c", "c", "d", "d", "d"])
        for (a, b) in zip(changes, changes.dropFirst()) { #expect(a.position < b.position) }
        for change in changes { #expect(try ChangePosition(token: change.position.token) == change.position) }
        // Nothing after the end; the end is after every change.
        #expect(try store.changes(after: try store.changePosition(), limit: 10).changes.isEmpty)
        #expect(try changes.allSatisfy { $0.position < (try store.changePosition()) })
        // From the end (nil): nothing yet.
        #expect(try store.changes(after: nil, limit: 10).changes.isEmpty)
        try store.close()
    }

    /// Writes that change nothing are no change: a duplicate append, a marker that does not
    /// move forward, a join of a member, a leave of a non-member.
    @Test func noOpsAreNoChange() throws {
        let store = try MessageStore(path: "/db", options: Self.options(), fileSystem: MemoryFileSystem())
        try store.append(Self.message(1))
        try store.append(Self.message(2))
        try store.markRead(user: "u", conversation: "c", through: "m2")
        try store.join(user: "u", conversation: "c")
        let position = try store.changePosition()
        #expect(try store.append(Self.message(1)) == .duplicate)
        try store.markRead(user: "u", conversation: "c", through: "m1")
        try store.markRead(user: "u", conversation: "c", through: "m2")
        try store.join(user: "u", conversation: "c")
        try store.leave(user: "v", conversation: "c")
        try store.leave(user: "u", conversation: "nowhere")
        #expect(try Self.all(store, after: position).isEmpty)
        try store.close()
    }

    /// Reading from any change's position gives exactly the changes after it, whatever the
    /// page size; the conversation filter keeps only those conversations' changes, and its
    /// `next` skips what it left out.
    @Test func resumesExactlyAfterEveryPositionAndFilters() throws {
        let store = try MessageStore(path: "/db", options: Self.options(segmentBytes: 64 << 10), fileSystem: MemoryFileSystem())
        let start = try store.changePosition()
        for n in 0..<900 {
            try store.write { batch in
                batch.append(Self.message(n, in: "c\(n % 3)", body: String(repeating: "x", count: 150)))
                if n % 10 == 9 { batch.edit(id: "m\(n - 1)", body: "edit \(n)") }
                if n % 20 == 19 { batch.markRead(user: "u", conversation: "c\(n % 3)", through: "m\(n)") }
            }
        }
        #expect(try store.statistics.rawLogBytes > 3 * (64 << 10), "the log spans several segments")
        let everything = try Self.all(store, after: start)
        #expect(everything.count == 900 + 90 + 45)
        for limit in [1, 7, 256] {
            var at = start
            var seen: [Change] = []
            while true {
                let page = try store.changes(after: at, limit: limit)
                #expect(page.changes.count <= limit)
                if page.changes.isEmpty { break }
                seen += page.changes
                at = page.next
            }
            #expect(seen == everything, "pages of \(limit)")
        }
        for i in stride(from: 0, to: everything.count, by: 37) {
            #expect(try Self.all(store, after: everything[i].position) == Array(everything[(i + 1)...]), "after change \(i)")
        }
        let filtered = try Self.all(store, after: start, conversations: ["c1", "c2"])
        #expect(filtered == everything.filter { $0.conversation != "c0" })
        // A reader that keeps its place: the same changes.
        let reader = try store.changeReader(after: start, conversations: ["c1"])
        var kept: [Change] = []
        while case let page = try reader.read(limit: 50), !page.isEmpty { kept += page }
        #expect(kept == everything.filter { $0.conversation == "c1" })
        #expect(reader.position == (try store.changePosition()))
        try store.close()
    }

    /// Positions stay valid across sealing, checkpoints, compaction and reopening while the
    /// retention window keeps their log; older ones are `.positionExpired`, which says to resync.
    @Test func retentionKeepsPositionsAndExpiresOlderOnes() throws {
        let fs = MemoryFileSystem()
        // Retention of 512 KiB, segments of 64 KiB.
        var store = try MessageStore(path: "/db", options: Self.options(retention: 512 << 10), fileSystem: fs)
        let start = try store.changePosition()
        for n in 0..<600 { try store.append(Self.message(n, body: String(repeating: "y", count: 200))) }
        let early = try Self.all(store, after: start)
        #expect(early.count == 600)
        for n in stride(from: 0, to: 600, by: 2) { try store.delete(id: "m\(n)") }
        _ = try store.compact()
        try store.checkpoint()
        #expect(try Self.all(store, after: start).count == 900, "the whole history is within 512 KiB")
        try store.close()
        store = try MessageStore(path: "/db", options: Self.options(retention: 512 << 10), fileSystem: fs)
        #expect(try Self.all(store, after: early[300].position).count == 299 + 300, "after reopening")
        // Far more log than the window: the first positions expire, the newest stay.
        for n in 600..<6000 { try store.append(Self.message(n, body: String(repeating: "z", count: 200))) }
        try store.checkpoint()
        #expect(throws: ScrollbackError.positionExpired(position: start.token)) { try store.changes(after: start, limit: 10) }
        do {
            _ = try store.changes(after: start, limit: 10)
        } catch let error as ScrollbackError {
            #expect(error.description.contains("read the state again"))
        }
        let recent = try store.changePosition()
        try store.append(Self.message(6000))
        #expect(try Self.all(store, after: recent).map(\.operation) == [.append(Self.message(6000))])
        try store.close()

        // Retention 0 keeps only what the store needs: after a few segments, the start expired.
        let small = try MessageStore(path: "/zero", options: Self.options(retention: 0), fileSystem: MemoryFileSystem())
        let zero = try small.changePosition()
        for n in 0..<1500 { try small.append(Self.message(n, body: String(repeating: "w", count: 200))) }
        try small.checkpoint()
        try small.append(Self.message(1500))
        #expect(throws: ScrollbackError.positionExpired(position: zero.token)) { try small.changes(after: zero, limit: 10) }
        try small.close()
    }

    /// A bulk load's messages are appends, in the load's key order, and can be resumed inside.
    @Test func bulkLoadIsDeliveredAsAppends() throws {
        let store = try MessageStore(path: "/db", options: Self.options(), fileSystem: MemoryFileSystem())
        let start = try store.changePosition()
        let messages = (0..<500).map { Self.message($0, in: "c\($0 % 5)", at: Int64(5000 - $0 / 3)) }
        _ = try store.load(messages)
        try store.append(Self.message(900, in: "c1", at: 9999))
        let order = try (0..<5).map { c in try store.page(in: "c\(c)", offset: 0, limit: 1000, order: .oldestFirst).map(\.id) }
        // Compaction keeps the load's run while the retention window keeps the load's record.
        let loadRuns = Set(try store.database.engine.runAccounts().map(\.id))
        #expect(!loadRuns.isEmpty)
        for n in stride(from: 0, to: 500, by: 7) { try store.delete(id: "m\(n)") }
        _ = try store.compact()
        #expect(loadRuns.isSubset(of: Set(try store.database.engine.runAccounts().map(\.id))), "compaction merged the load's run")
        let changes = try Self.all(store, after: start)
        #expect(changes.count == 501 + 72)
        let appended = changes.compactMap { change -> Message? in
            if case .append(let m) = change.operation { return m }
            return nil
        }
        #expect(Set(appended.map(\.id)) == Set(messages.map(\.id) + ["m900"]))
        // Per conversation, the order of the store itself.
        for c in 0..<5 { #expect(appended.filter { $0.conversation == "c\(c)" }.map(\.id) == order[c]) }
        #expect(try Self.all(store, after: changes[250].position) == Array(changes[251...]))
        try store.close()
    }

    /// `ChangeReader.read(limit:waitingUpTo:)`: returns at once what is committed; with nothing
    /// new it waits for a commit made meanwhile by another thread (woken by the commit) and
    /// returns it; with nothing committed it returns empty once the time passed; a read-only
    /// store's reader sees the writer's commits.
    @Test func aReaderWaitsForTheNextCommit() throws {
        let path = NSTemporaryDirectory() + "scrollback-wait-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try MessageStore(path: path, options: Self.options())
        let reader = try store.changeReader()
        try store.append(Self.message(1))
        #expect(try reader.read(limit: 10, waitingUpTo: .seconds(30)).count == 1)
        #expect(try reader.read(limit: 10, waitingUpTo: .milliseconds(20)).isEmpty)
        let writer = Thread {
            usleep(50_000)
            try? store.append(Self.message(2))
        }
        writer.start()
        let waited = try reader.read(limit: 10, waitingUpTo: .seconds(30))
        #expect(waited.map(\.operation) == [.append(Self.message(2))])

        let readOnly = try MessageStore(readingAt: path)
        let follower = try readOnly.changeReader()
        let later = Thread {
            usleep(50_000)
            try? store.append(Self.message(3))
        }
        later.start()
        #expect(try follower.read(limit: 10, waitingUpTo: .seconds(30)).map(\.operation) == [.append(Self.message(3))])
        try readOnly.close()
        try store.close()
    }

    /// A replica that applies a leader's change stream (in chunks, from the leader's first
    /// change) holds the same messages in the same order, markers, unread counts and
    /// memberships, after a random mix of every write. Failures print the seed.
    @Test(arguments: [1, 2, 3]) func aReplicaApplyingTheStreamEqualsTheLeader(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        let leader = try MessageStore(path: "/leader", options: Self.options(), fileSystem: MemoryFileSystem())
        let replica = try MessageStore(path: "/replica", options: Self.options(), fileSystem: MemoryFileSystem())
        let conversations = ["a", "b", "c", "d"]
        let users = ["u1", "u2", "u3"]
        var live: [String: String] = [:]  // id → conversation
        var next = 0
        let reader = try leader.changeReader()
        for round in 0..<40 {
            try leader.write { batch in
                for _ in 0..<Int.random(in: 1...12, using: &random) {
                    let roll = Int.random(in: 0..<100, using: &random)
                    let conversation = conversations.randomElement(using: &random)!
                    if roll < 55 || live.isEmpty {
                        next += 1
                        let id = "m\(next)"
                        batch.append(Message(id: id, conversation: conversation, sender: users.randomElement(using: &random)!,
                                             createdAt: Int64.random(in: 0..<50, using: &random), body: "b\(next)",
                                             metadata: next % 4 == 0 ? Array("meta \(next)".utf8) : nil))
                        live[id] = conversation
                    } else if roll < 70 {
                        let id = live.keys.sorted().randomElement(using: &random)!
                        batch.edit(id: id, body: "e\(round)")
                    } else if roll < 80 {
                        let id = live.keys.sorted().randomElement(using: &random)!
                        batch.delete(id: id)
                        live[id] = nil
                    } else if roll < 92 {
                        let id = live.keys.sorted().randomElement(using: &random)!
                        batch.markRead(user: users.randomElement(using: &random)!, conversation: live[id]!, through: id)
                    } else {
                        // A duplicate append (no change).
                        let id = live.keys.sorted().randomElement(using: &random)!
                        batch.append(Message(id: id, conversation: live[id]!, sender: "x", createdAt: 1, body: "dup"))
                    }
                }
            }
            if round % 5 == 0 {
                let user = users.randomElement(using: &random)!, conversation = conversations.randomElement(using: &random)!
                if Bool.random(using: &random) {
                    try leader.join(user: user, conversation: conversation)
                } else {
                    try leader.leave(user: user, conversation: conversation)
                }
            }
            if round % 3 == 0 {
                try replica.apply(try reader.read(limit: Int.random(in: 1...40, using: &random)))
            }
        }
        while case let changes = try reader.read(limit: 25), !changes.isEmpty { try replica.apply(changes) }
        try Self.expectEqual(leader, replica, conversations: conversations, users: users, seed: seed)
        try leader.close()
        try replica.close()
    }

    static func expectEqual(_ a: MessageStore, _ b: MessageStore, conversations: [String], users: [String], seed: UInt64) throws {
        for conversation in conversations {
            let left = try a.page(in: conversation, offset: 0, limit: 10_000, order: .oldestFirst)
            let right = try b.page(in: conversation, offset: 0, limit: 10_000, order: .oldestFirst)
            #expect(left == right, "seed \(seed): conversation \(conversation)")
            for user in users {
                #expect(try a.unreadCount(user: user, in: conversation) == b.unreadCount(user: user, in: conversation),
                        "seed \(seed): unread \(user) \(conversation)")
                #expect(try a.readMarker(user: user, conversation: conversation) == b.readMarker(user: user, conversation: conversation),
                        "seed \(seed): marker \(user) \(conversation)")
            }
        }
        #expect(try a.conversations(limit: 100) == b.conversations(limit: 100), "seed \(seed): conversation list")
        for user in users {
            #expect(try a.inbox(user: user, limit: 100) == b.inbox(user: user, limit: 100), "seed \(seed): inbox of \(user)")
        }
    }

    /// The async sequence: delivers every change committed after its start, in order, waiting
    /// for commits; a cancelled consumer ends; closing the store ends a waiting one with `.closed`.
    @Test func theAsyncSequenceFollowsCommits() async throws {
        let store = try MessageStore(path: "/db", options: Self.options(), fileSystem: MemoryFileSystem())
        try await store.append(Self.message(0))
        let start = try store.changePosition()
        let consumer = Task { () throws -> [Change] in
            var received: [Change] = []
            for try await change in store.changes(after: start, conversations: ["c", "e"]) {
                received.append(change)
                if received.count == 300 { break }
            }
            return received
        }
        for n in 1...300 {
            try await store.append(Self.message(n, in: n % 2 == 0 ? "c" : "d"))
            if n % 2 == 1 { try await store.append(Self.message(1000 + n, in: "e")) }
        }
        let received = try await consumer.value
        #expect(received == (try Self.all(store, after: start, conversations: ["c", "e"])))
        #expect(received.count == 300)

        // Waiting at the end: cancellation ends it (nil), without a commit.
        let waiting = Task { () throws -> Int in
            var count = 0
            for try await _ in store.changes() { count += 1 }
            return count
        }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        #expect(try await waiting.value == 0)

        // Waiting at the end while the store closes: `.closed`.
        let closing = Task { () async -> (any Error)? in
            do {
                for try await _ in store.changes() {}
                return nil
            } catch {
                return error
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        try await store.close()
        let error = await closing.value
        #expect(error as? ScrollbackError == .closed)
    }

    /// spec/change-stream.md, "The token": the worked example, from a new store.
    @Test func tokenExample() throws {
        let store = try MessageStore(path: "/db", options: Self.options(), fileSystem: MemoryFileSystem())
        let start = try store.changePosition()
        try store.append(Message(id: "m1", conversation: "general", sender: "alice", createdAt: 1_700_000_000_000, body: "hi"))
        let changes = try Self.all(store, after: start)
        #expect(changes.map(\.position.token) == ["1.10000005b.100000074.0"])
        let position = try ChangePosition(token: "1.10000005b.100000074.0")
        #expect(position.point == ChangePoint(transactionStart: 0x1_0000_005b, record: 0x1_0000_0074, index: 0))
        let end = try store.changePosition().token
        #expect(end == "1.1000000bf.1000000be.ffffffff", "\(end)")
        #expect(start.token == "1.100000046.100000045.ffffffff")
        try store.close()
    }

    /// Bad arguments: a malformed token, a conversation list that is too long.
    @Test func badArgumentsAreTypedErrors() throws {
        let store = try MessageStore(path: "/db", options: Self.options(), fileSystem: MemoryFileSystem())
        for token in ["", "1", "2.1.0.0", "1.x.0.0", "1.10.0.0", "1.0.0.0.0", "1.11111111111111111.0.0", "1..0.0"] {
            #expect(throws: ScrollbackError.self, "\(token)") { _ = try ChangePosition(token: token) }
        }
        #expect(throws: ScrollbackError.self) {
            _ = try store.changes(after: nil, limit: 10, conversations: Array(repeating: "c", count: MessageStore.maxConversationsPerQuery + 1))
        }
        #expect(throws: ScrollbackError.self) { _ = try store.changes(after: nil, limit: -1) }
        #expect(throws: ScrollbackError.self) { _ = try store.changeReader(conversations: [""]) }
        var options = Self.options()
        options.changeRetentionBytes = -1
        #expect(throws: ScrollbackError.self) { _ = try MessageStore(path: "/x", options: options, fileSystem: MemoryFileSystem()) }
        try store.close()
    }
}

