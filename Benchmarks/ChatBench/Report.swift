import CSQLite
import Foundation
import Scrollback
import ScrollbackWorkload

extension Benchmark {
    var engineNames: [String] { engines.map(\.name) }
    var sqliteNames: [String] { engineNames.filter { $0.hasPrefix("sqlite") } }
    var peers: [String] { engineNames.filter { $0 != "scrollback" } }
    var hasScrollback: Bool { engines.contains { $0.name == "scrollback" } }
    var showsRatios: Bool { hasScrollback && !peers.isEmpty }

    /// How many times faster Scrollback is than the fastest of `among` for one metric (lower
    /// is better), and which engine that is. nil without Scrollback or any of `among`.
    func ratio(_ summaries: [String: LatencySummary], among: [String], _ metric: (LatencySummary) -> Double)
        -> (Double, String)?
    {
        guard let s = summaries["scrollback"] else { return nil }
        let best = among.compactMap { name in summaries[name].map { (metric($0), name) } }.min { $0.0 < $1.0 }
        guard let best, metric(s) > 0 else { return nil }
        return (best.0 / metric(s), best.1)
    }

    /// Against the faster SQLite schema (the table's first ratio column).
    func ratio(_ summaries: [String: LatencySummary], _ metric: (LatencySummary) -> Double) -> (Double, String)? {
        ratio(summaries, among: sqliteNames, metric)
    }

    /// Throughput ratio (higher is better) against the best of `among`.
    func throughputRatio(_ values: [String: Double], among: [String]) -> (Double, String)? {
        guard let s = values["scrollback"] else { return nil }
        guard let best = among.compactMap({ n in values[n].map { ($0, n) } }).max(by: { $0.0 < $1.0 }), best.0 > 0 else { return nil }
        return (s / best.0, best.1)
    }

    /// Size ratio (smaller is better): the smallest of `among` over Scrollback's.
    func sizeRatio(_ values: [String: UInt64], among: [String]) -> (Double, String)? {
        guard let s = values["scrollback"], s > 0 else { return nil }
        guard let best = among.compactMap({ n in values[n].map { ($0, n) } }).min(by: { $0.0 < $1.0 }) else { return nil }
        return (Double(best.0) / Double(s), best.1)
    }

    // MARK: Goals

    func goalText(_ key: QueryKey, _ summaries: [String: LatencySummary]) -> String {
        var parts: [String] = []
        if let g = key.goal, !sqliteNames.isEmpty, hasScrollback {
            let r = [ratio(summaries) { $0.p50 }?.0, ratio(summaries) { $0.p99 }?.0].compactMap { $0 }
            if !r.isEmpty { parts.append("SQLite ≥\(goalRatio(g)): " + (r.allSatisfy { $0 >= g } ? "met" : "NOT met")) }
        }
        switch key.peerGoal {
        case .lmdbWithin(let bound):
            if let s = summaries["scrollback"], let l = summaries["lmdb"] {
                parts.append("LMDB ≤\(goalRatio(bound)): " + (s.p50 <= bound * l.p50 ? "met" : "NOT met"))
            }
        case .aheadOfKeyValue:
            if let s = summaries["scrollback"] {
                let kv = ["lmdb", "rocksdb"].compactMap { summaries[$0]?.p50 }
                if !kv.isEmpty { parts.append("ahead of KV: " + (kv.allSatisfy { s.p50 <= $0 } ? "met" : "NOT met")) }
            }
        case nil: break
        }
        return parts.joined(separator: "; ")
    }

    func goalText(_ goal: Double?, _ ratios: [Double?]) -> String {
        guard let goal else { return "" }
        let known = ratios.compactMap { $0 }
        guard !known.isEmpty else { return "SQLite ≥\(goalRatio(goal))" }
        return "SQLite ≥\(goalRatio(goal)): " + (known.allSatisfy { $0 >= goal } ? "met" : "NOT met")
    }

    /// 3×, 1.5×, 100×.
    func goalRatio(_ g: Double) -> String { g == g.rounded() ? "\(Int(g))×" : "\(g)×" }

    // MARK: Cells

