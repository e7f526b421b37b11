@testable import Scrollback
import ScrollbackIO
import Testing
import TestSupport

@Suite struct PrimitiveTests {
    @Test func equalTimestampsKeepInsertionOrder() throws {
        let store = try Fixture.open()
        for i in 0..<50 { try store.append(Fixture.message("m\(i)", at: 1000 + Int64(i % 3 == 0 ? 0 : i / 10))) }
        var model = Model()
        for i in 0..<50 { _ = model.append(Fixture.message("m\(i)", at: 1000 + Int64(i % 3 == 0 ? 0 : i / 10))) }
        let expected = model.ordered("c1")
        #expect(try store.messages(in: "c1", from: 0, through: 10_000).map(\.id) == expected.map(\.id))
        #expect(try store.messages(in: "c1", from: 0, through: 10_000, order: .newestFirst).map(\.id) == expected.reversed().map(\.id))
        #expect(try store.latest(in: "c1", limit: 7).map(\.id) == expected.reversed().prefix(7).map(\.id))
        // Same timestamp for every message: pure insertion order.
        for i in 0..<20 { try store.append(Fixture.message("s\(i)", in: "same", at: 5)) }
        #expect(try store.latest(in: "same", limit: 100).map(\.id) == (0..<20).reversed().map { "s\($0)" })
        #expect(try store.page(in: "same", offset: 5, limit: 3, order: .oldestFirst).map(\.id) == ["s5", "s6", "s7"])
        #expect(try store.count(in: "same", after: 4) == 20)
        #expect(try store.count(in: "same", after: 5) == 0)
    }

    @Test func appendIsIdempotentOnID() throws {
        let store = try Fixture.open()
        #expect(try store.append(Fixture.message("a", at: 1, body: "first")) == .appended)
        // The same id in the same conversation: a duplicate, whatever else differs.
        #expect(try store.append(Fixture.message("a", at: 2, body: "second")) == .duplicate)
        #expect(try store.message(id: "a")?.body == "first")
        let outcomes = try store.write { batch in
            batch.append(Fixture.message("b", at: 3))
            batch.append(Fixture.message("b", at: 4))
            batch.append(Fixture.message("a", at: 5))
        }
        #expect(outcomes == [.appended, .duplicate, .duplicate])
        #expect(try store.count(in: "c1", after: -1) == 2)
        #expect(try store.statistics.messages == 2)
        #expect(try store.verify() == [])
    }

