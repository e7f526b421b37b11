import Foundation
@testable import Scrollback
import ScrollbackIO
import Synchronization
import Testing

/// The async API (MessageStore+Async.swift): the same results and errors as the synchronous
/// methods, writes of many tasks sharing group commits, cancellation before and after a store
/// thread took a call, close with calls queued, and the store's threads. No timing assertions
/// (the figures are `scrollback-async-bench`'s). Runs under TSan (`make tsan`).
@Suite struct AsyncAPITests {
    static func options(asyncThreads: Int = 16) -> StoreOptions {
        var options = StoreOptions()
        options.pageSize = 4096
        options.cacheBytes = 1 << 20
        options.asyncThreads = asyncThreads
        return options
    }

    static func message(_ n: Int, conversation: String? = nil) -> Message {
        Message(id: "m\(n)", conversation: conversation ?? "c\(n % 3)", sender: "u\(n % 4)", createdAt: Int64(1000 + n / 2),
                kind: n % 5 == 0 ? .image : .text, body: "body \(n)", replyTo: n % 7 == 0 && n > 0 ? "m\(n - 1)" : nil)
    }

    /// Applies the same writes to one store through the sync API and to another through the
    /// async API: equal outcomes; then every query answers the same through both APIs, on both
    /// stores.
    @Test func resultsEqualTheSynchronousAPI() async throws {
        let syncStore = try MessageStore(path: "/sync", options: Self.options(), fileSystem: MemoryFileSystem())
        let asyncStore = try MessageStore(path: "/async", options: Self.options(), fileSystem: MemoryFileSystem())
        var batch = WriteBatch()
        batch.append(Self.message(60))
        batch.append(Self.message(2))
        batch.edit(id: "m4", body: "edited in a batch")
        batch.delete(id: "m5")
        batch.markRead(user: "u1", conversation: "c0", through: "m9")

        let expected = try Self.synchronously {
            var outcomes = try (0..<60).map { try syncStore.append(Self.message($0)) }
            outcomes.append(try syncStore.append(Self.message(3)))
            outcomes += try syncStore.write(batch)
            outcomes += try syncStore.write { batch in
                batch.append(Self.message(61))
                batch.append(Self.message(3))
            }
            try syncStore.edit(id: "m10", body: "edited")
            try syncStore.delete(id: "m11")
            try syncStore.markRead(user: "u2", conversation: "c1", through: "m13")
            return outcomes
        }
        var outcomes: [AppendOutcome] = []
        for n in 0..<60 { outcomes.append(try await asyncStore.append(Self.message(n))) }
        outcomes.append(try await asyncStore.append(Self.message(3)))
        outcomes += try await asyncStore.write(batch)
        outcomes += try await asyncStore.write { batch in
            batch.append(Self.message(61))
            batch.append(Self.message(3))
        }
        try await asyncStore.edit(id: "m10", body: "edited")
        try await asyncStore.delete(id: "m11")
        try await asyncStore.markRead(user: "u2", conversation: "c1", through: "m13")
        #expect(outcomes == expected)
        #expect(outcomes.filter { $0 == .duplicate }.count == 3)

        let reference = try Self.synchronousAnswers(syncStore)
        #expect(try Self.synchronousAnswers(asyncStore) == reference)
        #expect(try await Self.answers(syncStore) == reference)
        #expect(try await Self.answers(asyncStore) == reference)
        #expect(reference.latest.map(\.isEmpty) == [false, false, false, true])
        #expect(reference.markers.compactMap { $0 } == ["m9", "m13"])

        try await asyncStore.checkpoint()
        try await asyncStore.sync()
        let report = try await asyncStore.compact()
        #expect(report.logBytesBefore > 0)
        try await asyncStore.backup(to: "/async-backup")
        #expect(try await asyncStore.verify() == [])
        try await asyncStore.close()
        try await syncStore.close()
    }

    /// The answers of every query of a store (cursors aside: they differ between stores).
    struct Answers: Equatable {
        var byID: [Message?] = []
        var latest: [[Message]] = []
        var ranges: [[Message]] = []
        var offsetPages: [[Message]] = []
        var walks: [[Message]] = []
        var counts: [Int] = []
        var unreadCounts: [[Int]] = []
        var markers: [String?] = []
        var feed: [Message] = []
        var heads: [Message?] = []
        var conversations: [ConversationSummary] = []
        var conversationPages: [[ConversationSummary]] = []
        var messageCount = 0
        var problems: [String] = []
    }

