import Synchronization
import Foundation
@testable import ScrollbackMessaging
import Testing
import TestSupport

/// The bulk loader's run order (`BulkLoader.sortByKey`) against a plain sort, on the inputs it
/// distinguishes: conversations interleaved in time order (the counting sort alone), some
/// conversations out of time order (their buckets sorted), ids spread wide (the fallback).
@Suite struct BulkLoadSortTests {
    typealias Entry = BulkLoader.Entry

    static func check(_ entries: [Entry], _ context: String) {
        var sorted = entries
        BulkLoader.sortByKey(&sorted)
        let expected = entries.sorted { ($0.key.conversation, $0.key.createdAt, $0.key.seq) < ($1.key.conversation, $1.key.createdAt, $1.key.seq) }
        #expect(sorted.map(\.key) == expected.map(\.key), "\(context)")
        #expect(sorted.map(\.start) == expected.map(\.start), "\(context): payloads follow their keys")
    }

    @Test(arguments: TestSeeds.seeds(default: [1, 2, 3]))
    func ordersLikeAComparisonSort(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        for shape in 0..<4 {
            var entries: [Entry] = []
            var time: UInt64 = 1_000
            for seq in 1...UInt64(2_000) {
                let conversation: UInt64 = switch shape {
                case 0, 1: 5 + UInt64.random(in: 0..<40, using: &rng)                  // dense ids
                case 2: UInt64.random(in: 0..<3, using: &rng) * 1_000_000_000          // spread wide
                default: 7                                                              // one conversation
                }
                time += UInt64.random(in: 0..<3, using: &rng)                          // equal times too
                // Shape 1 and 3: some messages arrive out of time order.
                let createdAt = (shape == 1 || shape == 3) && rng.next() % 10 == 0 ? time - UInt64.random(in: 0..<500, using: &rng) : time
                let start = entries.count * 10
                entries.append((MessageKey(conversation: conversation, createdAt: createdAt, seq: seq), start, start + 10))
            }
            Self.check(entries, "seed \(seed) shape \(shape)")
        }
        Self.check([], "empty")
        Self.check([(MessageKey(conversation: 3, createdAt: 1, seq: 1), 0, 1)], "one")
    }
}

/// The id index's build order (`MessageSchema.sortByHash`: buckets by the hash's top bits)
/// against a comparison sort by (hash, seq): uniform hashes, equal hashes (ordered by seq
/// whatever the input order), hashes crowding one bucket (its fallback sort), small inputs.
@Suite struct BulkLoadIDSortTests {
    typealias ID = (hash: UInt64, key: MessageKey)

    static func check(_ ids: [ID], _ context: String) {
        var sorted = ids
        MessageSchema.sortByHash(&sorted)
        let expected = ids.sorted { ($0.hash, $0.key.seq) < ($1.hash, $1.key.seq) }
        #expect(sorted.map(\.hash) == expected.map(\.hash), "\(context)")
        #expect(sorted.map(\.key) == expected.map(\.key), "\(context): keys follow their hashes, equal hashes by seq")
    }

    @Test(arguments: TestSeeds.seeds(default: [1, 2, 3]))
    func ordersLikeAComparisonSort(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        for shape in 0..<4 {
            let count = [5_000, 40, 3_000, 2_000][shape]
            var ids: [ID] = []
            for i in 0..<count {
                let hash: UInt64 = switch shape {
                case 0, 1: rng.next()                                          // uniform
                case 2: rng.next() % 5 == 0 ? rng.next() % 4 : rng.next()      // a fifth share four hashes
                default: rng.next() % 100_000                                 // every hash in the first bucket
                }
                // Distinct seqs not in input order, so the tie order is the sort's, not the input's.
                let key = MessageKey(conversation: 1 + rng.next() % 50, createdAt: rng.next() % 1_000,
                                     seq: 1 + UInt64(i * 7_919 + Int(seed)) % 1_000_003)
                ids.append((hash, key))
            }
            Self.check(ids, "seed \(seed) shape \(shape)")
        }
        Self.check([], "empty")
    }
}

/// The bulk loader's table of the ids it took (`ByteKeyTable`) against a dictionary, with hash
/// collisions forced (the table is keyed by a 64-bit hash; the bytes must decide).
@Suite struct ByteKeyTableTests {
    /// The id's hash, or for every fourth id one of three shared values (0 among them).
    static func hash(_ id: String, number: UInt64) -> UInt64 {
        number % 4 == 0 ? number % 3 : id.utf8.withContiguousStorageIfAvailable { Hash64.hash(UnsafeRawBufferPointer($0)) }!
    }

    static func lookUp(_ table: ByteKeyTable, _ id: String, _ hash: UInt64) -> UInt64? {
        id.utf8.withContiguousStorageIfAvailable { table.value(of: UnsafeRawBufferPointer($0), hash: hash) }!
    }

