import ArgumentParser
import Scrollback
import ScrollbackJSON

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the store's counters and sizes.",
        discussion: """
            Opens the store read-only (safe on a live store). "readers" shows the other \
            read-only opens of the store and how far behind the oldest one's snapshot is; a \
            reader that holds an old snapshot makes the writer keep the pages and log segments \
            it may read.
            """)

    @Argument(help: "The store directory.")
    var store: String

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    func run() throws {
        let store = try StoreAccess.openReadOnly(self.store)
        defer { try? store.close() }
        let s = try store.statistics
        let space = try store.spaceUsage()
        let out = Output.standardOutput
        if json {
            out.line(Self.json(s, space))
        } else {
            func cache(_ c: StoreStatistics.Cache) -> String {
                let lookups = c.hits + c.misses
                let ratio = lookups == 0 ? "-" : percent(Double(c.hits) / Double(lookups))
                return "\(bytes(UInt64(max(0, c.bytes)))) of \(bytes(UInt64(max(0, c.capacityBytes)))), "
                    + "\(c.hits) hits, \(c.misses) misses (hit ratio \(ratio)), \(c.evictions) evictions"
            }
            var rows: [[String]] = [
                ["messages", String(s.messages)],
                ["conversations", String(s.conversations)],
                ["page file", bytes(s.pageFileBytes)],
                ["raw log", bytes(s.rawLogBytes)],
                ["sorted runs (sealed history)", bytes(s.sealedLogBytes)],
                ["total on disk", bytes(s.totalBytes)],
                ["garbage ratio", percent(s.garbageRatio)],
                ["page cache", cache(s.pageCache)],
                ["block cache", cache(s.blockCache)],
                ["commits since open", String(s.commits)],
                ["checkpoints since open", String(s.checkpoints)],
                ["compactions", String(s.compactions)],
                ["readers", Self.readers(s)],
            ]
            if s.compactions > 0 {
                rows.append(["last compaction", "log \(bytes(s.lastCompactionBytesBefore)) -> \(bytes(s.lastCompactionBytesAfter))"])
            }
            rows.append(["where the bytes are", ""])
            for entry in space where entry.bytes > 0 { rows.append(["  " + entry.structure, bytes(entry.bytes)]) }
            Query.printRows(rows, to: out)
        }
        out.flush()
    }

    static func readers(_ s: StoreStatistics) -> String {
        guard let r = s.oldestReader else { return "none besides this one" }
        let who = r.oldestProcessID.map { "pid \($0)" } ?? "an unreadable slot"
        return "\(r.liveReaders) live besides this one; oldest: \(who), checkpoint transaction \(r.oldestTransaction) "
            + "(\(r.transactionsBehind) transactions behind)"
    }

    static func json(_ s: StoreStatistics, _ space: [SpaceUsageEntry]) -> String {
        var w = JSONWriter()
        func cache(_ c: StoreStatistics.Cache) {
            w.raw("{\"hits\":"); w.integer(c.hits)
            w.raw(",\"misses\":"); w.integer(c.misses)
            w.raw(",\"evictions\":"); w.integer(c.evictions)
            w.raw(",\"bytes\":"); w.integer(c.bytes)
            w.raw(",\"capacityBytes\":"); w.integer(c.capacityBytes)
            w.raw("}")
        }
        w.raw("{\"messages\":"); w.integer(s.messages)
        w.raw(",\"conversations\":"); w.integer(s.conversations)
        w.raw(",\"pageFileBytes\":"); w.integer(s.pageFileBytes)
        w.raw(",\"rawLogBytes\":"); w.integer(s.rawLogBytes)
        w.raw(",\"sealedLogBytes\":"); w.integer(s.sealedLogBytes)
        w.raw(",\"totalBytes\":"); w.integer(s.totalBytes)
        w.raw(",\"garbageRatio\":"); w.raw(s.garbageRatio.isFinite ? String(s.garbageRatio) : "null")
        w.raw(",\"pageCache\":"); cache(s.pageCache)
        w.raw(",\"blockCache\":"); cache(s.blockCache)
        w.raw(",\"commits\":"); w.integer(s.commits)
        w.raw(",\"checkpoints\":"); w.integer(s.checkpoints)
        w.raw(",\"compactions\":"); w.integer(s.compactions)
        w.raw(",\"lastCompactionBytesBefore\":"); w.integer(s.lastCompactionBytesBefore)
        w.raw(",\"lastCompactionBytesAfter\":"); w.integer(s.lastCompactionBytesAfter)
        w.raw(",\"readers\":")
        if let r = s.oldestReader {
            w.raw("{\"live\":"); w.integer(r.liveReaders)
            w.raw(",\"oldestPid\":")
            if let pid = r.oldestProcessID { w.integer(pid) } else { w.null() }
            w.raw(",\"oldestTransaction\":"); w.integer(r.oldestTransaction)
            w.raw(",\"transactionsBehind\":"); w.integer(r.transactionsBehind)
            w.raw("}")
        } else {
            w.null()
        }
        w.raw(",\"space\":{")
        for (i, entry) in space.enumerated() {
            if i > 0 { w.raw(",") }
            w.string(entry.structure); w.raw(":"); w.integer(entry.bytes)
        }
        w.raw("}}")
        return w.text
    }
}

/// 1536 -> "1.5 KiB".
func bytes(_ n: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(n)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    if unit == 0 { return "\(n) B" }
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(tenths % 10) \(units[unit])"
}

