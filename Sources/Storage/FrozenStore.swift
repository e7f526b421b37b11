import ScrollbackBTree
import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import ScrollbackPager

/// A store directory opened only to read what it holds — its checkpointed trees and its log —
/// without writing a byte: for upgrading a store of an older format (whose page file the
/// pager opens but never writes). The trees are those of the newest valid checkpoint; the log
/// is read from any position through `LogReader` (no recovery, no truncation).
///
/// Not thread-safe: one user at a time. Cost: what the caller reads.
package final class FrozenStore {
    private let pager: Pager
    private let snapshot: PageTransaction
    private let reader: LogReader
    package let directory: String
    /// The page file's path (for error messages).
    package var pagesPath: String { pager.path }

    package init(fileSystem: any FileSystem, directory: String) throws {
        self.directory = directory
        pager = try Pager.open(fileSystem: fileSystem, path: Path.join(directory, PageFileLayout.fileName), cacheBytes: 16 << 20)
        snapshot = pager.beginRead()
        reader = LogReader(fileSystem: fileSystem, directory: directory)
    }

    deinit { close() }

    /// The checkpoint's state: counters and the log position recovery would replay from.
    package var state: CommittedState { snapshot.state }

    /// Calls `body` with every entry of the tree in `slot`, in key order.
    package func forEachEntry(slot: Int, _ body: (BTreeKey, UnsafeRawBufferPointer) throws -> Void) throws {
        let tree = try BTree(snapshot, slot: slot, file: pager.path)
        var cursor = tree.cursor()
        var valid = try cursor.seekFirst()
        while valid {
            _ = try cursor.withCurrent(body)
            valid = try cursor.next()
        }
    }

    /// Calls `body` with every complete record of the log from `position` (0: every segment
    /// present) to its end, in log order: position, record type, payload.
    package func forEachLogRecord(from position: LogPosition,
                                  _ body: (LogPosition, UInt8, UnsafeRawBufferPointer) throws -> Void) throws {
        _ = try reader.read(from: position, through: nil) { transaction in
            try transaction.forEachRecord(body)
        }
    }

    private var closed = false

    /// Releases the files (also done on deinit).
    package func close() {
        guard !closed else { return }
        closed = true
        snapshot.rollback()
        try? pager.close()
    }
}
