#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ScrollbackFormat
import Synchronization

/// What happens to the unsynced writes and truncates of each file at a crash
/// (spec/README.md, "What we assume of the disk", assumptions 1 and 2).
///
/// Each file is treated independently, in a deterministic order (by path), with choices
/// drawn from the file system's seeded generator. Synced data is never changed.
package enum CrashMode: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Every unsynced change is lost: each file holds exactly its bytes as of its last
    /// successful `syncData`.
    case dropAllUnsynced
    /// Every unsynced change reached the disk (as if the crash came after a sync).
    case keepAll
    /// An in-order device: a random prefix (possibly empty or complete) of the file's pending
    /// changes is applied.
    case keepPrefix
    /// A reordering device: each pending change is applied or dropped independently
    /// (the kept ones are applied in their original order).
    case keepRandomSubset
    /// All pending changes before the file's last pending write are applied; the last write
    /// is torn: it is cut at 512-byte sector boundaries, a random proper prefix of its sectors
    /// is applied, and the sector in flight is filled with seeded garbage (only the bytes the
    /// write covered; neighbouring bytes keep their old values). Changes after it are lost.
    case tearLastWrite
    /// Each pending change independently is applied, dropped, or (writes) torn as in
    /// `tearLastWrite`.
    case mixed

    package var description: String { rawValue }
}

/// What happens at a crash to creates, renames and removes not yet made durable by a
/// `syncDirectory` of their directory (assumption 4). Renames stay atomic (assumption 5).
package enum NamespaceCrashMode: String, CaseIterable, Sendable, CustomStringConvertible {
    /// All of them are undone: a file created but never directory-synced disappears, an
    /// unsynced rename reverts, an unsynced remove is undone. (The default.)
    case revertUnsynced
    /// All of them survive.
    case keepAll
    /// A random in-order prefix of them survives (a journaling file system).
    case keepPrefix

    package var description: String { rawValue }
}

/// Injected failures (reliability.md, "variants"). Each is checked under the file system's lock.
package enum Fault: Sendable, Equatable {
    /// The next `syncData` of a file whose path ends with `pathSuffix` fails once with EIO
    /// and drops that file's pending changes (reads then see its durable bytes), as Linux does
    /// after a writeback error.
    case syncFails(pathSuffix: String)
    /// The next `write` to a file whose path ends with `pathSuffix` fails once with EIO and
    /// writes nothing.
    case writeFails(pathSuffix: String)
    /// The next `syncDirectory` of a directory whose path ends with `pathSuffix` fails once
    /// with EIO; its unsynced creates, renames and removes stay unsynced.
    case syncDirectoryFails(pathSuffix: String)
    /// Counting from now, a write that would take the total bytes written past `byteBudget`
    /// fails with ENOSPC and writes nothing; so does every later one, until `clearFaults()`
    /// or `crash(mode:)`.
    case diskFull(byteBudget: UInt64)
    /// The `nth` read from now (1 = the next one) fails once with EIO.
    case readFails(nth: Int)
}

