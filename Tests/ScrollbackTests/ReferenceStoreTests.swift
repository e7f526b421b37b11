@testable import ScrollbackReferenceModel
import Scrollback
import Testing

/// Hand-checked cases for the oracle itself, so a disagreement in the model-based test is
/// about the store.
@Suite struct ReferenceStoreTests {
    static func message(_ id: String, _ conversation: String = "a", at createdAt: Int64, body: String = "") -> Message {
        Message(id: id, conversation: conversation, sender: "s", createdAt: createdAt, body: body.isEmpty ? "body of \(id)" : body)
    }

    @Test func orderingIdempotenceAndReuse() throws {
        var store = ReferenceStore()
        try store.append(Self.message("m1", at: 20))
        try store.append(Self.message("m2", at: 10))
        try store.append(Self.message("m3", at: 20))  // tie with m1: after it
        #expect(try store.append(Self.message("m1", at: 5)) == .duplicate)
        #expect(throws: ScrollbackError.idConflict(id: "m1", conversation: "a")) { try store.append(Self.message("m1", "b", at: 5)) }
        #expect(try store.latest(in: "a", limit: 10).map(\.id) == ["m3", "m1", "m2"])
        #expect(try store.latest(in: "b", limit: 10).isEmpty)
        #expect(try store.message(id: "m1")?.conversation == "a")
        try store.delete(id: "m1")
        #expect(try store.message(id: "m1") == nil)
        #expect(try store.append(Self.message("m1", "b", at: 5)) == .appended)
        #expect(try store.message(id: "m1")?.conversation == "b")
        #expect(throws: ScrollbackError.self) { try store.delete(id: "missing") }
        // `edited` is ignored on append.
        var edited = Self.message("m4", at: 1)
        edited.edited = true
        try store.append(edited)
        #expect(try store.message(id: "m4")?.edited == false)
    }

    @Test func editKeepsPosition() throws {
        var store = ReferenceStore()
        for (i, t) in [5, 5, 5].enumerated() { try store.append(Self.message("m\(i)", at: Int64(t))) }
        try store.edit(id: "m1", body: "new")
        let all = try store.page(in: "a", offset: 0, limit: 10, order: .oldestFirst)
        #expect(all.map(\.id) == ["m0", "m1", "m2"])
        #expect(all[1].body == "new" && all[1].edited)
    }

