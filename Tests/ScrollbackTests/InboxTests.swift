import Foundation
@testable import Scrollback
import ScrollbackIO
import Testing

/// Membership (`join`, `leave`, their batch forms), the inbox (`inbox(user:after:limit:)`: order,
/// counts, paging, cursors bound to the user) and message metadata (append, edit, reads, bulk
/// load, compaction, reopen, the limit). The model-based tests compare all of them with the
/// reference model on random histories with crashes; these pin the documented edge cases.
@Suite struct InboxTests {
    static func options() -> StoreOptions {
        var options = StoreOptions()
        options.pageSize = 4096
        options.cacheBytes = 1 << 20
        return options
    }

    static func message(_ id: String, in conversation: String, at createdAt: Int64, metadata: [UInt8]? = nil) -> Message {
        Message(id: id, conversation: conversation, sender: "s", createdAt: createdAt, body: "body of \(id)", metadata: metadata)
    }

    static func open(_ fs: MemoryFileSystem) throws -> MessageStore {
        try MessageStore(path: "/db", options: options(), fileSystem: fs)
    }

    /// Every entry of `user`'s inbox, walked in pages of `limit`; checks that only the last
    /// page has no `next`.
    static func walk(_ store: MessageStore, user: String, limit: Int) throws -> [InboxEntry] {
        var entries: [InboxEntry] = []
        var page = try store.inbox(user: user, limit: limit)
        entries += page.conversations
        while let next = page.next {
            #expect(page.conversations.count == limit)
            page = try store.inbox(user: user, after: next, limit: limit)
            entries += page.conversations
        }
        return entries
    }

    // MARK: Order and counts

    @Test func inboxOrdersMembersByActivityThenTheQuietOnesByID() throws {
        let fs = MemoryFileSystem()
        let store = try Self.open(fs)
        // Ties at 5000 in UTF-8 byte order: "e\u{301}x" (decomposed é, 65 CC 81 78) before "éa"
        // (C3 A9 61), where Swift `String` order puts "éa" first.
        #expect("éa" < "e\u{301}x")
        for (id, conversation, at) in [("m1", "b", 5000), ("m2", "a", 3000), ("m3", "éa", 5000), ("m4", "e\u{301}x", 5000),
                                        ("m5", "c", 9000), ("m6", "z", 1000), ("m7", "not-mine", 99_000)] as [(String, String, Int64)] {
            try store.append(Self.message(id, in: conversation, at: at))
        }
        for conversation in ["b", "a", "éa", "e\u{301}x", "c", "z", "quiet-2", "quiet-1"] {
            try store.join(user: "u", conversation: conversation)
        }
        // A conversation whose messages are all deleted is quiet again.
        try store.delete(id: "m6")
        try store.markRead(user: "u", conversation: "b", through: "m1")
        try store.append(Self.message("m8", in: "b", at: 4000))  // older than the newest: b stays at 5000

        let page = try store.inbox(user: "u", limit: 100)
        #expect(page.next == nil)
        #expect(page.conversations.map(\.id) == ["c", "b", "e\u{301}x", "éa", "a", "quiet-1", "quiet-2", "z"])
        #expect(page.conversations.map(\.lastActivity) == [9000, 5000, 5000, 5000, 3000, nil, nil, nil])
        #expect(page.conversations.map(\.messageCount) == [1, 2, 1, 1, 1, 0, 0, 0])
        // m8 was appended after the marker, but sorts before it (4000 < 5000): read.
        #expect(page.conversations.map(\.unreadCount) == [1, 0, 1, 1, 1, 0, 0, 0])
        for entry in page.conversations {
            #expect(entry.unreadCount == (try store.unreadCount(user: "u", in: entry.id)))
        }
        #expect(try store.inbox(user: "nobody", limit: 10) == InboxPage(conversations: [], next: nil))
        #expect(try store.inbox(user: "v", limit: 10).conversations.isEmpty)  // another user, no memberships
    }