func percent(_ fraction: Double) -> String {
    guard fraction.isFinite else { return "-" }
    let tenths = Int((fraction * 1000).rounded())
    return "\(tenths / 10).\(tenths % 10)%"
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every structure of a store; exit 1 and print each problem found.",
        discussion: """
            Prints "ok" and exits 0 for a healthy store. Otherwise prints one problem per line \
            on stdout and exits 1; a store too damaged to open is one problem.
            """)

    @Argument(help: "The store directory.")
    var store: String

    func run() throws {
        guard StoreAccess.exists(self.store) else { throw CLIError("no Scrollback store at \(self.store)") }
        let out = Output.standardOutput
        var problems: [String]
        do {
            let store = try StoreAccess.openReadOnly(self.store)
            do {
                problems = try store.verify()
            } catch {
                problems = ["\(error)"]
            }
            do {
                try store.close()
            } catch {
                problems.append("closing the store failed: \(error)")
            }
        } catch let error as ScrollbackError {
            switch error {
            case .corrupted, .unsupportedVersion, .notAStore: problems = ["cannot open the store: \(error)"]
            default: throw error
            }
        }
        if problems.isEmpty {
            out.line("ok")
            out.flush()
            return
        }
        for problem in problems { out.line(problem) }
        out.flush()
        printError("scrollback: verify found \(problems.count) problem\(problems.count == 1 ? "" : "s") in \(self.store)")
        throw ExitStatus(code: 1)
    }
}

struct Checkpoint: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the trees to the page file (bounds the replay after a crash).")

    @Argument(help: "The store directory.")
    var store: String

    func run() throws {
        let store = try StoreAccess.openExisting(self.store, command: "checkpoint")
        try store.checkpoint()
        try store.close()
        Output.standardOutput.line("checkpoint done")
    }
}

struct SearchIndexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search-index",
        abstract: "Turn the search index on and build it over the messages already stored (or --off).",
        discussion: """
            The build runs in steps of at most 2,000 messages, each its own durable commit; writes made \
            meanwhile are indexed by their own commits. Interrupted (a crash, Ctrl-C), it keeps the steps \
            done: run it again to finish. On a store whose index is built it does nothing. From then on every \
            write maintains the index, and `query STORE search` and the exec op "search" answer. \
            --off turns the index off and frees its pages (one durable commit); running it again without \
            --off rebuilds it from the messages.
            """)

    @Argument(help: "The store directory.")
    var store: String

    @Flag(help: "Turn the index off and free its pages.")
    var off = false

    func run() throws {
        let store = try StoreAccess.openExisting(self.store, command: "search-index")
        if off {
            try store.disableSearchIndex()
            try store.close()
            Output.standardOutput.line("search index off")
            return
        }
        try store.enableSearchIndex()
        let messages = try store.statistics.messages
        try store.close()
        Output.standardOutput.line("search index on (\(messages) messages)")
    }
}

struct Compact: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rewrite live messages of wasteful log segments and reclaim their space.")

    @Argument(help: "The store directory.")
    var store: String

    @Flag(help: "Print the report as one JSON object.")
    var json = false

    func run() throws {
        let store = try StoreAccess.openExisting(self.store, command: "compact")
        let report = try store.compact()
        try store.close()
        if json {
            var w = JSONWriter()
            w.raw("{\"segmentsRewritten\":"); w.integer(report.segmentsRewritten)
            w.raw(",\"recordsMoved\":"); w.integer(report.recordsMoved)
            w.raw(",\"logBytesBefore\":"); w.integer(report.logBytesBefore)
            w.raw(",\"logBytesAfter\":"); w.integer(report.logBytesAfter)
            w.raw(",\"pageFileBytesBefore\":"); w.integer(report.pageFileBytesBefore)
            w.raw(",\"pageFileBytesAfter\":"); w.integer(report.pageFileBytesAfter)
            w.raw("}")
            Output.standardOutput.line(w.text)
        } else {
            Output.standardOutput.line(
                "compacted \(report.segmentsRewritten) segment\(report.segmentsRewritten == 1 ? "" : "s"), "
                    + "moved \(report.recordsMoved) record\(report.recordsMoved == 1 ? "" : "s"); "
                    + "log \(bytes(report.logBytesBefore)) -> \(bytes(report.logBytesAfter)); "
                    + "page file \(bytes(report.pageFileBytesBefore)) -> \(bytes(report.pageFileBytesAfter))")
        }
    }
}

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a consistent copy of a store to DEST (a new or empty directory).",
        discussion: "Note the order: the destination comes first, as in `scrollback backup DEST STORE`.")

    @Argument(help: "The destination directory (new or empty).")
    var dest: String

    @Argument(help: "The store directory to copy.")
    var store: String

    func run() throws {
        let store = try StoreAccess.openReadOnly(self.store)
        do {
            try store.backup(to: dest)
        } catch {
            try? store.close()
            throw error
        }
        try store.close()
        Output.standardOutput.line("backup of \(self.store) written to \(dest)")
    }
}

struct Upgrade: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Upgrade a store written by an older release to this release's format.",
        discussion: """
            Store format 1: the old store is read without changes, a new store is built beside \
            it (STORE.upgrading), and then the old one is renamed to STORE.format1 (kept; \
            remove it once the new store serves) and the new one to STORE. Stop every process \
            using the store first. Interrupted, it leaves the old store usable; run it again. \
            A store whose search index an earlier build made (format version 3) is upgraded in \
            place: its index is rebuilt in the current layout, step by step (interrupted, run \
            it again to finish).
            """)

    @Argument(help: "The store directory.")
    var store: String

    func run() throws {
        let report = try MessageStore.upgrade(path: store)
        let kept = report.previousFormatPath.isEmpty
            ? "upgraded in place (its search index rebuilt)" : "the old store is kept at \(report.previousFormatPath)"
        Output.standardOutput.line(
            "upgraded \(store): \(report.messages) messages, \(report.conversations) conversations, "
                + "\(report.readMarkers) read markers; \(kept)")
    }
}
