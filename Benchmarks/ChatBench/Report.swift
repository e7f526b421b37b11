import CSQLite
import Foundation
import Scrollback
import ScrollbackWorkload

extension Benchmark {
    var sqliteNames: [String] { engines.map(\.name).filter { $0.hasPrefix("sqlite") } }
    var hasScrollback: Bool { engines.contains { $0.name == "scrollback" } }

    /// Ratio "how many times faster Scrollback is" against the faster SQLite schema for one
    /// metric (lower is better). nil without Scrollback or SQLite.
    func ratio(_ summaries: [String: LatencySummary], _ metric: (LatencySummary) -> Double) -> (Double, String)? {
        guard let s = summaries["scrollback"] else { return nil }
        let best = sqliteNames.compactMap { name in summaries[name].map { (metric($0), name) } }.min { $0.0 < $1.0 }
        guard let best, metric(s) > 0 else { return nil }
        return (best.0 / metric(s), best.1)
    }

    /// Throughput ratio (higher is better) against the faster SQLite schema.
    func throughputRatio(_ values: [String: Double]) -> Double? {
        guard let s = values["scrollback"] else { return nil }
        guard let best = sqliteNames.compactMap({ values[$0] }).max(), best > 0 else { return nil }
        return s / best
    }

    func printTable() {
        let names = engines.map(\.name)
        var rows: [[String]] = []
        var header = ["query"]
        for n in names { header += ["\(n) p50", "p99"] }
        if hasScrollback && !sqliteNames.isEmpty { header += ["× p50", "× p99", "goal"] }
        rows.append(header)
        for (key, summaries) in latencies {
            var row = [key.title]
            for n in names {
                let s = summaries[n]
                row += [s.map { formatMicroseconds($0.p50) } ?? "—", s.map { formatMicroseconds($0.p99) } ?? "—"]
            }
            if hasScrollback && !sqliteNames.isEmpty {
                let r50 = ratio(summaries) { $0.p50 }
                let r99 = ratio(summaries) { $0.p99 }
                row += [formatRatio(r50?.0), formatRatio(r99?.0), goalText(key.goal, [r50?.0, r99?.0])]
            }
            rows.append(row)
        }
        func figureRow(_ title: String, _ values: [String: String], ratio: Double?, goal: String) {
            var row = [title]
            for n in names { row += [values[n] ?? "—", ""] }
            if hasScrollback && !sqliteNames.isEmpty { row += [formatRatio(ratio), "", goal] }
            rows.append(row)
        }
        let loadRates = loadSeconds.mapValues { Double(configuration.messages) / $0 }
        figureRow("bulk load (messages/s)", loadRates.mapValues { grouped(Int($0)) },
                  ratio: throughputRatio(loadRates), goal: goalText(5, [throughputRatio(loadRates)]))
        if !writerCommits.isEmpty {
            let rates = writerCommits.mapValues { Double($0.commits) / $0.seconds }
            figureRow("durable commits, 8 writers (/s)", rates.mapValues { grouped(Int($0)) },
                      ratio: throughputRatio(rates), goal: goalText(3, [throughputRatio(rates)]))
        }
        func sizeRatio(_ values: [String: UInt64]) -> Double? {
            guard let s = values["scrollback"], let best = sqliteNames.compactMap({ values[$0] }).min(), s > 0 else { return nil }
            return Double(best) / Double(s)
        }
        figureRow("bytes on disk after load", bytesAfterLoad.mapValues(formatBytes), ratio: sizeRatio(bytesAfterLoad), goal: "")
        let compactRatio = sizeRatio(bytesAfterCompaction)
        let sizeGoal = compactRatio.map { $0 >= 2 ? "met (≤ 0.5× SQLite's)" : "NOT met (≤ 0.5× SQLite's)" } ?? ""
        figureRow("bytes on disk after compaction", bytesAfterCompaction.mapValues(formatBytes), ratio: compactRatio,
                  goal: sizeGoal)
        let reopenGoal = reopenMilliseconds["scrollback"].map { $0 <= 20 ? "met (≤ 20 ms)" : "NOT met (≤ 20 ms)" } ?? ""
        figureRow("reopen + first query", reopenMilliseconds.mapValues { String(format: "%.2f ms", $0) }, ratio: nil, goal: reopenGoal)
        figureRow("RSS after its load (process)", residentAfterLoad.mapValues(formatBytes), ratio: nil, goal: "")

        var widths = [Int](repeating: 0, count: rows[0].count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var out = "\n"
        for (r, row) in rows.enumerated() {
            var line = ""
            for (i, cell) in row.enumerated() {
                line += i == 0 ? cell.rightPadded(widths[i]) : "  " + cell.leftPadded(widths[i])
            }
            out += line + "\n"
            if r == 0 { out += String(repeating: "-", count: line.count) + "\n" }
        }
        out += "× = the faster SQLite schema's time / Scrollback's time (> 1: Scrollback faster); for sizes, SQLite bytes / Scrollback bytes.\n"
        out += "timer floor (two clock reads, p50): \(timerOverheadNanoseconds) ns, included in every sample.\n"
        out += "peak RSS of the whole run: \(formatBytes(peakResidentBytes())); total time \(String(format: "%.1f", Double(nowNanoseconds() - started) / 1e9)) s\n"
        for (key, why) in skipped { out += "note on \(key.title): \(why)\n" }
        log(out)
    }

    func goalText(_ goal: Double?, _ ratios: [Double?]) -> String {
        guard let goal else { return "" }
        let known = ratios.compactMap { $0 }
        guard !known.isEmpty else { return "≥ \(formatRatio(goal))" }
        return (known.allSatisfy { $0 >= goal } ? "met " : "NOT met ") + "(≥ \(formatRatio(goal)))"
    }

    func writeJSON(_ path: String) throws {
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
            "configuration": [
                "messages": configuration.messages, "conversations": configuration.conversations,
                "users": configuration.users, "days": configuration.days, "seed": configuration.seed,
                "band": options.band?.rawValue ?? (configuration == .reference ? "reference" : "custom"),
                "quick": options.quick, "durability": options.durability == .full ? "full" : "normal",
                "cache_bytes": options.cacheBytes, "engines": engines.map(\.name),
                "distinct_parameters": options.distinctParameters, "iterations": options.iterations,
                "seconds_per_query": options.secondsPerQuery, "load_batch": options.loadBatch,
                "sends": options.sends, "writer_threads": options.writerThreads,
                "sends_per_writer": options.sendsPerWriter,
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
            "skipped": skipped.map { ["key": $0.0.rawValue, "reason": $0.1] },
        ]
        if !concurrency.isEmpty {
            root["concurrency"] = [
                "reader_threads": options.readerThreads, "seconds_per_count": options.concurrencySeconds,
                "writer_rate_target": options.writerRate, "simulated_users": options.simulatedUsers,
                "mix_percent": Dictionary(uniqueKeysWithValues: MixOperation.allCases.map { ($0.key, $0.weight) }),
                "live_messages_written": liveMessages,
                "figures": concurrency.map(\.json),
                "change_delivery": ["measured": false, "note": changeDeliveryNote] as [String: Any],
            ] as [String: Any]
        }
        if !cold.isEmpty {
            root["cold"] = [
                "method": "close; fsync + posix_fadvise(DONTNEED) on every store file; reopen; one pass; bytes = /proc/self/io read_bytes delta per query",
                "engines": Dictionary(uniqueKeysWithValues: cold.map { ($0.engine, $0.json) }),
            ] as [String: Any]
        }
        root["phase_seconds"] = Dictionary(phaseSeconds, uniquingKeysWith: +)
        if let s = scrollbackStatistics {
            root["scrollback_statistics"] = [
                "messages": s.messages, "conversations": s.conversations, "page_file_bytes": s.pageFileBytes,
                "raw_log_bytes": s.rawLogBytes, "sealed_log_bytes": s.sealedLogBytes, "garbage_ratio": s.garbageRatio,
                "page_cache_hits": s.pageCache.hits, "page_cache_misses": s.pageCache.misses,
                "block_cache_hits": s.blockCache.hits, "block_cache_misses": s.blockCache.misses,
                "commits": s.commits, "checkpoints": s.checkpoints, "compactions": s.compactions,
            ] as [String: Any]
        }
        let data = try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: path))
    }
}