    /// Compact microseconds for the side-by-side tables (no unit).
    func us(_ v: Double) -> String {
        guard v.isFinite else { return "—" }
        if v < 10 { return String(format: "%.2f", v) }
        if v < 100 { return String(format: "%.1f", v) }
        return grouped(Int(v.rounded()))
    }

    func pair(_ s: LatencySummary?) -> String {
        guard let s else { return "—" }
        return "\(us(s.p50)) / \(us(s.p99))"
    }

    func ratioPair(_ a: (Double, String)?, _ b: (Double, String)?, named: Bool) -> String {
        guard a != nil || b != nil else { return "—" }
        var text = "\(formatRatio(a?.0)) / \(formatRatio(b?.0))"
        if named, let n = a?.1 ?? b?.1 { text += " " + shortName(n) }
        return text
    }

    func shortName(_ n: String) -> String {
        switch n {
        case "sqlite-rowid": "(rowid)"
        case "sqlite-clustered": "(clustered)"
        default: "(\(n))"
        }
    }

    // MARK: Rows shared by the terminal and Markdown tables

    struct Table {
        var header: [String]
        var rows: [[String]]
        var notes: [String] = []
    }

    func latencyTable() -> Table {
        var header = ["query (µs, p50 / p99)"] + engineNames
        if showsRatios {
            if !sqliteNames.isEmpty { header.append("× SQLite") }
            header += ["× best peer", "goal"]
        }
        var rows: [[String]] = []
        for (key, summaries) in latencies {
            var row = [key.title] + engineNames.map { pair(summaries[$0]) }
            if showsRatios {
                if !sqliteNames.isEmpty {
                    row.append(ratioPair(ratio(summaries) { $0.p50 }, ratio(summaries) { $0.p99 }, named: false))
                }
                row.append(ratioPair(ratio(summaries, among: peers) { $0.p50 }, ratio(summaries, among: peers) { $0.p99 }, named: true))
                row.append(goalText(key, summaries))
            }
            rows.append(row)
        }
        return Table(header: header, rows: rows, notes: [
            "× = the faster SQLite schema's (or the best peer's) time / Scrollback's, p50 / p99 (> 1: Scrollback faster); the best peer is named. Goals: product.md (KV = LMDB and RocksDB, at p50).",
        ])
    }

