import CSQLite
import Scrollback

/// A failed SQLite call, with the statement and SQLite's message.
struct SQLiteError: Error, CustomStringConvertible {
    var code: Int32
    var message: String
    var description: String { "SQLite error \(code): \(message)" }
}

/// One SQLite connection. Not thread-safe: one thread at a time (each writer thread of the
/// concurrency test opens its own).
final class SQLiteConnection {
    let db: OpaquePointer
    let path: String

    init(path: String) throws {
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            if let handle { sqlite3_close_v2(handle) }
            throw SQLiteError(code: rc, message: "\(path): \(message)")
        }
        db = handle
        self.path = path
    }

    deinit { sqlite3_close_v2(db) }

    func check(_ rc: Int32, _ what: @autoclosure () -> String) throws {
        guard rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW else {
            throw SQLiteError(code: rc, message: "\(what()): \(String(cString: sqlite3_errmsg(db)))")
        }
    }

    func exec(_ sql: String) throws {
        var error: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &error)
        if rc != SQLITE_OK {
            let message = error.map { String(cString: $0) } ?? "?"
            sqlite3_free(error)
            throw SQLiteError(code: rc, message: "\(sql): \(message)")
        }
    }

    /// The first column of the first row of `sql` as an integer.
    func integer(_ sql: String) throws -> Int64 {
        let s = try prepare(sql)
        guard try s.step() else { return 0 }
        return s.int64(0)
    }

    func text(_ sql: String) throws -> String {
        let s = try prepare(sql)
        guard try s.step() else { return "" }
        return s.string(0)
    }

    func prepare(_ sql: String) throws -> SQLiteStatement {
        var statement: OpaquePointer?
        try check(sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil), sql)
        guard let statement else { throw SQLiteError(code: SQLITE_MISUSE, message: "empty statement: \(sql)") }
        return SQLiteStatement(statement: statement, connection: self, sql: sql)
    }

    var changes: Int32 { sqlite3_changes(db) }
}

/// A prepared statement. `reset()` before re-binding; bound strings are copied.
final class SQLiteStatement {
    let statement: OpaquePointer
    unowned let connection: SQLiteConnection
    let sql: String

    init(statement: OpaquePointer, connection: SQLiteConnection, sql: String) {
        self.statement = statement
        self.connection = connection
        self.sql = sql
    }

    deinit { sqlite3_finalize(statement) }

    @inline(__always)
    func reset() {
        sqlite3_reset(statement)
    }

    @inline(__always)
    func bind(_ index: Int32, _ value: String) throws {
        var copy = value
        let rc = copy.withUTF8 { bytes in
            sqlite3_bind_text(statement, index, bytes.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) },
                              Int32(bytes.count), csqlite_transient())
        }
        try connection.check(rc, sql)
    }

    @inline(__always)
    func bind(_ index: Int32, _ value: String?) throws {
        if let value { try bind(index, value) } else { try connection.check(sqlite3_bind_null(statement, index), sql) }
    }

    @inline(__always)
    func bind(_ index: Int32, _ value: Int64) throws {
        try connection.check(sqlite3_bind_int64(statement, index, value), sql)
    }

    /// True when a row is available, false when done.
    @inline(__always)
    func step() throws -> Bool {
        let rc = sqlite3_step(statement)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw SQLiteError(code: rc, message: "\(sql): \(String(cString: sqlite3_errmsg(connection.db)))")
    }

    /// Steps to completion (statements without rows).
    func run() throws {
        while try step() {}
        reset()
    }

    @inline(__always)
    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(statement, column) }

    @inline(__always)
    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(statement, column) == SQLITE_NULL }

    /// A text column's bytes in SQLite's own buffer (valid until the next step or reset).
    @inline(__always)
    func bytes(_ column: Int32) -> UnsafeRawBufferPointer {
        guard let text = sqlite3_column_text(statement, column) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: text, count: Int(sqlite3_column_bytes(statement, column)))
    }

    @inline(__always)
    func string(_ column: Int32) -> String {
        guard let text = sqlite3_column_text(statement, column) else { return "" }
        let count = Int(sqlite3_column_bytes(statement, column))
        return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
    }
}