    @Test func rangesCountsAndOffsets() throws {
        var store = ReferenceStore()
        for t in [10, 20, 20, 30, 40] { try store.append(Self.message("m\(t)-\(store.nextSeq)", at: Int64(t))) }
        #expect(try store.messages(in: "a", from: 20, through: 30).map(\.createdAt) == [20, 20, 30])
        #expect(try store.messages(in: "a", from: 20, through: 30, order: .newestFirst, limit: 2).map(\.createdAt) == [30, 20])
        #expect(try store.messages(in: "a", from: 31, through: 30).isEmpty)
        #expect(try store.count(in: "a", after: 20) == 2)
        #expect(try store.count(in: "a", after: -1) == 5)
        #expect(try store.page(in: "a", offset: 1, limit: 2, order: .newestFirst).map(\.createdAt) == [30, 20])
        #expect(try store.page(in: "a", offset: 5, limit: 2).isEmpty)
        #expect(throws: ScrollbackError.invalidArgument(argument: "offset", reason: "-1 is negative")) {
            try store.page(in: "a", offset: -1, limit: 2)
        }
    }

    @Test func keysetNextIsNilExactlyAtTheEnd() throws {
        var store = ReferenceStore()
        for i in 0..<4 { try store.append(Self.message("m\(i)", at: Int64(i / 2))) }
        let first = try store.page(in: "a", after: nil, limit: 2, order: .oldestFirst)
        #expect(first.messages.map(\.id) == ["m0", "m1"])
        #expect(first.next != nil)
        let second = try store.page(in: "a", after: first.next, limit: 2, order: .oldestFirst)
        #expect(second.messages.map(\.id) == ["m2", "m3"])
        #expect(second.next == nil)  // full page, nothing remains
        let back = try store.page(in: "a", after: nil, limit: 3, order: .newestFirst)
        #expect(back.messages.map(\.id) == ["m3", "m2", "m1"])
        // The cursor survives deleting its message.
        try store.delete(id: "m1")
        let rest = try store.page(in: "a", after: back.next, limit: 3, order: .newestFirst)
        #expect(rest.messages.map(\.id) == ["m0"])
        #expect(rest.next == nil)
        #expect(throws: ScrollbackError.self) { try store.page(in: "b", after: back.next, limit: 3) }
    }

    @Test func markersMoveForwardAndSurviveDeletion() throws {
        var store = ReferenceStore()
        for i in 0..<5 { try store.append(Self.message("m\(i)", at: Int64(i))) }
        try store.append(Self.message("x", "b", at: 100))
        #expect(try store.unreadCount(user: "u", in: "a") == 5)
        try store.markRead(user: "u", conversation: "a", through: "m2")
        #expect(try store.unreadCount(user: "u", in: "a") == 2)
        try store.markRead(user: "u", conversation: "a", through: "m0")  // backwards: no-op
        #expect(try store.unreadCount(user: "u", in: "a") == 2)
        #expect(throws: ScrollbackError.invalidArgument(argument: "through", reason: "message x belongs to another conversation")) {
            try store.markRead(user: "u", conversation: "a", through: "x")
        }
        try store.delete(id: "m2")
        #expect(try store.unreadCount(user: "u", in: "a") == 2)
        try store.delete(id: "m4")
        #expect(try store.unreadCount(user: "u", in: "a") == 1)
        #expect(try store.unreadCount(user: "other", in: "a") == 3)
    }

    @Test func feedLatestAndConversationList() throws {
        var store = ReferenceStore()
        try store.append(Self.message("a1", "a", at: 10))
        try store.append(Self.message("b1", "b", at: 10))
        try store.append(Self.message("a2", "a", at: 5))
        try store.append(Self.message("c1", "c", at: 10))
        #expect(try store.feed(["a", "b", "a", "zz"], limit: 10).map(\.id) == ["b1", "a1", "a2"])
        #expect(try store.feed(["a", "b", "c"], limit: 2).map(\.id) == ["c1", "b1"])
        #expect(try store.latestMessage(in: ["a", "zz", "a"]).map { $0?.id } == ["a1", nil, "a1"])
        #expect(try store.conversations(limit: 10).map(\.id) == ["a", "b", "c"])  // ties by id
        #expect(try store.conversations(limit: 10).map(\.messageCount) == [2, 1, 1])
        try store.delete(id: "b1")
        try store.delete(id: "a1")
        #expect(try store.conversations(limit: 10).map(\.id) == ["c", "a"])
        #expect(try store.conversations(limit: 10).map(\.lastActivity) == [10, 5])
    }

    @Test func batchesAreAllOrNothing() throws {
        var store = ReferenceStore()
        try store.append(Self.message("m0", at: 1))
        var batch = WriteBatch()
        batch.append(Self.message("m1", at: 2))
        batch.markRead(user: "u", conversation: "a", through: "m1")  // sees the earlier append
        batch.append(Self.message("m1", at: 3))
        #expect(try store.write(batch) == [.appended, .duplicate])
        #expect(try store.unreadCount(user: "u", in: "a") == 0)
        var bad = WriteBatch()
        bad.append(Self.message("m2", at: 4))
        bad.delete(id: "m0")
        bad.edit(id: "m0", body: "x")  // deleted earlier in the batch
        #expect(throws: ScrollbackError.self) { try store.write(bad) }
        #expect(try store.latest(in: "a", limit: 10).map(\.id) == ["m1", "m0"])
    }

    @Test func limits() throws {
        var store = ReferenceStore(maxBodyBytes: 4)
        #expect(throws: ScrollbackError.invalidArgument(argument: "body", reason: "5 UTF-8 bytes, more than 4")) {
            try store.append(Self.message("m", at: 1, body: "12345"))
        }
        #expect(throws: ScrollbackError.invalidArgument(argument: "id", reason: "empty")) {
            try store.append(Self.message("", at: 1, body: "1"))
        }
        #expect(throws: ScrollbackError.invalidArgument(argument: "createdAt", reason: "9007199254740992 is outside 0..<2^53")) {
            try store.append(Self.message("m", at: 1 << 53, body: "1"))
        }
        #expect(throws: ScrollbackError.invalidArgument(argument: "limit", reason: "10001 is outside 0...10000")) {
            try store.latest(in: "a", limit: 10_001)
        }
        #expect(store.liveMessageCount == 0)
    }
}
