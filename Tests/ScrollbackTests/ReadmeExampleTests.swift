import Foundation
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
}
