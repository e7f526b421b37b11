import Testing
import ScrollbackIO
import TestSupport
@testable import Scrollback

/// `MessageStore.load`: the same store as appends would make, all or nothing, duplicates
/// skipped, on an empty and on a non-empty store, across reopen and compaction. (The model test
/// drives random loads against the reference model; the crash sweep crashes inside loads.)
@Suite struct BulkLoadTests {
    static func messages(count: Int, seed: UInt64, prefix: String = "m") -> [Message] {
        var rng = SeededRandom(seed: seed)
        let conversations = (0..<37).map { "room-\($0)" } + ["Gruppe Ölfeld", "频道"]
        return (0..<count).map { i in
            Message(id: "\(prefix)\(i)", conversation: conversations[Int(rng.next() % UInt64(conversations.count))],
                    sender: "user\(rng.next() % 11)", createdAt: Int64(1_700_000_000_000 + (rng.next() % 500) * 1000),
                    kind: MessageKind.allCases[Int(rng.next() % 6)], body: "body \(i) " + String(repeating: "é", count: Int(rng.next() % 40)),
                    replyTo: i % 7 == 0 && i > 0 ? "\(prefix)\(i - 1)" : nil)
        }
    }

    static var options: StoreOptions {
        var options = StoreOptions()
        options.cacheBytes = 4 << 20
        options.pageSize = 4096
        options.segmentBytes = 64 << 10
        options.autoCompactGarbageRatio = nil
        return options
    }

    /// Every query answers alike on both stores.
    static func expectSame(_ a: MessageStore, _ b: MessageStore, _ conversations: [String], _ context: String) throws {
        for c in conversations {
            #expect(try a.messages(in: c, from: 0, through: (1 << 53) - 1) == b.messages(in: c, from: 0, through: (1 << 53) - 1), "\(context): \(c)")
            #expect(try a.page(in: c, offset: 3, limit: 5) == b.page(in: c, offset: 3, limit: 5), "\(context): offset page of \(c)")
            #expect(try a.count(in: c, after: 1_700_000_200_000) == b.count(in: c, after: 1_700_000_200_000), "\(context): count in \(c)")
        }
        #expect(try a.feed(conversations, limit: 100) == b.feed(conversations, limit: 100), "\(context): feed")
        #expect(try a.conversations(limit: 100) == b.conversations(limit: 100), "\(context): conversation list")
        #expect(try a.statistics.messages == b.statistics.messages, "\(context): message count")
        #expect(try a.verify() == [], "\(context): verify")
    }