/// A file system in memory that models what a power loss can do to unsynced data
/// (reliability.md, "Our crash simulator"; spec/README.md, "What we assume of the disk").
///
/// Model:
/// - Per file (inode): the current bytes and the ordered list of pending (unsynced) writes and
///   truncates. Reads see pending over durable. `syncData` makes that file's pending list
///   durable. Open handles follow the inode across renames and removes (POSIX).
/// - Namespace: a current and a durable map from path to inode, plus the ordered unsynced
///   namespace changes (creates, renames, removes). `syncDirectory(d)` makes the current
///   entries of `d` durable. Directories themselves are durable as soon as they are created
///   (`createDirectory` is a step but has no unsynced state). Renaming a directory is one
///   namespace change of its parent: every name under it moves at once, durable when the
///   parent is synced. The model requires that nothing under the directory is unsynced when
///   it is renamed, and that source and destination share their parent (the rename then is
///   one entry of one directory); otherwise `rename` throws EINVAL.
/// - `crash(mode:namespace:)` resolves every unsynced change (`CrashMode`,
///   `NamespaceCrashMode`), drops files no longer named, invalidates every open handle (they
///   throw EIO), releases every byte-range lock (no process survives a power loss) and lets
///   the file system be used again, e.g. for recovery.
/// - Byte-range locks follow Linux open-file-description locks (`FileHandle`, "Byte-range
///   locks"): one owner per handle, released by `close()`, by the handle's deinit, and by a
///   crash. Locking is not a step (it changes nothing on disk); with the power off it throws
///   EIO like every other call.
/// - Steps: every successful mutating call is one step: `write`, `truncate`, `syncData`,
///   a file-creating `open`, `rename`, `removeFile`, `syncDirectory`, a directory-creating
///   `createDirectory`. Calls that fail do not count.
/// - Power loss: `scheduleCrash(afterSteps: n)` lets `n` more steps complete; from then on
///   ("the machine lost power") every call (reads, opens, listings and steps) throws
///   `StorageError.io(errno: EIO)` and changes nothing until `crash` is called. `fileExists`
///   answers from the frozen view; `close()` always succeeds once.
///
/// Invariants: data covered by a successful `syncData`, and names covered by a successful
/// `syncDirectory`, survive every crash unchanged. Every random choice comes from one seeded
/// SplitMix64 stream and files are visited in path order, so the same seed and the same
/// sequence of calls replay the same crash.
///
/// Errors use POSIX errno values: ENOENT, EEXIST, EISDIR, ENOTDIR, EBADF (closed or read-only
/// handle), EIO (power lost, stale handle, injected fault), ENOSPC, EFBIG (past
/// `maxFileSize`).
///
/// Thread-safety: all state is behind one `Mutex`; every call is atomic with respect to the
/// others and safe from any thread. Cost: reads and writes copy the touched bytes; `crash` and
/// `durableContents` are linear in file sizes plus pending changes.
package final class CrashSimulatingFileSystem: FileSystem {
    /// The unit of tearing.
    package static let sectorSize = 512

    struct NamespaceChange {
        var path: String
        var file: SimulatedFile?
        /// A directory rename: every name under `path` (and `path` itself, a directory) moves
        /// under this path; `file` is unused.
        var movedTo: String? = nil
    }

    /// Moves directory `source` and every name under it to `destination` in `names` and
    /// `directories`.
    static func moveDirectory(_ source: String, to destination: String, names: inout [String: SimulatedFile],
                              directories: inout Set<String>) {
        let prefix = source + "/"
        func moved(_ path: String) -> String { destination + path.dropFirst(source.count) }
        for path in names.keys where path.hasPrefix(prefix) {
            names[moved(path)] = names.removeValue(forKey: path)
        }
        for directory in directories where directory == source || directory.hasPrefix(prefix) {
            directories.remove(directory)
            directories.insert(moved(directory))
        }
    }

    struct State {
        var files: [String: SimulatedFile] = [:]
        var durableFiles: [String: SimulatedFile] = [:]
        /// Unsynced namespace operations in order; each is the list of entries it changed
        /// (a rename changes two, atomically). Entries of a synced directory are removed.
        var pendingNamespace: [[NamespaceChange]] = []
        var directories: Set<String> = ["/", "."]
        /// The directories a crash leaves: created ones at once, renamed ones once their
        /// parent is synced.
        var durableDirectories: Set<String> = ["/", "."]
        var rng: SplitMix64
        var nextFileID = 1
        /// Bumped by every crash; handles from an older generation are stale.
        var generation = 0
        var stepCount = 0
        var stepsUntilPowerLoss: Int?
        var poweredOff = false
        var crashCount = 0
        var failingSyncs: [String] = []
        var failingWrites: [String] = []
        var failingDirectorySyncs: [String] = []
        var byteBudget: UInt64?
        var bytesWrittenSinceBudget: UInt64 = 0
        var readsUntilFailure: Int?
        var locks = ByteRangeLockTable()
        var nextHandleID = 1

        mutating func newFile(_ bytes: [UInt8] = []) -> SimulatedFile {
            defer { nextFileID += 1 }
            return SimulatedFile(id: nextFileID, bytes: bytes)
        }

        func checkPower(_ operation: String, _ path: String) throws {
            if poweredOff { throw StorageError.io(path: path, operation: operation, errno: EIO) }
        }

        /// Counts a completed step and cuts the power once the scheduled count is reached.
        mutating func completeStep() {
            stepCount += 1
            if let remaining = stepsUntilPowerLoss {
                if remaining <= 1 {
                    stepsUntilPowerLoss = nil
                    poweredOff = true
                } else {
                    stepsUntilPowerLoss = remaining - 1
                }
            }
        }

        mutating func clearFaults() {
            failingSyncs = []
            failingWrites = []
            failingDirectorySyncs = []
            byteBudget = nil
            readsUntilFailure = nil
        }

        /// Applies one namespace operation to the current view and queues it as unsynced.
        mutating func changeNamespace(_ changes: [NamespaceChange]) {
            for change in changes {
                if let destination = change.movedTo {
                    CrashSimulatingFileSystem.moveDirectory(change.path, to: destination, names: &files, directories: &directories)
                } else {
                    files[change.path] = change.file
                }
            }
            pendingNamespace.append(changes)
        }
    }

    let state: Lock<State>
    /// The largest file size the simulator accepts (writes or truncates past it throw EFBIG).
    package let maxFileSize: Int

    /// Creates an empty file system whose directories are `/` and `.`; every random choice
    /// derives from `seed`.
    package init(seed: UInt64, maxFileSize: Int = 1 << 32) {
        state = Lock(State(rng: SplitMix64(seed: seed)))
        self.maxFileSize = maxFileSize
    }

    // MARK: Crash control

    /// Number of completed I/O steps so far (see the type's documentation), over the whole
    /// life of the file system (crashes do not reset it).
    package var stepCount: Int { state.withLock { $0.stepCount } }

    /// True after a scheduled power loss and until `crash` is called.
    package var isPoweredOff: Bool { state.withLock { $0.poweredOff } }

    /// Number of `crash` calls so far.
    package var crashCount: Int { state.withLock { $0.crashCount } }

    /// Lets `steps` more I/O steps complete; then the power is lost: every further call throws
    /// `StorageError.io(errno: EIO)` and the view is frozen until `crash` is called.
    /// `steps == 0` cuts the power now. A later call replaces an earlier schedule.
    ///
    /// So a workload run after `scheduleCrash(afterSteps: n)` completes exactly its first `n`
    /// steps and its step `n + 1` throws EIO; a sweep runs `n` over `0..<totalSteps`.
    package func scheduleCrash(afterSteps steps: Int) {
        state.withLock { state in
            if steps <= 0 {
                state.stepsUntilPowerLoss = nil
                state.poweredOff = true
            } else {
                state.stepsUntilPowerLoss = steps
            }
        }
    }

    /// Simulates the crash (power loss) now: resolves every unsynced file change per `mode`
    /// and every unsynced namespace change per `namespace`, removes files that are no longer
    /// named, invalidates all open handles (they throw EIO), clears the schedule and all
    /// faults, and restores power. Afterwards the file system holds only what survived and
    /// works normally (recovery runs on it). Works whether or not the power was already off.
    package func crash(mode: CrashMode, namespace: NamespaceCrashMode = .revertUnsynced) {
        state.withLock { state in
            var names = state.durableFiles
            var directories = state.durableDirectories
            switch namespace {
            case .revertUnsynced:
                break
            case .keepAll:
                names = state.files
                directories = state.directories
            case .keepPrefix:
                let kept = state.rng.below(state.pendingNamespace.count + 1)
                for operation in state.pendingNamespace.prefix(kept) {
                    for change in operation {
                        if let destination = change.movedTo {
                            Self.moveDirectory(change.path, to: destination, names: &names, directories: &directories)
                        } else {
                            names[change.path] = change.file
                        }
                    }
                }
            }
            var seen = Set<ObjectIdentifier>()
            for path in names.keys.sorted() {
                guard let file = names[path], seen.insert(ObjectIdentifier(file)).inserted else { continue }
                file.crash(mode, rng: &state.rng)
            }
            state.files = names
            state.durableFiles = names
            state.directories = directories
            state.durableDirectories = directories
            state.pendingNamespace = []
            state.locks.removeAll()
            state.generation += 1
            state.crashCount += 1
            state.stepsUntilPowerLoss = nil
            state.poweredOff = false
            state.clearFaults()
        }
    }

    /// Arms `fault` (see `Fault`). Several faults may be armed at once.
    package func injectFault(_ fault: Fault) {
        state.withLock { state in
            switch fault {
            case let .syncFails(suffix): state.failingSyncs.append(suffix)
            case let .writeFails(suffix): state.failingWrites.append(suffix)
            case let .syncDirectoryFails(suffix): state.failingDirectorySyncs.append(suffix)
            case let .diskFull(budget):
                state.byteBudget = budget
                state.bytesWrittenSinceBudget = 0
            case let .readFails(nth): state.readsUntilFailure = max(1, nth)
            }
        }
    }

    /// Disarms every injected fault.
    package func clearFaults() {
        state.withLock { $0.clearFaults() }
    }

    // MARK: Inspection and damage (tests)

    /// The current view of a file (what a read sees now), or nil if no file has that path.
    package func contents(of path: String) -> [UInt8]? {
        state.withLock { $0.files[path]?.bytes }
    }

    /// What `crash(mode: .dropAllUnsynced)` would leave at `path`: the file named `path` in
    /// the durable namespace, with its bytes as of its last successful sync; nil if no such
    /// durable name.
    package func durableContents(of path: String) -> [UInt8]? {
        state.withLock { $0.durableFiles[path]?.durableBytes }
    }

    /// Replaces a file's bytes durably (pending changes are discarded), creating the file
    /// with a durable name if it is missing. Tests use it to inject damage into durable data.
    /// Not a step; works even with the power off.
    package func setContents(of path: String, to bytes: [UInt8]) {
        state.withLock { state in
            if let file = state.files[path] {
                file.bytes = bytes
                file.pending.removeAll()
                if state.durableFiles[path] == nil { state.durableFiles[path] = file }
            } else {
                let file = state.newFile(bytes)
                state.files[path] = file
                state.durableFiles[path] = file
                state.directories.insert(Path.directory(of: path))
                state.durableDirectories.insert(Path.directory(of: path))
            }
        }
    }

    /// Number of unsynced writes and truncates of the file at `path` (0 if missing).
    package func pendingChangeCount(of path: String) -> Int {
        state.withLock { $0.files[path]?.pending.count ?? 0 }
    }

    /// Number of byte-range locks held through all handles (tests).
    package var heldLockCount: Int { state.withLock { $0.locks.count } }

    /// Paths of all files in the current view, sorted.
    package func allFilePaths() -> [String] {
        state.withLock { $0.files.keys.sorted() }
    }

    // MARK: FileSystem

    package func open(_ path: String, mode: OpenMode) throws -> any FileHandle {
        let (file, generation, id) = try state.withLock { state throws -> (SimulatedFile, Int, Int) in
            try state.checkPower("open", path)
            if state.directories.contains(path) {
                throw StorageError.io(path: path, operation: "open", errno: EISDIR)
            }
            defer { state.nextHandleID += 1 }
            if let existing = state.files[path] {
                if mode == .createNew { throw StorageError.io(path: path, operation: "open", errno: EEXIST) }
                return (existing, state.generation, state.nextHandleID)
            }
            guard mode == .createIfMissing || mode == .createNew,
                state.directories.contains(Path.directory(of: path))
            else {
                throw StorageError.io(path: path, operation: "open", errno: ENOENT)
            }
            let file = state.newFile()
            state.changeNamespace([NamespaceChange(path: path, file: file)])
            state.completeStep()
            return (file, state.generation, state.nextHandleID)
        }
        return CrashSimulatingFileHandle(
            fileSystem: self, file: file, path: path, readOnly: mode == .readOnly, generation: generation, id: id)
    }

    package func fileExists(_ path: String) -> Bool {
        state.withLock { $0.files[path] != nil || $0.directories.contains(path) }
    }

    package func listDirectory(_ path: String) throws -> [String] {
        try state.withLock { state throws -> [String] in
            try state.checkPower("opendir", path)
            guard state.directories.contains(path) else {
                let errno = state.files[path] != nil ? ENOTDIR : ENOENT
                throw StorageError.io(path: path, operation: "opendir", errno: errno)
            }
            let files = state.files.keys.filter { Path.directory(of: $0) == path }
            let subdirectories = state.directories.filter { $0 != path && Path.directory(of: $0) == path }
            return (files + subdirectories).map { Path.name(of: $0) }.sorted()
        }
    }

    package func createDirectory(_ path: String) throws {
        try state.withLock { state throws in
            try state.checkPower("mkdir", path)
            var missing: [String] = []
            var current = path
            while !state.directories.contains(current) {
                if state.files[current] != nil {
                    throw StorageError.io(path: path, operation: "mkdir", errno: current == path ? EEXIST : ENOTDIR)
                }
                missing.append(current)
                current = Path.directory(of: current)
            }
            guard !missing.isEmpty else { return }
            state.directories.formUnion(missing)
            state.durableDirectories.formUnion(missing)
            state.completeStep()
        }
    }

    package func rename(_ source: String, to destination: String) throws {
        try state.withLock { state throws in
            try state.checkPower("rename", source)
            if state.directories.contains(source) {
                try Self.checkDirectoryRename(source, to: destination, state)
                state.changeNamespace([NamespaceChange(path: source, file: nil, movedTo: destination)])
                state.completeStep()
                return
            }
            guard let file = state.files[source] else {
                throw StorageError.io(path: source, operation: "rename to \(destination)", errno: ENOENT)
            }
            if state.directories.contains(destination) {
                throw StorageError.io(path: destination, operation: "rename from \(source)", errno: EISDIR)
            }
            guard state.directories.contains(Path.directory(of: destination)) else {
                throw StorageError.io(path: destination, operation: "rename from \(source)", errno: ENOENT)
            }
            if source != destination {
                state.changeNamespace([
                    NamespaceChange(path: source, file: nil), NamespaceChange(path: destination, file: file),
                ])
            }
            state.completeStep()
        }
    }

    /// The model's conditions for renaming a directory (see the type's documentation).
    static func checkDirectoryRename(_ source: String, to destination: String, _ state: State) throws {
        func refuse(_ errno: Int32, _ why: String) -> StorageError {
            StorageError.io(path: source, operation: "rename to \(destination) (\(why))", errno: errno)
        }
        if state.files[destination] != nil || state.directories.contains(destination) {
            throw refuse(EEXIST, "the destination exists")
        }
        if destination.hasPrefix(source + "/") { throw refuse(EINVAL, "into itself") }
        guard Path.directory(of: source) == Path.directory(of: destination) else {
            throw refuse(EINVAL, "the simulator renames a directory only within its parent")
        }
        let prefix = source + "/"
        let unsynced = state.pendingNamespace.contains { $0.contains { $0.path.hasPrefix(prefix) || ($0.movedTo?.hasPrefix(prefix) ?? false) } }
        if unsynced { throw refuse(EINVAL, "the simulator needs the directory's entries synced first") }
    }

    package func removeFile(_ path: String) throws {
        try state.withLock { state throws in
            try state.checkPower("unlink", path)
            guard state.files[path] != nil else {
                throw StorageError.io(path: path, operation: "unlink", errno: state.directories.contains(path) ? EISDIR : ENOENT)
            }
            state.changeNamespace([NamespaceChange(path: path, file: nil)])
            state.completeStep()
        }
    }

    /// No background I/O: the crash sweep numbers every I/O step and replays a case by its number.
    package var allowsBackgroundIO: Bool { false }

    package func syncDirectory(_ directory: String) throws {
        try state.withLock { state throws in
            try state.checkPower("fsync(dir)", directory)
            guard state.directories.contains(directory) else {
                throw StorageError.io(path: directory, operation: "fsync(dir)", errno: ENOENT)
            }
            if let index = state.failingDirectorySyncs.firstIndex(where: { directory.hasSuffix($0) }) {
                state.failingDirectorySyncs.remove(at: index)
                throw StorageError.io(path: directory, operation: "fsync(dir)", errno: EIO)
            }
            let renamedInto = state.pendingNamespace.contains { $0.contains { change in
                change.movedTo.map { directory == $0 || directory.hasPrefix($0 + "/") } ?? false } }
            if renamedInto {
                throw StorageError.io(path: directory, operation: "fsync(dir) (the simulator syncs a renamed directory only after its parent)",
                                      errno: EINVAL)
            }
            let inDirectory = { (path: String) in Path.directory(of: path) == directory }
            // Directory renames in this directory first, in order: they move durable names.
            for operation in state.pendingNamespace {
                for change in operation where change.movedTo != nil && inDirectory(change.path) {
                    Self.moveDirectory(change.path, to: change.movedTo!, names: &state.durableFiles,
                                       directories: &state.durableDirectories)
                }
            }
            for path in Set(state.files.keys.filter(inDirectory)).union(state.durableFiles.keys.filter(inDirectory)) {
                state.durableFiles[path] = state.files[path]
            }
            state.pendingNamespace = state.pendingNamespace.compactMap { operation in
                let rest = operation.filter { !inDirectory($0.path) }
                return rest.isEmpty ? nil : rest
            }
            state.completeStep()
        }
    }
}

