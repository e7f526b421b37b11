import Foundation
@testable import Scrollback
import ScrollbackBTree
import ScrollbackIO
@testable import ScrollbackMessaging
import Testing
import TestSupport

/// Message search: the term rules of the README (diacritics, apostrophes, compatibility forms,
/// CJK characters and pairs), scopes, order, paging with cursors bound to the query and scope,
/// edits and deletes, the index turned on over existing messages in bounded steps, reopen and
/// `verify`. The model-based tests compare search with the reference model on random histories
/// with crashes; these pin the documented cases.
@Suite struct SearchTests {
    static func options() -> StoreOptions {
        var options = StoreOptions()
        options.pageSize = 4096
        options.cacheBytes = 1 << 20
        return options
    }

    static func open(_ fs: MemoryFileSystem, scannedPerSeek: Int = 128, decodesPerProbe: Double = 70) throws -> MessageStore {
        var options = options()
        options.searchPostingsScannedPerSeek = scannedPerSeek
        options.searchDecodesPerProbe = decodesPerProbe
        return try MessageStore(path: "/db", options: options, fileSystem: fs)
    }

    static func message(_ id: String, in conversation: String = "c", at createdAt: Int64, _ body: String) -> Message {
        Message(id: id, conversation: conversation, sender: "s", createdAt: createdAt, body: body)
    }

    static func ids(_ page: MessagePage) -> [String] { page.messages.map(\.id) }

