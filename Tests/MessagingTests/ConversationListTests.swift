@testable import Scrollback
import ScrollbackIO
import Testing
import TestSupport

/// The paged conversation list (`conversations(after:limit:)`): keyset pages by (newest
/// activity descending, id ascending), `next` nil exactly when none remain, tamper-checked
/// cursors.
@Suite struct ConversationListTests {
    /// Conversations c0… with random newest times (many ties), some emptied by deletes.
    static func build(_ store: MessageStore, seed: UInt64, conversations: Int) throws -> [ConversationSummary] {
        var rng = SeededRandom(seed: seed)
        var model = Model()
        for i in 0..<(conversations * 3) {
            let m = Fixture.message("m\(i)", in: "c\(Int.random(in: 0..<conversations, using: &rng))",
                                    at: Int64.random(in: 0..<20, using: &rng))
            try store.append(m)
            _ = model.append(m)
        }
        for i in stride(from: 0, to: conversations * 3, by: 7) {
            try store.delete(id: "m\(i)")
            model.messages["m\(i)"] = nil
        }
        return Dictionary(grouping: model.all, by: \.conversation).map { name, messages in
            ConversationSummary(id: name, lastActivity: messages.map(\.createdAt).max()!, messageCount: messages.count)
        }.sorted { $0.lastActivity != $1.lastActivity ? $0.lastActivity > $1.lastActivity : $0.id < $1.id }
    }

    /// Every page of the list, walked with `limit`.
    static func walk(_ store: MessageStore, limit: Int) throws -> (list: [ConversationSummary], pages: Int) {
        var list: [ConversationSummary] = []
        var cursor: ConversationCursor?
        var pages = 0
        repeat {
            let page = try store.conversations(after: cursor, limit: limit)
            #expect(page.conversations.count <= limit)
            list += page.conversations
            cursor = page.next
            pages += 1
        } while cursor != nil && pages < 10_000
        return (list, pages)
    }

    @Test(arguments: [1, 2, 3, 7, 50, 10_000])
    func walkingEveryPageReturnsTheListOnce(limit: Int) throws {
        let store = try Fixture.open()
        let expected = try Self.build(store, seed: UInt64(limit), conversations: 60)
        let (list, pages) = try Self.walk(store, limit: limit)
        #expect(list == expected)
        // `next` is nil exactly when nothing remains: no empty last page.
        #expect(pages == max(1, (expected.count + limit - 1) / limit))
        #expect(try store.conversations(limit: limit) == Array(expected.prefix(limit)))
        #expect(try store.conversations(after: nil, limit: limit).conversations == Array(expected.prefix(limit)))
        try store.close()
    }

    @Test func limitZeroKeepsThePosition() throws {
        let store = try Fixture.open()
        let expected = try Self.build(store, seed: 3, conversations: 10)
        let empty = try store.conversations(after: nil, limit: 0)
        #expect(empty.conversations.isEmpty)
        let start = try #require(empty.next, "conversations remain, so next is not nil")
        #expect(try store.conversations(after: start, limit: 4).conversations == Array(expected.prefix(4)))
        let second = try store.conversations(after: nil, limit: 4)
        let again = try store.conversations(after: second.next, limit: 0)
        #expect(again.conversations.isEmpty && again.next != nil)
        #expect(try store.conversations(after: again.next, limit: 4).conversations == Array(expected.dropFirst(4).prefix(4)))
        let last = try store.conversations(after: nil, limit: expected.count)
        #expect(last.next == nil)
        let fresh = try Fixture.open(path: "/empty")
        #expect(try fresh.conversations(after: nil, limit: 0) == ConversationPage(conversations: [], next: nil))
        #expect(try fresh.conversations(after: nil, limit: 5) == ConversationPage(conversations: [], next: nil))
    }

    /// A cursor is a position: conversations whose activity does not change are returned
    /// exactly once while others are written, and one that gains activity after the walk
    /// passed its new place is not returned again.
    @Test func cursorIsAStablePosition() throws {
        let store = try Fixture.open()
        for (i, time) in [50, 40, 30, 20, 10].enumerated() { try store.append(Fixture.message("m\(i)", in: "c\(i)", at: Int64(time))) }
        let first = try store.conversations(after: nil, limit: 2)
        #expect(first.conversations.map(\.id) == ["c0", "c1"])
        try store.append(Fixture.message("n1", in: "new-old", at: 15))    // after the position: will be listed
        try store.append(Fixture.message("n2", in: "new-recent", at: 45))  // before it: not listed
        try store.append(Fixture.message("n3", in: "c0", at: 5))           // c0's activity is unchanged
        let rest = try store.conversations(after: first.next, limit: 100)
        #expect(rest.conversations.map(\.id) == ["c2", "c3", "new-old", "c4"])
        #expect(rest.next == nil)
    }

    @Test func badCursorsAreRejected() throws {
        let store = try Fixture.open()
        _ = try Self.build(store, seed: 5, conversations: 8)
        let next = try #require(try store.conversations(after: nil, limit: 2).next)
        func isInvalidCursor(_ error: ScrollbackError) -> Bool { if case .invalidCursor = error { true } else { false } }
        for token in ["", "forged", String(repeating: "A", count: 44), next.token + "A",
                      String(next.token.dropLast()) + (next.token.hasSuffix("A") ? "B" : "A")] {
            #expect(throws: ScrollbackError.self, "\(token)") { try store.conversations(after: ConversationCursor(token: token), limit: 2) }
            do {
                _ = try store.conversations(after: ConversationCursor(token: token), limit: 2)
            } catch let error as ScrollbackError {
                #expect(isInvalidCursor(error), "\(token): \(error)")
            }
        }
        // A message cursor is not a list cursor, and a list cursor is not a message cursor.
        let messageCursor = try #require(try store.page(in: "c1", after: nil, limit: 0).next)
        #expect(throws: ScrollbackError.self) { try store.conversations(after: ConversationCursor(token: messageCursor.token), limit: 2) }
        #expect(throws: ScrollbackError.self) { try store.page(in: "c1", after: Cursor(token: next.token), limit: 2) }
        // A cursor of another store.
        let other = try Fixture.open(path: "/other")
        _ = try Self.build(other, seed: 5, conversations: 8)
        do {
            _ = try other.conversations(after: next, limit: 2)
            Issue.record("a cursor of another store was accepted")
        } catch let error as ScrollbackError {
            #expect(isInvalidCursor(error), "\(error)")
        }
        // Limits as for every query.
        #expect(throws: ScrollbackError.self) { try store.conversations(after: nil, limit: -1) }
        #expect(throws: ScrollbackError.self) { try store.conversations(after: nil, limit: MessageStore.maxLimit + 1) }
    }

    /// More conversations than one page of the largest limit: paging reaches all of them.
    @Test func listLongerThanTheQueryLimit() throws {
        let store = try Fixture.open()
        var batch = WriteBatch()
        let count = MessageStore.maxLimit + 37
        for i in 0..<count { batch.append(Fixture.message("m\(i)", in: "room\(i)", at: Int64(i % 100))) }
        try store.write(batch)
        let (list, pages) = try Self.walk(store, limit: MessageStore.maxLimit)
        #expect(list.count == count)
        #expect(Set(list.map(\.id)).count == count)
        #expect(pages == 2)
    }
}
