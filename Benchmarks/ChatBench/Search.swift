import Foundation
import Scrollback
import ScrollbackWorkload

/// The search phase (issue: message search): Scrollback's index against SQLite FTS5
/// (`unicode61`, diacritics removed, prefix indexes 2 and 3) on the rowid schema, after every
/// other phase (neither index is there while the other figures are taken). Queries: one word
/// in the conversation it came from, two words (the second a 3-character prefix) in 20
/// conversations, one word across the store; 20 newest matches each; answers compared. Also
/// the time to build each index, its bytes, and Scrollback's durable send with the index on
/// and off.
extension Benchmark {
    struct SearchFigures {
        var rows: [(title: String, summaries: [String: LatencySummary])] = []
        var buildSeconds: [String: Double] = [:]
        var indexBytes: [String: UInt64] = [:]
        var sendOff: LatencySummary?
        var sendOn: LatencySummary?
        var queries = 0
    }

    /// Lowercased ASCII words of at least 3 characters (the dataset's bodies are ASCII).
    static func searchWords(_ body: String) -> [String] {
        body.lowercased().split { !($0.isASCII && ($0.isLetter || $0.isNumber)) }.map(String.init).filter { $0.count >= 3 }
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
        let before = try sqlite.diskBytes()
        t = nowNanoseconds()
        try sqlite.buildFullTextIndex()
        figures.buildSeconds[sqlite.name] = Double(nowNanoseconds() - t) / 1e9
        figures.indexBytes[sqlite.name] = (try sqlite.diskBytes()) &- before

        // Query words, from the newest messages of the sampled conversations.
        var sources: [(conversation: String, words: [String])] = []
        for conversation in sample.all {
            for m in try scrollback.latest(conversation, limit: 10) {
                let words = Self.searchWords(m.body)
                if words.count >= 2 { sources.append((conversation, words)) }
            }
        }
        guard !sources.isEmpty else {
            log("search: skipped (no body with two words)")
            return
        }
        let p = min(options.distinctParameters, 200)
        var one: [([String], [String]?)] = []
        var twenty: [([String], [String]?)] = []
        var store: [([String], [String]?)] = []
        for _ in 0..<p {
            let source = sources[random.below(sources.count)]
            let first = source.words[random.below(source.words.count)]
            var second = source.words[random.below(source.words.count)]
            second = String(second.prefix(3))
            one.append(([first], [source.conversation]))
            var scope = [source.conversation]
            var pool = sample.all.filter { $0 != source.conversation }
            while scope.count < 20, !pool.isEmpty { scope.append(pool.swapRemoveAt(random.below(pool.count))) }
            twenty.append(([first, second], scope))
            store.append(([first], nil))
        }
        let kinds: [(String, [([String], [String]?)])] = [
            ("search: one word, one conversation", one),
            ("search: two words (last a prefix), 20 conversations", twenty),
            ("search: one word, whole store", store),
        ]
        let pair: [any ChatEngine] = [scrollback, sqlite]
        func run(_ engine: any ChatEngine, _ query: ([String], [String]?)) throws -> [Message] {
            if let s = engine as? ScrollbackEngine { return try s.search(query.0, in: query.1, limit: 20) }
            return try (engine as! SQLiteEngine).search(query.0, in: query.1, limit: 20)
        }
        for (title, params) in kinds {
            for (i, query) in params.enumerated() {
                let results = try pair.map { QueryResult.messages(try run($0, query)) }
                agreementChecks += 1
                figures.queries += 1
                if results[0] != results[1] {
                    mismatches.append("\(title) #\(i) \(query.0) in \(query.1.map { "\($0.count) conversations" } ?? "the store"): "
                                      + "scrollback vs sqlite-rowid (FTS5): \(results[0].difference(from: results[1]))")
                }
            }
            var summaries: [String: LatencySummary] = [:]
            for engine in pair {
                var samples: [UInt64] = []
                let deadline = nowNanoseconds() + UInt64(options.secondsPerQuery * 1e9)
                for n in 0..<options.iterations {
                    let query = params[n % params.count]
                    let t0 = nowNanoseconds()
                    let found = try run(engine, query)
                    let t1 = nowNanoseconds()
                    samples.append(t1 - t0)
                    if found.count == Int.min { log("") }
                    if t1 > deadline, samples.count >= options.minimumSamples { break }
                }
                summaries[engine.name] = LatencySummary(nanoseconds: samples)
            }
            figures.rows.append((title, summaries))
            log("  \(title): " + pair.map { e in
                summaries[e.name].map { "\(e.name) p50 \(formatMicroseconds($0.p50)) p99 \(formatMicroseconds($0.p99))" } ?? ""
            }.joined(separator: "; "))
        }
        log("  search index build: scrollback \(String(format: "%.1f", figures.buildSeconds[scrollback.name] ?? 0)) s, "
            + "\(formatBytes(figures.indexBytes[scrollback.name] ?? 0)); FTS5 \(String(format: "%.1f", figures.buildSeconds[sqlite.name] ?? 0)) s, "
            + "\(formatBytes(figures.indexBytes[sqlite.name] ?? 0)); scrollback send p50 \(formatMicroseconds(figures.sendOff?.p50 ?? .nan)) "
            + "without the index, \(formatMicroseconds(figures.sendOn?.p50 ?? .nan)) with it")
        searchFigures = figures
    }