    /// An id live in another conversation is a typed conflict, not a silent duplicate; in a
    /// batch or a load it fails the whole write; once the message is deleted the id is free.
    @Test func idLiveInAnotherConversationIsAConflict() throws {
        let store = try Fixture.open()
        try store.append(Fixture.message("a", at: 1, body: "first"))
        #expect(throws: ScrollbackError.idConflict(id: "a", conversation: "c1")) {
            try store.append(Fixture.message("a", in: "other", at: 2, body: "second"))
        }
        #expect(try store.latest(in: "other", limit: 10).isEmpty)
        #expect(try store.message(id: "a")?.body == "first")
        let error = ScrollbackError.idConflict(id: "a", conversation: "c1")
        #expect(error.description == "id conflict: message id a is in use in conversation c1")
        // In a batch: nothing of the batch is written, including a conflict with an id the
        // batch itself appended earlier.
        #expect(throws: ScrollbackError.idConflict(id: "a", conversation: "c1")) {
            try store.write { batch in
                batch.append(Fixture.message("x", in: "other", at: 3))
                batch.append(Fixture.message("a", in: "other", at: 4))
            }
        }
        #expect(throws: ScrollbackError.idConflict(id: "y", conversation: "new room")) {
            try store.write { batch in
                batch.append(Fixture.message("y", in: "new room", at: 3))
                batch.append(Fixture.message("y", in: "c1", at: 4))
            }
        }
        #expect(try store.message(id: "x") == nil && store.message(id: "y") == nil)
        #expect(try store.conversations(limit: 10).map(\.id) == ["c1"])
        // In a load: against the store and inside the load; nothing is loaded.
        #expect(throws: ScrollbackError.idConflict(id: "a", conversation: "c1")) {
            try store.load([Fixture.message("z", in: "other", at: 5), Fixture.message("a", in: "other", at: 6)])
        }
        #expect(throws: ScrollbackError.idConflict(id: "w", conversation: "other")) {
            try store.load([Fixture.message("w", in: "other", at: 5), Fixture.message("w", in: "c1", at: 6)])
        }
        #expect(try store.message(id: "z") == nil && store.message(id: "w") == nil)
        // A duplicate in the same conversation still loads as a duplicate.
        #expect(try store.load([Fixture.message("a", at: 7), Fixture.message("v", at: 8), Fixture.message("v", at: 9)])
            == LoadSummary(appended: 1, duplicates: 2))
        // A deleted message's id is free for any conversation.
        try store.delete(id: "a")
        #expect(try store.append(Fixture.message("a", in: "other", at: 10)) == .appended)
        #expect(try store.message(id: "a")?.conversation == "other")
        #expect(try store.verify() == [])
    }

    /// A keyset cursor works only with the order that issued it.
    @Test func cursorIsBoundToItsOrder() throws {
        let store = try Fixture.open()
        for i in 1...6 { try store.append(Fixture.message("m\(i)", at: Int64(i))) }
        let oldest = try store.page(in: "c1", after: nil, limit: 2, order: .oldestFirst)
        let newest = try store.page(in: "c1", after: nil, limit: 2, order: .newestFirst)
        let forward = try #require(oldest.next), backward = try #require(newest.next)
        #expect(try store.page(in: "c1", after: forward, limit: 2, order: .oldestFirst).messages.map(\.id) == ["m3", "m4"])
        #expect(try store.page(in: "c1", after: backward, limit: 2, order: .newestFirst).messages.map(\.id) == ["m4", "m3"])
        #expect(throws: ScrollbackError.invalidCursor("the cursor was issued for oldestFirst order, not newestFirst")) {
            try store.page(in: "c1", after: forward, limit: 2, order: .newestFirst)
        }
        #expect(throws: ScrollbackError.invalidCursor("the cursor was issued for newestFirst order, not oldestFirst")) {
            try store.page(in: "c1", after: backward, limit: 2, order: .oldestFirst)
        }
        // The range pages take the same cursors, with the same rule.
        #expect(try store.page(in: "c1", from: 0, through: 5, after: forward, limit: 10, order: .oldestFirst).messages.map(\.id)
            == ["m3", "m4", "m5"])
        #expect(throws: ScrollbackError.self) {
            try store.page(in: "c1", from: 0, through: 5, after: forward, limit: 10, order: .newestFirst)
        }
        // A conversation-list cursor is not a message cursor.
        let list = try #require(try store.conversations(after: nil, limit: 0).next)
        #expect(throws: ScrollbackError.invalidCursor("the token is a conversation-list cursor, not a message cursor")) {
            try store.page(in: "c1", after: Cursor(token: list.token), limit: 2, order: .oldestFirst)
        }
    }

    /// A range longer than `maxLimit` is never answered as if it were whole: without a limit
    /// it throws `.limitExceeded`; its pages walk all of it.
    @Test func rangeBeyondTheMaximumLimitSaysSo() throws {
        let store = try Fixture.open()
        let total = MessageStore.maxLimit + 5
        try store.load((0..<total).map { Fixture.message("m\($0)", at: Int64($0 / 2), body: "b") })
        // A limit: exactly what was asked for.
        #expect(try store.messages(in: "c1", from: 0, through: Int64(total), limit: 3).map(\.id) == ["m0", "m1", "m2"])
        // Exactly maxLimit messages in the range: answered whole.
        let last = Int64((MessageStore.maxLimit - 1) / 2)
        #expect(try store.messages(in: "c1", from: 0, through: last).count == MessageStore.maxLimit)
        // More: an error that says so.
        #expect(throws: ScrollbackError.self) { try store.messages(in: "c1", from: 0, through: Int64(total)) }
        do {
            _ = try store.messages(in: "c1", from: 0, through: Int64(total), order: .newestFirst)
            Issue.record("a range of \(total) messages was answered without an error")
        } catch let ScrollbackError.limitExceeded(what) {
            #expect(what.contains("more than 10000 messages") && what.contains("page(in:from:through:after:limit:order:)"), "\(what)")
        }
        // Pages: every message of the range once, in order, `next` nil exactly at the end.
        for order in [Order.oldestFirst, .newestFirst] {
            var ids: [String] = []
            var cursor: Cursor? = nil
            var pages = 0
            repeat {
                let page = try store.page(in: "c1", from: 1, through: Int64(total), after: cursor, limit: 4_000, order: order)
                ids += page.messages.map(\.id)
                cursor = page.next
                pages += 1
            } while cursor != nil && pages < 10
            let expected = (2..<total).map { "m\($0)" }
            #expect(ids == (order == .oldestFirst ? expected : expected.reversed()), "\(order)")
            #expect(pages == 3, "\(order)")
        }
    }

    /// A long range is collected into a result sized once (the scan counts what is still to
    /// come after its first 64 messages) rather than one grown by doubling: a result of 300
    /// would otherwise have room for 512. Forward and backward, with and without a limit
    /// that cuts the range, and edges of the range lying between messages.
    @Test func longRangeResultIsSizedOnce() throws {
        let store = try Fixture.open()
        try store.write { batch in
            for i in 0..<600 { batch.append(Fixture.message("m\(i)", at: 10 * Int64(i))) }
            for i in 0..<100 { batch.append(Fixture.message("o\(i)", in: "c2", at: 10 * Int64(i))) }
        }
        for order in [Order.oldestFirst, .newestFirst] {
            for (from, through, limit, expected) in [(Int64(1_000), Int64(3_990), Int?.none, 100..<400),
                                                     (995, 4_005, 250, 100..<401), (0, 5_990, nil, 0..<600),
                                                     (-5, 700, 70, 0..<71)] {
                let result = try store.messages(in: "c1", from: from, through: through, order: order, limit: limit)
                var ids = expected.map { "m\($0)" }
                if order == .newestFirst { ids.reverse() }
                if let limit { ids = Array(ids.prefix(limit)) }
                #expect(result.map(\.id) == ids, "\(order) \(from)...\(through) limit \(String(describing: limit))")
                #expect(result.capacity < result.count + 32,
                        "\(order) \(from)...\(through): room for \(result.capacity) messages, \(result.count) returned")
            }
        }
    }

    @Test func deletedIDCanBeReused() throws {
        let store = try Fixture.open()
        try store.append(Fixture.message("x", at: 1, body: "old"))
        try store.delete(id: "x")
        #expect(try store.message(id: "x") == nil)
        #expect(try store.append(Fixture.message("x", in: "c2", at: 7, body: "new")) == .appended)
        let again = try store.message(id: "x")
        #expect(again?.body == "new")
        #expect(again?.conversation == "c2")
        #expect(try store.latest(in: "c1", limit: 5).isEmpty)
        // Delete and re-append in one batch.
        let outcomes = try store.write { batch in
            batch.delete(id: "x")
            batch.append(Fixture.message("x", in: "c3", at: 9, body: "newest"))
        }
        #expect(outcomes == [.appended])
        #expect(try store.message(id: "x")?.conversation == "c3")
        #expect(try store.verify() == [])
    }

    @Test func editKeepsPositionAndSetsEdited() throws {
        let store = try Fixture.open()
        for i in 0..<10 { try store.append(Fixture.message("m\(i)", at: Int64(i), replyTo: i == 5 ? "m1" : nil)) }
        let before = try store.latest(in: "c1", limit: 10).map(\.id)
        try store.edit(id: "m5", body: "changed")
        let after = try store.latest(in: "c1", limit: 10)
        #expect(after.map(\.id) == before)
        let edited = try #require(try store.message(id: "m5"))
        #expect(edited.body == "changed")
        #expect(edited.edited)
        #expect(edited.replyTo == "m1")
        #expect(edited.sender == "alice")
        #expect(try store.message(id: "m4")?.edited == false)
        #expect(try store.count(in: "c1", after: -1) == 10)
        #expect(throws: ScrollbackError.notFound("message nope")) { try store.edit(id: "nope", body: "x") }
        // Edit of a message appended earlier in the same batch, then edited again.
        try store.write { batch in
            batch.append(Fixture.message("n", at: 100, body: "v1"))
            batch.edit(id: "n", body: "v2")
            batch.edit(id: "n", body: "v3")
        }
        #expect(try store.message(id: "n")?.body == "v3")
        #expect(try store.message(id: "n")?.edited == true)
        #expect(try store.verify() == [])
    }

    @Test func deleteDisappearsEverywhere() throws {
        let store = try Fixture.open()
        try store.append(Fixture.message("a1", in: "a", at: 10))
        try store.append(Fixture.message("a2", in: "a", at: 20))
        try store.append(Fixture.message("b1", in: "b", at: 15))
        try store.markRead(user: "u", conversation: "a", through: "a1")
        try store.delete(id: "a2")
        #expect(try store.latest(in: "a", limit: 10).map(\.id) == ["a1"])
        #expect(try store.count(in: "a", after: 0) == 1)
        #expect(try store.unreadCount(user: "u", in: "a") == 0)
        #expect(try store.feed(["a", "b"], limit: 10).map(\.id) == ["b1", "a1"])
        #expect(try store.latestMessage(in: ["a", "b", "zzz"]).map { $0?.id } == ["a1", "b1", nil])
        #expect(try store.conversations(limit: 10) == [
            ConversationSummary(id: "b", lastActivity: 15, messageCount: 1),
            ConversationSummary(id: "a", lastActivity: 10, messageCount: 1),
        ])
        try store.delete(id: "a1")
        #expect(try store.latestMessage(in: ["a"]) == [nil])
        #expect(try store.conversations(limit: 10).map(\.id) == ["b"])
        #expect(try store.statistics.conversations == 1)
        #expect(try store.page(in: "a", offset: 0, limit: 5).isEmpty)
        #expect(throws: ScrollbackError.notFound("message a1")) { try store.delete(id: "a1") }
        #expect(try store.verify() == [])
    }

    @Test func readMarkersMoveForwardOnly() throws {
        let store = try Fixture.open()
        for i in 0..<10 { try store.append(Fixture.message("m\(i)", at: Int64(i * 10))) }
        try store.append(Fixture.message("other", in: "c2", at: 5))
        #expect(try store.unreadCount(user: "u", in: "c1") == 10)
        try store.markRead(user: "u", conversation: "c1", through: "m3")
        #expect(try store.unreadCount(user: "u", in: "c1") == 6)
        try store.markRead(user: "u", conversation: "c1", through: "m1")   // backwards: no-op
        #expect(try store.unreadCount(user: "u", in: "c1") == 6)
        #expect(try store.unreadCount(user: "v", in: "c1") == 10)
        #expect(throws: ScrollbackError.self) { try store.markRead(user: "u", conversation: "c1", through: "other") }
        do {
            try store.markRead(user: "u", conversation: "c1", through: "other")
        } catch ScrollbackError.invalidArgument(let argument, _) {
            #expect(argument == "through")
        }
        #expect(throws: ScrollbackError.notFound("message ghost")) {
            try store.markRead(user: "u", conversation: "c1", through: "ghost")
        }
        // The marker stays valid when its message is deleted.
        try store.delete(id: "m3")
        #expect(try store.unreadCount(user: "u", in: "c1") == 6)
        try store.delete(id: "m9")
        #expect(try store.unreadCount(user: "u", in: "c1") == 5)
        // A new message at the marker's timestamp but inserted later counts as unread.
        try store.append(Fixture.message("late", at: 30))
        #expect(try store.unreadCount(user: "u", in: "c1") == 6)
        #expect(try store.verify() == [])
    }

    @Test func keysetPagesWalkEverythingOnceAndRejectBadCursors() throws {
        let store = try Fixture.open()
        var model = Model()
        for i in 0..<137 {
            let m = Fixture.message("m\(i)", at: Int64(i / 4))
            try store.append(m)
            _ = model.append(m)
        }
        for order in [Order.newestFirst, .oldestFirst] {
            var seen: [String] = []
            var cursor: Cursor? = nil
            repeat {
                let page = try store.page(in: "c1", after: cursor, limit: 10, order: order)
                seen += page.messages.map(\.id)
                cursor = page.next
                if page.messages.count < 10 { #expect(page.next == nil) }
                // Insert while walking: never seen by this walk in the older direction, never repeated.
                if order == .newestFirst { try store.append(Fixture.message("new\(seen.count)", at: 1000)) }
            } while cursor != nil
            let expected = model.ordered("c1").map(\.id)
            if order == .newestFirst { #expect(seen == expected.reversed()) }
            if order == .oldestFirst { #expect(Array(seen.prefix(137)) == expected) }
        }
        let first = try store.page(in: "c1", after: nil, limit: 5)
        let token = try #require(first.next).token
        // Forged: every single-character change is rejected.
        var characters = Array(token)
        for index in stride(from: 0, to: characters.count, by: 3) {
            let original = characters[index]
            characters[index] = original == "A" ? "B" : "A"
            #expect(throws: ScrollbackError.self) { try store.page(in: "c1", after: Cursor(token: String(characters)), limit: 5) }
            characters[index] = original
        }
        #expect(throws: ScrollbackError.self) { try store.page(in: "c1", after: Cursor(token: ""), limit: 5) }
        #expect(throws: ScrollbackError.self) { try store.page(in: "c1", after: Cursor(token: "!!!!"), limit: 5) }
        // Foreign conversation.
        try store.append(Fixture.message("z", in: "c2", at: 1))
        do {
            _ = try store.page(in: "c2", after: Cursor(token: token), limit: 5)
            Issue.record("a cursor of another conversation was accepted")
        } catch ScrollbackError.invalidCursor {}
        do {
            _ = try store.page(in: "unknown", after: Cursor(token: token), limit: 5)
            Issue.record("a cursor of another conversation was accepted")
        } catch ScrollbackError.invalidCursor {}
        // Another store.
        let other = try Fixture.open()
        try other.append(Fixture.message("m0", at: 0))
        do {
            _ = try other.page(in: "c1", after: Cursor(token: token), limit: 5)
            Issue.record("a cursor of another store was accepted")
        } catch ScrollbackError.invalidCursor {}
        // A cursor stays valid after its message is deleted.
        let last = try #require(first.messages.last)
        try store.delete(id: last.id)
        let next = try store.page(in: "c1", after: first.next, limit: 3)
        #expect(next.messages.count == 3)
    }

    @Test func offsetsDeepInALargeConversation() throws {
        let store = try Fixture.open(options: Fixture.options(segmentBytes: 1 << 20))
        var model = Model()
        try store.write { batch in
            for i in 0..<6000 {
                let m = Fixture.message("m\(i)", in: "big", at: Int64((i * 7919) % 3000), body: "b")
                batch.append(m)
                _ = model.append(m)
            }
        }
        try store.append(Fixture.message("x", in: "a-small", at: 1))
        try store.append(Fixture.message("y", in: "zz-small", at: 1))
        let ordered = model.ordered("big").map(\.id)
        for offset in [0, 1, 100, 1000, 4321, 5990, 5999, 6000, 10_000] {
            let up = try store.page(in: "big", offset: offset, limit: 20, order: .oldestFirst).map(\.id)
            #expect(up == Array(ordered.dropFirst(offset).prefix(20)), "offset \(offset)")
            let down = try store.page(in: "big", offset: offset, limit: 20, order: .newestFirst).map(\.id)
            #expect(down == Array(ordered.reversed().dropFirst(offset).prefix(20)), "offset \(offset)")
        }
        for t: Int64 in [-1, 0, 1, 1500, 2998, 2999, 3000] {
            let expected = model.ordered("big").filter { $0.createdAt > t }.count
            #expect(try store.count(in: "big", after: t) == expected)
        }
        let range = try store.messages(in: "big", from: 100, through: 200, order: .newestFirst, limit: 50)
        #expect(range.map(\.id) == Array(model.ordered("big").filter { (100...200).contains($0.createdAt) }.reversed().prefix(50).map(\.id)))
        #expect(try store.verify() == [])
    }

    /// A feed over more conversations than the feed's inline set of ids holds (32), each
    /// named twice, and one history long enough to span many leaves of the messages tree (the
    /// merge steps each cursor back across leaf and conversation boundaries).
    @Test func feedOverManyConversationsNamedTwiceAndLongHistories() throws {
        let store = try Fixture.open()
        var model = Model()
        var rng = SeededRandom(seed: 11)
        let names = (0..<70).map { "r\($0)" }
        var batch: [Message] = []
        for i in 0..<4000 {
            // Half of the messages in r0 (a long history), the rest spread over the others.
            let conversation = i % 2 == 0 ? "r0" : names[Int.random(in: 1..<names.count, using: &rng)]
            batch.append(Fixture.message("m\(i)", in: conversation, at: Int64.random(in: 0..<5000, using: &rng)))
        }
        for m in batch {
            try store.append(m)
            _ = model.append(m)
        }
        let set = (names + names + ["nope"]).shuffled(using: &rng)
        let expected = model.messages.values.sorted { ($0.message.createdAt, $0.seq) > ($1.message.createdAt, $1.seq) }
            .map(\.message.id)
        for limit in [1, 33, 700, 2500, 4000] {
            #expect(try store.feed(set, limit: limit).map(\.id) == Array(expected.prefix(limit)), "limit \(limit)")
        }
        // The long history alone, named three times among unknown names.
        let r0 = model.ordered("r0").reversed().map(\.id)
        #expect(try store.feed(["x", "r0", "y", "r0", "r0"], limit: 3000).map(\.id) == Array(r0))
    }

    @Test func feedMergesNewestFirstWithInsertionTieBreak() throws {
        let store = try Fixture.open()
        var model = Model()
        var rng = SeededRandom(seed: 7)
        for i in 0..<400 {
            let m = Fixture.message("m\(i)", in: "c\(Int.random(in: 0..<12, using: &rng))", at: Int64.random(in: 0..<60, using: &rng))
            try store.append(m)
            _ = model.append(m)
        }
        let set = ["c1", "c3", "c3", "c5", "c7", "c11", "nope"]
        let expected = model.messages.values.filter { Set(set).contains($0.message.conversation) }
            .sorted { ($0.message.createdAt, $0.seq) > ($1.message.createdAt, $1.seq) }.map(\.message.id)
        for limit in [0, 1, 17, 50, 1000] {
            #expect(try store.feed(set, limit: limit).map(\.id) == Array(expected.prefix(limit)))
        }
        // Conversation list: ties by conversation id.
        let summaries = try store.conversations(limit: 100)
        let expectedList = Dictionary(grouping: model.all, by: \.conversation).map { name, messages in
            ConversationSummary(id: name, lastActivity: messages.map(\.createdAt).max()!, messageCount: messages.count)
        }.sorted { $0.lastActivity != $1.lastActivity ? $0.lastActivity > $1.lastActivity : $0.id < $1.id }
        #expect(summaries == expectedList)
        #expect(try store.conversations(limit: 3) == Array(expectedList.prefix(3)))
        let latest = try store.latestMessage(in: ["c0", "c4", "nope"])
        #expect(latest[0]?.id == model.ordered("c0").last?.id)
        #expect(latest[1]?.id == model.ordered("c4").last?.id)
        #expect(latest[2] == nil)
    }

    @Test func batchesAreAllOrNothing() throws {
        let store = try Fixture.open()
        try store.append(Fixture.message("keep", at: 1))
        let commits = try store.statistics.commits
        #expect(throws: ScrollbackError.notFound("message missing")) {
            try store.write { batch in
                batch.append(Fixture.message("n1", at: 2))
                batch.markRead(user: "u", conversation: "c1", through: "n1")
                batch.delete(id: "keep")
                batch.edit(id: "missing", body: "x")
            }
        }
        #expect(throws: ScrollbackError.self) {
            try store.write { batch in
                batch.append(Fixture.message("n2", at: 2))
                batch.append(Fixture.message("", at: 3))
            }
        }
        #expect(try store.statistics.commits == commits)
        #expect(try store.latest(in: "c1", limit: 10).map(\.id) == ["keep"])
        #expect(try store.unreadCount(user: "u", in: "c1") == 1)
        #expect(try store.verify() == [])
    }

    @Test func reopenKeepsEverything() throws {
        let fs = MemoryFileSystem()
        var model = Model()
        do {
            let store = try Fixture.open(fs)
            for i in 0..<3000 {
                let m = Fixture.message("m\(i)", in: "c\(i % 7)", at: Int64(i % 100), body: String(repeating: "x", count: i % 50))
                try store.append(m)
                _ = model.append(m)
            }
            try store.edit(id: "m10", body: "edited")
            model.messages["m10"]?.message.body = "edited"
            model.messages["m10"]?.message.edited = true
            try store.delete(id: "m11")
            model.messages["m11"] = nil
            try store.markRead(user: "u", conversation: "c3", through: "m1004")
            try store.close()
            #expect(throws: ScrollbackError.closed) { try store.latest(in: "c1", limit: 1) }
        }
        let store = try Fixture.open(fs)
        #expect(try store.verify() == [])
        #expect(try store.statistics.messages == model.messages.count)
        for c in 0..<7 {
            #expect(try store.messages(in: "c\(c)", from: 0, through: 1000, limit: 10_000) == model.ordered("c\(c)"))
        }
        let marker = (Int64(4), model.messages["m1004"]!.seq)
        let unread = model.ordered("c3").filter { ($0.createdAt, model.messages[$0.id]!.seq) > marker }.count
        #expect(try store.unreadCount(user: "u", in: "c3") == unread)
        try store.close()
    }

    @Test func foreignDirectoryIsNotAStore() throws {
        let fs = MemoryFileSystem()
        try fs.createDirectory("/other")
        try fs.open("/other/notes.txt", mode: .createNew).write([1, 2, 3], at: 0)
        #expect(throws: ScrollbackError.notAStore(path: "/other")) { try Fixture.open(fs, path: "/other") }
        #expect(try fs.listDirectory("/other") == ["notes.txt"])
        // A foreign file named like the page file is not a store either.
        try fs.createDirectory("/fake")
        try fs.open("/fake/pages", mode: .createNew).write([UInt8](repeating: 7, count: 16384), at: 0)
        #expect(throws: ScrollbackError.self) { try Fixture.open(fs, path: "/fake") }
    }
}
