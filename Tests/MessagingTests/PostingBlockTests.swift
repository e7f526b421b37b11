import Foundation
import ScrollbackBTree
import ScrollbackFormat
import ScrollbackIO
@testable import ScrollbackMessaging
import ScrollbackPager
import ScrollbackStorage
import Testing
import TestSupport

/// The posting-block codec (spec/message-records.md, "searchPostingBlocks") and the postings
/// tree built from blocks (`SearchPostings`) against a sorted-set model.
@Suite struct PostingBlockTests {
    /// The postings of the spec's worked example.
    static let example: [Posting] = [
        Posting(term: 5, conversation: 2, createdAt: 1_700_000_000_123, seq: 7),
        Posting(term: 5, conversation: 2, createdAt: 1_700_000_000_130, seq: 8),
        Posting(term: 5, conversation: 2, createdAt: 1_700_000_000_144, seq: 10),
        Posting(term: 5, conversation: 3, createdAt: 1_700_000_000_100, seq: 9),
        Posting(term: 6, conversation: 1, createdAt: 1_700_000_000_000, seq: 3),
    ]

    static func decode(_ key: BTreeKey, _ value: [UInt8]) throws -> [Posting] {
        try value.withUnsafeBytes { raw in
            var reader = try PostingBlockReader(key: key, value: raw, file: "pages")
            var out: [Posting] = []
            while let p = try reader.next() { out.append(p) }
            return out
        }
    }

    @Test func specExampleDecodesAndEncodes() throws {
        let head = try SpecExampleTests.hexExample("posting-block")
        #expect(head.count == 18)
        let value = head + [UInt8](repeating: 0, count: PostingBlock.valueSize - head.count)
        let key = Self.example[0].blockKey
        #expect(key == BTreeKey(5, 0x2_000c_5e7f, 0x2b43_d800_0000_0007))
        #expect(try Self.decode(key, value) == Self.example)
        #expect(PostingBlock.encode(Self.example[...]) == value)
        // A nonzero bit after the last follower, a follower count past the stream, a header out
        // of range, a value of the wrong size, a follower equal to the key: corrupted.
        var padded = value
        padded[18] = 0x80
        var tooMany = value
        tooMany[0] = 9
        var badK = value
        badK[2] = 64
        var repeated = value
        repeated[8] = 0
        for bad in [padded, tooMany, badK, Array(value.prefix(245)), repeated] {
            #expect(throws: StorageError.self) { try Self.decode(key, bad) }
        }
        // A key that is not a posting (seq 0).
        #expect(throws: StorageError.self) { try Self.decode(BTreeKey(5, 0x2_000c_5e7f, 0x2b43_d800_0000_0000), value) }
        // Every single-bit flip of the stream decodes to other postings or throws, never traps.
        for bit in 0..<(18 * 8) {
            var flipped = value
            flipped[bit / 8] ^= 1 << UInt8(bit % 8)
            _ = try? Self.decode(key, flipped)
        }
    }

