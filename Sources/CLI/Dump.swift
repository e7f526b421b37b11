import ArgumentParser
import ScrollbackFormat
import ScrollbackIO
import ScrollbackMessaging

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the raw on-disk structures (for debugging the format).",
        discussion: """
            dump STORE meta       both meta pages of the page file, field by field, with checksums
            dump STORE pages      one line per page: type, tree, level, entries, checksum, state
            dump STORE page N     one page: header fields and every entry
            dump STORE log        log segments (headers, sizes) and every record
            The files are only read (never recovered or changed), so a damaged store can be \
            inspected. Every structure is decoded by its layer's own decoder; see \
            spec/page-file.md, spec/btree-page.md, spec/log-segment.md, spec/sealed-segment.md \
            and spec/message-records.md for the bytes.
            """)

    enum What: String, ExpressibleByArgument, CaseIterable {
        case meta, pages, page, log
    }

    @Argument(help: "The store directory.")
    var store: String

    @Argument(help: "meta, pages, page or log.")
    var what: What

    @Argument(help: "The page number (dump STORE page N).")
    var page: UInt64?

    @Option(help: "log: show the records of this segment only.")
    var segment: UInt32?

    @Option(help: "log: show at most this many records.")
    var maxRecords: Int?

    func validate() throws {
        if what == .page && page == nil { throw ValidationError("dump page needs a page number: dump STORE page N") }
        if what != .page && page != nil { throw ValidationError("only 'dump STORE page N' takes a page number") }
        if what != .log && (segment != nil || maxRecords != nil) {
            throw ValidationError("--segment and --max-records apply to 'dump STORE log'")
        }
        if let maxRecords, maxRecords < 0 { throw ValidationError("--max-records must be 0 or more") }
    }

    func run() throws {
        guard StoreAccess.exists(store) || what == .log else { throw CLIError("no Scrollback store at \(store)") }
        let out = Output.standardOutput
        let dumper = try PageFileDumper(path: Path.join(store, PageFileLayout.fileName), out: out, needsFile: what != .log)
        switch what {
        case .meta: try dumper.dumpMeta()
        case .pages: try dumper.dumpPages()
        case .page: try dumper.dumpPage(page ?? 0)
        case .log: try LogDumper(directory: store, out: out).dump(segment: segment, maxRecords: maxRecords)
        }
        out.flush()
    }
}

// MARK: Formatting shared by the dump files

/// `0x` and the value in hex, zero-padded to its type's width.
func hex<T: FixedWidthInteger>(_ value: T, width: Int = MemoryLayout<T>.size * 2) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, width - digits.count)) + digits
}

/// Bytes in hex, at most `limit` of them.
func hexBytes(_ bytes: some Collection<UInt8>, limit: Int = 32) -> String {
    let shown = bytes.prefix(limit).map { b -> String in
        let d = String(b, radix: 16)
        return d.count == 1 ? "0" + d : d
    }.joined(separator: " ")
    return bytes.count > limit ? shown + " … (\(bytes.count) bytes)" : shown
}

/// The names the message layer gives tree slots and counters.
enum StoreLayoutNames {
    static func tree(_ slot: Int) -> String { MessageTree(rawValue: slot)?.description ?? "?" }
    static func counter(_ index: Int) -> String { MessageCounter(rawValue: index)?.description ?? "reserved" }
}
