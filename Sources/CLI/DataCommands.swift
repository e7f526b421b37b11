import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Scrollback
import ScrollbackJSON

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate the reference chat workload into a store or a JSONL file.",
        discussion: """
            The dataset is deterministic for a seed: skewed conversation sizes (heavy rooms), \
            direct messages and groups, users synuser1…, message kinds mostly text, bodies of \
            20–200 characters over the last 30 days before 2026-01-01. With --out FILE.jsonl the \
            messages are written as JSONL (the import format); otherwise --out is a store \
            directory (created if missing) and the messages are appended in batches.
            """)

    @Option(help: "Number of messages.")
    var messages: Int

    @Option(help: "Random seed; the same seed gives the same dataset (the default is the benchmark's).")
    var seed: UInt64 = 20_260_101

    @Option(help: "Number of conversations (default: the reference ratio, about messages / 40.7).")
    var conversations: Int?

    @Option(help: "Number of users (default: the reference ratio, about messages / 65).")
    var users: Int?

    @Option(help: "A store directory, or a file whose name ends in .jsonl.")
    var out: String

    @Option(help: "Messages per atomic bulk load when generating into a store.")
    var batchSize: Int = 1 << 20

    @OptionGroup var progress: ProgressOptions

    func validate() throws {
        guard messages >= 0 else { throw ValidationError("--messages must be 0 or more") }
        if let conversations, conversations < 1 { throw ValidationError("--conversations must be at least 1") }
        if let users, users < 2 { throw ValidationError("--users must be at least 2") }
        guard batchSize >= 1, batchSize <= Importer.maximumBatchSize else {
            throw ValidationError("--batch-size must be 1…\(Importer.maximumBatchSize)")
        }
    }

    func run() throws {
        var source = try makeWorkload(WorkloadParameters(messages: messages, seed: seed, conversations: conversations, users: users))
        let bar = ProgressBar(label: "generate", total: UInt64(source.messageCount), unit: " msgs", enabled: progress.progress)
        var count: UInt64 = 0
        if out.hasSuffix(".jsonl") {
            let fd = Glibc.open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw CLIError("cannot create \(out): \(String(cString: strerror(errno)))") }
            let file = Output(fd: fd)
            while let message = source.next() {
                file.line(MessageJSON.encode(message))
                count += 1
                bar.update(count, items: count)
            }
            file.flush()
            guard fsync(fd) == 0, Glibc.close(fd) == 0 else { throw CLIError("cannot write \(out): \(String(cString: strerror(errno)))") }
        } else {
            let store = try StoreAccess.openOrCreate(out, command: "generate")
            let importer = Importer(store: store, batchSize: batchSize, strict: true)
            while let message = source.next() {
                try importer.add(ImportRecord(message: message, edited: false, origin: "message \(count + 1)"))
                count += 1
                bar.update(count, items: count)
            }
            try importer.flush()
            try store.close()
        }
        bar.finish(count, items: count)
        Output.standardOutput.line("generated \(count) messages into \(out) in \(formatSeconds(bar.elapsed))")
    }
}