    func figuresTable() -> Table {
        var header = ["figure"] + engineNames
        if showsRatios {
            if !sqliteNames.isEmpty { header.append("× SQLite") }
            header += ["× best peer", "goal"]
        }
        var rows: [[String]] = []
        func row(_ title: String, _ values: [String: String], sqlite: (Double, String)?, peer: (Double, String)?, goal: String) {
            var r = [title] + engineNames.map { values[$0] ?? "—" }
            if showsRatios {
                if !sqliteNames.isEmpty { r.append(formatRatio(sqlite?.0)) }
                r.append(peer.map { formatRatio($0.0) + " " + shortName($0.1) } ?? "—")
                r.append(goal)
            }
            rows.append(r)
        }
        let loadRates = loadSeconds.mapValues { Double(configuration.messages) / $0 }
        let loadSQLite = throughputRatio(loadRates, among: sqliteNames)
        let loadPeer = throughputRatio(loadRates, among: peers)
        var loadGoal = goalText(5, [loadSQLite?.0])
        let kvLoad = ["lmdb", "rocksdb"].compactMap { loadRates[$0] }
        if let s = loadRates["scrollback"], !kvLoad.isEmpty {
            loadGoal += (loadGoal.isEmpty ? "" : "; ") + "ahead of KV: " + (kvLoad.allSatisfy { s >= $0 } ? "met" : "NOT met")
        }
        row("bulk load (messages/s)", loadRates.mapValues { grouped(Int($0)) }, sqlite: loadSQLite, peer: loadPeer,
            goal: hasScrollback ? loadGoal : "")
        row("load time", loadSeconds.mapValues { String(format: "%.1f s", $0) }, sqlite: nil, peer: nil, goal: "")
        if let rate = batchedWriteRate {
            // Scrollback's bulk load above; its ordinary write path (atomic batches) here.
            row("batched writes, first \(grouped(batchedWriteMessages)) (messages/s)", ["scrollback": grouped(Int(rate))],
                sqlite: nil, peer: nil, goal: "bulk load above is \(String(format: "%.1f", (loadRates["scrollback"] ?? 0) / rate))× this")
        }
        if !writerCommits.isEmpty {
            let rates = writerCommits.mapValues { Double($0.commits) / $0.seconds }
            let r = throughputRatio(rates, among: sqliteNames)
            row("durable commits, \(options.writerThreads) writers (/s)", rates.mapValues { grouped(Int($0)) }, sqlite: r,
                peer: throughputRatio(rates, among: peers), goal: hasScrollback ? goalText(3, [r?.0]) : "")
        }
        row("bytes on disk after load", bytesAfterLoad.mapValues(formatBytes), sqlite: sizeRatio(bytesAfterLoad, among: sqliteNames),
            peer: sizeRatio(bytesAfterLoad, among: peers), goal: "")
        let compactSQLite = sizeRatio(bytesAfterCompaction, among: sqliteNames)
        let sizeGoal = compactSQLite.map { $0.0 >= 2 ? "SQLite ≤0.5×: met" : ($0.0 >= 1 / 0.6 ? "SQLite ≤0.5×: NOT met (≤0.6×: met)" : "SQLite ≤0.5×: NOT met") } ?? ""
        row(options.skip.contains("compaction") || !options.wants(.compaction) ? "bytes on disk (end of run)" : "bytes on disk after compaction",
            bytesAfterCompaction.mapValues(formatBytes), sqlite: compactSQLite, peer: sizeRatio(bytesAfterCompaction, among: peers),
            goal: sizeGoal)
        if !compactionSeconds.isEmpty {
            row("compaction time", compactionSeconds.mapValues { String(format: "%.1f s", $0) }, sqlite: nil, peer: nil, goal: "")
        }
        let reopenGoal = reopenMilliseconds["scrollback"].map { $0 <= 20 ? "≤20 ms: met" : "≤20 ms: NOT met" } ?? ""
        row("reopen + first query", reopenMilliseconds.mapValues { String(format: "%.2f ms", $0) }, sqlite: nil, peer: nil, goal: reopenGoal)
        row("RSS after its load (process)", residentAfterLoad.mapValues(formatBytes), sqlite: nil, peer: nil, goal: "")
        return Table(header: header, rows: rows, notes: [
            "× for rates: Scrollback's / the best one's; for sizes: the smallest one's bytes / Scrollback's (> 1: Scrollback better).",
        ])
    }

