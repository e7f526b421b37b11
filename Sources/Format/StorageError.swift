#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The typed error every layer below the public API throws.
///
/// Decoders never trap on bad bytes: they throw `.corrupted` naming the file and the byte
/// offset where the damage was found. System-call failures carry the errno and the path.
package enum StorageError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Bytes on disk failed a checksum, a bounds check or a structural rule.
    case corrupted(file: String, offset: UInt64, reason: String)
    /// A system call failed. `operation` names it (`pread`, `fdatasync`, …).
    case io(path: String, operation: String, errno: Int32)
    /// The file was written by a format version this build does not read.
    case unsupportedVersion(file: String, found: UInt32, supported: UInt32)
    /// The file was written by an older format version that this build reads only to upgrade
    /// it (`scrollback upgrade`); it is never written in place.
    case needsUpgrade(file: String, found: UInt32, current: UInt32)
    /// The path exists but is not a Scrollback file (wrong magic).
    case notAStore(path: String)
    /// A caller passed an argument outside its documented limits. Nothing was written.
    case invalidArgument(String)
    /// An earlier write or sync failed; the store refuses writes until it is reopened,
    /// because after a failed fsync the kernel may have dropped the data.
    case poisoned(cause: String)
    /// The object was used after `close()`.
    case closed
    /// A documented capacity was exceeded (file too large, transaction too large, …).
    case limitExceeded(String)
    /// Another writer holds the store's lock (spec/reader-table.md, "The lock file"): in
    /// another process, or another open of the store in this one. `path` is the store
    /// directory; `holder` describes the holder (pid, program, since when) when its record
    /// could be read and belongs to a running process. Nothing was written.
    case storeLocked(path: String, holder: String?)
    /// A write (or checkpoint, sync, compaction) on a store opened read-only. Nothing was
    /// written. `path` is the store directory.
    case readOnly(path: String)

    /// "No such file or directory (errno 2)": the C library's text for `code`, and the number.
    package static func describe(errno code: Int32) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        return "\(String(cString: text)) (errno \(code))"
    }

    package var description: String {
        switch self {
        case let .corrupted(file, offset, reason):
            return "corrupted: \(file) at offset \(offset): \(reason)"
        case let .io(path, operation, errno):
            return "I/O error: \(operation) on \(path) failed: \(Self.describe(errno: errno))"
        case let .unsupportedVersion(file, found, supported):
            return "unsupported format version \(found) in \(file) (this build reads up to \(supported))"
        case let .needsUpgrade(file, found, current):
            return "\(file) is in format version \(found); this build uses \(current) and reads older stores only to upgrade them (scrollback upgrade STORE)"
        case let .notAStore(path):
            return "not a Scrollback file: \(path)"
        case let .invalidArgument(message):
            return "invalid argument: \(message)"
        case let .poisoned(cause):
            return "store refuses writes after an earlier failure (\(cause)); reopen it"
        case .closed:
            return "store is closed"
        case let .limitExceeded(message):
            return "limit exceeded: \(message)"
        case let .storeLocked(path, holder):
            let who = holder.map { " (\($0))" } ?? ""
            return "store \(path) is in use by another writer\(who); close it first or open read-only"
        case let .readOnly(path):
            return "store \(path) is open read-only: writes, checkpoints and compaction need the writer's open"
        }
    }
}