/// A handle on a `CrashSimulatingFileSystem` file. It refers to the file (inode), not the
/// name, so it keeps working after a rename or remove; it is stale (EIO) after a crash, and
/// the crash released its locks.
///
/// Thread-safety: every call takes the file system's mutex; safe from any thread.
final class CrashSimulatingFileHandle: FileHandle {
    let fileSystem: CrashSimulatingFileSystem
    let file: SimulatedFile
    let path: String
    let readOnly: Bool
    let generation: Int
    /// Owner of this handle's byte-range locks.
    let id: Int
    let isOpen = Atomic<Bool>(true)

    init(fileSystem: CrashSimulatingFileSystem, file: SimulatedFile, path: String, readOnly: Bool, generation: Int,
         id: Int) {
        self.fileSystem = fileSystem
        self.file = file
        self.path = path
        self.readOnly = readOnly
        self.generation = generation
        self.id = id
    }

    deinit {
        if isOpen.load(ordering: .acquiring) {
            fileSystem.state.withLock { $0.locks.releaseAll(owner: id) }
        }
    }

    /// Runs `body` under the lock after the common checks: open (EBADF), power (EIO), not
    /// stale (EIO), writable if `writing` (EBADF). A step when `step` and `body` succeeds.
    private func access<R>(
        _ operation: String, writing: Bool = false, step: Bool = false,
        _ body: (inout CrashSimulatingFileSystem.State) throws -> R
    ) throws -> R {
        if !isOpen.load(ordering: .acquiring) {
            throw StorageError.io(path: path, operation: operation, errno: EBADF)
        }
        return try fileSystem.state.withLock { state throws -> R in
            try state.checkPower(operation, path)
            if state.generation != generation {
                throw StorageError.io(path: path, operation: operation, errno: EIO)
            }
            if writing && readOnly { throw StorageError.io(path: path, operation: operation, errno: EBADF) }
            let result = try body(&state)
            if step { state.completeStep() }
            return result
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        try access("pread") { state throws -> Int in
            if let remaining = state.readsUntilFailure {
                if remaining <= 1 {
                    state.readsUntilFailure = nil
                    throw StorageError.io(path: path, operation: "pread", errno: EIO)
                }
                state.readsUntilFailure = remaining - 1
            }
            let size = file.bytes.count
            guard offset < UInt64(size), buffer.count > 0 else { return 0 }
            let start = Int(offset)
            let count = min(buffer.count, size - start)
            file.bytes.withUnsafeBytes { source in
                buffer.baseAddress!.copyMemory(from: source.baseAddress! + start, byteCount: count)
            }
            return count
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        try access("pwrite", writing: true, step: true) { state throws in
            guard offset <= UInt64(fileSystem.maxFileSize),
                bytes.count <= fileSystem.maxFileSize - Int(offset)
            else {
                throw StorageError.io(path: path, operation: "pwrite", errno: EFBIG)
            }
            if let index = state.failingWrites.firstIndex(where: { path.hasSuffix($0) }) {
                state.failingWrites.remove(at: index)
                throw StorageError.io(path: path, operation: "pwrite", errno: EIO)
            }
            if let budget = state.byteBudget {
                let total = state.bytesWrittenSinceBudget + UInt64(bytes.count)
                if total > budget { throw StorageError.io(path: path, operation: "pwrite", errno: ENOSPC) }
                state.bytesWrittenSinceBudget = total
            }
            guard bytes.count > 0 else { return }
            file.record(.write(offset: Int(offset), bytes: Array(bytes)))
        }
    }

    func truncate(to size: UInt64) throws {
        try access("ftruncate", writing: true, step: true) { _ throws in
            guard size <= UInt64(fileSystem.maxFileSize) else {
                throw StorageError.io(path: path, operation: "ftruncate", errno: EFBIG)
            }
            file.record(.truncate(size: Int(size)))
        }
    }

    func syncData() throws {
        try access("fdatasync", step: true) { state throws in
            if let index = state.failingSyncs.firstIndex(where: { path.hasSuffix($0) }) {
                state.failingSyncs.remove(at: index)
                file.dropPending()
                throw StorageError.io(path: path, operation: "fdatasync", errno: EIO)
            }
            file.makeDurable()
        }
    }

    func size() throws -> UInt64 {
        try access("fstat") { _ in UInt64(file.bytes.count) }
    }

    func tryLock(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool {
        try validateLockRange(range, operation: "lock")
        return try access("lock", writing: exclusive) { state in
            state.locks.tryLock(file: ObjectIdentifier(file), owner: id, range: range, exclusive: exclusive)
        }
    }

    func unlock(_ range: Range<UInt64>) throws {
        try validateLockRange(range, operation: "unlock")
        try access("unlock") { state in
            state.locks.unlock(file: ObjectIdentifier(file), owner: id, range: range)
        }
    }

    func isLockedByOthers(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool {
        try validateLockRange(range, operation: "lock test")
        return try access("lock test") { state in
            state.locks.conflicts(file: ObjectIdentifier(file), owner: id, range: range, exclusive: exclusive)
        }
    }

    /// Closes the handle and releases its locks. Succeeds even with the power off or after a
    /// crash (it releases nothing durable); throws EBADF only if already closed.
    func close() throws {
        if !isOpen.exchange(false, ordering: .acquiringAndReleasing) {
            throw StorageError.io(path: path, operation: "close", errno: EBADF)
        }
        fileSystem.state.withLock { $0.locks.releaseAll(owner: id) }
    }
}