    func concurrencyTables() -> [Table] {
        guard !concurrency.isEmpty else { return [] }
        let counts = options.readerThreads
        func figure(_ engine: String, _ threads: Int) -> ConcurrencyFigure? {
            concurrency.first { $0.engine == engine && $0.threads == threads }
        }
        var readsHeader = ["reader threads: reads/s (p50 / p99 µs)"] + engineNames
        if showsRatios {
            if !sqliteNames.isEmpty { readsHeader.append("× SQLite reads/s") }
            readsHeader.append("× best peer")
            if !sqliteNames.isEmpty { readsHeader.append("goal") }
        }
        var reads: [[String]] = []
        var writer: [[String]] = []
        for t in counts {
            var row = ["\(t)"]
            var rates: [String: Double] = [:]
            for e in engineNames {
                guard let f = figure(e, t) else { row.append("—"); continue }
                rates[e] = f.readsPerSecond
                row.append("\(grouped(Int(f.readsPerSecond))) (\(us(f.reads.p50)) / \(us(f.reads.p99)))")
            }
            if showsRatios {
                let r = throughputRatio(rates, among: sqliteNames)
                if !sqliteNames.isEmpty { row.append(formatRatio(r?.0)) }
                row.append(throughputRatio(rates, among: peers).map { formatRatio($0.0) + " " + shortName($0.1) } ?? "—")
                if !sqliteNames.isEmpty { row.append(goalText(3, [r?.0])) }
            }
            reads.append(row)
            writer.append(["\(t)"] + engineNames.map { e in
                figure(e, t).map { "\(String(format: "%.0f", $0.writerRate)) (\(formatMicroseconds($0.writer.p99)))" } ?? "—"
            })
        }
        var flat: [String] = []
        if let s = concurrency.filter({ $0.engine == "scrollback" }).map(\.reads.p99).max(),
           let lo = concurrency.filter({ $0.engine == "scrollback" }).map(\.reads.p99).min(), lo > 0 {
            flat.append(String(format: "Scrollback's read p99 across thread counts: %@ to %@ (%.1f×; the goal is a flat p99 while the writer runs).", formatMicroseconds(lo), formatMicroseconds(s), s / lo))
        }
        return [
            Table(header: readsHeader, rows: reads, notes: [
                "\(grouped(options.simulatedUsers)) simulated users spread over the reader threads, each with 20 conversations (2 heavy rooms); mix: latest 20 30%, next keyset page 15%, unread count 20%, feed of its 20 conversations 10%, their previews 10%, conversation list 5%, get by id 10%. \(String(format: "%g", options.concurrencySeconds)) s per thread count; p50/p99 over all operations.",
                "SQLite: one connection per thread (WAL), the cache budget split between them; LMDB: a read transaction per thread; RocksDB: one DB, shared block cache; Scrollback: one shared MessageStore.",
            ] + flat),
            Table(header: ["reader threads: writer sends/s (p99)"] + engineNames, rows: writer, notes: [
                "One writer thread appending durably (one message per commit) at a target of \(String(format: "%g", options.writerRate))/s while the readers run.",
                "Change delivery (send → subscriber): \(changeDeliveryNote).",
            ]),
        ]
    }

    /// Scrollback's durable commits of the write phases, split by whether one of its
    /// checkpoints or seals ran during the call (issue: commit p99 with and without one in flight).
    func commitsBesideBackgroundTable() -> Table? {
        guard !commitsBesideBackground.isEmpty else { return nil }
        let rows = commitsBesideBackground.map { c -> [String] in
            let total = c.beside.samples + c.alone.samples
            return [c.key.title, "\(c.beside.samples) of \(total)", c.beside.samples > 0 ? pair(c.beside) : "—",
                    c.alone.samples > 0 ? pair(c.alone) : "—",
                    c.beside.samples > 0 && c.alone.samples > 0 ? String(format: "%.2f×", c.beside.p99 / c.alone.p99) : "—"]
        }
        return Table(
            header: ["scrollback durable commits", "met a checkpoint or seal", "those (µs, p50 / p99)", "the others (µs, p50 / p99)", "p99 ratio"],
            rows: rows, notes: [
                "A commit met background work when one of the store's checkpoints (from its plan, which holds the writer lock, "
                    + "to its meta page) or seals ran at some moment during the call: `MessageStore.backgroundActivity` read just "
                    + "before and after each timed call (`BackgroundActivity.overlapped(since:)`).",
            ])
    }

    func coldTable() -> Table? {
        guard !cold.isEmpty else { return nil }
        let rows = cold.map { f -> [String] in
            [f.engine, pair(f.latest.latency), formatBytes(UInt64(f.latest.meanBytes)), pair(f.keyset.latency),
             formatBytes(UInt64(f.keyset.meanBytes)), "\(formatBytes(f.residentAfterEviction)) of \(formatBytes(f.fileBytes))",
             formatBytes(f.reopenBytes)]
        }
        return Table(
            header: ["cold reads", "latest 20 (µs, p50 / p99)", "read/query", "keyset pages (µs)", "read/query", "resident after eviction", "read by reopen"],
            rows: rows, notes: [
                "Each engine closed, its files fsynced and dropped from the OS page cache (posix_fadvise DONTNEED; mincore confirms what stayed), reopened, then one pass: latest 20 of the \(cold.first?.latest.queries ?? 0) sampled conversations; again for the first 10 keyset pages of each sampled heavy room. Bytes = /proc/self/io read_bytes (reads from the device, readahead included) per query, mean.",
            ])
    }

    // MARK: Terminal

