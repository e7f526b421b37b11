import Foundation
import Scrollback
import ScrollbackFormat
import ScrollbackIO
import Testing

/// Every argument limit of the public API: a violation throws the documented error naming
/// the argument, and nothing is written (the store's contents, commit count and log size are
/// unchanged). Also: unknown conversations read as empty, closed stores, and opening a
/// directory that is not a store or a store of a newer format version.
@Suite struct BadInputTests {
    static let maxBody = 16

    static func options(maxBody: Int = maxBody) -> StoreOptions {
        var options = StoreOptions()
        options.maxBodyBytes = maxBody
        options.pageSize = 4096
        options.cacheBytes = 1 << 20
        return options
    }

    static func message(
        _ id: String = "new", conversation: String = "a", sender: String = "s", at createdAt: Int64 = 50,
        body: String = "ok", replyTo: String? = nil
    ) -> Message {
        Message(id: id, conversation: conversation, sender: sender, createdAt: createdAt, body: body, replyTo: replyTo)
    }

    /// A store with m1, m2 in "a", x1 in "b" and one read marker.
    static func seededStore(_ fs: MemoryFileSystem = MemoryFileSystem(), path: String = "/db") throws -> MessageStore {
        let store = try MessageStore(path: path, options: options(), fileSystem: fs)
        try store.append(message("m1", at: 10, body: "one"))
        try store.append(message("m2", at: 20, body: "two"))
        try store.append(message("x1", conversation: "b", at: 15, body: "other"))
        try store.markRead(user: "u", conversation: "a", through: "m1")
        return store
    }

    /// What must not change when a call is rejected.
    struct Snapshot: Equatable {
        var a: [Message]
        var b: [Message]
        var unread: [Int]
        var list: [ConversationSummary]
        var messages: Int
        var conversations: Int
        var commits: UInt64
        var logBytes: UInt64
    }

    static func snapshot(_ store: MessageStore) throws -> Snapshot {
        let statistics = try store.statistics
        return Snapshot(
            a: try store.page(in: "a", offset: 0, limit: 100, order: .oldestFirst),
            b: try store.page(in: "b", offset: 0, limit: 100, order: .oldestFirst),
            unread: [try store.unreadCount(user: "u", in: "a"), try store.unreadCount(user: "u", in: "b")],
            list: try store.conversations(limit: 100),
            messages: statistics.messages, conversations: statistics.conversations, commits: statistics.commits,
            logBytes: statistics.rawLogBytes + statistics.sealedLogBytes)
    }

