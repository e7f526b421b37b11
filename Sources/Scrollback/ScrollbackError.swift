#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ScrollbackStorage

/// Every error the public API throws. Its text (`description`, also `errorDescription` of
/// `LocalizedError`) is one line that names the file and offset of damage, the path, system
/// call and `strerror` text with the errno of an I/O error, and the holder of a locked store.
public enum ScrollbackError: Error, Sendable, Hashable, CustomStringConvertible, LocalizedError {
    /// An argument violates its documented limit. `argument` names it (`id`, `body`,
    /// `limit`, …); nothing was written.
    case invalidArgument(argument: String, reason: String)
    /// The message (or other object) named does not exist.
    case notFound(String)
    /// The cursor is damaged, forged, from another conversation or store, or was issued for
    /// the other `Order`.
    case invalidCursor(String)
    /// An append names an id that a live message of another conversation (`conversation`)
    /// has. Nothing was written (in a batch or a load: nothing of it). Ids are unique across
    /// the store; the same id in the same conversation is an idempotent `.duplicate`.
    case idConflict(id: String, conversation: String)
    /// Bytes on disk failed a check. `file` and `offset` point at the damage.
    case corrupted(file: String, offset: UInt64, reason: String)
    /// A system call failed.
    case io(path: String, operation: String, errno: Int32)
    /// The store was written by a newer format version.
    case unsupportedVersion(path: String, found: UInt32, supported: UInt32)
    /// The path exists but is not a Scrollback store.
    case notAStore(path: String)
    /// An earlier write or sync failed; the store refuses writes until it is reopened.
    case refusesWrites(cause: String)
    /// A documented capacity was exceeded (batch too large, …).
    case limitExceeded(String)
    /// The store was closed.
    case closed
    /// Another writer has the store open — another process, or another `MessageStore` of
    /// this process — so this open for writing was refused and wrote nothing. `holder` names
    /// it when known ("pid 4242, scrollback exec, since 2026-11-29T22:10:03Z"). Open the
    /// store read-only (`MessageStore(readingAt:)`) to read it meanwhile.
    case storeLocked(path: String, holder: String?)
    /// A write, checkpoint, sync or compaction on a store opened read-only. Nothing was
    /// written.
    case readOnly(path: String)
    /// A change position older than the log the store keeps for the change stream
    /// (`StoreOptions.changeRetentionBytes`): the changes after it cannot be read any more.
    /// Read the state again, then follow the changes from `changePosition()`.
    case positionExpired(position: String)

    public var description: String {
        switch self {
        case let .invalidArgument(argument, reason): "invalid argument \(argument): \(reason)"
        case let .notFound(what): "not found: \(what)"
        case let .invalidCursor(reason): "invalid cursor: \(reason)"
        case let .idConflict(id, conversation): "id conflict: message id \(id) is in use in conversation \(conversation)"
        case let .corrupted(file, offset, reason): "corrupted: \(file) at offset \(offset): \(reason)"
        case let .io(path, operation, errno): "I/O error: \(operation) on \(path) failed: \(StorageError.describe(errno: errno))"
        case let .unsupportedVersion(path, found, supported) where found < supported:
            "\(path) is in store format \(found), older than this build's \(supported): upgrade it with `scrollback upgrade \(path)`"
        case let .unsupportedVersion(path, found, supported):
            "unsupported format version \(found) in \(path) (this build reads up to \(supported))"
        case let .notAStore(path): "not a Scrollback store: \(path)"
        case let .refusesWrites(cause): "store refuses writes after an earlier failure (\(cause)); reopen it"
        case let .limitExceeded(what): "limit exceeded: \(what)"
        case .closed: "store is closed"
        case let .storeLocked(path, holder):
            "store \(path) is in use by another writer\(holder.map { " (\($0))" } ?? ""); close it first or open it read-only"
        case let .readOnly(path): "store \(path) is open read-only: writes, checkpoints, syncs and compaction need a writer's open"
        case let .positionExpired(position):
            "change position \(position) is older than the log the store keeps (StoreOptions.changeRetentionBytes): read the state again and follow the changes from the current position"
        }
    }

    /// `LocalizedError`: the same one line as `description`.
    public var errorDescription: String? { description }
}
