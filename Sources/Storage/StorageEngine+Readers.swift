#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import ScrollbackPager
import Synchronization

/// How an engine shares its store with other processes (spec/reader-table.md): the writer
/// holds the store lock and publishes in the reader table; a read-only engine holds a reader
/// slot. The writer never waits for a reader: it publishes with one `pwrite` and scans the
/// table (one `pread` and a lock test per used slot) once per checkpoint and before removing
/// a log segment.
final class ProcessCoordination: @unchecked Sendable {
    /// The writer's store lock (nil for a read-only engine).
    let storeLock: StoreLock?
    /// The reader table: the writer publishes in it and scans it; a reader holds a slot.
    let readers: ReaderTable
    /// Present for read-only engines.
    let readOnly: ReadOnlyEngineState?
    let publishFailures = Atomic<UInt64>(0)
    let scanFailures = Atomic<UInt64>(0)
    let scans = Atomic<UInt64>(0)
    /// What the last scan found (statistics).
    let lastScan = Lock<OldestReader?>(nil)

    init(storeLock: StoreLock?, readers: ReaderTable, readOnly: ReadOnlyEngineState?) {
        self.storeLock = storeLock
        self.readers = readers
        self.readOnly = readOnly
    }

    /// Takes the store lock of `directory` (refused with `.storeLocked` naming the holder)
    /// and opens the reader table as its writer. Nothing is written when refused.
    static func openWriter(fileSystem: any FileSystem, directory: String, label: String) throws -> ProcessCoordination {
        let lock = try StoreLock.acquire(fileSystem: fileSystem, directory: directory, label: label)
        do {
            let table = try ReaderTable.open(fileSystem: fileSystem, directory: directory, role: .writer)
            return ProcessCoordination(storeLock: lock, readers: table, readOnly: nil)
        } catch {
            try? lock.release()
            throw error
        }
    }

    private let closed = Atomic<Bool>(false)

    /// Closes the table (a reader's slot is zeroed first), then releases the store lock.
    /// Both always happen; the first error is rethrown. Idempotent.
    func close() throws {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var failure: (any Error)?
        do { try readers.close() } catch { failure = error }
        do { try storeLock?.release() } catch { failure = failure ?? error }
        if let failure { throw failure }
    }
}

/// What the engine knows about the processes sharing its store (`StorageEngine.processes`).
package struct ProcessStatus: Sendable, Equatable {
    /// True for a read-only engine.
    package var isReadOnly: Bool
    /// The live readers of other handles (other processes, or other read-only opens in this
    /// one), from a scan of the reader table made now; nil when there is none (or the scan
    /// failed: see `scanFailures`).
    package var oldestReader: OldestReader?
    /// Writer: the transaction id of its newest durable checkpoint. Reader: of the page-file
    /// state its newest snapshot starts from.
    package var checkpointTransaction: UInt64
    /// Writer: pages free in the committed state that wait for readers (in this process or
    /// others) before they are reused; what a stale reader costs in page-file growth.
    package var pagesAwaitingReaders: Int
    /// Writer: the reader floor in force (`Pager.setReaderFloor`); `UInt64.max` for none.
    package var readerFloor: UInt64
    /// Writer: log segments (retired, or sealed into runs) whose files wait for snapshots,
    /// readers or a checkpoint.
    package var segmentsAwaitingRemoval: Int
    /// Writer: run files (replaced by a merge, or dropped by a retirement) that wait likewise.
    package var runsAwaitingRemoval: Int
    /// Failed publishes and scans (each is harmless: readers see less, reuse waits).
    package var publishFailures: UInt64
    package var scanFailures: UInt64
    /// Reader: the log position its newest snapshot includes, and refreshes so far.
    package var replayedThrough: LogPosition
    package var refreshes: UInt64
}

extension StorageEngine {
    /// True for an engine opened with `openReadOnly`.
    package var isReadOnly: Bool { coordination.readOnly != nil }

    /// The store lock's holder record (writers), for messages.
    package var storeLockHolder: StoreLockHolder? { coordination.storeLock?.holder }