    func render(_ table: Table) -> String {
        var widths = [Int](repeating: 0, count: table.header.count)
        for row in [table.header] + table.rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var out = ""
        for (r, row) in ([table.header] + table.rows).enumerated() {
            var line = ""
            for (i, cell) in row.enumerated() {
                line += i == 0 ? cell.rightPadded(widths[i]) : "  " + (i == row.count - 1 && showsRatios && r > 0 && table.header.last == "goal" ? cell.rightPadded(widths[i]) : cell.leftPadded(widths[i]))
            }
            while line.hasSuffix(" ") { line.removeLast() }
            out += line + "\n"
            if r == 0 { out += String(repeating: "-", count: line.count) + "\n" }
        }
        for n in table.notes { out += n + "\n" }
        return out
    }

    func printTable() {
        var out = "\n" + render(latencyTable()) + "\n" + render(figuresTable())
        for t in concurrencyTables() { out += "\n" + render(t) }
        if let c = coldTable() { out += "\n" + render(c) }
        out += "\ntimer floor (two clock reads, p50): \(timerOverheadNanoseconds) ns, included in every sample.\n"
        out += "phases: " + phaseSeconds.map { "\($0.0) \(String(format: "%.1f", $0.1)) s" }.joined(separator: ", ") + "\n"
        out += "peak RSS of the whole run: \(formatBytes(peakResidentBytes())); total time \(String(format: "%.1f", Double(nowNanoseconds() - started) / 1e9)) s\n"
        for (key, why) in skipped { out += "note on \(key.title): \(why)\n" }
        log(out)
    }

    // MARK: JSON

