import Foundation
import Scrollback
import ScrollbackWorkload

// Results a person reads: Benchmarks/RESULTS.md (written by the reference run, and by each
// band run for its own file), and Benchmarks/bands.json, where the bands' figures of
// separate runs accumulate (one record per band and engine, the latest run's); the bands
// table of RESULTS.md and plot.py's second chart are drawn from it.

/// The read queries the bands compare (workload.md's growth goal is about latest 20).
let bandQueryKeys: [QueryKey] = [.latest20, .keyset, .unreadNear, .unreadFarHeavy, .feed]

extension Benchmark {
    var bandLabel: String { options.bandLabel }

    // MARK: Bands

    func bandEntry() -> [String: Any] {
        let git = gitCommit()
        let date = ISO8601DateFormatter().string(from: Date())
        var engines: [String: Any] = [:]
        for name in engineNames {
            var e: [String: Any] = ["date": date, "commit": String(git.commit.prefix(10)), "dirty": git.dirty]
            if let s = loadSeconds[name] {
                e["load_seconds"] = s
                e["load_messages_per_second"] = Double(configuration.messages) / s
            }
            if let b = bytesAfterLoad[name] { e["bytes_after_load"] = b }
            if let b = bytesAfterCompaction[name] { e["bytes_after_compaction"] = b }
            var q: [String: Any] = [:]
            for (key, summaries) in latencies where bandQueryKeys.contains(key) {
                if let s = summaries[name] { q[key.rawValue] = ["p50_us": s.p50, "p99_us": s.p99] }
            }
            e["queries"] = q
            if let c = cold.first(where: { $0.engine == name }) {
                e["cold_latest20"] = ["p50_us": c.latest.latency.p50, "p99_us": c.latest.latency.p99]
            }
            engines[name] = e
        }
        let m = machineDescription()
        return [
            "band": bandLabel, "messages": configuration.messages, "conversations": configuration.conversations,
            "users": configuration.users, "durability": options.durability == .full ? "full" : "normal",
            "cache_bytes": options.cacheBytes, "machine": "\(m["nproc"] ?? "?") cores, \(m["cpu_model"] ?? "?")",
            "engines": engines,
        ]
    }

