import Foundation
import Scrollback
import ScrollbackWorkload

/// The search phase (issue: message search): Scrollback's index against SQLite FTS5
/// (`unicode61`, diacritics removed, prefix indexes 2 and 3) on the rowid schema, after every
/// other phase (neither index is there while the other figures are taken). Queries: one word,
/// and two words with the second a 3-character prefix, each in the conversation they came
/// from, in it and 19 others, and across the store; 20 newest matches each; answers compared.
/// Then the same six kinds on a CJK variant (`runCJKSearch`) against FTS5's `trigram`
/// tokenizer. Also the time to build each index, its bytes, and Scrollback's durable send with
/// the index on and off.
extension Benchmark {
    /// Query words and the conversations to search (nil: the whole store).
    typealias SearchQuery = (words: [String], scope: [String]?)

    struct SearchRow {
        var title: String
        var wholeStore: Bool
        var summaries: [String: LatencySummary]
    }

    struct SearchFigures {
        var rows: [SearchRow] = []
        var buildSeconds: [String: Double] = [:]
        var indexBytes: [String: UInt64] = [:]
        var cjkBuildSeconds: [String: Double] = [:]
        var cjkIndexBytes: [String: UInt64] = [:]
        var cjkMessages = 0
        var sendOff: LatencySummary?
        var sendOn: LatencySummary?
        var queries = 0
    }

    /// Lowercased ASCII words of at least 3 characters (the dataset's bodies are ASCII).
    static func searchWords(_ body: String) -> [String] {
        body.lowercased().split { !($0.isASCII && ($0.isLetter || $0.isNumber)) }.map(String.init).filter { $0.count >= 3 }
    }

    /// Query words from the 10 newest bodies of each of `conversations` (bodies with at least
    /// two words), with the conversation they came from.
    static func querySources(_ conversations: [String], _ scrollback: ScrollbackEngine, words: (String) -> [String]) throws
        -> [(conversation: String, words: [String])] {
        var sources: [(conversation: String, words: [String])] = []
        for conversation in conversations {
            for m in try scrollback.latest(conversation, limit: 10) {
                let found = words(m.body)
                if found.count >= 2 { sources.append((conversation, found)) }
            }
        }
        return sources
    }

    /// Six query kinds, `count` queries each, from `sources` (a conversation and words of one of
    /// its bodies): one word, and two words (the second cut to `prefixLength` characters when
    /// given), in that conversation, in it and 19 others of `conversations`, and across the store.
    static func searchKinds(label: String, sources: [(conversation: String, words: [String])], conversations: [String],
                            count: Int, prefixLength: Int?, random: inout WorkloadRandom) -> [(title: String, wholeStore: Bool, queries: [SearchQuery])] {
        var kinds = Array(repeating: [SearchQuery](), count: 6)
        for _ in 0..<count {
            let source = sources[random.below(sources.count)]
            let first = source.words[random.below(source.words.count)]
            var second = source.words[random.below(source.words.count)]
            if let prefixLength { second = String(second.prefix(prefixLength)) }
            var twenty = [source.conversation]
            var pool = conversations.filter { $0 != source.conversation }
            while twenty.count < 20, !pool.isEmpty { twenty.append(pool.swapRemoveAt(random.below(pool.count))) }
            let scopes: [[String]?] = [[source.conversation], twenty, nil]
            for (i, scope) in scopes.enumerated() {
                kinds[i].append(([first], scope))
                kinds[3 + i].append(([first, second], scope))
            }
        }
        let scopeNames = ["one conversation", "20 conversations", "whole store"]
        let two = prefixLength == nil ? "two words" : "two words (last a prefix)"
        return (0..<6).map { i in ("\(label)\(i < 3 ? "one word" : two), \(scopeNames[i % 3])", i % 3 == 2, kinds[i]) }
    }