    @Test(arguments: TestSeeds.seeds(default: [1, 2]))
    func answersLikeADictionaryEvenWhenHashesCollide(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        var table = ByteKeyTable()
        var model: [String: UInt64] = [:]
        for _ in 0..<20_000 {
            let number = rng.next() % 8_000
            let id = "id-\(number)" + (number % 7 == 0 ? "-é" : "")
            let hash = Self.hash(id, number: number)
            let found = Self.lookUp(table, id, hash)
            #expect(found == model[id], "seed \(seed): \(id)")
            if found == nil {
                let conversation = rng.next() % 100
                id.utf8.withContiguousStorageIfAvailable { table.insert(UnsafeRawBufferPointer($0), hash: hash, value: conversation) }
                model[id] = conversation
            }
        }
        #expect(table.count == model.count)
        #expect(model.count > 5_000, "the table grew several times")
        #expect(Self.lookUp(table, "absent", 1) == nil)
        #expect(Self.lookUp(table, "", 0) == nil)
        // Emptied, it finds nothing and fills again.
        table.removeAll()
        #expect(table.count == 0 && Self.lookUp(table, "id-1", Self.hash("id-1", number: 1)) == nil)
        "id-1".utf8.withContiguousStorageIfAvailable { table.insert(UnsafeRawBufferPointer($0), hash: 5, value: 9) }
        #expect(Self.lookUp(table, "id-1", 5) == 9 && table.count == 1)
        // A key past the limit is refused, not stored.
        let long = [UInt8](repeating: 7, count: ByteKeyTable.maxKeyBytes + 1)
        #expect(long.withUnsafeBytes { !table.insert($0, hash: 3, value: 1) } && table.count == 1)
        #expect(long.withUnsafeBytes { table.value(of: $0, hash: 3) } == nil)
    }
}

/// The name caches (`NameIDCache`): names compared as bytes (canonically equivalent names are
/// two entries), bridged and substring-made strings found, the limit honoured, the first id
/// of a name kept.
@Suite struct NameIDCacheTests {
    @Test func answersByBytesAndStartsOverAtItsLimit() {
        let cache = NameIDCache(limit: 1_000)
        cache.insert("é", id: 1)
        cache.insert("e\u{301}", id: 2)
        #expect(cache.id(of: "é") == 1 && cache.id(of: "e\u{301}") == 2)
        cache.insert("é", id: 3)
        #expect(cache.id(of: "é") == 1, "a cached name keeps its id")
        let long = String(repeating: "conversation-", count: 20)
        cache.insert(long, id: 4)
        #expect(cache.id(of: String(long.dropFirst(0))) == 4 && cache.id(of: long + "x") == nil && cache.id(of: "") == nil)
        // (Pairs, not a dictionary: String equality would merge the two spellings of é.)
        var model: [(String, UInt64)] = [("é", 1), ("e\u{301}", 2), (long, 4)]
        for i in 0..<996 {
            let name = "room-\(i)"
            cache.insert(name, id: UInt64(100 + i))
            model.append((name, UInt64(100 + i)))
        }
        #expect(cache.count == 999)
        for (name, id) in model { #expect(cache.id(of: name) == id, "\(name)") }
        cache.insert("room-a", id: 7)
        cache.insert("room-b", id: 8)
        #expect(cache.count == 1, "started over at the limit")
        #expect(cache.id(of: "room-b") == 8 && cache.id(of: "room-1") == nil)
    }

    /// The lock-free front against a writer: three threads look names up while one inserts
    /// and starts over (a limit of 64, so entries are rewritten all the time, names of 2 to
    /// 31 bytes sharing entries); every answer is nil or the name's own id, never another
    /// name's (a torn read of an entry would pair one name's bytes with another's id; such a
    /// race is caught only with a probability, a wrong compare every time).
    @Test func lockFreeLookupsNeverAnswerAnotherNamesID() {
        let cache = NameIDCache(limit: 64)
        // Names that differ only late in their bytes, so a torn entry can match.
        let names = (0..<256).map { i in String(repeating: "x", count: i % 28) + "-\(i)" }  // 2…31 bytes
        let done = Atomic<Bool>(false)
        let wrong = Atomic<Int>(0)
        let answered = Atomic<Int>(0)
        let finished = Atomic<Int>(0)
        for r in 0..<3 {
            Thread.detachNewThread {
                var random = UInt64(r + 1) &* 0x9E37_79B9_7F4A_7C15
                var found = 0
                while !done.load(ordering: .relaxed) {
                    random = random &* 6364136223846793005 &+ 1442695040888963407
                    let i = Int(random >> 33) % names.count
                    if let id = cache.id(of: names[i]) {
                        found += 1
                        if id != UInt64(i + 1) { wrong.add(1, ordering: .relaxed) }
                    }
                }
                answered.add(found, ordering: .relaxed)
                finished.add(1, ordering: .releasing)
            }
        }
        let start = Date()
        var random: UInt64 = 12345
        while Date().timeIntervalSince(start) < 0.5 {
            random = random &* 6364136223846793005 &+ 1442695040888963407
            let i = Int(random >> 33) % names.count
            cache.insert(names[i], id: UInt64(i + 1))
        }
        done.store(true, ordering: .relaxed)
        while finished.load(ordering: .acquiring) < 3 { usleep(1000) }
        #expect(wrong.load(ordering: .relaxed) == 0)
        #expect(answered.load(ordering: .relaxed) > 0)
    }
}