    static let conversations = ["c0", "c1", "c2", "none"]

    static func synchronousAnswers(_ store: MessageStore) throws -> Answers {
        var a = Answers()
        a.byID = try ["m1", "m4", "m5", "m10", "m11", "m61"].map { try store.message(id: $0) }
        for conversation in conversations {
            a.latest.append(try store.latest(in: conversation, limit: 7))
            for order in [Order.oldestFirst, .newestFirst] {
                a.ranges.append(try store.messages(in: conversation, from: 1005, through: 1020, order: order, limit: 5))
                a.offsetPages.append(try store.page(in: conversation, offset: 3, limit: 4, order: order))
                var page = try store.page(in: conversation, after: nil, limit: 4, order: order)
                var walk = page.messages
                while let next = page.next {
                    page = try store.page(in: conversation, after: next, limit: 4, order: order)
                    walk += page.messages
                }
                a.walks.append(walk)
            }
            a.counts += [try store.count(in: conversation, after: 1010), try store.unreadCount(user: "u1", in: conversation),
                         try store.unreadCount(user: "u2", in: conversation)]
        }
        for user in ["u1", "u2", "u3"] {
            a.unreadCounts.append(try store.unreadCounts(user: user, conversations: conversations + ["c0"]))
            for conversation in conversations { a.markers.append(try store.readMarker(user: user, conversation: conversation)) }
        }
        a.feed = try store.feed(["c0", "c2", "c0"], limit: 9)
        a.heads = try store.latestMessage(in: ["c1", "none", "c0"])
        a.conversations = try store.conversations(limit: 10)
        var page = try store.conversations(after: nil, limit: 2)
        a.conversationPages.append(page.conversations)
        while let next = page.next {
            page = try store.conversations(after: next, limit: 2)
            a.conversationPages.append(page.conversations)
        }
        a.messageCount = try store.statistics.messages
        a.problems = try store.verify()
        return a
    }

    static func answers(_ store: MessageStore) async throws -> Answers {
        var a = Answers()
        for id in ["m1", "m4", "m5", "m10", "m11", "m61"] { a.byID.append(try await store.message(id: id)) }
        for conversation in conversations {
            a.latest.append(try await store.latest(in: conversation, limit: 7))
            for order in [Order.oldestFirst, .newestFirst] {
                a.ranges.append(try await store.messages(in: conversation, from: 1005, through: 1020, order: order, limit: 5))
                a.offsetPages.append(try await store.page(in: conversation, offset: 3, limit: 4, order: order))
                var page = try await store.page(in: conversation, after: nil, limit: 4, order: order)
                var walk = page.messages
                while let next = page.next {
                    page = try await store.page(in: conversation, after: next, limit: 4, order: order)
                    walk += page.messages
                }
                a.walks.append(walk)
            }
            a.counts += [try await store.count(in: conversation, after: 1010),
                         try await store.unreadCount(user: "u1", in: conversation),
                         try await store.unreadCount(user: "u2", in: conversation)]
        }
        for user in ["u1", "u2", "u3"] {
            a.unreadCounts.append(try await store.unreadCounts(user: user, conversations: conversations + ["c0"]))
            for conversation in conversations {
                a.markers.append(try await store.readMarker(user: user, conversation: conversation))
            }
        }
        a.feed = try await store.feed(["c0", "c2", "c0"], limit: 9)
        a.heads = try await store.latestMessage(in: ["c1", "none", "c0"])
        a.conversations = try await store.conversations(limit: 10)
        var page = try await store.conversations(after: nil, limit: 2)
        a.conversationPages.append(page.conversations)
        while let next = page.next {
            page = try await store.conversations(after: next, limit: 2)
            a.conversationPages.append(page.conversations)
        }
        a.messageCount = try await store.statistics().messages
        a.problems = try await store.verify()
        return a
    }