    func runSearch(_ sample: Sample) throws {
        guard let scrollback = engines.first(where: { $0 is ScrollbackEngine }) as? ScrollbackEngine,
              let sqlite = engines.first(where: { ($0 as? SQLiteEngine)?.schema == .rowid }) as? SQLiteEngine else {
            log("search: skipped (needs scrollback and sqlite-rowid)")
            return
        }
        var figures = SearchFigures()
        var random = WorkloadRandom(seed: configuration.seed, stream: 700)

        // Durable sends with the index off, then build both indexes, then sends with it on.
        let base = configuration.endMillis + 50_000_000
        func sends(_ tag: String, _ offset: Int) throws -> LatencySummary {
            var samples: [UInt64] = []
            for i in 0..<options.sends {
                let m = Message(id: "bench-search-\(tag)-\(i)", conversation: sample.all[i % sample.all.count], sender: "synuser1",
                                createdAt: base + Int64(offset + i), kind: .text,
                                body: "search benchmark send \(i) with a few ordinary words about lunch and deploys")
                let t = nowNanoseconds()
                try scrollback.send(m)
                samples.append(nowNanoseconds() - t)
                try sqlite.send(m)   // untimed: both hold the same messages when the answers are compared
            }
            return LatencySummary(nanoseconds: samples)
        }
        figures.sendOff = try sends("off", 0)
        var t = nowNanoseconds()
        try scrollback.enableSearchIndex()
        figures.buildSeconds[scrollback.name] = Double(nowNanoseconds() - t) / 1e9
        figures.indexBytes[scrollback.name] = try scrollback.searchIndexBytes()
        figures.sendOn = try sends("on", options.sends)
        try sqlite.checkpoint()   // the WAL folded in first: the growth is the index's alone
        let before = try sqlite.diskBytes()
        t = nowNanoseconds()
        try sqlite.buildFullTextIndex()
        figures.buildSeconds[sqlite.name] = Double(nowNanoseconds() - t) / 1e9
        figures.indexBytes[sqlite.name] = (try sqlite.diskBytes()) &- before

        // Query words, from the newest messages of the sampled conversations.
        let sources = try Self.querySources(sample.all, scrollback, words: Self.searchWords)
        guard !sources.isEmpty else {
            log("search: skipped (no body with two words)")
            return
        }
        let kinds = Self.searchKinds(label: "search: ", sources: sources, conversations: sample.all,
                                     count: min(options.distinctParameters, 200), prefixLength: 3, random: &random)
        try timeSearches(kinds, scrollback, sqlite, into: &figures)
        log("  search index build: scrollback \(String(format: "%.1f", figures.buildSeconds[scrollback.name] ?? 0)) s, "
            + "\(formatBytes(figures.indexBytes[scrollback.name] ?? 0)); FTS5 \(String(format: "%.1f", figures.buildSeconds[sqlite.name] ?? 0)) s, "
            + "\(formatBytes(figures.indexBytes[sqlite.name] ?? 0)); scrollback send p50 / p99 \(formatMicroseconds(figures.sendOff?.p50 ?? .nan)) / "
            + "\(formatMicroseconds(figures.sendOff?.p99 ?? .nan)) without the index, \(formatMicroseconds(figures.sendOn?.p50 ?? .nan)) / "
            + "\(formatMicroseconds(figures.sendOn?.p99 ?? .nan)) with it")
        try runCJKSearch(&figures, random: &random)
        searchFigures = figures
    }