    func writeJSON(_ path: String) throws {
        let data = try JSONSerialization.data(withJSONObject: jsonRoot(), options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: path))
    }

    func jsonRoot() -> [String: Any] {
        let git = gitCommit()
        let formatter = ISO8601DateFormatter()
        var queries: [[String: Any]] = []
        for (key, summaries) in latencies {
            var q: [String: Any] = [
                "key": key.rawValue, "title": key.title,
                "engines": summaries.mapValues { $0.json },
            ]
            if let g = key.goal { q["goal_ratio"] = g }
            if let r = ratio(summaries, { $0.p50 }) { q["ratio_p50"] = r.0; q["faster_sqlite_p50"] = r.1 }
            if let r = ratio(summaries, { $0.p99 }) { q["ratio_p99"] = r.0; q["faster_sqlite_p99"] = r.1 }
            if let r = ratio(summaries, among: peers, { $0.p50 }) { q["ratio_peer_p50"] = r.0; q["best_peer_p50"] = r.1 }
            if let r = ratio(summaries, among: peers, { $0.p99 }) { q["ratio_peer_p99"] = r.0; q["best_peer_p99"] = r.1 }
            let goal = goalText(key, summaries)
            if !goal.isEmpty { q["goal"] = goal }
            queries.append(q)
        }
        var engineFigures: [String: Any] = [:]
        for e in engines {
            var f: [String: Any] = [:]
            if let s = loadSeconds[e.name] {
                f["load_seconds"] = s
                f["load_messages_per_second"] = Double(configuration.messages) / s
            }
            if let b = bytesAfterLoad[e.name] { f["bytes_after_load"] = b }
            if let b = bytesAfterCompaction[e.name] { f["bytes_after_compaction"] = b }
            if let s = compactionSeconds[e.name] { f["compaction_seconds"] = s }
            if let r = reopenMilliseconds[e.name] { f["reopen_ms"] = r }
            if let r = residentAfterLoad[e.name] { f["rss_after_load_bytes"] = r }
            if let w = writerCommits[e.name] {
                f["writer_threads"] = options.writerThreads
                f["writer_commits"] = w.commits
                f["writer_seconds"] = w.seconds
                f["writer_commits_per_second"] = Double(w.commits) / w.seconds
            }
            engineFigures[e.name] = f
        }
        var root: [String: Any] = [
            "format": "scrollback-bench/1",
            "date": formatter.string(from: Date()),
            "commit": git.commit,
            "dirty": git.dirty,
            "machine": machineDescription(),
            "sqlite_version": String(cString: sqlite3_libversion()),
            "lmdb_version": lmdbVersion,
            "rocksdb_version": rocksDBVersion,
            "configuration": [
                "messages": configuration.messages, "conversations": configuration.conversations,
                "users": configuration.users, "days": configuration.days, "seed": configuration.seed,
                "band": bandLabel,
                "quick": options.quick, "durability": options.durability == .full ? "full" : "normal",
                "cache_bytes": options.cacheBytes, "engines": engines.map(\.name),
                "distinct_parameters": options.distinctParameters, "iterations": options.iterations,
                "warm_up_iterations": options.warmUpIterations,
                "rounds": options.rounds,
                "seconds_per_query": options.secondsPerQuery, "load_batch": options.loadBatch,
                "sends": options.sends, "writer_threads": options.writerThreads,
                "sends_per_writer": options.sendsPerWriter,
                "reader_threads": options.readerThreads, "concurrency_seconds": options.concurrencySeconds,
                "writer_rate": options.writerRate, "simulated_users": options.simulatedUsers,
                "skipped_phases": options.skip.sorted(), "lmdb_map_bytes": lmdbMapBytes,
            ] as [String: Any],
            "dataset": [
                "passed": validation?.passed ?? false,
                "figures": (validation?.figures ?? []).map { f -> [String: Any] in
                    var d: [String: Any] = ["name": f.name, "value": f.value, "reference": f.reference, "rule": f.rule, "passed": f.passed]
                    if let n = f.number, n.isFinite { d["number"] = n }
                    return d
                },
            ] as [String: Any],
            "sample": sampleDescription,
            "queries": queries,
            "engines": engineFigures,
            "agreement": ["checked": agreementChecks, "mismatches": mismatches] as [String: Any],
            "peak_rss_bytes": peakResidentBytes(),
            "timer_overhead_ns": timerOverheadNanoseconds,
            "total_seconds": Double(nowNanoseconds() - started) / 1e9,
            "phase_seconds": Dictionary(phaseSeconds, uniquingKeysWith: +),
            "skipped": skipped.map { ["key": $0.0.rawValue, "reason": $0.1] },
            "bands": [bandEntry()],
        ]
        if !concurrency.isEmpty {
            root["concurrency"] = [
                "reader_threads": options.readerThreads, "seconds_per_count": options.concurrencySeconds,
                "writer_rate_target": options.writerRate, "simulated_users": options.simulatedUsers,
                "mix_percent": Dictionary(uniqueKeysWithValues: MixOperation.allCases.map { ($0.key, $0.weight) }),
                "live_messages_written": liveMessages,
                "figures": concurrency.map(\.json),
                "change_delivery": changeDelivery?.json ?? ["measured": false, "note": changeDeliveryNote] as [String: Any],
            ] as [String: Any]
        }
        if !cold.isEmpty {
            root["cold"] = [
                "method": "close; fsync + posix_fadvise(DONTNEED) on every store file; reopen; one pass; bytes = /proc/self/io read_bytes delta per query",
                "engines": Dictionary(uniqueKeysWithValues: cold.map { ($0.engine, $0.json) }),
            ] as [String: Any]
        }
        if !commitsBesideBackground.isEmpty {
            root["scrollback_commits_beside_background"] = commitsBesideBackground.map {
                ["query": $0.key.rawValue, "beside": $0.beside.json, "alone": $0.alone.json] as [String: Any]
            }
        }
        if let s = scrollbackStatistics {
            root["scrollback_statistics"] = [
                "messages": s.messages, "conversations": s.conversations, "page_file_bytes": s.pageFileBytes,
                "raw_log_bytes": s.rawLogBytes, "sealed_log_bytes": s.sealedLogBytes, "garbage_ratio": s.garbageRatio,
                "page_cache_hits": s.pageCache.hits, "page_cache_misses": s.pageCache.misses,
                "block_cache_hits": s.blockCache.hits, "block_cache_misses": s.blockCache.misses,
                "commits": s.commits, "checkpoints": s.checkpoints, "compactions": s.compactions,
            ] as [String: Any]
        }
        return root
    }
}
