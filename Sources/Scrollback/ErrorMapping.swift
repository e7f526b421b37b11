import ScrollbackMessaging
import ScrollbackStorage

/// The one place where errors of the layers below become `ScrollbackError`.
func scrollbackError(_ error: any Error) -> ScrollbackError {
    switch error {
    case let error as ScrollbackError:
        return error
    case let error as MessagingError:
        switch error {
        case let .invalidArgument(argument, reason): return .invalidArgument(argument: argument, reason: reason)
        case let .notFound(what): return .notFound(what)
        case let .invalidCursor(reason): return .invalidCursor(reason)
        case let .idConflict(id, conversation): return .idConflict(id: id, conversation: conversation)
        case let .unsupportedVersion(path, found, supported): return .unsupportedVersion(path: path, found: found, supported: supported)
        }
    case let error as StorageError:
        switch error {
        case let .corrupted(file, offset, reason): return .corrupted(file: file, offset: offset, reason: reason)
        case let .io(path, operation, errno): return .io(path: path, operation: operation, errno: errno)
        case let .unsupportedVersion(file, found, supported): return .unsupportedVersion(path: file, found: found, supported: supported)
        case let .needsUpgrade(file, found, current): return .unsupportedVersion(path: file, found: found, supported: current)
        case let .notAStore(path): return .notAStore(path: path)
        // An internal argument error reaching the API means the stored structures disagree
        // (e.g. a tree pointing at a log position that holds no record).
        case let .invalidArgument(message): return .corrupted(file: "store", offset: 0, reason: message)
        case let .poisoned(cause): return .refusesWrites(cause: cause)
        case .closed: return .closed
        case let .limitExceeded(what): return .limitExceeded(what)
        case let .storeLocked(path, holder): return .storeLocked(path: path, holder: holder)
        case let .readOnly(path): return .readOnly(path: path)
        }
    default:
        return .corrupted(file: "store", offset: 0, reason: "unexpected error: \(error)")
    }
}

/// Runs `body`, mapping any error with `scrollbackError`.
@inline(__always)
func mapErrors<R>(_ body: () throws -> R) throws -> R {
    do {
        return try body()
    } catch {
        throw scrollbackError(error)
    }
}