    /// Compares every answer of `kinds` between the two engines, then times each kind on each.
    func timeSearches(_ kinds: [(title: String, wholeStore: Bool, queries: [SearchQuery])], _ scrollback: ScrollbackEngine,
                      _ sqlite: SQLiteEngine, into figures: inout SearchFigures) throws {
        let pair: [any ChatEngine] = [scrollback, sqlite]
        func run(_ engine: any ChatEngine, _ query: SearchQuery) throws -> [Message] {
            if let s = engine as? ScrollbackEngine { return try s.search(query.words, in: query.scope, limit: 20) }
            return try (engine as! SQLiteEngine).search(query.words, in: query.scope, limit: 20)
        }
        for (title, wholeStore, params) in kinds {
            var found = 0
            for (i, query) in params.enumerated() {
                let answers = try pair.map { try run($0, query) }
                let results = answers.map { QueryResult.messages($0) }
                agreementChecks += 1
                figures.queries += 1
                if !answers[0].isEmpty { found += 1 }
                if results[0] != results[1] {
                    mismatches.append("\(title) #\(i) \(query.words) in \(query.scope.map { "\($0.count) conversations" } ?? "the store"): "
                                      + "scrollback vs sqlite-rowid (FTS5): \(results[0].difference(from: results[1]))")
                }
            }
            // The words come from stored bodies: a kind whose every answer is empty compares nothing.
            if found == 0 { mismatches.append("\(title): every one of \(params.count) answers is empty") }
            let samples = try timedRounds(engines: pair.count, iterations: options.iterations, parameterCount: params.count) {
                try run(pair[$0], params[$1])
            }
            var summaries: [String: LatencySummary] = [:]
            for (e, engine) in pair.enumerated() { summaries[engine.name] = LatencySummary(nanoseconds: samples[e]) }
            figures.rows.append(SearchRow(title: title, wholeStore: wholeStore, summaries: summaries))
            log("  \(title): " + pair.map { e in
                summaries[e.name].map { "\(e.name) p50 \(formatMicroseconds($0.p50)) p99 \(formatMicroseconds($0.p99))" } ?? ""
            }.joined(separator: "; "))
        }
    }

    /// The CJK variant: a fifth of the dataset's size (at most 200,000 messages, 500 per
    /// conversation) with bodies of CJK words, in a fresh Scrollback store and a fresh
    /// `sqlite-rowid` file with an FTS5 `trigram` index; the six query kinds with 3-character
    /// CJK words, answers compared; build time and bytes of both indexes.
    func runCJKSearch(_ figures: inout SearchFigures, random: inout WorkloadRandom) throws {
        let directory = options.directory + "/search-cjk"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let count = max(2_000, min(200_000, configuration.messages / 5))
        let corpus = CJKCorpus(messages: count, seed: configuration.seed, startMillis: configuration.endMillis + 60_000_000)
        let scrollback = try ScrollbackEngine(directory: directory, cacheBytes: options.cacheBytes, durability: options.durability)
        let sqlite = try SQLiteEngine(schema: .rowid, directory: directory, cacheBytes: options.cacheBytes, durability: options.durability)
        defer {
            try? scrollback.close()
            try? sqlite.close()
        }
        for start in stride(from: 0, to: corpus.messages.count, by: 5_000) {
            let batch = Array(corpus.messages[start..<min(start + 5_000, corpus.messages.count)])
            try scrollback.load(batch)
            try sqlite.load(batch)
        }
        try scrollback.finishLoad()
        try sqlite.finishLoad()
        figures.cjkMessages = count
        var t = nowNanoseconds()
        try scrollback.enableSearchIndex()
        figures.cjkBuildSeconds[scrollback.name] = Double(nowNanoseconds() - t) / 1e9
        figures.cjkIndexBytes[scrollback.name] = try scrollback.searchIndexBytes()
        try sqlite.checkpoint()   // the WAL folded in first: the growth is the index's alone
        let before = try sqlite.diskBytes()
        t = nowNanoseconds()
        try sqlite.buildFullTextIndex(tokenizer: .trigram)
        figures.cjkBuildSeconds[sqlite.name] = Double(nowNanoseconds() - t) / 1e9
        figures.cjkIndexBytes[sqlite.name] = (try sqlite.diskBytes()) &- before

        let sources = try Self.querySources(Array(corpus.conversations.prefix(100)), scrollback, words: corpus.queryWords)
        guard !sources.isEmpty else {
            log("CJK search: skipped (no body with two words)")
            return
        }
        let kinds = Self.searchKinds(label: "CJK search: ", sources: sources, conversations: corpus.conversations,
                                     count: min(options.distinctParameters, 200), prefixLength: nil, random: &random)
        try timeSearches(kinds, scrollback, sqlite, into: &figures)
        log("  CJK search index build (\(grouped(count)) messages): scrollback \(String(format: "%.1f", figures.cjkBuildSeconds[scrollback.name] ?? 0)) s, "
            + "\(formatBytes(figures.cjkIndexBytes[scrollback.name] ?? 0)); FTS5 trigram \(String(format: "%.1f", figures.cjkBuildSeconds[sqlite.name] ?? 0)) s, "
            + "\(formatBytes(figures.cjkIndexBytes[sqlite.name] ?? 0))")
    }

