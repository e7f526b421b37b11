import ScrollbackFormat
import ScrollbackIO

/// What a directory holds, as a store: the one place that decides whether a path is a store.
/// `StorageEngine.open` acts on it, and the layers above ask it (e.g. the command-line tool,
/// which must not turn a mistyped path into a new store).
package struct StoreDirectory: Sendable, Equatable {
    package enum Kind: Sendable, Equatable {
        /// Missing, or without entries: `open` creates a store there.
        case empty
        /// Holds a page file: a store (`open` recovers it and reports damage).
        case store
        /// Holds log segments but no page file: a damaged store, which `open` reports and
        /// never recreates over.
        case logWithoutPageFile
        /// Holds a temporary page file and no log: a creation that crashed before its rename;
        /// `open` creates the store again.
        case interruptedCreation
        /// Holds only other files: not a store (`open` refuses it and writes nothing).
        case foreign
    }

    package let kind: Kind
    /// A log segment file found there (named in errors), if any.
    package let logSegment: String?

    /// The files that coordinate processes (`lock`, `readers`): never part of a store's data,
    /// never copied by a backup.
    package static let coordinationFiles: Set<String> = [StoreLockLayout.fileName, ReaderTableLayout.fileName]

    /// Looks at the names in `directory` (nothing is opened). A directory that cannot be
    /// listed (missing, or not a directory) counts as empty: creating it reports the problem.
    package static func inspect(fileSystem: any FileSystem, directory: String) -> StoreDirectory {
        // The writer lock and the reader table (spec/reader-table.md) hold nothing of the
        // store: a directory holding only them is empty (e.g. creation crashed after the lock).
        let names = ((try? fileSystem.listDirectory(directory)) ?? []).filter { !coordinationFiles.contains($0) }
        let segment = names.first { $0.hasPrefix(LogSegmentLayout.filePrefix) }
        let kind: Kind
        if names.contains(PageFileLayout.fileName) {
            kind = .store
        } else if segment != nil {
            kind = .logWithoutPageFile
        } else if names.contains(PageFileLayout.fileName + PageFileLayout.temporarySuffix) {
            kind = .interruptedCreation
        } else {
            kind = names.isEmpty ? .empty : .foreign
        }
        return StoreDirectory(kind: kind, logSegment: segment)
    }
}
