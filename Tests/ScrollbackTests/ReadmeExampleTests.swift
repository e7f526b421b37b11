import Foundation
import Logging
import Scrollback
import Testing

/// The usage example of README.md, verbatim except for the store path: it must compile and
/// do what the README says.
@Suite struct ReadmeExampleTests {
    @Test func usageExampleRuns() throws {
        let directory = NSTemporaryDirectory() + "scrollback-readme-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (newest, unread, feed, pages) = try readmeExample(path: directory)
        #expect(newest.map(\.id) == ["m2", "m1"])
        #expect(unread == 2)
        #expect(feed.map(\.id) == ["m3", "m2", "m1"])
        #expect(pages == 1)
    }

    private func readmeExample(path: String) throws -> ([Message], Int, [Message], Int) {
        // --- README example begins ---
        let store = try MessageStore(path: path)  // creates the store when the directory is new
        defer { try? store.close() }

        // A send is durable when append returns; retrying it with the same id is a no-op.
        try store.append(Message(id: "m1", conversation: "general", sender: "ana",
                                 createdAt: 1_767_225_600_000, body: "hello"))
        try store.write { batch in  // atomic: every operation or none
            batch.append(Message(id: "m2", conversation: "general", sender: "bo",
                                 createdAt: 1_767_225_601_000, body: "hi ana"))
            batch.append(Message(id: "m3", conversation: "random", sender: "bo",
                                 createdAt: 1_767_225_602_000, kind: .image, body: "cat.png"))
            batch.markRead(user: "ana", conversation: "general", through: "m2")
        }

        let newest = try store.latest(in: "general", limit: 20)          // newest first
        var page = try store.page(in: "general", after: nil, limit: 50)   // keyset pagination
        var pages = 1
        while let next = page.next {
            page = try store.page(in: "general", after: next, limit: 50)
            pages += 1
        }
        let unread = try store.unreadCount(user: "bo", in: "general")      // O(log n)
        let feed = try store.feed(["general", "random"], limit: 50)        // k-way merge
        // --- README example ends ---
        return (newest, unread, feed, pages)
    }

    /// The README's service example ("In a service: async, `Codable`, `Date`, logs and metrics").
    @Test func serviceExampleRuns() async throws {
        let path = NSTemporaryDirectory() + "scrollback-readme-service-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        // --- README service example begins ---
        var options = StoreOptions()
        options.logger = Logger(label: "chat.store")                        // swift-log; nil: no logging
        options.metrics = StoreMetricsOptions(dimensions: [("store", "chat")]) // swift-metrics; nil: none
        let store = try MessageStore(path: path, options: options)

        try await store.append(Message(id: "m4", conversation: "general", sender: "ana", date: .now, body: "hi"))
        let page = try await store.page(in: "general", after: nil, limit: 50)
        let json = try JSONEncoder().encode(page.messages)                   // the CLI's message JSON
        try await store.close()
        // --- README service example ends ---
        #expect(try JSONDecoder().decode([Message].self, from: json).map(\.id) == ["m4"])
    }

    /// The README's membership and inbox example.
    @Test func inboxExampleRuns() throws {
        let path = NSTemporaryDirectory() + "scrollback-readme-inbox-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try MessageStore(path: path)
        defer { try? store.close() }
        try store.append(Message(id: "m1", conversation: "general", sender: "bo", createdAt: 1_767_225_600_000, body: "hello"))
        // --- README inbox example begins ---
        try store.join(user: "ana", conversation: "general")   // idempotent; also WriteBatch.join
        var inbox = try store.inbox(user: "ana", limit: 50)     // InboxPage
        for entry in inbox.conversations {                      // InboxEntry
            print(entry.id, entry.lastActivity ?? -1, entry.messageCount, entry.unreadCount)
        }
        if let next = inbox.next { inbox = try store.inbox(user: "ana", after: next, limit: 50) }
        try store.leave(user: "ana", conversation: "general")  // idempotent; the read marker stays
        // --- README inbox example ends ---
        #expect(inbox.conversations == [InboxEntry(id: "general", lastActivity: 1_767_225_600_000, messageCount: 1, unreadCount: 1)])
        #expect(try store.inbox(user: "ana", limit: 50).conversations.isEmpty)
    }

    /// The README shows the service example exactly as this file runs it, and tells users to
    /// depend on the library's current version.
    @Test func readmeMatchesTheServiceExampleAndTheVersion() throws {
        let root = String(#filePath.split(separator: "/Tests/", omittingEmptySubsequences: false)[0])
        let readme = try String(contentsOfFile: root + "/README.md", encoding: .utf8)
        let source = try String(contentsOfFile: #filePath, encoding: .utf8)
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
        guard let begin = lines.firstIndex(where: { $0.hasSuffix("// --- README service example begins ---") }),
              let end = lines.firstIndex(where: { $0.hasSuffix("// --- README service example ends ---") }) else {
            Issue.record("markers not found")
            return
        }
        let example = lines[(begin + 1)..<end].map { $0.hasPrefix("        ") ? $0.dropFirst(8) : $0 }.joined(separator: "\n")
        #expect(readme.contains(example), "README.md does not show the service example as the test runs it")
        if let begin = lines.firstIndex(where: { $0.hasSuffix("// --- README inbox example begins ---") }),
           let end = lines.firstIndex(where: { $0.hasSuffix("// --- README inbox example ends ---") }) {
            let inbox = lines[(begin + 1)..<end].map { $0.hasPrefix("        ") ? $0.dropFirst(8) : $0 }.joined(separator: "\n")
            #expect(readme.contains(inbox), "README.md does not show the inbox example as the test runs it")
        } else {
            Issue.record("inbox example markers not found")
        }
        #expect(readme.contains("from: \"\(Scrollback.version)\")"))
    }
}