    @Test func pagingReturnsEveryMemberOnceAndNextIsNilExactlyAtTheEnd() throws {
        let fs = MemoryFileSystem()
        let store = try Self.open(fs)
        try store.write { batch in
            for n in 0..<23 {
                let conversation = "c\(n)"
                batch.join(user: "u", conversation: conversation)
                // Many ties (n % 4), some quiet conversations.
                if n % 5 != 0 { batch.append(Self.message("m\(n)", in: conversation, at: Int64(n % 4) * 1000)) }
            }
        }
        let whole = try store.inbox(user: "u", limit: MessageStore.maxLimit).conversations
        #expect(whole.count == 23)
        for limit in [1, 2, 3, 5, 22, 23, 24] {
            #expect(try Self.walk(store, user: "u", limit: limit) == whole, "pages of \(limit)")
        }
        // A full last page has no next; limit 0 makes no progress but says more remain.
        #expect(try store.inbox(user: "u", limit: 23).next == nil)
        let empty = try store.inbox(user: "u", limit: 0)
        #expect(empty.conversations.isEmpty)
        let start = try #require(empty.next)
        #expect(try store.inbox(user: "u", after: start, limit: 5).conversations == Array(whole.prefix(5)))
        #expect(try store.inbox(user: "nobody", limit: 0).next == nil)
    }

    @Test func aCursorStaysValidWhenItsConversationChanges() throws {
        let fs = MemoryFileSystem()
        let store = try Self.open(fs)
        for (n, at) in [(0, 4000), (1, 3000), (2, 2000), (3, 1000)] as [(Int, Int64)] {
            try store.append(Self.message("m\(n)", in: "c\(n)", at: at))
            try store.join(user: "u", conversation: "c\(n)")
        }
        let first = try store.inbox(user: "u", limit: 2)
        #expect(first.conversations.map(\.id) == ["c0", "c1"])
        // The cursor names a position (c1 at 3000), not the membership: leaving c1 keeps it valid.
        try store.leave(user: "u", conversation: "c1")
        let second = try store.inbox(user: "u", after: first.next, limit: 2)
        #expect(second.conversations.map(\.id) == ["c2", "c3"])
        #expect(second.next == nil)
    }

    // MARK: Membership

    @Test func joinAndLeaveAreIdempotentAndWriteNothingWhenTheyChangeNothing() throws {
        let fs = MemoryFileSystem()
        let store = try Self.open(fs)
        try store.append(Self.message("m1", in: "a", at: 1000))
        try store.join(user: "u", conversation: "a")
        let commits = try store.statistics.commits
        try store.join(user: "u", conversation: "a")              // already a member
        try store.leave(user: "u", conversation: "b")             // never joined (b unknown)
        try store.leave(user: "stranger", conversation: "a")      // unknown user
        try store.write { batch in
            batch.join(user: "u", conversation: "a")
            batch.leave(user: "v", conversation: "a")
        }
        #expect(try store.statistics.commits == commits, "a no-op membership change was logged")
        #expect(try store.inbox(user: "u", limit: 10).conversations.map(\.id) == ["a"])

        try store.leave(user: "u", conversation: "a")
        #expect(try store.statistics.commits == commits + 1)
        #expect(try store.inbox(user: "u", limit: 10).conversations.isEmpty)
        try store.leave(user: "u", conversation: "a")
        #expect(try store.statistics.commits == commits + 1)

        // Join, leave and join again in one batch: a member at the end.
        try store.write { batch in
            batch.join(user: "u", conversation: "a")
            batch.leave(user: "u", conversation: "a")
            batch.join(user: "u", conversation: "a")
        }
        #expect(try store.inbox(user: "u", limit: 10).conversations.map(\.id) == ["a"])
    }

    @Test func leavingKeepsTheReadMarkerAndMarkersNeedNoMembership() throws {
        let fs = MemoryFileSystem()
        let store = try Self.open(fs)
        for n in 0..<4 { try store.append(Self.message("m\(n)", in: "a", at: Int64(1000 + n))) }
        try store.markRead(user: "u", conversation: "a", through: "m1")   // not a member
        #expect(try store.inbox(user: "u", limit: 10).conversations.isEmpty)
        try store.join(user: "u", conversation: "a")
        #expect(try store.inbox(user: "u", limit: 10).conversations.map(\.unreadCount) == [2])
        try store.leave(user: "u", conversation: "a")
        #expect(try store.readMarker(user: "u", conversation: "a") == "m1")
        #expect(try store.unreadCount(user: "u", in: "a") == 2)
        try store.join(user: "u", conversation: "a")
        #expect(try store.inbox(user: "u", limit: 10).conversations.map(\.unreadCount) == [2])
    }