    /// The async methods throw exactly the synchronous methods' `ScrollbackError`s.
    @Test func errorsAreTheSynchronousErrors() async throws {
        let store = try MessageStore(path: "/db", options: Self.options(), fileSystem: MemoryFileSystem())
        try await store.append(Self.message(1))
        /// Runs the synchronous and the asynchronous form of one call: both throw the same error.
        func expectSameError(_ sync: () throws -> Void, _ async: () async throws -> Void) async {
            var expected: ScrollbackError?
            do { try sync() } catch { expected = error as? ScrollbackError }
            guard let expected else {
                Issue.record("the synchronous call threw no ScrollbackError")
                return
            }
            do {
                try await async()
                Issue.record("no error, expected \(expected)")
            } catch {
                #expect(error as? ScrollbackError == expected)
            }
        }
        let empty = Message(id: "", conversation: "c", sender: "s", createdAt: 1, body: "")
        await expectSameError({ try store.append(empty) }, { try await store.append(empty) })
        let tooLong = String(repeating: "x", count: 300)
        await expectSameError({ _ = try store.latest(in: tooLong, limit: 1) }, { _ = try await store.latest(in: tooLong, limit: 1) })
        await expectSameError({ _ = try store.latest(in: "c", limit: -1) }, { _ = try await store.latest(in: "c", limit: -1) })
        await expectSameError({ try store.edit(id: "nope", body: "x") }, { try await store.edit(id: "nope", body: "x") })
        await expectSameError({ try store.markRead(user: "u", conversation: "other", through: "m1") },
                              { try await store.markRead(user: "u", conversation: "other", through: "m1") })
        let forged = Cursor(token: "forged")
        await expectSameError({ _ = try store.page(in: "c1", after: forged, limit: 1) },
                              { _ = try await store.page(in: "c1", after: forged, limit: 1) })
        var huge = WriteBatch()
        for _ in 0...WriteBatch.maxOperations { huge.delete(id: "x") }
        await expectSameError({ try store.write(huge) }, { try await store.write(huge) })
        try await store.close()
        await expectSameError({ _ = try store.latest(in: "c1", limit: 1) }, { _ = try await store.latest(in: "c1", limit: 1) })
        await expectSameError({ try store.append(Self.message(2)) }, { try await store.append(Self.message(2)) })
    }