    /// Expects `.invalidArgument` naming one of `arguments`.
    static func expectInvalid(
        _ arguments: Set<String>, _ what: String, sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () throws -> Void
    ) {
        do {
            try body()
            Issue.record("\(what) did not throw (expected invalidArgument \(arguments.sorted()))", sourceLocation: sourceLocation)
        } catch let ScrollbackError.invalidArgument(argument, reason) {
            #expect(arguments.contains(argument), "\(what): argument \(argument) (\(reason)), expected \(arguments.sorted())",
                    sourceLocation: sourceLocation)
            #expect(!reason.isEmpty, "\(what): empty reason", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(what) threw \(error), expected invalidArgument \(arguments.sorted())", sourceLocation: sourceLocation)
        }
    }

    static func expectError(
        _ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ matches: (ScrollbackError) -> Bool,
        _ body: () throws -> Void
    ) {
        do {
            try body()
            Issue.record("\(what) did not throw", sourceLocation: sourceLocation)
        } catch let error as ScrollbackError {
            #expect(matches(error), "\(what) threw \(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(what) threw a non-Scrollback error \(error)", sourceLocation: sourceLocation)
        }
    }

    static let id129 = String(repeating: "i", count: 129)
    static let name256 = String(repeating: "n", count: 256)
    /// 9 characters, 18 UTF-8 bytes: limits count bytes, not characters.
    static let wideBody = String(repeating: "é", count: 9)

    /// Messages that violate exactly one field limit, with the argument they must name.
    static var invalidMessages: [(argument: String, message: Message)] {
        [
            ("id", message("")), ("id", message(id129)),
            ("conversation", message(conversation: "")), ("conversation", message(conversation: name256)),
            ("sender", message(sender: "")), ("sender", message(sender: name256)),
            ("createdAt", message(at: -1)), ("createdAt", message(at: 1 << 53)), ("createdAt", message(at: .min)),
            ("body", message(body: String(repeating: "b", count: maxBody + 1))), ("body", message(body: wideBody)),
            ("replyTo", message(replyTo: "")), ("replyTo", message(replyTo: id129)),
        ]
    }

    @Test func appendRejectsEveryFieldLimitAndWritesNothing() throws {
        let store = try Self.seededStore()
        let before = try Self.snapshot(store)
        for (argument, message) in Self.invalidMessages {
            Self.expectInvalid([argument], "append with bad \(argument)") { try store.append(message) }
            Self.expectInvalid([argument], "batch with a bad \(argument)") {
                try store.write { batch in
                    batch.append(Self.message("valid-first", at: 1))
                    batch.edit(id: "m1", body: "changed")
                    batch.append(message)
                    batch.delete(id: "m2")
                }
            }
            #expect(try Self.snapshot(store) == before, "a rejected \(argument) changed the store")
        }
        #expect(try store.message(id: "valid-first") == nil)
    }

    @Test func boundaryValuesAreAccepted() throws {
        let store = try Self.seededStore()
        let edges = [
            Self.message(String(repeating: "i", count: 128), conversation: String(repeating: "n", count: 255),
                         sender: String(repeating: "s", count: 255), at: 0, body: "", replyTo: String(repeating: "r", count: 128)),
            Self.message("late", at: (1 << 53) - 1, body: String(repeating: "b", count: Self.maxBody)),
            Self.message("wide", at: 7, body: String(repeating: "é", count: Self.maxBody / 2)),
        ]
        for message in edges {
            #expect(try store.append(message) == .appended)
            #expect(try store.message(id: message.id) == message)
        }
        try store.edit(id: "late", body: String(repeating: "é", count: Self.maxBody / 2))
        #expect(try store.latest(in: "a", limit: 1).first?.id == "late")
        #expect(try store.latest(in: "a", limit: MessageStore.maxLimit).count == 4)
        #expect(try store.feed(Array(repeating: "a", count: MessageStore.maxConversationsPerQuery), limit: 1).count == 1)
    }

    @Test func editDeleteAndMarkerLimits() throws {
        let store = try Self.seededStore()
        let before = try Self.snapshot(store)
        Self.expectInvalid(["id"], "edit with an empty id") { try store.edit(id: "", body: "x") }
        Self.expectInvalid(["id"], "edit with a 129-byte id") { try store.edit(id: Self.id129, body: "x") }
        Self.expectInvalid(["body"], "edit with an oversized body") {
            try store.edit(id: "m1", body: String(repeating: "b", count: Self.maxBody + 1))
        }
        Self.expectInvalid(["body"], "edit with 18 bytes in 9 characters") { try store.edit(id: "m1", body: Self.wideBody) }
        Self.expectError("edit of a missing message", { if case .notFound = $0 { true } else { false } }) {
            try store.edit(id: "missing", body: "x")
        }
        Self.expectInvalid(["id"], "delete with an empty id") { try store.delete(id: "") }
        Self.expectInvalid(["id"], "delete with a 129-byte id") { try store.delete(id: Self.id129) }
        Self.expectError("delete of a missing message", { if case .notFound = $0 { true } else { false } }) {
            try store.delete(id: "missing")
        }
        Self.expectInvalid(["user"], "markRead with an empty user") { try store.markRead(user: "", conversation: "a", through: "m2") }
        Self.expectInvalid(["user"], "markRead with a 256-byte user") {
            try store.markRead(user: Self.name256, conversation: "a", through: "m2")
        }
        Self.expectInvalid(["conversation"], "markRead with an empty conversation") {
            try store.markRead(user: "u", conversation: "", through: "m2")
        }
        Self.expectInvalid(["conversation"], "markRead with a 256-byte conversation") {
            try store.markRead(user: "u", conversation: Self.name256, through: "m2")
        }
        Self.expectInvalid(["through"], "markRead through an empty id") { try store.markRead(user: "u", conversation: "a", through: "") }
        Self.expectInvalid(["through"], "markRead through a 129-byte id") {
            try store.markRead(user: "u", conversation: "a", through: Self.id129)
        }
        Self.expectInvalid(["through"], "markRead through a message of another conversation") {
            try store.markRead(user: "u", conversation: "a", through: "x1")
        }
        Self.expectInvalid(["through"], "a batch marking through a message of another conversation") {
            try store.write { batch in
                batch.append(Self.message("n1", at: 30))
                batch.markRead(user: "u", conversation: "a", through: "n1")
                batch.markRead(user: "v", conversation: "b", through: "m2")
            }
        }
        Self.expectError("markRead through a missing message", { if case .notFound = $0 { true } else { false } }) {
            try store.markRead(user: "u", conversation: "a", through: "missing")
        }
        Self.expectError("a batch with an edit of a message deleted earlier in it", { if case .notFound = $0 { true } else { false } }) {
            try store.write { batch in
                batch.append(Self.message("n2", at: 30))
                batch.delete(id: "m1")
                batch.edit(id: "m1", body: "x")
            }
        }
        #expect(try Self.snapshot(store) == before)
        #expect(try store.message(id: "n1") == nil && store.message(id: "n2") == nil)
    }

    @Test func queryLimits() throws {
        let store = try Self.seededStore()
        let before = try Self.snapshot(store)
        let over = MessageStore.maxLimit + 1
        for (conversation, label) in [("", "an empty"), (Self.name256, "a 256-byte")] {
            Self.expectInvalid(["conversation"], "latest with \(label) conversation") { _ = try store.latest(in: conversation, limit: 1) }
            Self.expectInvalid(["conversation"], "messages with \(label) conversation") {
                _ = try store.messages(in: conversation, from: 0, through: 100)
            }
            Self.expectInvalid(["conversation"], "keyset page with \(label) conversation") {
                _ = try store.page(in: conversation, after: nil, limit: 1)
            }
            Self.expectInvalid(["conversation"], "offset page with \(label) conversation") {
                _ = try store.page(in: conversation, offset: 0, limit: 1)
            }
            Self.expectInvalid(["conversation"], "count with \(label) conversation") { _ = try store.count(in: conversation, after: 0) }
            Self.expectInvalid(["conversation"], "unreadCount with \(label) conversation") {
                _ = try store.unreadCount(user: "u", in: conversation)
            }
            Self.expectInvalid(["conversations", "conversation"], "feed with \(label) conversation") {
                _ = try store.feed(["a", conversation], limit: 1)
            }
            Self.expectInvalid(["conversations", "conversation"], "latestMessage with \(label) conversation") {
                _ = try store.latestMessage(in: ["a", conversation])
            }
        }
        Self.expectInvalid(["user"], "unreadCount with an empty user") { _ = try store.unreadCount(user: "", in: "a") }
        Self.expectInvalid(["user"], "unreadCount with a 256-byte user") { _ = try store.unreadCount(user: Self.name256, in: "a") }
        Self.expectInvalid(["id"], "message(id:) with an empty id") { _ = try store.message(id: "") }
        Self.expectInvalid(["id"], "message(id:) with a 129-byte id") { _ = try store.message(id: Self.id129) }
        for limit in [-1, over, Int.min, Int.max] {
            Self.expectInvalid(["limit"], "latest limit \(limit)") { _ = try store.latest(in: "a", limit: limit) }
            Self.expectInvalid(["limit"], "messages limit \(limit)") { _ = try store.messages(in: "a", from: 0, through: 100, limit: limit) }
            Self.expectInvalid(["limit"], "keyset page limit \(limit)") { _ = try store.page(in: "a", after: nil, limit: limit) }
            Self.expectInvalid(["limit"], "offset page limit \(limit)") { _ = try store.page(in: "a", offset: 0, limit: limit) }
            Self.expectInvalid(["limit"], "feed limit \(limit)") { _ = try store.feed(["a"], limit: limit) }
            Self.expectInvalid(["limit"], "conversations limit \(limit)") { _ = try store.conversations(limit: limit) }
        }
        Self.expectInvalid(["offset"], "offset -1") { _ = try store.page(in: "a", offset: -1, limit: 1) }
        Self.expectInvalid(["offset"], "offset Int.min") { _ = try store.page(in: "a", offset: .min, limit: 1) }
        let tooMany = (0...MessageStore.maxConversationsPerQuery).map { "c\($0)" }
        let isTooMany: (ScrollbackError) -> Bool = {
            switch $0 {
            case .invalidArgument("conversations", _), .limitExceeded: true
            default: false
            }
        }
        Self.expectError("feed over \(tooMany.count) conversations", isTooMany) { _ = try store.feed(tooMany, limit: 1) }
        Self.expectError("latestMessage over \(tooMany.count) conversations", isTooMany) { _ = try store.latestMessage(in: tooMany) }
        // A huge offset is not an error: the page is empty.
        #expect(try store.page(in: "a", offset: .max, limit: 5).isEmpty)
        #expect(try Self.snapshot(store) == before)
    }

    @Test func oversizedBatchIsRejected() throws {
        let store = try Self.seededStore()
        let before = try Self.snapshot(store)
        var batch = WriteBatch()
        for i in 0...WriteBatch.maxOperations { batch.delete(id: "d\(i)") }
        Self.expectError("a batch of \(batch.operations.count) operations", { if case .limitExceeded = $0 { true } else { false } }) {
            try store.write(batch)
        }
        #expect(try Self.snapshot(store) == before)
    }

    @Test func unknownConversationsAndUsersReadAsEmpty() throws {
        let store = try Self.seededStore()
        #expect(try store.latest(in: "nope", limit: 10).isEmpty)
        #expect(try store.messages(in: "nope", from: 0, through: .max).isEmpty)
        let page = try store.page(in: "nope", after: nil, limit: 10)
        #expect(page.messages.isEmpty && page.next == nil)
        #expect(try store.page(in: "nope", offset: 0, limit: 10).isEmpty)
        #expect(try store.count(in: "nope", after: 0) == 0)
        #expect(try store.unreadCount(user: "u", in: "nope") == 0)
        #expect(try store.unreadCount(user: "stranger", in: "a") == 2)
        #expect(try store.feed(["nope", "nope2"], limit: 10).isEmpty)
        #expect(try store.latestMessage(in: ["nope", "a"]) == [nil, try store.message(id: "m2")])
        #expect(try store.message(id: "nope") == nil)
        // `after` has no documented limit: every Int64 is a time.
        #expect(try store.count(in: "a", after: -1) == 2)
        #expect(try store.count(in: "a", after: .min) == 2)
        #expect(try store.count(in: "a", after: .max) == 0)
        #expect(try store.latest(in: "a", limit: 0).isEmpty)
        #expect(try store.feed([], limit: 5).isEmpty)
        #expect(try store.latestMessage(in: []).isEmpty)
    }

    // MARK: Cursors

    @Test func forgedAndForeignCursorsAreRejected() throws {
        let fs = MemoryFileSystem()
        let store = try Self.seededStore(fs)
        try store.append(Self.message("m3", at: 30, body: "three"))
        let first = try store.page(in: "a", after: nil, limit: 1, order: .oldestFirst)
        let token = try #require(first.next).token
        #expect(try store.page(in: "a", after: Cursor(token: token), limit: 5, order: .oldestFirst).messages.map(\.id) == ["m2", "m3"])
        let before = try Self.snapshot(store)
        let isInvalidCursor: (ScrollbackError) -> Bool = { if case .invalidCursor = $0 { true } else { false } }

        // Flip each character (but the last, whose low bits may be padding) to another
        // URL-safe character.
        let characters = Array(token)
        for index in characters.indices.dropLast() where characters[index].isLetter || characters[index].isNumber {
            var forged = characters
            forged[index] = characters[index] == "A" ? "B" : "A"
            Self.expectError("a token with character \(index) changed", isInvalidCursor) {
                _ = try store.page(in: "a", after: Cursor(token: String(forged)), limit: 5, order: .oldestFirst)
            }
        }
        let damaged = [
            String(token.dropLast(4)), String(token.prefix(token.count / 2)), "", "not a cursor!", "🙂🙂🙂",
            token + token, String(repeating: "A", count: token.count), token + "AAAA",
        ]
        for text in damaged {
            Self.expectError("damaged token \(text.prefix(20))…", isInvalidCursor) {
                _ = try store.page(in: "a", after: Cursor(token: text), limit: 5)
            }
        }
        // Another conversation of the same store.
        Self.expectError("a cursor of conversation a used in b", isInvalidCursor) {
            _ = try store.page(in: "b", after: Cursor(token: token), limit: 5)
        }
        Self.expectError("a cursor of conversation a used in an unknown conversation", isInvalidCursor) {
            _ = try store.page(in: "nope", after: Cursor(token: token), limit: 5)
        }
        // The same history in another store: its tokens are not valid here, nor ours there.
        let other = try Self.seededStore(fs, path: "/other")
        try other.append(Self.message("m3", at: 30, body: "three"))
        let foreign = try #require(try other.page(in: "a", after: nil, limit: 1, order: .oldestFirst).next)
        Self.expectError("a cursor from another store", isInvalidCursor) {
            _ = try store.page(in: "a", after: foreign, limit: 5, order: .oldestFirst)
        }
        Self.expectError("our cursor in another store", isInvalidCursor) {
            _ = try other.page(in: "a", after: Cursor(token: token), limit: 5, order: .oldestFirst)
        }
        #expect(try Self.snapshot(store) == before)

        // Still valid after its message is edited or deleted, and after a reopen.
        try store.edit(id: "m1", body: "edited")
        try store.delete(id: "m1")
        #expect(try store.page(in: "a", after: Cursor(token: token), limit: 5, order: .oldestFirst).messages.map(\.id) == ["m2", "m3"])
        try store.close()
        let reopened = try MessageStore(path: "/db", options: Self.options(), fileSystem: fs)
        #expect(try reopened.page(in: "a", after: Cursor(token: token), limit: 5, order: .oldestFirst).messages.map(\.id) == ["m2", "m3"])
        try reopened.close()
        try other.close()
    }

    // MARK: Closed stores

    @Test func aClosedStoreThrowsClosed() throws {
        let store = try Self.seededStore()
        try store.close()
        let isClosed: (ScrollbackError) -> Bool = { $0 == .closed }
        // A second close may be a no-op or throw `.closed` (the docs say "later calls throw
        // .closed"; whether that includes close itself is open).
        do { try store.close() } catch {
            #expect(error as? ScrollbackError == .closed, "a second close threw \(error)")
        }
        Self.expectError("append", isClosed) { try store.append(Self.message()) }
        Self.expectError("write", isClosed) {
            var batch = WriteBatch()
            batch.append(Self.message())
            try store.write(batch)
        }
        Self.expectError("edit", isClosed) { try store.edit(id: "m1", body: "x") }
        Self.expectError("delete", isClosed) { try store.delete(id: "m1") }
        Self.expectError("markRead", isClosed) { try store.markRead(user: "u", conversation: "a", through: "m2") }
        Self.expectError("message", isClosed) { _ = try store.message(id: "m1") }
        Self.expectError("latest", isClosed) { _ = try store.latest(in: "a", limit: 1) }
        Self.expectError("messages", isClosed) { _ = try store.messages(in: "a", from: 0, through: 100) }
        Self.expectError("keyset page", isClosed) { _ = try store.page(in: "a", after: nil, limit: 1) }
        Self.expectError("offset page", isClosed) { _ = try store.page(in: "a", offset: 0, limit: 1) }
        Self.expectError("count", isClosed) { _ = try store.count(in: "a", after: 0) }
        Self.expectError("unreadCount", isClosed) { _ = try store.unreadCount(user: "u", in: "a") }
        Self.expectError("feed", isClosed) { _ = try store.feed(["a"], limit: 1) }
        Self.expectError("latestMessage", isClosed) { _ = try store.latestMessage(in: ["a"]) }
        Self.expectError("conversations", isClosed) { _ = try store.conversations(limit: 1) }
        Self.expectError("checkpoint", isClosed) { try store.checkpoint() }
        Self.expectError("sync", isClosed) { try store.sync() }
        Self.expectError("compact", isClosed) { _ = try store.compact() }
        Self.expectError("verify", isClosed) { _ = try store.verify() }
        Self.expectError("statistics", isClosed) { _ = try store.statistics }
    }

    // MARK: Opening things that are not stores

    @Test func aDirectoryWithForeignFilesIsNotAStore() throws {
        let fs = MemoryFileSystem()
        try fs.createDirectory("/x")
        let notes = Array("my notes".utf8)
        fs.setContents(of: "/x/notes.txt", to: notes)
        Self.expectError("opening /x", { if case .notAStore = $0 { true } else { false } }) {
            _ = try MessageStore(path: "/x", options: Self.options(), fileSystem: fs)
        }
        #expect(try fs.listDirectory("/x") == ["notes.txt"])
        #expect(fs.contents(of: "/x/notes.txt") == notes)

        // A `pages` file without the magic is someone else's file too.
        try fs.createDirectory("/y")
        let garbage = Array(String(repeating: "not a page file. ", count: 1000).utf8)
        fs.setContents(of: "/y/pages", to: garbage)
        Self.expectError("opening /y", { if case .notAStore = $0 { true } else { false } }) {
            _ = try MessageStore(path: "/y", options: Self.options(), fileSystem: fs)
        }
        #expect(try fs.listDirectory("/y") == ["pages"])
        #expect(fs.contents(of: "/y/pages") == garbage)

        // An empty directory and a missing one are created.
        try fs.createDirectory("/empty")
        try MessageStore(path: "/empty", options: Self.options(), fileSystem: fs).close()
        try MessageStore(path: "/missing/store", options: Self.options(), fileSystem: fs).close()
    }

    @Test func aDirectoryWithForeignFilesIsNotAStoreOnDisk() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("scrollback-bad-input-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("thesis.tex")
        try Data("\\documentclass{article}".utf8).write(to: file)
        Self.expectError("opening a directory with a foreign file", { if case .notAStore = $0 { true } else { false } }) {
            _ = try MessageStore(path: directory.path)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["thesis.tex"])
        #expect(try Data(contentsOf: file) == Data("\\documentclass{article}".utf8))
    }

    /// Writes a store, closes it, then rewrites the format version of both meta pages
    /// (spec/page-file.md: u32 at +0x008, crc32c of bytes 0..<0x1FC at +0x1FC) as a newer
    /// build would: opening must fail with `.unsupportedVersion` and leave the file alone.
    @Test func aNewerFormatVersionIsRejected() throws {
        let fs = MemoryFileSystem()
        let store = try MessageStore(path: "/v", options: Self.options(), fileSystem: fs)
        try store.append(Self.message("m1", at: 10))
        try store.close()
        let path = "/v/" + PageFileLayout.fileName
        var bytes = try #require(fs.contents(of: path))
        let pageSize = Int(bytes.withUnsafeBytes { $0.loadLE(UInt32.self, at: MetaPageLayout.pageSize) })
        #expect(PageFileLayout.allowedPageSizes.contains(pageSize))
        let newer = PageFileLayout.formatVersion + 1
        for base in [0, pageSize] {
            bytes.withUnsafeMutableBytes { page in
                let meta = UnsafeMutableRawBufferPointer(rebasing: page[base..<base + MetaPageLayout.bodySize])
                meta.storeLE(newer, at: MetaPageLayout.formatVersion)
                let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: meta[0..<MetaPageLayout.checksum]))
                meta.storeLE(crc, at: MetaPageLayout.checksum)
            }
        }
        fs.setContents(of: path, to: bytes)
        let filesBefore = try fs.listDirectory("/v").map { ($0, fs.contents(of: "/v/" + $0)) }
        Self.expectError("opening a store of format \(newer)", {
            if case let .unsupportedVersion(_, found, supported) = $0 {
                found == newer && supported == PageFileLayout.formatVersion
            } else { false }
        }) {
            _ = try MessageStore(path: "/v", options: Self.options(), fileSystem: fs)
        }
        let filesAfter = try fs.listDirectory("/v").map { ($0, fs.contents(of: "/v/" + $0)) }
        #expect(filesAfter.map(\.0) == filesBefore.map(\.0))
        #expect(filesAfter.map(\.1) == filesBefore.map(\.1), "a failed open changed the files")
    }
}
