import Foundation
import ScrollbackIO
@testable import ScrollbackMessaging
import Testing
@testable import Scrollback

/// The upgrade from message format 3 (the search index's first layout: one 24-byte B-tree key
/// per posting) on a store the previous build wrote (Tests/Fixtures/v3-search-store, built by
/// v3-search-store-builder.swift: Latin words with and without diacritics, CJK, edits and
/// deletes, the index turned on part-way, a log tail of indexed writes no checkpoint covers)
/// against the search answers that build gave (v3-search-store-expected.json).
@Suite struct SearchUpgradeTests {
    static func copyOfFormatThreeStore() throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("scrollback-v3-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let store = root.appendingPathComponent("store")
        try FileManager.default.copyItem(at: UpgradeTests.fixtures.appendingPathComponent("v3-search-store"), to: store)
        return store.path
    }

    struct Expected {
        var query: String
        var scope: SearchScope
        var ids: [String]
    }

    static func expected() throws -> [Expected] {
        let data = try Data(contentsOf: UpgradeTests.fixtures.appendingPathComponent("v3-search-store-expected.json"))
        let list = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        return try list.map { entry in
            let query = try #require(entry["query"] as? String)
            let ids = try #require(entry["ids"] as? [String])
            let scope: SearchScope
            switch entry["scope"] {
            case let names as [String] where names.count == 1: scope = .conversation(names[0])
            case let names as [String]: scope = .conversations(names)
            default: scope = .wholeStore
            }
            return Expected(query: query, scope: scope, ids: ids)
        }
    }

    static func allIDs(_ store: MessageStore, _ query: String, _ scope: SearchScope) throws -> [String] {
        var page = try store.search(query, in: scope, limit: 7)
        var ids = page.messages.map(\.id)
        while let next = page.next {
            page = try store.search(query, in: scope, after: next, limit: 7)
            ids += page.messages.map(\.id)
        }
        return ids
    }

    @Test func formatThreeIsRefusedUntilUpgradedThenSearchesAsBefore() throws {
        let path = try Self.copyOfFormatThreeStore()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        // Refused, naming the upgrade (the log tail is replayed first, as the old build would).
        do {
            _ = try MessageStore(path: path)
            Issue.record("a format-3 store opened")
        } catch let error as ScrollbackError {
            #expect(error == .unsupportedVersion(path: path, found: 3, supported: 4))
            #expect(error.description.contains("scrollback upgrade \(path)"))
        }
        #expect(throws: ScrollbackError.unsupportedVersion(path: path, found: 3, supported: 4)) {
            _ = try MessageStore(readingAt: path)
        }

        let expected = try Self.expected()
        #expect(expected.count == 60 && expected.contains { !$0.ids.isEmpty && $0.query == "東京" })
        let report = try MessageStore.upgrade(path: path)
        #expect(report.previousFormatPath == "", "upgraded in place")
        #expect(report.messages > 400)

        let store = try MessageStore(path: path)
        #expect(try store.isSearchIndexEnabled)
        for e in expected {
            #expect(try Self.allIDs(store, e.query, e.scope) == e.ids, "\(e.query) in \(e.scope)")
        }
        #expect(try store.verify() == [])
        // The index is maintained in the new layout.
        _ = try store.append(Message(id: "after", conversation: "room-1", sender: "s", createdAt: 1_800_000_000_000,
                                     body: "東京 hello upgraded"))
        #expect(try Self.allIDs(store, "upgraded", .wholeStore) == ["after"])
        #expect(try Self.allIDs(store, "hello", .conversation("room-1")).first == "after")
        try store.close()

        // Nothing is left to upgrade.
        #expect(throws: ScrollbackError.self) { try MessageStore.upgrade(path: path) }
    }

    /// An upgrade that stopped after turning the old index off and the new one on (a crash
    /// during the build) leaves a store of format 4 that opens, says its index is being built,
    /// and is finished by the next `upgrade`.
    @Test func anInterruptedRebuildIsFinishedByTheNextUpgrade() throws {
        let path = try Self.copyOfFormatThreeStore()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        var options = StoreOptions()
        options.autoCompactGarbageRatio = nil
        let config = try MessageStore.configuration(options)
        let database = try MessageDatabase.open(fileSystem: PosixFileSystem(), directory: path, options: config,
                                                acceptingLegacySearchIndex: true)
        try database.engine.commit { _, batch in
            try batch.append(type: .searchDisable, payloadCount: 0) { _ in }
            try batch.append(type: .searchEnable, payloadCount: 0) { _ in }
        }
        _ = try database.buildSearchIndexStep(stepMessages: 100)
        try database.close()

        let partial = try MessageStore(path: path)
        #expect(try !partial.isSearchIndexEnabled)
        #expect(throws: ScrollbackError.self) { try partial.search("hello", limit: 1) }
        try partial.close()
        try MessageStore.upgrade(path: path)
        let store = try MessageStore(path: path)
        for e in try Self.expected() { #expect(try Self.allIDs(store, e.query, e.scope) == e.ids, "\(e.query)") }
        #expect(try store.verify() == [])
        try store.close()
    }
}