func formatSeconds(_ seconds: Double) -> String {
    let tenths = Int((seconds * 10).rounded())
    return "\(tenths / 10).\(tenths % 10) s"
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import messages from a JSONL file or a SQLite database.",
        discussion: """
            JSONL: one message object per line, as export writes it: \
            {"id","conversation","sender","createdAt","kind","body","replyTo"?,"edited"?}. \
            Also accepted: the names conversationId, senderId, type and content; integer ids; \
            createdAt as ISO-8601 text; kind in any case. Blank lines are ignored. FILE - reads stdin.

            SQLite (detected by the file header, or --format sqlite): the table and columns \
            named by the options below; createdAt as integer milliseconds or ISO-8601 text \
            (no zone means UTC); type as TEXT, IMAGE, … (any case) or 1…6.

            A bad line or row is reported on stderr with its line or row number and skipped; \
            with --strict the import stops there (exit 1) after writing the records before it. \
            Messages whose id is already in the store are left alone, so an import can be re-run.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case auto, jsonl, sqlite
    }

    @Argument(help: "The store directory (created if missing).")
    var store: String

    @Argument(help: "The JSONL file or SQLite database ('-' for JSONL on stdin).")
    var file: String

    @Option(help: "Input format: auto, jsonl or sqlite.")
    var format: Format = .auto

    @Flag(help: "Stop at the first bad line or row (exit 1).")
    var strict = false

    @Option(help: "Messages per atomic bulk load (each a sorted run and one durable commit).")
    var batchSize: Int = 1 << 20

    @Option(help: "SQLite: the messages table.")
    var table = "messages"
    @Option(help: "SQLite: the message id column.")
    var idColumn = "id"
    @Option(help: "SQLite: the conversation column.")
    var conversationColumn = "conversationId"
    @Option(help: "SQLite: the sender column.")
    var senderColumn = "senderId"
    @Option(help: "SQLite: the creation time column (integer ms or ISO-8601 text).")
    var createdAtColumn = "createdAt"
    @Option(help: "SQLite: the message kind column.")
    var typeColumn = "type"
    @Option(help: "SQLite: the body column.")
    var contentColumn = "content"
    @Option(help: "SQLite: the column holding the id of the message replied to (none by default).")
    var replyToColumn: String?

    @OptionGroup var progress: ProgressOptions

    func validate() throws {
        guard batchSize >= 1, batchSize <= Importer.maximumBatchSize else {
            throw ValidationError("--batch-size must be 1…\(Importer.maximumBatchSize)")
        }
        if file == "-" && format == .sqlite { throw ValidationError("a SQLite database cannot be read from stdin") }
    }

    func run() throws {
        // The input is opened before the store, so a bad FILE never leaves a new empty store.
        var kind = format
        var reader: LineReader?
        if file == "-" {
            kind = .jsonl
            reader = LineReader(fd: 0)
        } else {
            var info = stat()
            guard stat(file, &info) == 0 else { throw CLIError("cannot open \(file): \(String(cString: strerror(errno)))") }
            guard info.st_mode & S_IFMT != S_IFDIR else { throw CLIError("cannot import \(file): it is a directory") }
            if kind == .auto {
                let probe = try LineReader.open(path: file)
                var header = [UInt8](repeating: 0, count: 16)
                let n = header.withUnsafeMutableBytes { Glibc.read(probe.fd, $0.baseAddress!, 16) }
                probe.close()
                kind = n == 16 && SQLiteSource.looksLikeSQLite(header) ? .sqlite : .jsonl
            }
            if kind == .jsonl { reader = try LineReader.open(path: file) }
        }
        defer { if file != "-" { reader?.close() } }
        var sqlite: SQLiteSource?
        if kind == .sqlite {
            sqlite = try SQLiteSource(path: file, columns: SQLiteColumns(
                table: table, id: idColumn, conversation: conversationColumn, sender: senderColumn,
                createdAt: createdAtColumn, kind: typeColumn, body: contentColumn, replyTo: replyToColumn))
        }
        defer { sqlite?.close() }

        let store = try StoreAccess.openOrCreate(self.store, command: "import")
        let importer = Importer(store: store, batchSize: batchSize, strict: strict)
        let started = ProgressBar.nowNanoseconds()
        do {
            if let sqlite {
                try importSQLite(sqlite, into: importer)
            } else if let reader {
                try importJSONL(reader, into: importer)
            }
            try importer.flush()
        } catch {
            try? store.close()
            throw error
        }
        try store.close()
        let seconds = Double(ProgressBar.nowNanoseconds() - started) / 1e9
        Output.standardOutput.line("\(importer.summary) in \(formatSeconds(seconds))")
    }

    private func importJSONL(_ reader: LineReader, into importer: Importer) throws {
        var total: UInt64 = 0
        if file != "-" {
            var info = stat()
            if stat(file, &info) == 0 { total = UInt64(max(0, info.st_size)) }
        }
        let bar = ProgressBar(label: "import", total: total, unit: " B", enabled: file == "-" ? false : progress.progress)
        var lineNumber = 0
        while let line = try reader.next() {
            lineNumber += 1
            switch line {
            case .tooLong(let n):
                try importer.reject(origin: "line \(lineNumber)", reason: "line of \(n) bytes is longer than \(reader.maxLineBytes)")
            case .line(let bytes):
                if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
                do {
                    try importer.add(try RecordDecoding.jsonLine(bytes, origin: "line \(lineNumber)"))
                } catch let error as RecordError {
                    try importer.reject(origin: "line \(lineNumber)", reason: error.description)
                }
            }
            bar.update(reader.bytesRead)
        }
        bar.finish(reader.bytesRead)
    }

    private func importSQLite(_ source: SQLiteSource, into importer: Importer) throws {
        let bar = ProgressBar(label: "import", total: source.rowCount, unit: " rows", enabled: progress.progress)
        while let row = try source.next() {
            switch row {
            case .success(let record): try importer.add(record)
            case .failure(let error): try importer.reject(origin: "row \(source.rowNumber)", reason: error.description)
            }
            bar.update(UInt64(source.rowNumber))
        }
        bar.finish(UInt64(source.rowNumber))
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write messages as JSONL to stdout (the import format).",
        discussion: """
            One message object per line, oldest first within each conversation \
            ((createdAt, insertion order), so a re-import keeps the order of equal times); \
            conversations in byte order of their ids. Without --conversation, every conversation.
            """)

    @Argument(help: "The store directory.")
    var store: String

    @Option(help: "Export only this conversation (repeatable).")
    var conversation: [String] = []

    func run() throws {
        let store = try StoreAccess.openReadOnly(self.store)
        defer { try? store.close() }
        let names = conversation.isEmpty ? try Self.allConversations(store) : conversation
        let out = Output.standardOutput
        for name in names {
            var cursor: Cursor?
            repeat {
                let page = try store.page(in: name, after: cursor, limit: MessageStore.maxLimit, order: .oldestFirst)
                for message in page.messages { out.line(MessageJSON.encode(message)) }
                cursor = page.next
            } while cursor != nil
        }
        out.flush()
        try store.close()
    }

    /// Every conversation with live messages, in byte order of their ids (the list pages
    /// through the store's conversation list, however long it is).
    static func allConversations(_ store: MessageStore) throws -> [String] {
        var names: [String] = []
        var cursor: ConversationCursor?
        repeat {
            let page = try store.conversations(after: cursor, limit: MessageStore.maxLimit)
            names += page.conversations.map(\.id)
            cursor = page.next
        } while cursor != nil
        return names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }
}