    /// The search section of RESULTS.md.
    func searchMarkdown() -> String? {
        guard let f = searchFigures, !f.rows.isEmpty else { return nil }
        var table = Table(header: ["search (µs, p50 / p99)", "scrollback", "sqlite-rowid + FTS5", "× FTS5", "goal"], rows: [])
        for row in f.rows {
            let a = row.summaries["scrollback"], b = row.summaries["sqlite-rowid"]
            let r50 = a.flatMap { a in b.map { $0.p50 / a.p50 } }, r99 = a.flatMap { a in b.map { $0.p99 / a.p99 } }
            let goal = row.wholeStore ? "faster: " + ((r50 ?? 0) > 1 ? "met" : "NOT met") : "≥3×: " + ((r50 ?? 0) >= 3 ? "met" : "NOT met")
            table.rows.append([row.title, pair(a), pair(b), "\(formatRatio(r50)) / \(formatRatio(r99))", goal])
        }
        func bytesRow(_ title: String, _ bytes: [String: UInt64]) {
            let ours = bytes["scrollback"] ?? 0, theirs = bytes["sqlite-rowid"] ?? 0
            table.rows.append([title, formatBytes(ours), formatBytes(theirs), formatRatio(ours == 0 ? nil : Double(theirs) / Double(ours)),
                               "≤ FTS5: " + (ours <= theirs ? "met" : "NOT met")])
        }
        func buildRow(_ title: String, _ seconds: [String: Double]) {
            table.rows.append([title, String(format: "%.1f", seconds["scrollback"] ?? 0), String(format: "%.1f", seconds["sqlite-rowid"] ?? 0), "", ""])
        }
        bytesRow("index bytes", f.indexBytes)
        buildRow("index build (s)", f.buildSeconds)
        if f.cjkMessages > 0 {
            bytesRow("CJK index bytes (FTS5: trigram)", f.cjkIndexBytes)
            buildRow("CJK index build (s)", f.cjkBuildSeconds)
        }
        if let off = f.sendOff, let on = f.sendOn {
            let cost = on.p50 / off.p50
            table.rows.append(["scrollback durable send, index off → on", "\(pair(off)) → \(pair(on))", "", String(format: "%.2f× cost", cost),
                               "≤1.5×: " + (cost <= 1.5 ? "met" : "NOT met")])
        }
        table.notes.append("\(f.queries) search answers compared with FTS5 (`\"word\"*` per word, ORDER BY createdAt DESC, rowid DESC). "
                           + "Each engine's index is built after every other phase; index bytes: Scrollback's search trees, "
                           + "FTS5's growth of the SQLite file. × = FTS5's time / Scrollback's (> 1: Scrollback faster).")
        if f.cjkMessages > 0 {
            table.notes.append("CJK rows: a separate dataset of \(grouped(f.cjkMessages)) messages (500 per conversation) whose bodies are "
                               + "words of 3–4 CJK ideographs (no adjacent pair in two words, so pair matching and substring matching "
                               + "agree), searched with 3-character words; FTS5 with the `trigram` tokenizer (`\"word\"` per word).")
        }
        return markdown(table)
    }
}
