@testable import Scrollback
import ScrollbackIO
import Testing
import TestSupport

/// Every argument limit gives `.invalidArgument` naming the argument, and nothing is written.
@Suite struct BadInputTests {
    func expectInvalid(_ argument: String, _ store: MessageStore, _ body: () throws -> Void,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        let before = try store.statistics
        do {
            try body()
            Issue.record("expected invalidArgument(\(argument))", sourceLocation: sourceLocation)
        } catch ScrollbackError.invalidArgument(let named, _) {
            #expect(named == argument, sourceLocation: sourceLocation)
        } catch {
            Issue.record("expected invalidArgument(\(argument)), got \(error)", sourceLocation: sourceLocation)
        }
        let after = try store.statistics
        #expect(after.commits == before.commits, sourceLocation: sourceLocation)
        #expect(after.messages == before.messages, sourceLocation: sourceLocation)
    }

    @Test func appendArguments() throws {
        var options = Fixture.options()
        options.maxBodyBytes = 100
        let store = try Fixture.open(options: options)
        try store.append(Fixture.message("ok", at: 1))
        let long129 = String(repeating: "i", count: 129)
        let long256 = String(repeating: "n", count: 256)
        try expectInvalid("id", store) { try store.append(Fixture.message("", at: 1)) }
        try expectInvalid("id", store) { try store.append(Fixture.message(long129, at: 1)) }
        try expectInvalid("conversation", store) { try store.append(Fixture.message("a", in: "", at: 1)) }
        try expectInvalid("conversation", store) { try store.append(Fixture.message("a", in: long256, at: 1)) }
        try expectInvalid("sender", store) { try store.append(Fixture.message("a", at: 1, sender: "")) }
        try expectInvalid("sender", store) { try store.append(Fixture.message("a", at: 1, sender: long256)) }
        try expectInvalid("createdAt", store) { try store.append(Fixture.message("a", at: -1)) }
        try expectInvalid("createdAt", store) { try store.append(Fixture.message("a", at: 1 << 53)) }
        try expectInvalid("body", store) { try store.append(Fixture.message("a", at: 1, body: String(repeating: "é", count: 51))) }
        try expectInvalid("replyTo", store) { try store.append(Fixture.message("a", at: 1, replyTo: "")) }
        try expectInvalid("replyTo", store) { try store.append(Fixture.message("a", at: 1, replyTo: long129)) }
        // Limits themselves are accepted.
        #expect(try store.append(Fixture.message(String(repeating: "i", count: 128), in: String(repeating: "c", count: 255),
                                                 at: (1 << 53) - 1, sender: String(repeating: "s", count: 255),
                                                 body: String(repeating: "b", count: 100))) == .appended)
        #expect(try store.append(Fixture.message("empty-body", at: 0, body: "")) == .appended)
        try expectInvalid("body", store) { try store.edit(id: "ok", body: String(repeating: "b", count: 101)) }
        try expectInvalid("id", store) { try store.edit(id: "", body: "x") }
        try expectInvalid("id", store) { try store.delete(id: long129) }
        try expectInvalid("user", store) { try store.markRead(user: "", conversation: "c1", through: "ok") }
        try expectInvalid("conversation", store) { try store.markRead(user: "u", conversation: long256, through: "ok") }
        try expectInvalid("through", store) { try store.markRead(user: "u", conversation: "c1", through: "") }
        try expectInvalid("through", store) { try store.markRead(user: "u", conversation: "elsewhere", through: "ok") }
        #expect(try store.verify() == [])
    }

    @Test func queryArguments() throws {
        let store = try Fixture.open()
        try store.append(Fixture.message("ok", at: 1))
        let long256 = String(repeating: "n", count: 256)
        try expectInvalid("limit", store) { _ = try store.latest(in: "c1", limit: -1) }
        try expectInvalid("limit", store) { _ = try store.latest(in: "c1", limit: MessageStore.maxLimit + 1) }
        try expectInvalid("conversation", store) { _ = try store.latest(in: "", limit: 1) }
        try expectInvalid("conversation", store) { _ = try store.latest(in: long256, limit: 1) }
        try expectInvalid("limit", store) { _ = try store.messages(in: "c1", from: 0, through: 1, limit: -5) }
        try expectInvalid("limit", store) { _ = try store.page(in: "c1", after: nil, limit: 10_001) }
        try expectInvalid("offset", store) { _ = try store.page(in: "c1", offset: -1, limit: 1) }
        try expectInvalid("limit", store) { _ = try store.page(in: "c1", offset: 0, limit: -1) }
        try expectInvalid("conversation", store) { _ = try store.count(in: "", after: 0) }
        try expectInvalid("user", store) { _ = try store.unreadCount(user: "", in: "c1") }
        try expectInvalid("limit", store) { _ = try store.feed(["c1"], limit: -1) }
        try expectInvalid("conversations", store) { _ = try store.feed([""], limit: 1) }
        try expectInvalid("conversations", store) {
            _ = try store.feed(Array(repeating: "c1", count: MessageStore.maxConversationsPerQuery + 1), limit: 1)
        }
        try expectInvalid("conversations", store) { _ = try store.latestMessage(in: [long256]) }
        try expectInvalid("limit", store) { _ = try store.conversations(limit: -1) }
        try expectInvalid("id", store) { _ = try store.message(id: "") }
        // Unknown conversations read as empty.
        #expect(try store.latest(in: "unknown", limit: 5).isEmpty)
        #expect(try store.count(in: "unknown", after: 0) == 0)
        #expect(try store.unreadCount(user: "nobody", in: "unknown") == 0)
        #expect(try store.page(in: "unknown", after: nil, limit: 5) == MessagePage(messages: [], next: nil))
        #expect(try store.messages(in: "c1", from: 5, through: 1).isEmpty)
    }

    @Test func optionArguments() throws {
        func expectOption(_ name: String, _ change: (inout StoreOptions) -> Void) {
            var options = Fixture.options()
            change(&options)
            do {
                _ = try MessageStore(path: "/db", options: options, fileSystem: MemoryFileSystem())
                Issue.record("options.\(name) accepted")
            } catch ScrollbackError.invalidArgument(let argument, _) {
                #expect(argument == "options.\(name)")
            } catch {
                Issue.record("options.\(name): \(error)")
            }
        }
        expectOption("cacheBytes") { $0.cacheBytes = 1000 }
        expectOption("maxBodyBytes") { $0.maxBodyBytes = -1 }
        expectOption("maxBodyBytes") { $0.maxBodyBytes = (16 << 20) + 1 }
        expectOption("pageSize") { $0.pageSize = 5000 }
        expectOption("segmentBytes") { $0.segmentBytes = 1000 }
        expectOption("autoCompactGarbageRatio") { $0.autoCompactGarbageRatio = 1.5 }
        expectOption("checkpointDirtyBytes") { $0.checkpointDirtyBytes = 0 }
        #expect(throws: ScrollbackError.invalidArgument(argument: "path", reason: "must not be empty")) {
            _ = try MessageStore(path: "", options: Fixture.options(), fileSystem: MemoryFileSystem())
        }
    }

    @Test func batchLimit() throws {
        let store = try Fixture.open()
        var batch = WriteBatch()
        for i in 0...WriteBatch.maxOperations { batch.delete(id: "x\(i)") }
        #expect(throws: ScrollbackError.self) { try store.write(batch) }
    }
}