    /// Merges this run's band record into `path` (per band and engine, the latest run wins).
    func updateBands(_ path: String) throws -> [[String: Any]] {
        var entries: [[String: Any]] = []
        if let data = FileManager.default.contents(atPath: path),
           let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let list = root["entries"] as? [[String: Any]] {
            entries = list
        }
        let mine = bandEntry()
        let band = mine["band"] as? String
        let messages = mine["messages"] as? Int
        if let i = entries.firstIndex(where: { ($0["band"] as? String) == band && ($0["messages"] as? Int) == messages }) {
            var merged = entries[i]
            var engines = merged["engines"] as? [String: Any] ?? [:]
            for (k, v) in mine["engines"] as? [String: Any] ?? [:] { engines[k] = v }
            merged = mine
            merged["engines"] = engines
            entries[i] = merged
        } else {
            entries.append(mine)
        }
        entries.sort { ($0["messages"] as? Int ?? 0) < ($1["messages"] as? Int ?? 0) }
        let root: [String: Any] = ["format": "scrollback-bench-bands/1", "entries": entries]
        let data = try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: path))
        return entries
    }

    func bandsMarkdown(_ entries: [[String: Any]]) -> String {
        func cell(_ q: [String: Any]?, _ key: String) -> String {
            guard let s = q?[key] as? [String: Any], let p50 = s["p50_us"] as? Double, let p99 = s["p99_us"] as? Double else { return "—" }
            return "\(us(p50)) / \(us(p99))"
        }
        var out = "| band | messages | engine | load | load msg/s | bytes after load | latest 20 | keyset page | unread, near | unread, 29 d, 10k+ room | feed of 20 | run |\n"
        out += "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
        var growth: [String: [(Int, Double)]] = [:]
        for entry in entries {
            let band = entry["band"] as? String ?? "?"
            let messages = entry["messages"] as? Int ?? 0
            let engines = entry["engines"] as? [String: Any] ?? [:]
            for name in allEngineNames {
                guard let e = engines[name] as? [String: Any] else { continue }
                let q = e["queries"] as? [String: Any]
                let load = (e["load_seconds"] as? Double).map { $0 >= 600 ? String(format: "%.0f min", $0 / 60) : String(format: $0 < 10 ? "%.1f s" : "%.0f s", $0) } ?? "—"
                let rate = (e["load_messages_per_second"] as? Double).map { grouped(Int($0)) } ?? "—"
                let bytes = (e["bytes_after_load"] as? NSNumber).map { formatBytes($0.uint64Value) } ?? "—"
                let run = "\(String((e["date"] as? String ?? "?").prefix(10))) `\(e["commit"] as? String ?? "?")`"
                out += "| \(band) | \(grouped(messages)) | \(name) | \(load) | \(rate) | \(bytes) | \(cell(q, "latest20")) | \(cell(q, "keyset")) | \(cell(q, "unreadNear")) | \(cell(q, "unreadFarHeavy")) | \(cell(q, "feed")) | \(run) |\n"
                if let s = (q?["latest20"] as? [String: Any])?["p99_us"] as? Double { growth[name, default: []].append((messages, s)) }
            }
        }
        out += "\nLatencies in µs, p50 / p99, warm (after the agreement pass), one thread. "
        var lines: [String] = []
        for name in allEngineNames {
            guard let points = growth[name], let first = points.first, let last = points.last, last.0 > first.0 else { continue }
            lines.append(String(format: "%@ %.2f× (%@ → %@ messages)", name, last.1 / first.1, grouped(first.0), grouped(last.0)))
        }
        out += lines.isEmpty
            ? "Growth of latest 20's p99 (goal: within 2× from 1M to 100M messages): needs two bands.\n"
            : "Growth of latest 20's p99, largest band over smallest (goal: within 2× from 1M to 100M messages): " + lines.joined(separator: "; ") + ".\n"
        return out
    }

    // MARK: Markdown

    func markdown(_ table: Table) -> String {
        func escape(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }
        var out = "| " + table.header.map(escape).joined(separator: " | ") + " |\n"
        out += "|" + table.header.enumerated().map { i, _ in i == 0 || (i == table.header.count - 1 && table.header.last == "goal") ? "---|" : "---:|" }.joined() + "\n"
        for row in table.rows { out += "| " + row.map(escape).joined(separator: " | ") + " |\n" }
        if !table.notes.isEmpty { out += "\n" + table.notes.joined(separator: "\n") + "\n" }
        return out
    }

    static let bandsBegin = "<!-- bands:begin (written by scrollback-bench from bands.json) -->"
    static let bandsEnd = "<!-- bands:end -->"

    func resultsMarkdown(bands: String) -> String {
        let git = gitCommit()
        let m = machineDescription()
        let memory = (m["memory_bytes"] as? UInt64).map(formatBytes) ?? "?"
        var load = "?"
        if let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) { load = text.split(separator: " ").prefix(3).joined(separator: " ") }
        let date = ISO8601DateFormatter().string(from: Date())
        var out = "# Benchmark results\n\n"
        out += "Written by `scrollback-bench` (`make bench`; `Benchmarks/README.md` says what each figure means). Do not edit by hand.\n\n"
        out += "- date: \(date)\n"
        out += "- commit: `\(String(git.commit.prefix(10)))`\(git.dirty ? " (with uncommitted changes)" : "")\n"
        out += "- machine: \(m["nproc"] ?? "?") cores, \(m["cpu_model"] ?? "?"), \(memory), Linux \(m["kernel"] ?? "?"); load average at the end \(load)\n"
        out += "- dataset: \(bandLabel), \(grouped(configuration.messages)) messages, \(grouped(configuration.conversations)) conversations, \(grouped(configuration.users)) users, \(configuration.days) days, seed \(configuration.seed)\(validation?.passed == true ? " (passes every workload rule)" : "")\n"
        out += "- engines: \(engineNames.joined(separator: ", ")); \(libraryVersions); cache \(formatBytes(UInt64(options.cacheBytes))) each; durability \(options.durability == .full ? "full" : "normal")\n"
        out += "- timing: per query and engine up to \(grouped(options.iterations)) timed runs (\(String(format: "%g", options.secondsPerQuery)) s cap) in \(options.rounds) round\(options.rounds == 1 ? "" : "s"), the engines in turn in each (every other round in reverse order), each engine's share of a round after \(grouped(options.warmUpIterations)) untimed warm-up runs (at most \(String(format: "%g", options.warmUpSeconds / Double(options.rounds))) s)\n"
        out += "- agreement: every engine returned equal results for all \(grouped(agreementChecks)) checked queries\n"
        out += "- run time: \(String(format: "%.0f", Double(nowNanoseconds() - started) / 1e9)) s (" + phaseSeconds.map { "\($0.0) \(String(format: "%.0f", $0.1)) s" }.joined(separator: ", ") + ")\n\n"
        out += "![latency per query and engine](bench.png)\n\n"
        out += "## Queries\n\n" + markdown(latencyTable())
        out += "\n## Throughput, sizes, reopen\n\n" + markdown(figuresTable())
        let c = concurrencyTables()
        if !c.isEmpty {
            out += "\n## Readers with a writer\n\n" + markdown(c[0]) + "\n" + markdown(c[1])
        }
        if let t = commitsBesideBackgroundTable() { out += "\n## Durable commits beside Scrollback's background work\n\n" + markdown(t) }
        if let t = coldTable() { out += "\n## Cold reads\n\n" + markdown(t) }
        if let search = searchMarkdown() { out += "\n## Search\n\n" + search }
        out += "\n## Bands\n\n![latency growth across the bands](bands.png)\n\n"
        out += Self.bandsBegin + "\n" + bands + Self.bandsEnd + "\n"
        return out
    }

    /// RESULTS.md (reference run) or RESULTS-<band>.md (other bands, whose bands table also
    /// goes into RESULTS.md), and bands.json.
    func writeResults(_ directory: String) throws {
        let entries = try updateBands(directory + "/bands.json")
        let bands = bandsMarkdown(entries)
        let main = directory + "/RESULTS.md"
        if bandLabel == "reference" {
            try resultsMarkdown(bands: bands).write(toFile: main, atomically: true, encoding: .utf8)
            log("wrote \(main) and \(directory)/bands.json")
        } else {
            let own = directory + "/RESULTS-\(bandLabel).md"
            try resultsMarkdown(bands: bands).replacingOccurrences(of: "](bench.png)", with: "](bench-\(bandLabel).png)")
                .write(toFile: own, atomically: true, encoding: .utf8)
            if let text = try? String(contentsOfFile: main, encoding: .utf8),
               let a = text.range(of: Self.bandsBegin), let b = text.range(of: Self.bandsEnd), a.upperBound <= b.lowerBound {
                let updated = text.replacingCharacters(in: a.upperBound..<b.lowerBound, with: "\n" + bands)
                try updated.write(toFile: main, atomically: true, encoding: .utf8)
            }
            log("wrote \(own), \(directory)/bands.json and the bands table of \(main)")
        }
    }
}