    @Test func termsFollowTheDocumentedRules() throws {
        let store = try Self.open(MemoryFileSystem())
        try store.enableSearchIndex()
        try store.append(Self.message("m1", at: 1, "Café naïve"))
        try store.append(Self.message("m2", at: 2, "don't stop"))
        try store.append(Self.message("m3", at: 3, "前言你好 world"))
        try store.append(Self.message("m4", at: 4, "ｈｅｌｌｏ ﬁne école"))
        try store.append(Self.message("m5", at: 5, "helpful"))
        #expect(Self.ids(try store.search("cafe", limit: 10)) == ["m1"])
        #expect(Self.ids(try store.search("CAFÉ NAIVE", limit: 10)) == ["m1"])
        #expect(Self.ids(try store.search("t", limit: 10)) == ["m2"])  // don't → don, t
        #expect(Self.ids(try store.search("你好", limit: 10)) == ["m3"])  // a pair inside a longer run
        #expect(Self.ids(try store.search("你", limit: 10)) == ["m3"])  // a single character inside a run
        #expect(Self.ids(try store.search("好前", limit: 10)) == [])  // not adjacent in that order
        // The index keeps pairs and each run's last character; every position of a character
        // is found: first of its run, inside, last, alone.
        try store.append(Self.message("m3b", at: 3, "好 前"))
        #expect(Self.ids(try store.search("前", limit: 10)) == ["m3b", "m3"])
        #expect(Self.ids(try store.search("言", limit: 10)) == ["m3"])
        #expect(Self.ids(try store.search("好", limit: 10)) == ["m3b", "m3"])
        #expect(Self.ids(try store.search("好 前", limit: 10)) == ["m3b", "m3"])
        #expect(Self.ids(try store.search("言 好", limit: 10)) == ["m3"])
        #expect(try store.searchCount("前言 好") == 1)
        try store.delete(id: "m3b")
        #expect(Self.ids(try store.search("hello fi", limit: 10)) == ["m4"])  // fullwidth and the ligature decompose
        #expect(Self.ids(try store.search("e\u{301}cole", limit: 10)) == ["m4"])
        #expect(Self.ids(try store.search("hel", limit: 10)) == ["m5", "m4"])  // prefixes, newest first
        #expect(Self.ids(try store.search("hel wor", limit: 10)) == [])  // every word must match
        #expect(try store.searchCount("hel") == 2)
        // Half-width katakana and squared CJK decompose into CJK letters, searched as CJK.
        try store.append(Self.message("m6", at: 6, "ｶﾀｶﾅ ㍻"))
        #expect(Self.ids(try store.search("カタカナ", limit: 10)) == ["m6"])
        #expect(Self.ids(try store.search("ｶﾀ", limit: 10)) == ["m6"])
        #expect(Self.ids(try store.search("平成", limit: 10)) == ["m6"])
        // limit 0: no messages, and a cursor exactly when matches remain.
        let empty = try store.search("hel", limit: 0)
        #expect(empty.messages.isEmpty)
        let start = try #require(empty.next)
        #expect(Self.ids(try store.search("hel", after: start, limit: 10)) == ["m5", "m4"])
        #expect(try store.search("nothinglikethis", limit: 0).next == nil)
        #expect(throws: ScrollbackError.self) { try store.search("!! --", limit: 10) }
        #expect(throws: ScrollbackError.self) {
            try store.search(String(repeating: "a", count: MessageStore.maxSearchQueryBytes + 1), limit: 10)
        }
        #expect(try store.verify().isEmpty)
    }

    /// The pairs of one CJK run form one group (checked after the other runs' pairs); the
    /// pairs of separate runs, separate groups.
    @Test func pairsOfARunShareAGroup() throws {
        let query = try SearchQuery("前言你好 中文 文字 abc")
        let names = query.pairs.map { String(decoding: $0, as: UTF8.self) }
        let groups = Dictionary(uniqueKeysWithValues: zip(names, query.pairGroups))
        #expect(Set(names) == ["前言", "言你", "你好", "中文", "文字"])
        #expect(groups["前言"] == groups["言你"] && groups["言你"] == groups["你好"])
        #expect(groups["中文"] == groups["文字"])   // two runs that share 文: one group
        #expect(groups["前言"] != groups["中文"])
        #expect(try SearchQuery("你好").pairGroups == [0])
    }

    @Test func searchNeedsTheIndexAndSaysSo() throws {
        let store = try Self.open(MemoryFileSystem())
        try store.append(Self.message("m1", at: 1, "hello"))
        #expect(try store.isSearchIndexEnabled == false)
        do {
            _ = try store.search("hello", limit: 10)
            Issue.record("search without the index answered")
        } catch let ScrollbackError.invalidArgument(argument, reason) {
            #expect(argument == "search")
            #expect(reason.contains("enableSearchIndex"))
        }
    }

    /// Both ways of a scoped search: a merge of per-conversation seeks (0) and a filtered scan
    /// of the rarest term's postings (always, 1 << 40).
    @Test(arguments: [0, 1 << 40]) func scopesOrderAndPaging(scannedPerSeek: Int) throws {
        let store = try Self.open(MemoryFileSystem(), scannedPerSeek: scannedPerSeek)
        try store.enableSearchIndex()
        // Equal times across conversations: insertion order decides (newest first).
        for i in 0..<30 {
            try store.append(Self.message("m\(i)", in: "c\(i % 3)", at: Int64(i / 4), i % 5 == 0 ? "other" : "ping \(i)"))
        }
        let all = (0..<30).filter { $0 % 5 != 0 }.reversed().map { "m\($0)" }
        // Whole store, in pages of 4.
        var walked: [String] = []
        var page = try store.search("ping", limit: 4)
        walked += Self.ids(page)
        while let next = page.next {
            page = try store.search("ping", after: next, limit: 4)
            walked += Self.ids(page)
        }
        #expect(walked == all)
        // One conversation, several, a duplicate and an unknown one.
        #expect(Self.ids(try store.search("ping", in: .conversation("c1"), limit: 100))
                == all.filter { Int($0.dropFirst())! % 3 == 1 })
        #expect(Self.ids(try store.search("ping", in: .conversations(["c0", "c2", "c0", "nope"]), limit: 100))
                == all.filter { Int($0.dropFirst())! % 3 != 1 })
        #expect(try store.searchCount("ping", in: .conversations(["c0", "c2"])) == all.filter { Int($0.dropFirst())! % 3 != 1 }.count)
        // A cursor continues only its own search.
        let first = try store.search("ping", in: .conversation("c1"), limit: 2)
        let cursor = try #require(first.next)
        #expect(throws: ScrollbackError.self) { try store.search("pin", in: .conversation("c1"), after: cursor, limit: 2) }
        #expect(throws: ScrollbackError.self) { try store.search("ping", in: .conversation("c2"), after: cursor, limit: 2) }
        #expect(throws: ScrollbackError.self) { try store.search("ping", after: cursor, limit: 2) }
        // Scopes whose names would run together are different scopes.
        let pair = try #require(try store.search("ping", in: .conversations(["c1", "c2"]), limit: 1).next)
        #expect(throws: ScrollbackError.self) { try store.search("ping", in: .conversation("c1\u{0}c2"), after: pair, limit: 1) }
        // The same terms in another spelling are the same search.
        #expect(Self.ids(try store.search("PING", in: .conversation("c1"), after: cursor, limit: 100))
                == Array(all.filter { Int($0.dropFirst())! % 3 == 1 }.dropFirst(2)))
    }

    /// Turning the index off frees its pages and makes searches refuse; writes go on
    /// unindexed; turning it on again rebuilds it from the messages (after a reopen too).
    /// Two-word searches give the same pages and counts whether the candidates are checked by
    /// probes, a round at once, or by a merge of the two terms' postings (whole store, one
    /// conversation, several; paged), on a store with blocks of many postings (common and rare
    /// words, CJK pairs).
    @Test func mergeAndProbesAgree() throws {
        let fs = MemoryFileSystem()
        let vocabulary = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta", "你好", "前言"]
        var rng = SeededRandom(seed: 42)
        do {
            let store = try Self.open(fs)
            try store.enableSearchIndex()
            for i in 0..<1_500 {
                // Skewed: the first words are common, the last rare.
                let words = (0..<(1 + Int(rng.next() % 5))).map { _ in
                    vocabulary[Int(Double(vocabulary.count) * pow(Double(rng.next() % 1_000) / 1_000, 2))]
                }
                try store.append(Self.message("m\(i)", in: "c\(rng.next() % 9)", at: Int64(i / 3), words.joined(separator: " ")))
            }
            try store.close()
        }
        var pages: [[[String]]] = []
        var counts: [[Int]] = []
        // Mostly a merge of the two terms' postings (decodesPerProbe huge); never: candidates
        // checked a round at once (a walk of the rarest term's postings), or in a scope each
        // by probes (a merge of per-conversation cursors; across the store still rounds).
        for (decodesPerProbe, scannedPerSeek) in [(1e12, 128), (0.0, 1 << 40), (0.0, 0)] {
            let store = try Self.open(fs, scannedPerSeek: scannedPerSeek, decodesPerProbe: decodesPerProbe)
            var walks: [[String]] = []
            var counted: [Int] = []
            for a in vocabulary.indices {
                for b in vocabulary.indices where b != a {
                    let query = vocabulary[a] + " " + vocabulary[b]
                    for scope in [SearchScope.wholeStore, .conversation("c3"), .conversations(["c1", "c5", "c8"])] {
                        var walked: [String] = []
                        var page = try store.search(query, in: scope, limit: 7)
                        walked += Self.ids(page)
                        while let next = page.next {
                            page = try store.search(query, in: scope, after: next, limit: 7)
                            walked += Self.ids(page)
                        }
                        walks.append(walked)
                        counted.append(try store.searchCount(query, in: scope))
                    }
                }
            }
            pages.append(walks)
            counts.append(counted)
            try store.close()
        }
        #expect(pages[0] == pages[1] && pages[0] == pages[2])
        #expect(counts[0] == counts[1] && counts[0] == counts[2])
        #expect(counts[0].reduce(0, +) > 1_000, "the queries barely matched")
    }

    @Test func disablingFreesTheIndexAndEnablingRebuildsIt() throws {
        let fs = MemoryFileSystem()
        var store = try Self.open(fs)
        try store.disableSearchIndex()   // off already: nothing
        try store.enableSearchIndex()
        for i in 0..<400 {
            try store.append(Self.message("m\(i)", in: "c\(i % 4)", at: Int64(i), "word\(i % 7) 前言你好 shared"))
        }
        func indexBytes() throws -> UInt64 {
            try store.spaceUsage().filter { $0.structure.hasPrefix("tree search") }.reduce(0) { $0 + $1.bytes }
        }
        #expect(try store.searchCount("shared") == 400)
        #expect(try indexBytes() > 0)
        try store.disableSearchIndex()
        #expect(try store.isSearchIndexEnabled == false)
        #expect(try indexBytes() == 0)
        #expect(try store.verify().isEmpty)   // every freed page accounted for
        do {
            _ = try store.search("shared", limit: 1)
            Issue.record("search answered with the index off")
        } catch let ScrollbackError.invalidArgument(argument, reason) {
            #expect(argument == "search" && reason.contains("enableSearchIndex"))
        }
        #expect(throws: ScrollbackError.self) { try store.searchCount("shared") }
        try store.disableSearchIndex()   // again: nothing
        // Writes while it is off.
        try store.edit(id: "m0", body: "changed 言")
        try store.delete(id: "m1")
        try store.append(Self.message("m400", in: "c9", at: 400, "shared late"))
        try store.close()
        store = try Self.open(fs)
        #expect(try store.isSearchIndexEnabled == false)
        try store.enableSearchIndex()
        #expect(try store.searchCount("shared") == 399)
        #expect(Self.ids(try store.search("changed", limit: 10)) == ["m0"])
        #expect(try store.searchCount("言") == 399)   // the edit's 言 alone, and inside 前言你好
        #expect(Self.ids(try store.search("shared", in: .conversation("c9"), limit: 10)) == ["m400"])
        #expect(try store.verify().isEmpty)
        try store.close()
    }

    @Test func editsReindexAndDeletesRemove() throws {
        let fs = MemoryFileSystem()
        var store = try Self.open(fs)
        try store.enableSearchIndex()
        try store.append(Self.message("m1", at: 1, "apple banana"))
        try store.append(Self.message("m2", at: 2, "apple"))
        try store.edit(id: "m1", body: "cherry")
        #expect(Self.ids(try store.search("apple", limit: 10)) == ["m2"])
        #expect(Self.ids(try store.search("cherry", limit: 10)) == ["m1"])
        #expect(try store.search("banana", limit: 10).messages.isEmpty)
        try store.delete(id: "m2")
        #expect(try store.search("apple", limit: 10).messages.isEmpty)
        // Edit and delete inside one batch, after an append in it.
        try store.write { batch in
            batch.append(Self.message("m3", at: 3, "date elder"))
            batch.edit(id: "m3", body: "fig")
            batch.append(Self.message("m4", at: 4, "grape"))
            batch.delete(id: "m4")
        }
        #expect(Self.ids(try store.search("fig", limit: 10)) == ["m3"])
        #expect(try store.search("date", limit: 10).messages.isEmpty)
        #expect(try store.search("grape", limit: 10).messages.isEmpty)
        // A stored message edited twice in one batch, another edited then deleted in one batch:
        // the later operation removes the terms the earlier one left.
        try store.append(Self.message("m5", at: 5, "hazel"))
        try store.append(Self.message("m6", at: 6, "iris"))
        try store.write { batch in
            batch.edit(id: "m5", body: "juniper")
            batch.edit(id: "m5", body: "kale")
            batch.edit(id: "m6", body: "lime")
            batch.delete(id: "m6")
        }
        #expect(Self.ids(try store.search("kale", limit: 10)) == ["m5"])
        for gone in ["hazel", "juniper", "iris", "lime"] { #expect(try store.search(gone, limit: 10).messages.isEmpty, "\(gone)") }
        #expect(try store.verify().isEmpty)
        try store.close()
        store = try Self.open(fs)
        // Turning the index on marked the store: format version 3 (a build without search refuses it).
        #expect(store.database.engine.committedState[counter: .formatVersion] == MessageLimits.searchFormatVersion)
        #expect(Self.ids(try store.search("cherry fig", limit: 10)) == [])
        #expect(Self.ids(try store.search("f", limit: 10)) == ["m3"])
        #expect(try store.verify().isEmpty)
        try store.close()
    }

    /// Turned on over a store that has messages: built in several commits, then maintained.
    @Test func turningTheIndexOnBuildsItInSteps() throws {
        let fs = MemoryFileSystem()
        let store = try Self.open(fs)
        var batch = WriteBatch()
        for i in 0..<5_000 { batch.append(Self.message("m\(i)", in: "c\(i % 7)", at: Int64(i), "word\(i % 50) common")) }
        try store.write(batch)
        let commitsBefore = try store.statistics.commits
        try store.enableSearchIndex()
        // One commit turns it on, then one per step of at most 2,000 messages.
        #expect(try store.statistics.commits - commitsBefore >= 4)
        #expect(try store.isSearchIndexEnabled)
        #expect(try store.searchCount("common") == 5_000)
        #expect(try store.searchCount("word7") == 100)
        #expect(try store.searchCount("word1") == 11 * 100)  // word1, word10…word19
        try store.append(Self.message("late", in: "c0", at: 9_999, "common"))
        #expect(Self.ids(try store.search("common", in: .conversation("c0"), limit: 1)) == ["late"])
        #expect(try store.verify().isEmpty)
        try store.enableSearchIndex()  // built: nothing to do
        try store.close()
    }

    /// A build step and a bulk load add their postings in batches (`SearchIndex.addAll`):
    /// the trees they leave are those of indexing each message as it is appended — the same
    /// term ids (a new term takes the next id at its first occurrence), postings and counts.
    @Test func batchedIndexingAssignsTheIdsOfIndexingOneByOne() throws {
        var bodies: [String] = []
        for i in 0..<12_000 {   // about 72,000 terms: the bulk load adds them in two batches
            bodies.append("w\(i % 37) shared x\(i / 300) 前言\(i % 5 == 0 ? "你好" : "世界") n\(i % 1_000)")
        }
        let messages = bodies.enumerated().map { Self.message("m\($0.offset)", at: Int64($0.offset), $0.element) }
        // The terms tree's entries, and the postings (decoded: blocks split where their writes
        // happened to fill them, which differs between the ways of adding the same postings).
        func trees(_ store: MessageStore) throws -> [[BTreeKey]] {
            try store.database.engine.read { snapshot in
                var terms: [BTreeKey] = []
                var cursor = try BTree(snapshot, .searchTerms).cursor()
                var valid = try cursor.seekFirst()
                while valid {
                    _ = try cursor.withCurrent { key, value in
                        let entry = SearchTermValue(value)   // the term's id and postings count
                        terms += [key, BTreeKey(entry.termID, entry.postings)]
                    }
                    valid = try cursor.next()
                }
                var postings: [BTreeKey] = []
                try SearchPostings(snapshot).forEachPosting { postings.append($0.blockKey) }
                return [terms, postings]
            }
        }
        let oneByOne = try Self.open(MemoryFileSystem())
        try oneByOne.enableSearchIndex()
        for message in messages { try oneByOne.append(message) }
        let expected = try trees(oneByOne)
        #expect(expected[0].count > 2 * 1_000 && expected[1].count > 6 * 12_000)
        #expect(messages.map { SearchTokenizer.indexTerms(of: $0.body).count }.reduce(0, +) > SearchIndex.BatchedPostings.batchTerms)

        let built = try Self.open(MemoryFileSystem())
        for message in messages { try built.append(message) }
        try built.enableSearchIndex()   // six steps of at most 2,000 messages
        #expect(try trees(built) == expected)

        let loaded = try Self.open(MemoryFileSystem())
        try loaded.enableSearchIndex()
        _ = try loaded.load(messages)
        #expect(try trees(loaded) == expected)
        #expect(try loaded.verify().isEmpty && built.verify().isEmpty)
    }

    /// While the index builds, checkpoints wait for half the page cache of dirty pages (each
    /// step dirties a leaf of most terms); the store's own threshold is back afterwards.
    /// Counted, not timed: on a file system without background I/O the committing thread
    /// checkpoints, so the counts are deterministic.
    @Test func theBuildCheckpointsAtHalfTheCache() throws {
        var options = Self.options()
        options.cacheBytes = 16 << 20
        options.checkpointDirtyBytes = 32 << 10
        let store = try MessageStore(path: "/db", options: options, fileSystem: MemoryFileSystem())
        func checkpoints() throws -> UInt64 { try store.statistics.checkpoints }
        var batch = WriteBatch()
        for i in 0..<6_000 { batch.append(Self.message("m\(i)", in: "c\(i % 40)", at: Int64(i), "alpha\(i % 300) beta\(i % 7) gamma\(i)")) }
        try store.write(batch)
        try store.checkpoint()
        let before = try checkpoints()
        try store.enableSearchIndex()   // three steps, each dirtying far more than 32 KiB
        #expect(try checkpoints() == before, "no step reached 6 MiB of dirty pages (half of a 12 MiB page cache)")
        #expect(try store.searchCount("beta3") == 6_000 / 7)
        for i in 0..<500 { try store.append(Self.message("n\(i)", in: "c\(i % 40)", at: Int64(10_000 + i), "alpha\(i) delta")) }
        #expect(try checkpoints() > before, "32 KiB again once the build is done")
        #expect(try store.verify().isEmpty)
    }

    /// A build interrupted part-way keeps its steps; messages written meanwhile below and
    /// above the build cursor are indexed once each; a second call finishes.
    @Test func anInterruptedBuildContinues() throws {
        let fs = MemoryFileSystem()
        var store = try Self.open(fs)
        for i in 0..<300 { try store.append(Self.message("m\(i)", in: "c\(i % 3)", at: Int64(i), "alpha \(i)")) }
        try store.close()
        let database = try MessageDatabase.open(fileSystem: fs, directory: "/db", options: MessageDatabaseOptions())
        try database.write([])  // nothing
        try database.engine.commit { _, batch in try batch.append(type: MessageRecordType.searchEnable.rawValue, payloadCount: 0) { _ in } }
        #expect(try database.buildSearchIndexStep(stepMessages: 100) == 100)
        // Appends before and after the build cursor (conversation c0 comes first in key order).
        try database.write([.append(StoredMessage(id: "early", conversation: "c0", sender: "s", createdAt: 0, kind: 1,
                                                  body: "alpha early", replyTo: nil, edited: false)),
                            .append(StoredMessage(id: "late", conversation: "c2", sender: "s", createdAt: 999, kind: 1,
                                                  body: "alpha late", replyTo: nil, edited: false))])
        #expect(throws: MessagingError.self) { try database.searchCount("alpha", in: nil) }  // still building
        try database.close()
        store = try Self.open(fs)
        try store.enableSearchIndex()
        #expect(try store.searchCount("alpha") == 302)
        #expect(Self.ids(try store.search("alpha", in: .conversation("c2"), limit: 1)) == ["late"])
        #expect(try store.verify().isEmpty)
        try store.close()
    }

    @Test func verifyReportsAMissingPosting() throws {
        let fs = MemoryFileSystem()
        let store = try Self.open(fs)
        try store.enableSearchIndex()
        try store.append(Self.message("m1", at: 1, "kiwi lemon"))
        // Remove one posting behind the index's back (a record the write path would not log).
        let key = MessageKey(conversation: 1, createdAt: 1, seq: 1)
        try store.database.engine.commit { _, batch in
            try SearchRemoveRecord.append(SearchEntry(key: key, terms: [Array("kiwi".utf8)]), into: &batch)
        }
        let problems = try store.verify()
        #expect(problems.contains { $0.contains("kiwi") }, "\(problems)")
        try store.close()
    }
}