    /// Random sorted lists (dense and sparse, near the field limits) survive encode and
    /// decode; lists too long for a block do not encode.
    @Test func randomListsRoundTrip() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRandom(seed: seed)
        for round in 0..<400 {
            let count = 1 + Int(rng.next() % 400)
            var set = Set<Posting>()
            let spread = [UInt64(1), 1_000, 1 << 20, 1 << 40][round % 4]
            let baseTime = round % 5 == 0 ? MessageKey.maxCreatedAt - (1 << 44) : 1_700_000_000_000
            while set.count < count {
                let seq = 1 + rng.next() % min(spread * 50 + 1_000, MessageKey.maxSeq - 1)
                set.insert(Posting(term: 1 + rng.next() % (round % 3 == 0 ? 2 : 40),
                                   conversation: round % 7 == 0 ? MessageLimits.maxConversationID - rng.next() % 3 : 1 + rng.next() % 5,
                                   createdAt: baseTime + rng.next() % spread * 7, seq: seq))
            }
            let list = set.sorted()
            if let value = PostingBlock.encode(list[...]) {
                #expect(value.count == PostingBlock.valueSize)
                #expect(try Self.decode(list[0].blockKey, value) == list, "seed \(seed) round \(round)")
            } else {
                // Too long: a prefix encodes.
                #expect(PostingBlock.encode(list[..<1]) != nil, "seed \(seed)")
            }
        }
    }

    /// A posting added in place (`PostingBlock.inserting`) gives a block that decodes as the
    /// list with the posting, under the block's own parameters; a posting already there is
    /// `.present`; one below the key is left to the caller.
    @Test func insertingInPlaceMatchesTheList() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRandom(seed: seed)
        var inserted = 0, full = 0
        var out = [UInt8](repeating: 0xAA, count: PostingBlock.valueSize)
        for round in 0..<600 {
            let count = 1 + Int(rng.next() % 120)
            var set = Set<Posting>()
            let spread = [UInt64(1), 1_000, 1 << 20, 1 << 40][round % 4]
            let seqSpread = min(spread * 50 + 1_000, MessageKey.maxSeq - 1)
            while set.count < count {
                set.insert(Posting(term: 1 + rng.next() % (round % 3 == 0 ? 2 : 8), conversation: 1 + rng.next() % 6,
                                   createdAt: 1_700_000_000_000 + rng.next() % spread * 7, seq: 1 + rng.next() % seqSpread))
            }
            var list = set.sorted()
            guard var value = PostingBlock.encode(list[...]) else { continue }
            // Up to ten postings added one after another, each to the block the last one gave.
            for _ in 0..<10 {
                let new = Posting(term: list[0].term + rng.next() % 3, conversation: 1 + rng.next() % 6,
                                  createdAt: 1_700_000_000_000 + rng.next() % spread * 7, seq: 1 + rng.next() % seqSpread)
                let key = list[0].blockKey
                let result = try value.withUnsafeBytes { raw in
                    try out.withUnsafeMutableBytes { try PostingBlock.inserting(new, key: key, value: raw, into: $0, file: "pages") }
                }
                switch result {
                case .present:
                    #expect(set.contains(new), "seed \(seed) round \(round)")
                case .inserted:
                    #expect(!set.contains(new) && list[0] < new, "seed \(seed) round \(round)")
                    set.insert(new)
                    list = set.sorted()
                    #expect(try Self.decode(key, out) == list, "seed \(seed) round \(round)")
                    #expect(out[2..<8] == value[2..<8], "seed \(seed): the parameters are the block's")
                    value = out
                    inserted += 1
                case .doesNotFit:
                    #expect(new < list[0] || !set.contains(new), "seed \(seed) round \(round)")
                    if !(new < list[0]) { full += 1 }
                }
            }
            // Every posting of the block is `.present`.
            let known = list[Int(rng.next() % UInt64(list.count))]
            let again = try value.withUnsafeBytes { raw in
                try out.withUnsafeMutableBytes { try PostingBlock.inserting(known, key: list[0].blockKey, value: raw, into: $0, file: "pages") }
            }
            #expect(again == .present, "seed \(seed) round \(round)")
        }
        #expect(inserted > 1_000 && full > 0, "seed \(seed): \(inserted) inserted, \(full) did not fit")
    }

    /// `SearchPostings` against a sorted set: random single inserts and removes, sorted batches
    /// (as build steps add them), appends in order; after each phase the postings read back
    /// in order, by term (forward) and by reverse cursor, every posting is `contains` (and a
    /// probe's), a few absent ones are not, a forward cursor advances to the first posting at
    /// or after each target, a round of candidates is filtered as the model says, and each
    /// block's postings lie below the next block's key.
    @Test func postingsTreeMatchesModel() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRandom(seed: seed)
        let pager = try Pager.create(fileSystem: MemoryFileSystem(), path: "/pages", pageSize: 4096, cacheBytes: 64 << 20)
        let transaction = try pager.beginWrite()
        let tree = try BTree.create(in: transaction, slot: MessageTree.searchPostingBlocks.rawValue, keyWords: 3,
                                    valueSize: PostingBlock.valueSize)
        let postings = SearchPostings(tree: tree)
        var model = Set<Posting>()
        func random() -> Posting {
            Posting(term: 1 + rng.next() % 30, conversation: 1 + rng.next() % 20, createdAt: 1_700_000_000_000 + rng.next() % 100_000,
                    seq: 1 + rng.next() % 50_000)
        }
        func check(_ phase: String) throws {
            let expected = model.sorted()
            var all: [Posting] = []
            try postings.forEachPosting { all.append($0) }
            #expect(all == expected, "seed \(seed) \(phase): \(all.count) postings read, \(expected.count) expected")
            // Blocks: keys ascend and each block ends below the next key.
            var cursor = tree.cursor()
            var valid = try cursor.seekFirst()
            var previousLast: Posting? = nil
            var list: [Posting] = []
            while valid {
                try SearchPostings.decode(cursor, into: &list, file: "pages")
                if let previousLast, let first = list.first { #expect(previousLast < first, "seed \(seed) \(phase)") }
                previousLast = list.last
                valid = try cursor.next()
            }
            for term in Set(expected.map(\.term)).sorted().prefix(6) {
                var got: [Posting] = []
                try postings.forEach(term: term) { got.append($0); return true }
                #expect(got == expected.filter { $0.term == term }, "seed \(seed) \(phase) term \(term)")
                // Reverse, from the top of one conversation.
                let conversation = got[got.count / 2].conversation
                var reverse = PostingReverseCursor(postings)
                var backwards: [Posting] = []
                if try reverse.seek(atMost: Posting(term: term, conversation: conversation, createdAt: MessageKey.maxCreatedAt, seq: MessageKey.maxSeq)) {
                    repeat {
                        let p = reverse.current
                        guard p.term == term && p.conversation == conversation else { break }
                        backwards.append(p)
                    } while try reverse.previous()
                }
                #expect(backwards == got.filter { $0.conversation == conversation }.reversed(), "seed \(seed) \(phase) reverse")
            }
            for p in expected.shuffled(using: &rng).prefix(200) { #expect(try postings.contains(p), "seed \(seed) \(phase) \(p)") }
            for _ in 0..<200 {
                let p = random()
                #expect(try postings.contains(p) == model.contains(p), "seed \(seed) \(phase) \(p)")
            }
            // A probe (kept blocks, decoded part-way): candidates newest first in a few
            // conversations, then in random order, present and absent mixed.
            var probe = SearchPostings.Probe(postings)
            let few = Set(expected.shuffled(using: &rng).prefix(4).map(\.conversation))
            var asked = expected.filter { few.contains($0.conversation) }.reversed().map { $0 }
            asked += (0..<400).map { _ in random() }
            asked += expected.shuffled(using: &rng).prefix(300)
            for p in asked { #expect(try probe.contains(p) == model.contains(p), "seed \(seed) \(phase) probe \(p)") }
            // A forward cursor advanced to ascending targets, near (inside a block, a few
            // blocks on: steps) and far (a seek): the first posting not below each.
            var targets = (expected.shuffled(using: &rng).prefix(150) + (0..<150).map { _ in random() }).sorted()
            for i in stride(from: 0, to: targets.count, by: 10) {   // runs of close targets
                targets.append(Posting(term: targets[i].term, conversation: targets[i].conversation,
                                       createdAt: targets[i].createdAt, seq: targets[i].seq + 1))
            }
            targets.sort()
            var forward = PostingForwardCursor(postings)
            var positioned = false
            for target in targets {
                let moved = try positioned ? forward.advance(to: target) : forward.seek(atLeast: target)
                positioned = true
                let want = expected.first { !($0 < target) }
                #expect(moved == (want != nil), "seed \(seed) \(phase) advance to \(target)")
                if moved { #expect(forward.current == want, "seed \(seed) \(phase) advance to \(target)") }
                if !moved { break }
            }
            // A round of candidates filtered by two checks (the second of two term ids): the
            // keys that every check holds, in the round's order.
            let terms = Set(expected.map(\.term)).sorted()
            if terms.count >= 3 {
                let checks = [[terms[0]], [terms[1], terms[2]]]
                var round = expected.shuffled(using: &rng).prefix(60).map(\.message) + (0..<40).map { _ in random().message }
                let holds = { (key: MessageKey, ids: [UInt64]) in ids.contains { model.contains(Posting(term: $0, key)) } }
                let want = round.filter { key in checks.allSatisfy { holds(key, $0) } }
                try RoundFilter(checks: checks, postings: postings).apply(&round)
                #expect(round == want, "seed \(seed) \(phase) round filter")
            }
        }
        // Singles.
        for _ in 0..<3_000 {
            let p = random()
            #expect(try postings.insert(p) == model.insert(p).inserted, "seed \(seed)")
        }
        try check("single inserts")
        // Sorted batches, some overlapping what is there.
        for _ in 0..<20 {
            var batch = Set<Posting>()
            for _ in 0..<Int(rng.next() % 2_000) { batch.insert(random()) }
            for p in model.shuffled(using: &rng).prefix(20) { batch.insert(p) }
            var added = Set<Posting>()
            try postings.insert(sorted: batch.sorted()) { added.insert($0) }
            #expect(added == batch.subtracting(model), "seed \(seed)")
            model.formUnion(batch)
        }
        try check("batches")
        // Removes, including absent postings and whole blocks' worth.
        for p in model.shuffled(using: &rng).prefix(model.count * 2 / 3) {
            #expect(try postings.remove(p), "seed \(seed) \(p)")
            model.remove(p)
        }
        for _ in 0..<300 {
            let p = random()
            #expect(try postings.remove(p) == (model.remove(p) != nil), "seed \(seed)")
        }
        try check("removes")
        // Appends in order in one conversation of one term: full blocks.
        let before = tree.count
        for i in 0..<5_000 {
            let p = Posting(term: 31, conversation: 7, createdAt: 1_800_000_000_000 + UInt64(i) * 1_000, seq: 100_000 + UInt64(i))
            #expect(try postings.insert(p))
            model.insert(p)
        }
        try check("appends")
        // 5,000 postings that cost a few bits each: in blocks of several hundred.
        #expect(tree.count - before <= 5_000 / 300 + 2, "seed \(seed): \(tree.count - before) blocks for 5,000 appends")
        for p in model.sorted() { #expect(try postings.remove(p)) }
        #expect(tree.count == 0)
        transaction.rollback()
    }
}