    /// Eight tasks appending durably at once through the async API share group commits: the
    /// engine counts fewer commit groups than commits (each log sync takes 2 ms here, so the
    /// writers that arrive meanwhile join the next group).
    @Test func concurrentAsyncAppendsShareGroupCommits() async throws {
        let fs = GatedFileSystem()
        let store = try MessageStore(path: "/db", options: Self.options(asyncThreads: 8), fileSystem: fs)
        let before = store.database.engine.statistics
        fs.slowSyncs(by: 0.002)
        let tasks = 8, perTask = 25
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<tasks {
                group.addTask {
                    for k in 0..<perTask {
                        let outcome = try await store.append(Message(id: "t\(t)-\(k)", conversation: "c\(t)", sender: "s",
                                                                     createdAt: Int64(k), body: "x"))
                        #expect(outcome == .appended)
                    }
                }
            }
            try await group.waitForAll()
        }
        let after = store.database.engine.statistics
        let commits = after.commits - before.commits
        let groups = after.commitGroups - before.commitGroups
        #expect(commits == UInt64(tasks * perTask))
        #expect(groups < commits, "\(groups) groups for \(commits) commits: no group commit was shared")
        #expect(try store.statistics.messages == tasks * perTask)
        #expect(store.services.pool.threadCounts.started <= 8)
        try await store.close()
    }

    /// A task cancelled before its call reaches a store thread throws `CancellationError` and
    /// writes nothing; a call a thread has taken completes (and is durable) although its task
    /// was cancelled.
    @Test func cancellationBeforeAndAfterTheCallIsTaken() async throws {
        let fs = GatedFileSystem()
        let store = try MessageStore(path: "/db", options: Self.options(asyncThreads: 1), fileSystem: fs)

        // Cancelled before the call: nothing runs.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await store.append(Self.message(1))
        }
        await #expect(throws: CancellationError.self) { try await early.value }

        // The only store thread is held inside a durable append's log sync.
        fs.close()
        let running = Task { try await store.append(Self.message(2)) }
        try await Self.waitUntil { fs.heldSyncs == 1 }
        // A second call waits for the thread; cancelling it ends it without writing.
        let queued = Task { try await store.append(Self.message(3)) }
        try await Self.waitUntil { store.services.pool.queuedCount == 1 }
        queued.cancel()
        await #expect(throws: CancellationError.self) { try await queued.value }
        // Cancelling the running call changes nothing: it completes once the sync returns.
        running.cancel()
        fs.open()
        #expect(try await running.value == .appended)

        #expect(try await store.message(id: "m1") == nil)
        #expect(try await store.message(id: "m2") == Self.message(2))
        #expect(try await store.message(id: "m3") == nil)
        #expect(try await store.append(Self.message(3)) == .appended)
        try await store.close()
    }

    /// `close()` while calls wait for a thread: they throw `.closed`; the call already running
    /// finishes; later calls throw `.closed`; the threads end.
    @Test func closeFailsQueuedCallsAndEndsTheThreads() async throws {
        let fs = GatedFileSystem()
        let store = try MessageStore(path: "/db", options: Self.options(asyncThreads: 1), fileSystem: fs)
        #expect(store.services.pool.threadCounts.started == 0)   // threads start on first use
        fs.close()
        let running = Task { try await store.append(Self.message(1)) }
        try await Self.waitUntil { fs.heldSyncs == 1 }
        let queued = (2..<5).map { n in Task { try await store.append(Self.message(n)) } }
        try await Self.waitUntil { store.services.pool.queuedCount == 3 }
        let closing = Self.onNewThread { try store.close() }   // the synchronous close, on a thread of its own
        for task in queued {
            await #expect(throws: ScrollbackError.closed) { try await task.value }
        }
        fs.open()
        #expect(try await running.value == .appended)
        try await closing.value
        await #expect(throws: ScrollbackError.closed) { try await store.latest(in: "c1", limit: 1) }
        try await Self.waitUntil { store.services.pool.threadCounts.running == 0 }

        // Reopened: the append that ran is there, the refused ones are not.
        let reopened = try MessageStore(path: "/db", options: Self.options(), fileSystem: fs)
        #expect(try await reopened.message(id: "m1") != nil)
        for n in 2..<5 { #expect(try await reopened.message(id: "m\(n)") == nil) }
        try await reopened.close()
    }

    /// Threads start on demand, never beyond `asyncThreads`; `asyncThreads` is checked.
    @Test func threadsStartOnDemandWithinTheLimit() async throws {
        let store = try MessageStore(path: "/db", options: Self.options(asyncThreads: 3), fileSystem: MemoryFileSystem())
        #expect(store.services.pool.threadCounts.started == 0)
        _ = try await store.latest(in: "c", limit: 1)
        #expect(store.services.pool.threadCounts.started == 1)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 0..<64 { group.addTask { try await store.append(Self.message(n)) } }
            try await group.waitForAll()
        }
        #expect(store.services.pool.threadCounts.started <= 3)
        #expect(try store.statistics.messages == 64)
        try await store.close()

        for bad in [0, 257] {
            #expect(throws: ScrollbackError.invalidArgument(argument: "options.asyncThreads", reason: "\(bad) is outside 1 ... 256")) {
                _ = try MessageStore(path: "/x", options: Self.options(asyncThreads: bad), fileSystem: MemoryFileSystem())
            }
        }
    }

    /// Runs synchronous calls of the store from an async context (where a call without
    /// `await` cannot pick the async overload).
    static func synchronously<R>(_ body: () throws -> R) rethrows -> R { try body() }

    /// Runs `body` on a new thread (a blocking call that must not hold a cooperative thread).
    static func onNewThread(_ body: @escaping @Sendable () throws -> Void) -> Task<Void, any Error> {
        Task {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                Thread { continuation.resume(with: Result(catching: body)) }.start()
            }
        }
    }

    /// Polls `condition` every millisecond, up to 20,000 times (at least 20 s; longer while
    /// other tests keep the cooperative threads busy). Never blocks a thread.
    static func waitUntil(_ condition: () -> Bool) async throws {
        for _ in 0..<20_000 {
            if condition() { return }
            try await Task.sleep(for: .milliseconds(1))
        }
        Issue.record("condition not reached after 20,000 polls")
    }
}