    /// The processes sharing the store, as far as this engine can tell (scans the reader
    /// table now: ~3 µs plus ~2 µs per live reader).
    package var processes: ProcessStatus {
        let oldest = try? coordination.readers.oldestReader()
        let state = coordination.readOnly?.state.withLock { ($0.replayedThrough, $0.refreshes) }
        return ProcessStatus(
            isReadOnly: isReadOnly, oldestReader: oldest ?? nil,
            checkpointTransaction: pager.baseMeta.state.transactionID,
            pagesAwaitingReaders: pager.pagesAwaitingReaders, readerFloor: pager.readerFloor,
            segmentsAwaitingRemoval: pendingFileRemovals.withLock { $0.filter { if case .segment = $0.file { true } else { false } }.count },
            runsAwaitingRemoval: pendingFileRemovals.withLock { $0.filter { if case .run = $0.file { true } else { false } }.count },
            publishFailures: coordination.publishFailures.load(ordering: .relaxed),
            scanFailures: coordination.scanFailures.load(ordering: .relaxed),
            replayedThrough: state?.0 ?? log.durablePosition, refreshes: state?.1 ?? 0)
    }

    // MARK: Writer side

    /// Publishes the durable log end and the durable checkpoint's transaction in the reader
    /// table (spec/reader-table.md, "Writer protocol"): one 64-byte `pwrite`. A failure is
    /// counted, never thrown: readers then keep an older, lower bound.
    func publishDurableState() {
        guard !isReadOnly else { return }
        do {
            try coordination.readers.publish(
                durableEnd: log.durablePosition, checkpointTransaction: pager.durableTransactionID)
        } catch {
            coordination.publishFailures.add(1, ordering: .relaxed)
        }
    }

    /// Scans the reader table and sets the pager's reader floor: the oldest transaction a
    /// reader in another process may read, but at most the durable checkpoint's (a reader
    /// the scan missed registered that checkpoint or a newer one: the race rule). Called after
    /// every checkpoint (after its publish) and at open. A failed scan keeps the floor in
    /// force (still safe: it is at most an older checkpoint's transaction).
    func updateReaderFloor() {
        guard !isReadOnly else { return }
        let durable = pager.durableTransactionID
        do {
            let oldest = try coordination.readers.oldestReader()
            coordination.scans.add(1, ordering: .relaxed)
            coordination.lastScan.withLock { $0 = oldest }
            pager.setReaderFloor(min(oldest?.transactionID ?? .max, durable))
        } catch {
            coordination.scanFailures.add(1, ordering: .relaxed)
        }
    }

    /// The oldest state any reader in another process may read, for removing log segments and
    /// run files:
    /// the minimum of the live readers' snapshots and of the durable checkpoint (a reader not
    /// seen by the scan starts from that checkpoint or a newer one). A failed scan answers
    /// "the oldest possible" (nothing may be removed).
    func readerSegmentFloor() -> (transaction: UInt64, segment: UInt32) {
        let durable = pager.durableState
        var transaction = durable.transactionID
        var segment = LogPositions.segment(durable.logPosition)
        if isReadOnly { return (transaction, segment) }
        do {
            if let oldest = try coordination.readers.oldestReader() {
                transaction = min(transaction, oldest.transactionID)
                segment = min(segment, LogPositions.segment(oldest.logPosition))
            }
            coordination.scans.add(1, ordering: .relaxed)
        } catch {
            coordination.scanFailures.add(1, ordering: .relaxed)
            return (0, 0)
        }
        return (transaction, segment)
    }

    /// Whether readers in other processes are past log segment `id`, retired at transaction
    /// `readableBefore` (spec/reader-table.md): every one reads a state at or after the
    /// retirement and replays the log from a later segment.
    static func readersArePast(_ floor: (transaction: UInt64, segment: UInt32), segment id: UInt32, retiredAt readableBefore: UInt64) -> Bool {
        floor.transaction >= readableBefore && floor.segment > id
    }
}

extension StorageEngine {
    /// Throws `.notAStore` when `directory` exists but is not a directory (a regular file):
    /// a store is a directory, and creating one there would fail with a `mkdir` errno.
    static func checkIsDirectory(fileSystem: any FileSystem, directory: String) throws {
        guard fileSystem.fileExists(directory) else { return }
        do {
            _ = try fileSystem.listDirectory(directory)
        } catch StorageError.io(_, _, let code) where code == ENOTDIR {
            throw StorageError.notAStore(path: directory)
        }
    }
}