    @Test func aLoadReadsLikeTheSameAppends() throws {
        let messages = Self.messages(count: 4000, seed: 7)
        let conversations = Array(Set(messages.map(\.conversation))).sorted()
        let fsA = MemoryFileSystem(), fsB = MemoryFileSystem()
        var loaded = try MessageStore(path: "/db", options: Self.options, fileSystem: fsA)
        let appended = try MessageStore(path: "/db", options: Self.options, fileSystem: fsB)
        let summary = try loaded.load(messages)
        #expect(summary == LoadSummary(appended: 4000, duplicates: 0))
        for start in stride(from: 0, to: messages.count, by: 500) {
            try appended.write { batch in for m in messages[start..<min(start + 500, messages.count)] { batch.append(m) } }
        }
        #expect(try fsA.listDirectory("/db").contains { $0.hasSuffix(".run") }, "a load writes a sorted run")
        // No wasted pages: after a load and a checkpoint at most 10% of the page file is free.
        try loaded.checkpoint()
        let space = try loaded.spaceUsage()
        let pageFile = space.filter { $0.structure.hasPrefix("tree ") || $0.structure.hasPrefix("free pages") || $0.structure.hasPrefix("page file") }
            .reduce(UInt64(0)) { $0 + $1.bytes }
        let free = space.first { $0.structure == "free pages" }?.bytes ?? 0
        #expect(pageFile > 0 && free * 10 <= pageFile, "free pages after a load and a checkpoint: \(free) of \(pageFile) bytes")
        try Self.expectSame(loaded, appended, conversations, "after the load")
        #expect(try loaded.message(id: "m1234") == appended.message(id: "m1234"))

        // Markers and appends after the load, then reopen and compaction.
        for store in [loaded, appended] {
            try store.markRead(user: "ana", conversation: messages[100].conversation, through: messages[100].id)
            try store.append(Message(id: "late", conversation: messages[0].conversation, sender: "s", createdAt: messages[0].createdAt, body: "x"))
            try store.delete(id: "m5")
            try store.edit(id: "m6", body: "edited")
        }
        #expect(try loaded.unreadCount(user: "ana", in: messages[100].conversation)
                == appended.unreadCount(user: "ana", in: messages[100].conversation))
        try loaded.close()
        loaded = try MessageStore(path: "/db", options: Self.options, fileSystem: fsA)
        try Self.expectSame(loaded, appended, conversations, "after reopen")
        _ = try loaded.compact()
        try Self.expectSame(loaded, appended, conversations, "after compaction")
        try loaded.close()
        try appended.close()
    }

    @Test func aLoadIntoAStoreWithMessagesSkipsLiveIDsAndKeepsOrder() throws {
        let fs = MemoryFileSystem()
        let store = try MessageStore(path: "/db", options: Self.options, fileSystem: fs)
        let first = Self.messages(count: 300, seed: 3)
        try store.load(first)
        try store.delete(id: "m10")
        var second = Self.messages(count: 200, seed: 4, prefix: "n")
        second.append(first[20])                 // live already: a duplicate
        second.append(first[10])                 // deleted: loaded again
        second.append(second[0])                 // twice in the load: the second is a duplicate
        // Same timestamp as a loaded message: insertion order puts it after.
        second.append(Message(id: "tie", conversation: first[0].conversation, sender: "s", createdAt: first[0].createdAt, body: "t"))
        let summary = try store.load(second)
        #expect(summary == LoadSummary(appended: 202, duplicates: 2))
        #expect(try store.statistics.messages == 300 - 1 + 202)
        let same = try store.messages(in: first[0].conversation, from: first[0].createdAt, through: first[0].createdAt)
        #expect(same.last?.id == "tie")
        #expect(try store.verify() == [])
        try store.close()
    }

    @Test func anInvalidMessageFailsTheWholeLoadAndWritesNothing() throws {
        let fs = MemoryFileSystem()
        let store = try MessageStore(path: "/db", options: Self.options, fileSystem: fs)
        try store.append(Message(id: "a", conversation: "c", sender: "s", createdAt: 1, body: "b"))
        let filesBefore = try fs.listDirectory("/db").sorted()
        var messages = Self.messages(count: 50, seed: 9)
        messages.insert(Message(id: "bad", conversation: "c", sender: "", createdAt: 1, body: "b"), at: 30)
        #expect(throws: ScrollbackError.invalidArgument(argument: "sender", reason: "must not be empty")) {
            try store.load(messages)
        }
        #expect(try store.statistics.messages == 1)
        #expect(try fs.listDirectory("/db").sorted() == filesBefore, "no run file is left behind")
        #expect(try store.load([]) == LoadSummary(appended: 0, duplicates: 0))
        #expect(try store.verify() == [])
        try store.close()
    }
}

extension BulkLoadTests {
    /// The async forms: an array, and an AsyncSequence gathered into one load; a sequence that
    /// throws writes nothing.
    @Test func asyncLoads() async throws {
        let store = try MessageStore(path: "/db", options: Self.options, fileSystem: MemoryFileSystem())
        let first = Self.messages(count: 120, seed: 11)
        #expect(try await store.load(first) == LoadSummary(appended: 120, duplicates: 0))
        let second = Self.messages(count: 80, seed: 12, prefix: "n")
        let stream = AsyncStream<Message> { continuation in
            for m in second { continuation.yield(m) }
            continuation.finish()
        }
        #expect(try await store.load(contentsOf: stream) == LoadSummary(appended: 80, duplicates: 0))
        struct Broken: Error {}
        let failing = AsyncThrowingStream<Message, any Error> { continuation in
            continuation.yield(Message(id: "x1", conversation: "c", sender: "s", createdAt: 1, body: "b"))
            continuation.finish(throwing: Broken())
        }
        await #expect(throws: Broken.self) { try await store.load(contentsOf: failing) }
        #expect(try store.statistics.messages == 200)
        #expect(try await store.message(id: "x1") == nil)
        try await store.close()
    }
}
