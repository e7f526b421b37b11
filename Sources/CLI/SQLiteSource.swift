import CSQLite
import Scrollback

/// Column names of the messages table `import` reads from a SQLite database. The defaults
/// match the reference schema (`id, conversationId, senderId, createdAt, type, content`).
struct SQLiteColumns: Sendable {
    var table = "messages"
    var id = "id"
    var conversation = "conversationId"
    var sender = "senderId"
    var createdAt = "createdAt"
    var kind = "type"
    var body = "content"
    /// Optional: the reference schema has no reply column.
    var replyTo: String?
}

/// Reads messages from a SQLite database through the C API, read-only.
///
/// Values: ids, conversation and sender as TEXT or INTEGER (written in decimal); `createdAt`
/// as INTEGER milliseconds, integral REAL, or TEXT holding milliseconds or ISO-8601 (no zone
/// means UTC); the kind as TEXT (`TEXT`, `image`, … any case) or INTEGER 1…6; the body as
/// TEXT (NULL is an empty body). A row that breaks these rules is reported by its row number
/// (1-based, in the table's scan order) and skipped or aborts the import (`--strict`).
final class SQLiteSource {
    private var db: OpaquePointer?
    private var statement: OpaquePointer?
    let path: String
    let columns: SQLiteColumns
    private(set) var rowNumber = 0
    /// Rows in the table (for the progress bar).
    private(set) var rowCount: UInt64 = 0

    /// True if the file starts with SQLite's 16-byte header string.
    static func looksLikeSQLite(_ header: [UInt8]) -> Bool {
        header.count >= 16 && header[0..<16].elementsEqual(Array("SQLite format 3\0".utf8))
    }

    static func quote(_ identifier: String) -> String {
        "\"" + identifier.replacingAll("\"", with: "\"\"") + "\""
    }

    init(path: String, columns: SQLiteColumns) throws {
        self.path = path
        self.columns = columns
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READONLY, nil)
        db = handle
        guard rc == SQLITE_OK else {
            let message = errorMessage()
            close()
            throw CLIError("cannot open SQLite database \(path): \(message)")
        }
        let table = Self.quote(columns.table)
        if let count = try? scalar("SELECT count(*) FROM \(table)") { rowCount = UInt64(max(0, count)) }
        var names = [columns.id, columns.conversation, columns.sender, columns.createdAt, columns.kind, columns.body].map(Self.quote)
        if let reply = columns.replyTo { names.append(Self.quote(reply)) }
        try prepare("SELECT \(names.joined(separator: ", ")) FROM \(table)")
    }

    deinit { close() }

    func close() {
        if let statement { sqlite3_finalize(statement) }
        statement = nil
        if let db { sqlite3_close_v2(db) }
        db = nil
    }

    private func errorMessage() -> String {
        guard let db, let text = sqlite3_errmsg(db) else { return "unknown error" }
        return String(cString: text)
    }

    private func scalar(_ sql: String) throws -> Int64 {
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK else { throw CLIError(errorMessage()) }
        defer { sqlite3_finalize(stmt) }
        guard sqlite3_step(stmt) == SQLITE_ROW else { throw CLIError(errorMessage()) }
        return sqlite3_column_int64(stmt, 0)
    }

    private func prepare(_ sql: String) throws {
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK else {
            let message = errorMessage()
            throw CLIError("cannot read table \(columns.table) of \(path): \(message) "
                + "(name the table and columns with --table and the --*-column options)")
        }
        statement = stmt
    }

    /// The next row as a record, a row error, or nil at the end. Errors of SQLite itself
    /// (a damaged database) throw CLIError.
    func next() throws -> Result<ImportRecord, RecordError>? {
        guard let statement else { return nil }
        let rc = sqlite3_step(statement)
        if rc == SQLITE_DONE { return nil }
        guard rc == SQLITE_ROW else { throw CLIError("reading \(path) failed: \(errorMessage())") }
        rowNumber += 1
        do {
            return .success(try decodeRow(statement))
        } catch {
            return .failure(error)
        }
    }

    private func text(_ stmt: OpaquePointer, _ index: Int32, _ name: String, nullAs: String? = nil) throws(RecordError) -> String {
        switch sqlite3_column_type(stmt, index) {
        case SQLITE_NULL:
            if let nullAs { return nullAs }
            throw RecordError("column \(name) is NULL")
        case SQLITE_INTEGER:
            return String(sqlite3_column_int64(stmt, index))
        case SQLITE_TEXT, SQLITE_BLOB:
            let count = Int(sqlite3_column_bytes(stmt, index))
            guard count > 0, let base = sqlite3_column_blob(stmt, index) else { return "" }
            let bytes = UnsafeRawBufferPointer(start: base, count: count)
            guard let s = String(validating: bytes, as: UTF8.self) else { throw RecordError("column \(name) is not valid UTF-8") }
            return s
        default:
            throw RecordError("column \(name) holds a floating-point number, expected text")
        }
    }

    private func decodeRow(_ stmt: OpaquePointer) throws(RecordError) -> ImportRecord {
        let id = try text(stmt, 0, columns.id)
        let conversation = try text(stmt, 1, columns.conversation)
        let sender = try text(stmt, 2, columns.sender)
        let createdAt: Int64
        switch sqlite3_column_type(stmt, 3) {
        case SQLITE_INTEGER:
            createdAt = sqlite3_column_int64(stmt, 3)
        case SQLITE_FLOAT:
            let d = sqlite3_column_double(stmt, 3)
            guard d.rounded() == d, let ms = Int64(exactly: d) else {
                throw RecordError("column \(columns.createdAt) is \(d): expected integer milliseconds or ISO-8601 text")
            }
            createdAt = ms
        case SQLITE_NULL:
            throw RecordError("column \(columns.createdAt) is NULL")
        default:
            let s = try text(stmt, 3, columns.createdAt)
            guard let ms = Timestamp.parse(s) else {
                throw RecordError("column \(columns.createdAt) is neither integer milliseconds nor ISO-8601: \"\(s)\"")
            }
            createdAt = ms
        }
        let kindText = try text(stmt, 4, columns.kind, nullAs: "text")
        guard let kind = RecordDecoding.kind(name: kindText) else {
            throw RecordError("column \(columns.kind) must be one of \(RecordDecoding.kindNames) (any case) or 1…6, not \"\(kindText)\"")
        }
        let body = try text(stmt, 5, columns.body, nullAs: "")
        var replyTo: String?
        if let name = columns.replyTo, sqlite3_column_type(stmt, 6) != SQLITE_NULL {
            replyTo = try text(stmt, 6, name)
        }
        let message = Message(
            id: id, conversation: conversation, sender: sender, createdAt: createdAt, kind: kind, body: body, replyTo: replyTo)
        return ImportRecord(message: message, edited: false, origin: "row \(rowNumber)")
    }
}

extension String {
    /// Replaces every occurrence of `target` (no Foundation needed).
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            result += rest[rest.startIndex..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        result += rest
        return result
    }
}
