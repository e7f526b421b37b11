import Foundation
@testable import Scrollback
import ScrollbackIO
import Testing

/// `readMarker(user:conversation:)` and `unreadCounts(user:conversations:)`: a marker read
/// back as a message id (nil without one, or once its message is deleted), unread counts of
/// many conversations from one snapshot, their argument checks, persistence, and the async
/// forms. The model-based tests compare both with the reference model on random histories.
@Suite struct ReadMarkerTests {
    static func options() -> StoreOptions {
        var options = StoreOptions()
        options.pageSize = 4096
        options.cacheBytes = 1 << 20
        return options
    }

    static func message(_ n: Int, in conversation: String, at createdAt: Int64? = nil) -> Message {
        Message(id: "\(conversation)-\(n)", conversation: conversation, sender: "s", createdAt: createdAt ?? Int64(1000 + n),
                body: "body \(n)")
    }

    @Test func markerReadBack() throws {
        let fs = MemoryFileSystem()
        var store = try MessageStore(path: "/db", options: Self.options(), fileSystem: fs)
        for n in 0..<10 { try store.append(Self.message(n, in: "a")) }
        for n in 0..<3 { try store.append(Self.message(n, in: "b")) }
        #expect(try store.readMarker(user: "u", conversation: "a") == nil)         // unknown user
        try store.markRead(user: "u", conversation: "a", through: "a-4")
        #expect(try store.readMarker(user: "u", conversation: "a") == "a-4")
        #expect(try store.readMarker(user: "u", conversation: "b") == nil)         // no marker there
        #expect(try store.readMarker(user: "v", conversation: "a") == nil)         // another user's
        #expect(try store.readMarker(user: "u", conversation: "none") == nil)      // unknown conversation

        // Markers move forward only: an older message leaves it where it is.
        try store.markRead(user: "u", conversation: "a", through: "a-2")
        #expect(try store.readMarker(user: "u", conversation: "a") == "a-4")
        try store.markRead(user: "u", conversation: "a", through: "a-7")
        #expect(try store.readMarker(user: "u", conversation: "a") == "a-7")

        // In a batch, through a message appended by the same batch.
        try store.write { batch in
            batch.append(Self.message(3, in: "b"))
            batch.markRead(user: "u", conversation: "b", through: "b-3")
        }
        #expect(try store.readMarker(user: "u", conversation: "b") == "b-3")

        // An edit keeps the message's place: the marker still names it.
        try store.edit(id: "a-7", body: "edited")
        #expect(try store.readMarker(user: "u", conversation: "a") == "a-7")

        // Its message deleted, the marker reads back as nil but still counts from its place.
        #expect(try store.unreadCount(user: "u", in: "a") == 2)
        try store.delete(id: "a-7")
        #expect(try store.readMarker(user: "u", conversation: "a") == nil)
        #expect(try store.unreadCount(user: "u", in: "a") == 2)
        // A message appended later at the same createdAt sorts after the deleted one: unread,
        // and not the marker.
        try store.append(Message(id: "a-late", conversation: "a", sender: "s", createdAt: 1007, body: "late"))
        #expect(try store.readMarker(user: "u", conversation: "a") == nil)
        #expect(try store.unreadCount(user: "u", in: "a") == 3)
        // Moving on works as before.
        try store.markRead(user: "u", conversation: "a", through: "a-9")
        #expect(try store.readMarker(user: "u", conversation: "a") == "a-9")

        // Durable: the same after a clean reopen, and after a checkpoint and compaction.
        try store.close()
        store = try MessageStore(path: "/db", options: Self.options(), fileSystem: fs)
        #expect(try store.readMarker(user: "u", conversation: "a") == "a-9")
        #expect(try store.readMarker(user: "u", conversation: "b") == "b-3")
        try store.checkpoint()
        _ = try store.compact()
        #expect(try store.readMarker(user: "u", conversation: "a") == "a-9")
        try store.close()
    }

    @Test func unreadCountsOfManyConversations() throws {
        let store = try MessageStore(path: "/db", options: Self.options(), fileSystem: MemoryFileSystem())
        for (conversation, n) in [("a", 5), ("b", 3), ("c", 8)] {
            for i in 0..<n { try store.append(Self.message(i, in: conversation)) }
        }
        try store.write { batch in
            batch.markRead(user: "u", conversation: "a", through: "a-1")
            batch.markRead(user: "u", conversation: "c", through: "c-7")
        }
        // In the order given, duplicates answered each time, unknown conversations 0.
        let list = ["c", "none", "a", "b", "a"]
        let counts = try store.unreadCounts(user: "u", conversations: list)
        #expect(counts == [0, 0, 3, 3, 3])
        #expect(counts == (try list.map { try store.unreadCount(user: "u", in: $0) }))
        // A user without markers (or unknown) has everything unread.
        #expect(try store.unreadCounts(user: "nobody", conversations: list) == [8, 0, 5, 3, 5])
        #expect(try store.unreadCounts(user: "u", conversations: []) == [])
        // The limit of a multi-conversation query.
        let most = Array(repeating: "a", count: MessageStore.maxConversationsPerQuery)
        #expect(try store.unreadCounts(user: "u", conversations: most).allSatisfy { $0 == 3 })
        try store.close()
    }

