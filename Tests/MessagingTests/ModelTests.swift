@testable import Scrollback
import ScrollbackIO
import Testing
import TestSupport

/// Random operations against a plain in-memory model; every query primitive is compared
/// after every few steps. Seeds replay with SCROLLBACK_SEED.
@Suite struct ModelTests {
    struct Reference {
        var messages: [String: (message: Message, seq: Int)] = [:]
        var seq = 0
        var markers: [String: (Int64, Int)] = [:]

        func ordered(_ c: String) -> [(message: Message, seq: Int)] {
            messages.values.filter { $0.message.conversation == c }.sorted { ($0.message.createdAt, $0.seq) < ($1.message.createdAt, $1.seq) }
        }

        func unread(_ user: String, _ c: String) -> Int {
            guard let marker = markers["\(user)|\(c)"] else { return ordered(c).count }
            return ordered(c).filter { ($0.message.createdAt, $0.seq) > marker }.count
        }
    }

    static let conversations = ["a", "b", "c", "d", "e"]
    static let users = ["u1", "u2"]

    @Test(arguments: TestSeeds.seeds(default: [101, 102, 103]))
    func randomOperationsMatchTheModel(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        let fs = MemoryFileSystem()
        var store = try Fixture.open(fs)
        var ref = Reference()
        for step in 0..<1500 {
            let context = "seed \(seed) step \(step) (SCROLLBACK_SEED=\(seed))"
            let live = ref.messages.keys.sorted()
            let roll = Int.random(in: 0..<100, using: &rng)
            if roll < 50 {
                let id = !live.isEmpty && Int.random(in: 0..<6, using: &rng) == 0 ? live.randomElement(using: &rng)! : "m\(Int.random(in: 0..<3000, using: &rng))"
                let m = Message(id: id, conversation: Self.conversations.randomElement(using: &rng)!, sender: "s",
                                createdAt: Int64.random(in: 0..<40, using: &rng), kind: MessageKind.allCases.randomElement(using: &rng)!,
                                body: "b\(step)", replyTo: Bool.random(using: &rng) ? "r\(step)" : nil)
                if let owner = ref.messages[id]?.message.conversation, owner != m.conversation {
                    #expect(throws: ScrollbackError.idConflict(id: id, conversation: owner), "\(context)") { try store.append(m) }
                    continue
                }
                let outcome = try store.append(m)
                let expected: AppendOutcome = ref.messages[id] == nil ? .appended : .duplicate
                #expect(outcome == expected, "\(context)")
                if expected == .appended {
                    ref.seq += 1
                    ref.messages[id] = (m, ref.seq)
                }
            } else if roll < 60, let id = live.randomElement(using: &rng) {
                try store.edit(id: id, body: "edited \(step)")
                ref.messages[id]?.message.body = "edited \(step)"
                ref.messages[id]?.message.edited = true
            } else if roll < 70, let id = live.randomElement(using: &rng) {
                try store.delete(id: id)
                ref.messages[id] = nil
            } else if roll < 80, let id = live.randomElement(using: &rng) {
                let entry = ref.messages[id]!
                let user = Self.users.randomElement(using: &rng)!
                try store.markRead(user: user, conversation: entry.message.conversation, through: id)
                let key = "\(user)|\(entry.message.conversation)"
                let position = (entry.message.createdAt, entry.seq)
                if ref.markers[key].map({ position > $0 }) ?? true { ref.markers[key] = position }
            } else if roll < 85 {
                // A batch with an invalid member changes nothing.
                #expect(throws: ScrollbackError.self) {
                    try store.write { batch in
                        batch.append(Message(id: "never\(step)", conversation: "a", sender: "s", createdAt: 1, body: "x"))
                        batch.delete(id: "missing-\(step)")
                    }
                }
            } else if roll < 87 {
                try store.compact()
            } else if roll < 89 {
                try store.close()
                store = try Fixture.open(fs)
            } else if roll < 90 {
                try store.checkpoint()
            }
            if step % 10 == 0 || roll >= 85 { try compare(store, ref, &rng, context) }
        }
        #expect(try store.verify() == [])
    }

    func compare(_ store: MessageStore, _ ref: Reference, _ rng: inout SeededRandom, _ context: String) throws {
        for c in Self.conversations {
            let ordered = ref.ordered(c).map(\.message)
            #expect(try store.latest(in: c, limit: 7) == Array(ordered.reversed().prefix(7)), "\(context) latest \(c)")
            let from = Int64.random(in: 0..<40, using: &rng), through = from + Int64.random(in: 0..<20, using: &rng)
            #expect(try store.messages(in: c, from: from, through: through, order: .newestFirst)
                    == ordered.filter { (from...through).contains($0.createdAt) }.reversed(), "\(context) range \(c)")
            let offset = Int.random(in: 0...max(0, ordered.count), using: &rng)
            #expect(try store.page(in: c, offset: offset, limit: 5, order: .oldestFirst) == Array(ordered.dropFirst(offset).prefix(5)),
                    "\(context) offset \(c)")
            let after = Int64.random(in: -1..<41, using: &rng)
            #expect(try store.count(in: c, after: after) == ordered.filter { $0.createdAt > after }.count, "\(context) count \(c)")
            for u in Self.users { #expect(try store.unreadCount(user: u, in: c) == ref.unread(u, c), "\(context) unread \(u) \(c)") }
            var walked: [Message] = []
            var cursor: Cursor? = nil
            repeat {
                let page = try store.page(in: c, after: cursor, limit: 4, order: .newestFirst)
                walked += page.messages
                cursor = page.next
            } while cursor != nil && walked.count <= ordered.count
            #expect(walked == ordered.reversed(), "\(context) keyset \(c)")
        }
        let set = Array(Self.conversations.shuffled(using: &rng).prefix(3))
        let expectedFeed = ref.messages.values.filter { set.contains($0.message.conversation) }
            .sorted { ($0.message.createdAt, $0.seq) > ($1.message.createdAt, $1.seq) }.prefix(12).map(\.message)
        #expect(try store.feed(set, limit: 12) == Array(expectedFeed), "\(context) feed")
        #expect(try store.latestMessage(in: Self.conversations) == Self.conversations.map { ref.ordered($0).last?.message }, "\(context) latestMessage")
        let list = Self.conversations.compactMap { c -> ConversationSummary? in
            let o = ref.ordered(c)
            guard let last = o.last else { return nil }
            return ConversationSummary(id: c, lastActivity: last.message.createdAt, messageCount: o.count)
        }.sorted { $0.lastActivity != $1.lastActivity ? $0.lastActivity > $1.lastActivity : $0.id < $1.id }
        #expect(try store.conversations(limit: 4) == Array(list.prefix(4)), "\(context) conversations")
        if let id = ref.messages.keys.randomElement(using: &rng) {
            #expect(try store.message(id: id) == ref.messages[id]?.message, "\(context) message(id:)")
        }
        #expect(try store.statistics.messages == ref.messages.count, "\(context) statistics")
    }
}
