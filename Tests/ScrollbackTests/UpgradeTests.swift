import Foundation
import Testing
@testable import Scrollback

/// The upgrade from store format 1 (the previous release), on a store that release wrote
/// (Tests/Fixtures/v1-store, built by v1-store-builder.swift: appends, batches, edits,
/// deletes, read markers, equal timestamps, non-ASCII text, a compaction, and a log tail no
/// checkpoint covers) against the logical content that release reported
/// (v1-store-expected.json).
@Suite struct UpgradeTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    /// A fresh copy of the format-1 store in a temporary directory; returns the store's path.
    static func copyOfFormatOneStore() throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("scrollback-upgrade-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let store = root.appendingPathComponent("store")
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("v1-store"), to: store)
        return store.path
    }

    static func files(in directory: String) throws -> [String: Data] {
        var result: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            result[name] = try Data(contentsOf: URL(fileURLWithPath: directory).appendingPathComponent(name))
        }
        return result
    }

    struct Expected {
        var conversations: [(name: String, messages: [Message])]
        var unread: [(user: String, conversation: String, count: Int)]
    }

    static func expected() throws -> Expected {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("v1-store-expected.json"))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let conversations = try #require(root["conversations"] as? [[String: Any]])
        let unread = try #require(root["unread"] as? [[String: Any]])
        func text(_ object: [String: Any], _ key: String) throws -> String {
            guard let value = object[key] as? String else { throw FixtureError("\(key) missing in \(object)") }
            return value
        }
        var result = Expected(conversations: [], unread: [])
        for entry in conversations {
            let name = try text(entry, "conversation")
            guard let list = entry["messages"] as? [[String: Any]] else { throw FixtureError("messages missing") }
            var messages: [Message] = []
            for m in list {
                guard let createdAt = (m["createdAt"] as? NSNumber)?.int64Value, let edited = m["edited"] as? Bool,
                      let kind = MessageKind(name: try text(m, "kind")) else { throw FixtureError("bad message \(m)") }
                messages.append(Message(id: try text(m, "id"), conversation: name, sender: try text(m, "sender"), createdAt: createdAt,
                                        kind: kind, body: try text(m, "body"), replyTo: m["replyTo"] as? String, edited: edited))
            }
            result.conversations.append((name, messages))
        }
        for u in unread {
            guard let count = u["unread"] as? Int else { throw FixtureError("bad unread \(u)") }
            result.unread.append((try text(u, "user"), try text(u, "conversation"), count))
        }
        return result
    }

    struct FixtureError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    static func check(_ store: MessageStore, against expected: Expected) throws {
        for (name, messages) in expected.conversations {
            let stored = try store.messages(in: name, from: 0, through: (1 << 53) - 1)
            #expect(stored == messages, "conversation \(name)")
        }
        for u in expected.unread {
            #expect(try store.unreadCount(user: u.user, in: u.conversation) == u.count, "unread of \(u.user) in \(u.conversation)")
        }
        let listed = Set(try store.conversations(limit: 1000).map(\.id))
        #expect(listed.isSuperset(of: expected.conversations.filter { !$0.messages.isEmpty }.map(\.name)))
        #expect(try store.verify() == [])
    }

    @Test func formatOneStoreIsRefusedUntilUpgradedThenReadsAsBefore() throws {
        let path = try Self.copyOfFormatOneStore()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        let before = try Self.files(in: path)
        #expect(throws: ScrollbackError.unsupportedVersion(path: path, found: 1, supported: 2)) {
            _ = try MessageStore(path: path)
        }
        #expect(try Self.files(in: path) == before, "the refused open must not change a byte")
        #expect(throws: ScrollbackError.unsupportedVersion(path: path, found: 1, supported: 2)) {
            _ = try MessageStore(readingAt: path)
        }
        #expect(try Self.files(in: path) == before, "the refused read-only open must not change a byte")

        let expected = try Self.expected()
        let report = try MessageStore.upgrade(path: path)
        #expect(report.messages == expected.conversations.reduce(0) { $0 + $1.messages.count })
        #expect(report.previousFormatPath == path + ".format1")
        #expect(try Self.files(in: report.previousFormatPath) == before, "the old store is kept unchanged")
        #expect(!FileManager.default.fileExists(atPath: path + ".upgrading"))

        let store = try MessageStore(path: path)
        try Self.check(store, against: expected)
        // The upgraded store takes writes and keeps insertion order for equal timestamps.
        let last = try #require(expected.conversations.first { !$0.messages.isEmpty })
        let newest = try #require(last.messages.last)
        try store.append(Message(id: "after-upgrade", conversation: last.name, sender: "s", createdAt: newest.createdAt, body: "b"))
        #expect(try store.latest(in: last.name, limit: 2).map(\.id) == ["after-upgrade", newest.id])
        try store.close()

        // Upgrading again is refused with a clear reason; nothing changes.
        #expect(throws: ScrollbackError.self) { try MessageStore.upgrade(path: path) }
    }

    /// A crash between the two renames leaves the new store at `<path>.upgrading` and the old
    /// one at `<path>.format1`; the next upgrade finishes the swap.
    @Test func anUpgradeInterruptedBetweenTheRenamesIsFinishedByTheNext() throws {
        let path = try Self.copyOfFormatOneStore()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        try MessageStore.upgrade(path: path)
        try FileManager.default.moveItem(atPath: path, toPath: path + ".upgrading")
        try MessageStore.upgrade(path: path)
        let store = try MessageStore(path: path)
        try Self.check(store, against: try Self.expected())
        try store.close()
    }

    /// A build directory left by an upgrade interrupted before the renames is discarded.
    @Test func anUpgradeInterruptedBeforeTheRenamesStartsOver() throws {
        let path = try Self.copyOfFormatOneStore()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        try FileManager.default.createDirectory(atPath: path + ".upgrading", withIntermediateDirectories: true)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path + ".upgrading/pages"))
        try Data([4]).write(to: URL(fileURLWithPath: path + ".upgrading/run-00000001.run"))
        // The old store is still in place, so this is not the "between the renames" case.
        try MessageStore.upgrade(path: path)
        let store = try MessageStore(path: path)
        try Self.check(store, against: try Self.expected())
        try store.close()
    }
}