    @Test func aBatchJoinsAConversationItCreatesAndAFailingBatchJoinsNothing() throws {
        let fs = MemoryFileSystem()
        let store = try Self.open(fs)
        try store.write { batch in
            batch.join(user: "u", conversation: "new")
            batch.append(Self.message("m1", in: "new", at: 7000))
            batch.markRead(user: "u", conversation: "new", through: "m1")
        }
        #expect(try store.inbox(user: "u", limit: 10).conversations
                == [InboxEntry(id: "new", lastActivity: 7000, messageCount: 1, unreadCount: 0)])
        #expect(throws: ScrollbackError.notFound("message missing")) {
            try store.write { batch in
                batch.join(user: "u", conversation: "other")
                batch.join(user: "w", conversation: "new")
                batch.edit(id: "missing", body: "x")
            }
        }
        #expect(try store.inbox(user: "u", limit: 10).conversations.map(\.id) == ["new"])
        #expect(try store.inbox(user: "w", limit: 10).conversations.isEmpty)
    }

    @Test func membershipSurvivesReopenCheckpointAndCompaction() throws {
        let fs = MemoryFileSystem()
        var store = try Self.open(fs)
        for n in 0..<30 {
            try store.append(Self.message("m\(n)", in: "c\(n % 3)", at: Int64(n) * 100))
            if n % 2 == 0 { try store.delete(id: "m\(n)") }
        }
        try store.join(user: "u", conversation: "c0")
        try store.join(user: "u", conversation: "c2")
        try store.join(user: "u", conversation: "quiet")
        try store.join(user: "v", conversation: "c1")
        try store.leave(user: "u", conversation: "c2")
        let before = try Self.walk(store, user: "u", limit: 1)
        try store.close()
        store = try Self.open(fs)   // replays the log
        #expect(try Self.walk(store, user: "u", limit: 1) == before)
        try store.checkpoint()
        try store.compact()
        try store.close()
        store = try Self.open(fs)
        #expect(try Self.walk(store, user: "u", limit: 2) == before)
        #expect(before.map(\.id) == ["c0", "quiet"])
        #expect(try store.inbox(user: "v", limit: 5).conversations.map(\.id) == ["c1"])
        #expect(try store.verify().isEmpty)
        try store.close()
    }

    // MARK: Bad input

    @Test func forgedForeignAndOtherKindsOfCursorsAreInvalid() throws {
        let fs = MemoryFileSystem()
        let store = try Self.open(fs)
        for n in 0..<3 {
            try store.append(Self.message("m\(n)", in: "c\(n)", at: Int64(n)))
            try store.join(user: "u", conversation: "c\(n)")
            try store.join(user: "v", conversation: "c\(n)")
        }
        let next = try #require(try store.inbox(user: "u", limit: 1).next)
        func expectInvalidCursor(_ body: () throws -> Void, _ what: String) {
            do {
                try body()
                Issue.record("\(what) was accepted")
            } catch let error as ScrollbackError {
                guard case .invalidCursor = error else {
                    Issue.record("\(what) threw \(error), not invalidCursor")
                    return
                }
            } catch {
                Issue.record("\(what) threw \(error)")
            }
        }
        expectInvalidCursor({ _ = try store.inbox(user: "v", after: next, limit: 1) }, "another user's cursor")
        expectInvalidCursor({ _ = try store.inbox(user: "nobody", after: next, limit: 1) }, "a cursor given for an unknown user")
        expectInvalidCursor({ _ = try store.inbox(user: "u", after: InboxCursor(token: "forged"), limit: 1) }, "a forged cursor")
        // One character changed: the check value no longer matches.
        var bytes = Array(next.token.utf8)
        bytes[5] = bytes[5] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        expectInvalidCursor({ _ = try store.inbox(user: "u", after: InboxCursor(token: String(decoding: bytes, as: UTF8.self)), limit: 1) },
                            "a damaged cursor")
        let list = try #require(try store.conversations(after: nil, limit: 1).next)
        expectInvalidCursor({ _ = try store.inbox(user: "u", after: InboxCursor(token: list.token), limit: 1) },
                            "a conversation-list cursor")
        let messages = try #require(try store.page(in: "c0", after: nil, limit: 0).next)
        expectInvalidCursor({ _ = try store.inbox(user: "u", after: InboxCursor(token: messages.token), limit: 1) },
                            "a message cursor")
        expectInvalidCursor({ _ = try store.conversations(after: ConversationCursor(token: next.token), limit: 1) },
                            "an inbox cursor given to the conversation list")
        expectInvalidCursor({ _ = try store.page(in: "c0", after: Cursor(token: next.token), limit: 1) },
                            "an inbox cursor given to a conversation's pages")
        // Another store's cursor: its secret differs.
        let other = try Self.open(MemoryFileSystem())
        try other.join(user: "u", conversation: "c0")
        try other.join(user: "u", conversation: "c1")
        let foreign = try #require(try other.inbox(user: "u", limit: 1).next)
        expectInvalidCursor({ _ = try store.inbox(user: "u", after: foreign, limit: 1) }, "another store's cursor")
    }

    @Test func badNamesAndLimitsAreInvalidArgumentsAndWriteNothing() throws {
        let fs = MemoryFileSystem()
        let store = try Self.open(fs)
        let long = String(repeating: "x", count: 256)
        let commits = try store.statistics.commits
        let cases: [(String, () throws -> Void)] = [
            ("user", { try store.join(user: "", conversation: "a") }),
            ("user", { try store.join(user: long, conversation: "a") }),
            ("conversation", { try store.join(user: "u", conversation: "") }),
            ("conversation", { try store.leave(user: "u", conversation: long) }),
            ("user", { try store.leave(user: "", conversation: "a") }),
            ("user", { try store.write { $0.join(user: long, conversation: "a") } }),
            ("conversation", { try store.write { $0.leave(user: "u", conversation: "") } }),
            ("user", { _ = try store.inbox(user: "", limit: 1) }),
            ("user", { _ = try store.inbox(user: long, limit: 1) }),
            ("limit", { _ = try store.inbox(user: "u", limit: -1) }),
            ("limit", { _ = try store.inbox(user: "u", limit: MessageStore.maxLimit + 1) }),
        ]
        for (argument, body) in cases {
            do {
                try body()
                Issue.record("accepted a bad \(argument)")
            } catch ScrollbackError.invalidArgument(let named, _) {
                #expect(named == argument)
            }
        }
        #expect(try store.statistics.commits == commits)
        // The longest names are fine.
        let longest = String(repeating: "y", count: 255)
        try store.join(user: longest, conversation: longest)
        #expect(try store.inbox(user: longest, limit: 1).conversations.map(\.id) == [longest])
    }

    // MARK: Metadata

    @Test func metadataIsCarriedThroughAppendEditReadsLoadAndCompaction() throws {
        let fs = MemoryFileSystem()
        var store = try Self.open(fs)
        let bytes: [UInt8] = [0, 1, 2, 0xFF, 0x7B, 0x22]
        let largest = [UInt8](repeating: 0xAB, count: Message.maxMetadataBytes)
        try store.append(Self.message("m1", in: "a", at: 1000, metadata: bytes))
        try store.append(Self.message("m2", in: "a", at: 2000, metadata: largest))
        try store.append(Self.message("m3", in: "a", at: 3000, metadata: []))   // empty: none
        try store.append(Self.message("m4", in: "a", at: 4000))
        try store.write { $0.append(Self.message("m5", in: "b", at: 5000, metadata: [9])) }
        try store.load([Self.message("m6", in: "b", at: 6000, metadata: [6, 6]), Self.message("m7", in: "b", at: 7000)])

        func check(_ store: MessageStore) throws {
            #expect(try store.message(id: "m1")?.metadata == bytes)
            #expect(try store.message(id: "m2")?.metadata == largest)
            #expect(try store.message(id: "m3")?.metadata == nil)
            #expect(try store.message(id: "m4")?.metadata == nil)
            #expect(try store.latest(in: "a", limit: 4).map(\.metadata) == [nil, nil, largest, bytes])
            #expect(try store.page(in: "b", after: nil, limit: 3, order: .oldestFirst).messages.map(\.metadata) == [[9], [6, 6], nil])
            #expect(try store.feed(["a", "b"], limit: 10).compactMap(\.metadata).count == 4)
        }
        try check(store)
        // An edit keeps the metadata (and sets edited).
        try store.edit(id: "m1", body: "changed")
        let edited = try #require(try store.message(id: "m1"))
        #expect(edited.metadata == bytes && edited.edited && edited.body == "changed")
        try store.edit(id: "m1", body: "changed twice")
        try store.edit(id: "m6", body: "edited after a load")
        #expect(try store.message(id: "m6")?.metadata == [6, 6])
        try store.close()
        store = try Self.open(fs)
        try check(store)
        try store.checkpoint()
        try store.compact()
        try check(store)
        #expect(try store.message(id: "m1")?.body == "changed twice")
        #expect(try store.verify().isEmpty)
        try store.close()
    }

    @Test func metadataOverTheLimitIsInvalidAndWritesNothing() throws {
        let fs = MemoryFileSystem()
        let store = try Self.open(fs)
        let over = [UInt8](repeating: 1, count: Message.maxMetadataBytes + 1)
        let cases: [() throws -> Void] = [
            { try store.append(Self.message("m1", in: "a", at: 1, metadata: over)) },
            { try store.write { batch in
                batch.join(user: "u", conversation: "a")
                batch.append(Self.message("m1", in: "a", at: 1, metadata: over))
            } },
            { try store.load([Self.message("m0", in: "a", at: 1), Self.message("m1", in: "a", at: 1, metadata: over)]) },
            { try store.validate(Self.message("m1", in: "a", at: 1, metadata: over)) },
        ]
        for body in cases {
            do {
                try body()
                Issue.record("metadata of \(over.count) bytes was accepted")
            } catch ScrollbackError.invalidArgument(let argument, let reason) {
                #expect(argument == "metadata")
                #expect(reason.contains("16384"))
            }
        }
        #expect(try store.statistics.messages == 0)
        #expect(try store.inbox(user: "u", limit: 1).conversations.isEmpty)
    }

    // MARK: Async and Codable

    @Test func asyncFormsAndCodableShapes() async throws {
        let fs = MemoryFileSystem()
        let store = try Self.open(fs)
        try await store.append(Self.message("m1", in: "a", at: 1000, metadata: Array("x=1".utf8)))
        try await store.join(user: "u", conversation: "a")
        try await store.join(user: "u", conversation: "quiet")
        let page = try await store.inbox(user: "u", limit: 1)
        #expect(page.conversations == [InboxEntry(id: "a", lastActivity: 1000, messageCount: 1, unreadCount: 1)])
        #expect(page.conversations[0].lastActivityDate == Date(timeIntervalSince1970: 1))
        let rest = try await store.inbox(user: "u", after: page.next, limit: 1)
        #expect(rest == InboxPage(conversations: [InboxEntry(id: "quiet", lastActivity: nil, messageCount: 0, unreadCount: 0)],
                                  next: nil))
        try await store.leave(user: "u", conversation: "quiet")
        #expect(try await store.inbox(user: "u", limit: 5).conversations.map(\.id) == ["a"])

        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(String(decoding: try encoder.encode(rest), as: UTF8.self)
                == #"{"conversations":[{"id":"quiet","lastActivity":null,"messages":0,"unread":0}],"next":null}"#)
        #expect(try JSONDecoder().decode(InboxPage.self, from: try encoder.encode(page)) == page)
        let message = try #require(try await store.message(id: "m1"))
        let json = String(decoding: try encoder.encode(message), as: UTF8.self)
        #expect(json.contains(#""metadata":"eD0x""#))
        #expect(try JSONDecoder().decode(Message.self, from: Data(json.utf8)) == message)
        try await store.close()
    }
}