    @Test func argumentsAreChecked() throws {
        let store = try MessageStore(path: "/db", options: Self.options(), fileSystem: MemoryFileSystem())
        try store.append(Self.message(0, in: "a"))
        func expectInvalid(_ argument: String, _ body: () throws -> Void) {
            do {
                try body()
                Issue.record("no error, expected invalidArgument(\(argument))")
            } catch let ScrollbackError.invalidArgument(got, _) {
                #expect(got == argument)
            } catch {
                Issue.record("\(error), expected invalidArgument(\(argument))")
            }
        }
        let long = String(repeating: "x", count: 256)
        expectInvalid("user") { _ = try store.readMarker(user: "", conversation: "a") }
        expectInvalid("user") { _ = try store.readMarker(user: long, conversation: "a") }
        expectInvalid("conversation") { _ = try store.readMarker(user: "u", conversation: "") }
        expectInvalid("conversation") { _ = try store.readMarker(user: "u", conversation: long) }
        expectInvalid("user") { _ = try store.unreadCounts(user: "", conversations: ["a"]) }
        expectInvalid("conversations") { _ = try store.unreadCounts(user: "u", conversations: ["a", ""]) }
        expectInvalid("conversations") { _ = try store.unreadCounts(user: "u", conversations: ["a", long]) }
        expectInvalid("conversations") {
            _ = try store.unreadCounts(user: "u", conversations: Array(repeating: "a", count: MessageStore.maxConversationsPerQuery + 1))
        }
        try store.close()
        #expect(throws: ScrollbackError.closed) { _ = try store.readMarker(user: "u", conversation: "a") }
        #expect(throws: ScrollbackError.closed) { _ = try store.unreadCounts(user: "u", conversations: ["a"]) }
    }

    /// The counts of one call come from one snapshot: while a writer appends to "a" and moves
    /// the marker in "b" in the same batches, every answer for ["a", "b", "a"] has equal first
    /// and last counts, and "a" + "b" is the same total each time (each batch adds one unread
    /// message to "a" and reads one more in "b").
    @Test func countsComeFromOneSnapshot() async throws {
        let store = try MessageStore(path: "/db", options: Self.options(), fileSystem: MemoryFileSystem())
        try await store.write { batch in
            for n in 0..<200 { batch.append(Self.message(n, in: "b")) }
        }
        let writer = Task.detached {
            for n in 0..<150 {
                try await store.write { batch in
                    batch.append(Self.message(n, in: "a"))
                    batch.markRead(user: "u", conversation: "b", through: "b-\(n)")
                }
            }
        }
        var torn: [[Int]] = []
        for _ in 0..<100_000 {
            let counts = try await store.unreadCounts(user: "u", conversations: ["a", "b", "a"])
            // Before the first batch "b" is all unread (200); after batch n: a = n + 1, b = 199 - n.
            if counts[0] != counts[2] || (counts[0] + counts[1] != 200) { torn.append(counts) }
            if counts[0] == 150 { break }
        }
        try await writer.value
        #expect(torn.isEmpty, "answers from more than one snapshot: \(torn.prefix(5))")
        #expect(try await store.unreadCounts(user: "u", conversations: ["a", "b", "a"]) == [150, 50, 150])
        try await store.close()
    }

    @Test func asyncFormsAnswerAsTheSynchronousOnes() async throws {
        let store = try MessageStore(path: "/db", options: Self.options(), fileSystem: MemoryFileSystem())
        for n in 0..<6 { try await store.append(Self.message(n, in: "a")) }
        try await store.markRead(user: "u", conversation: "a", through: "a-3")
        #expect(try await store.readMarker(user: "u", conversation: "a") == "a-3")
        #expect(try await store.readMarker(user: "u", conversation: "b") == nil)
        #expect(try await store.unreadCounts(user: "u", conversations: ["a", "b"]) == [2, 0])
        await #expect(throws: ScrollbackError.self) { _ = try await store.readMarker(user: "", conversation: "a") }
        await #expect(throws: ScrollbackError.self) { _ = try await store.unreadCounts(user: "u", conversations: [""]) }
        try await store.close()
    }
}