    /// The search section of RESULTS.md.
    func searchMarkdown() -> String? {
        guard let f = searchFigures, !f.rows.isEmpty else { return nil }
        var table = Table(header: ["search (µs, p50 / p99)", "scrollback", "sqlite-rowid + FTS5", "× FTS5", "goal"], rows: [])
        for (i, row) in f.rows.enumerated() {
            let a = row.summaries["scrollback"], b = row.summaries["sqlite-rowid"]
            let r50 = a.flatMap { a in b.map { $0.p50 / a.p50 } }, r99 = a.flatMap { a in b.map { $0.p99 / a.p99 } }
            let goal: String
            if i < 2 { goal = "≥3×: " + ((r50 ?? 0) >= 3 ? "met" : "NOT met") } else { goal = "faster: " + ((r50 ?? 0) > 1 ? "met" : "NOT met") }
            table.rows.append([row.title, pair(a), pair(b), "\(formatRatio(r50)) / \(formatRatio(r99))", goal])
        }
        let ours = f.indexBytes["scrollback"] ?? 0, theirs = f.indexBytes["sqlite-rowid"] ?? 0
        table.rows.append(["index bytes", formatBytes(ours), formatBytes(theirs),
                           formatRatio(ours == 0 ? nil : Double(theirs) / Double(ours)),
                           "≤ FTS5: " + (ours <= theirs ? "met" : "NOT met")])
        table.rows.append(["index build (s)", String(format: "%.1f", f.buildSeconds["scrollback"] ?? 0),
                           String(format: "%.1f", f.buildSeconds["sqlite-rowid"] ?? 0), "", ""])
        if let off = f.sendOff, let on = f.sendOn {
            let cost = on.p50 / off.p50
            table.rows.append(["scrollback durable send, index off → on", "\(pair(off)) → \(pair(on))", "", String(format: "%.2f× cost", cost),
                               "≤1.5×: " + (cost <= 1.5 ? "met" : "NOT met")])
        }
        table.notes.append("\(f.queries) search answers compared with FTS5 (`\"word\"*` per word, ORDER BY createdAt DESC, rowid DESC). "
                           + "Each engine's index is built after every other phase; index bytes: Scrollback's two search trees, "
                           + "FTS5's growth of the SQLite file. × = FTS5's time / Scrollback's (> 1: Scrollback faster).")
        return markdown(table)
    }
}
