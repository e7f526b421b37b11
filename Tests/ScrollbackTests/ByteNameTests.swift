@testable import Scrollback
import ScrollbackIO
import Testing

/// Names and ids are byte strings: two canonically equivalent spellings (`"é"` as U+00E9, and
/// `"e"` + U+0301), which Swift's `String` calls equal, are two conversations, two users and
/// two ids — in a cache, inside one batch, in a load, in `feed`, and in the change stream's
/// filter (the message layer keys its maps by UTF-8 bytes: `ByteString`).
@Suite struct ByteNameTests {
    static let composed = "caf\u{E9}"
    static let decomposed = "cafe\u{301}"

    static func options() -> StoreOptions {
        var options = StoreOptions()
        options.pageSize = 4096
        options.cacheBytes = 1 << 20
        return options
    }

    static func bytes(_ messages: [Message]) -> [[UInt8]] { messages.map { Array($0.conversation.utf8) + [0] + Array($0.id.utf8) } }

    @Test func canonicallyEquivalentNamesStayApart() throws {
        #expect(Self.composed == Self.decomposed, "the premise: Swift calls them equal")
        let store = try MessageStore(path: "/db", options: Self.options(), fileSystem: MemoryFileSystem())
        let start = try store.changePosition()
        // Separate writes (the name cache) …
        try store.append(Message(id: "a1", conversation: Self.composed, sender: "s", createdAt: 1, body: "x"))
        try store.append(Message(id: "a2", conversation: Self.decomposed, sender: "s", createdAt: 2, body: "y"))
        // … one batch (its pending names and ids) …
        let outcomes = try store.write { batch in
            batch.append(Message(id: Self.composed, conversation: "c", sender: "s", createdAt: 3, body: "z"))
            batch.append(Message(id: Self.decomposed, conversation: "c", sender: "s", createdAt: 4, body: "w"))
            batch.append(Message(id: "b1", conversation: "new-" + Self.composed, sender: "s", createdAt: 5, body: "v"))
            batch.append(Message(id: "b2", conversation: "new-" + Self.decomposed, sender: "s", createdAt: 6, body: "u"))
        }
        #expect(outcomes == [.appended, .appended, .appended, .appended])
        #expect(try store.latest(in: Self.composed, limit: 10).map(\.id) == ["a1"])
        #expect(try store.latest(in: Self.decomposed, limit: 10).map(\.id) == ["a2"])
        #expect(try store.latest(in: "c", limit: 10).map { Array($0.id.utf8) } == [Array(Self.decomposed.utf8), Array(Self.composed.utf8)])
        #expect(try store.conversations(limit: 100).count == 5)
        #expect(try Self.bytes(store.feed([Self.composed, Self.decomposed], limit: 10)) ==
                [Array(Self.decomposed.utf8) + [0] + Array("a2".utf8), Array(Self.composed.utf8) + [0] + Array("a1".utf8)])
        // Users.
        try store.markRead(user: Self.composed, conversation: "c", through: Self.composed)
        #expect(try store.unreadCount(user: Self.composed, in: "c") == 1)
        #expect(try store.unreadCount(user: Self.decomposed, in: "c") == 2)
        // A load with both ids in one conversation: both loaded, no duplicate.
        let loaded = try MessageStore(path: "/load", options: Self.options(), fileSystem: MemoryFileSystem())
        let summary = try loaded.load([
            Message(id: Self.composed, conversation: "c", sender: "s", createdAt: 1, body: "1"),
            Message(id: Self.decomposed, conversation: "c", sender: "s", createdAt: 2, body: "2"),
        ])
        #expect(summary.appended == 2 && summary.duplicates == 0)
        try loaded.close()
        // The change stream's filter.
        let only = try store.changes(after: start, limit: 100, conversations: [Self.composed]).changes
        #expect(only.count == 1 && only.allSatisfy { Array($0.conversation.utf8) == Array(Self.composed.utf8) })
        try store.close()
    }
}
