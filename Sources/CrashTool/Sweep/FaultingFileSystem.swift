import ScrollbackIO
import Synchronization

/// An injected I/O fault, aimed at one exact call of the workload.
package enum FaultKind: String, Sendable, CaseIterable {
    /// The nth sync (file `fdatasync` or directory fsync) fails once with EIO; a failed file
    /// sync drops that file's unsynced writes (as Linux does after a writeback error).
    case syncEIO = "fsync-eio"
    /// From the nth write on, every write fails with ENOSPC (the disk is full).
    case diskFull = "enospc"
    /// The nth write fails once with EIO and writes nothing.
    case writeEIO = "write-eio"
}

/// Wraps a `CrashSimulatingFileSystem`, counting syncs and writes, and arms one of the
/// simulator's faults just before the chosen call, so a fault hits an exact point of a
/// deterministic workload. Counts are kept whether or not a fault is planned (the dry run
/// uses them to size the sweep).
///
/// Thread-safety: counters behind a Mutex; safe from any thread.
package final class FaultingFileSystem: FileSystem {
    package let inner: CrashSimulatingFileSystem
    struct State {
        var syncs = 0
        var writes = 0
        var plan: (kind: FaultKind, ordinal: Int)?
        var fired = false
        /// A lying disk (the sweep's self-test): syncs succeed without making anything durable.
        var syncsAreNoOps = false
    }
    let state = Mutex(State())

    package init(_ inner: CrashSimulatingFileSystem, fault: (kind: FaultKind, ordinal: Int)? = nil, lyingSyncs: Bool = false) {
        self.inner = inner
        state.withLock {
            $0.plan = fault
            $0.syncsAreNoOps = lyingSyncs
        }
    }

    var lies: Bool { state.withLock { $0.syncsAreNoOps } }

    package var syncCount: Int { state.withLock { $0.syncs } }
    package var writeCount: Int { state.withLock { $0.writes } }
    package var faultFired: Bool { state.withLock { $0.fired } }

    /// Counts a sync and arms the fault if this is the chosen one.
    func willSync(_ arm: (FaultKind) -> Fault?) {
        let fault: Fault? = state.withLock { s in
            s.syncs += 1
            guard let plan = s.plan, plan.kind == .syncEIO, plan.ordinal == s.syncs else { return nil }
            s.fired = true
            return arm(plan.kind)
        }
        if let fault { inner.injectFault(fault) }
    }

    func willWrite(path: String) {
        let fault: Fault? = state.withLock { s in
            s.writes += 1
            guard let plan = s.plan, plan.ordinal == s.writes else { return nil }
            switch plan.kind {
            case .syncEIO: return nil
            case .diskFull:
                s.fired = true
                return .diskFull(byteBudget: 0)
            case .writeEIO:
                s.fired = true
                return .writeFails(pathSuffix: path)
            }
        }
        if let fault { inner.injectFault(fault) }
    }

    package func open(_ path: String, mode: OpenMode) throws -> any FileHandle {
        FaultingFileHandle(fileSystem: self, inner: try inner.open(path, mode: mode))
    }
    package func fileExists(_ path: String) -> Bool { inner.fileExists(path) }
    package func listDirectory(_ path: String) throws -> [String] { try inner.listDirectory(path) }
    package func createDirectory(_ path: String) throws { try inner.createDirectory(path) }
    package func rename(_ source: String, to destination: String) throws { try inner.rename(source, to: destination) }
    package func removeFile(_ path: String) throws { try inner.removeFile(path) }
    /// No background I/O: faults are injected at numbered I/O steps, which must not depend on scheduling.
    package var allowsBackgroundIO: Bool { false }

    package func syncDirectory(_ directory: String) throws {
        willSync { _ in .syncDirectoryFails(pathSuffix: directory) }
        if lies { return }
        try inner.syncDirectory(directory)
    }
}

final class FaultingFileHandle: FileHandle {
    let fileSystem: FaultingFileSystem
    let inner: any FileHandle

    init(fileSystem: FaultingFileSystem, inner: any FileHandle) {
        self.fileSystem = fileSystem
        self.inner = inner
    }

    var path: String { inner.path }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        try inner.read(into: buffer, at: offset)
    }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        fileSystem.willWrite(path: inner.path)
        try inner.write(bytes, at: offset)
    }
    func truncate(to size: UInt64) throws { try inner.truncate(to: size) }
    func allocate(upTo size: UInt64) throws { try inner.allocate(upTo: size) }
    func syncData() throws {
        let path = inner.path
        fileSystem.willSync { _ in .syncFails(pathSuffix: path) }
        if fileSystem.lies { return }
        try inner.syncData()
    }
    func size() throws -> UInt64 { try inner.size() }
    func close() throws { try inner.close() }
    // Locks are not I/O: forwarded as they are.
    func tryLock(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool { try inner.tryLock(range, exclusive: exclusive) }
    func unlock(_ range: Range<UInt64>) throws { try inner.unlock(range) }
    func isLockedByOthers(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool { try inner.isLockedByOthers(range, exclusive: exclusive) }
}
