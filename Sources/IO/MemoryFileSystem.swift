#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ScrollbackFormat
import Synchronization

/// A file system held entirely in memory. Every write is immediately "durable" (there is no
/// crash to lose it); for crash testing use `CrashSimulatingFileSystem`.
///
/// Semantics follow POSIX where the engine relies on them: an open handle keeps working
/// after its file is removed or renamed over; `rename` replaces the destination atomically.
/// Byte-range locks follow Linux open-file-description locks (`FileHandle`, "Byte-range
/// locks"): each handle is one owner, closing it (or letting it deinit) releases its locks.
///
/// Thread-safety: all state is behind one mutex; safe from any thread.
package final class MemoryFileSystem: FileSystem {
    final class Node: @unchecked Sendable {
        // Guarded by the file system's mutex.
        var bytes: [UInt8] = []
    }

    struct State {
        var files: [String: Node] = [:]
        var directories: Set<String> = ["/", "."]
        var locks = ByteRangeLockTable()
        var nextHandleID = 1
    }

    let state = Lock(State())

    /// Whether a store on this file system runs background work (`FileSystem.allowsBackgroundIO`).
    /// No by default: the tests that use it read the files a store leaves at given points (runs
    /// sealed, segments removed), which a background thread would make depend on scheduling.
    package let allowsBackgroundIO: Bool

    package init(allowsBackgroundIO: Bool = false) {
        self.allowsBackgroundIO = allowsBackgroundIO
    }

    /// Releases every byte-range lock, as the death of every process using the files would
    /// (the files keep their contents: a process crash, not a power loss). Handles opened
    /// before stay usable but hold no locks.
    package func releaseAllLocks() {
        state.withLock { $0.locks.removeAll() }
    }

    package func open(_ path: String, mode: OpenMode) throws -> any FileHandle {
        let opened: (Node, Int)? = state.withLock { state -> (Node, Int)? in
            let node: Node
            if let existing = state.files[path] {
                if mode == .createNew { return nil }
                node = existing
            } else {
                guard mode == .createIfMissing || mode == .createNew else { return nil }
                guard state.directories.contains(Path.directory(of: path)) else { return nil }
                node = Node()
                state.files[path] = node
            }
            defer { state.nextHandleID += 1 }
            return (node, state.nextHandleID)
        }
        guard let opened else {
            let exists = fileExists(path)
            throw StorageError.io(path: path, operation: "open", errno: exists ? EEXIST : ENOENT)
        }
        return MemoryFileHandle(fileSystem: self, node: opened.0, path: path, readOnly: mode == .readOnly, id: opened.1)
    }

    package func fileExists(_ path: String) -> Bool {
        state.withLock { $0.files[path] != nil || $0.directories.contains(path) }
    }

    package func listDirectory(_ path: String) throws -> [String] {
        let result: [String]? = state.withLock { state in
            guard state.directories.contains(path) else { return nil }
            let names = state.files.keys.filter { Path.directory(of: $0) == path }.map { Path.name(of: $0) }
            let subdirectories = state.directories.filter { $0 != path && Path.directory(of: $0) == path }
                .map { Path.name(of: $0) }
            return (names + subdirectories).sorted()
        }
        guard let result else { throw StorageError.io(path: path, operation: "opendir", errno: ENOENT) }
        return result
    }

    package func createDirectory(_ path: String) throws {
        state.withLock { state in
            var current = path
            while !state.directories.contains(current) {
                state.directories.insert(current)
                current = Path.directory(of: current)
            }
        }
    }

    package func rename(_ source: String, to destination: String) throws {
        let ok = state.withLock { state -> Bool in
            guard let node = state.files.removeValue(forKey: source) else { return false }
            state.files[destination] = node
            return true
        }
        if !ok { throw StorageError.io(path: source, operation: "rename", errno: ENOENT) }
    }

    package func removeFile(_ path: String) throws {
        let ok = state.withLock { $0.files.removeValue(forKey: path) != nil }
        if !ok { throw StorageError.io(path: path, operation: "unlink", errno: ENOENT) }
    }

    package func syncDirectory(_ directory: String) throws {
        let ok = state.withLock { $0.directories.contains(directory) }
        if !ok { throw StorageError.io(path: directory, operation: "fsync(dir)", errno: ENOENT) }
    }

    /// Number of byte-range locks held through all handles (tests).
    package var heldLockCount: Int { state.withLock { $0.locks.count } }

    /// A copy of a file's bytes (tests use it to damage or inspect files).
    package func contents(of path: String) -> [UInt8]? {
        state.withLock { $0.files[path]?.bytes }
    }

    /// Replaces a file's bytes (tests use it to inject damage).
    package func setContents(of path: String, to bytes: [UInt8]) {
        state.withLock { state in
            if let node = state.files[path] { node.bytes = bytes } else {
                let node = Node()
                node.bytes = bytes
                state.files[path] = node
            }
        }
    }
}

final class MemoryFileHandle: FileHandle {
    let fileSystem: MemoryFileSystem
    let node: MemoryFileSystem.Node
    let path: String
    let readOnly: Bool
    /// Owner of this handle's byte-range locks.
    let id: Int
    let isOpen = Atomic<Bool>(true)

    init(fileSystem: MemoryFileSystem, node: MemoryFileSystem.Node, path: String, readOnly: Bool, id: Int) {
        self.fileSystem = fileSystem
        self.node = node
        self.path = path
        self.readOnly = readOnly
        self.id = id
    }

    deinit {
        if isOpen.load(ordering: .acquiring) {
            fileSystem.state.withLock { $0.locks.releaseAll(owner: id) }
        }
    }

    private func checkOpen(_ operation: String) throws {
        if !isOpen.load(ordering: .acquiring) { throw StorageError.io(path: path, operation: operation, errno: EBADF) }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        try checkOpen("pread")
        return fileSystem.state.withLock { _ -> Int in
            let size = UInt64(node.bytes.count)
            guard offset < size else { return 0 }
            let n = Int(min(UInt64(buffer.count), size - offset))
            node.bytes.withUnsafeBytes { source in
                buffer.baseAddress!.copyMemory(from: source.baseAddress! + Int(offset), byteCount: n)
            }
            return n
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        try checkOpen("pwrite")
        if readOnly { throw StorageError.io(path: path, operation: "pwrite", errno: EBADF) }
        fileSystem.state.withLock { _ in
            let end = Int(offset) + bytes.count
            if node.bytes.count < end { node.bytes.append(contentsOf: repeatElement(0, count: end - node.bytes.count)) }
            guard bytes.count > 0 else { return }
            node.bytes.withUnsafeMutableBytes { target in
                (target.baseAddress! + Int(offset)).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            }
        }
    }

    func truncate(to size: UInt64) throws {
        try checkOpen("ftruncate")
        if readOnly { throw StorageError.io(path: path, operation: "ftruncate", errno: EBADF) }
        fileSystem.state.withLock { _ in
            let target = Int(size)
            if node.bytes.count > target {
                node.bytes.removeLast(node.bytes.count - target)
            } else {
                node.bytes.append(contentsOf: repeatElement(0, count: target - node.bytes.count))
            }
        }
    }

    func syncData() throws { try checkOpen("fdatasync") }

    func size() throws -> UInt64 {
        try checkOpen("fstat")
        return fileSystem.state.withLock { _ in UInt64(node.bytes.count) }
    }

    func tryLock(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool {
        try checkLockable(range, exclusive: exclusive, "lock")
        return fileSystem.state.withLock { state in
            state.locks.tryLock(file: ObjectIdentifier(node), owner: id, range: range, exclusive: exclusive)
        }
    }

    func unlock(_ range: Range<UInt64>) throws {
        try checkOpen("unlock")
        try validateLockRange(range, operation: "unlock")
        fileSystem.state.withLock { state in
            state.locks.unlock(file: ObjectIdentifier(node), owner: id, range: range)
        }
    }

    func isLockedByOthers(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool {
        try checkOpen("lock test")
        try validateLockRange(range, operation: "lock test")
        return fileSystem.state.withLock { state in
            state.locks.conflicts(file: ObjectIdentifier(node), owner: id, range: range, exclusive: exclusive)
        }
    }

    /// The checks of `fcntl(F_OFD_SETLK)`: open, a valid range, and an exclusive lock only
    /// through a handle that may write.
    private func checkLockable(_ range: Range<UInt64>, exclusive: Bool, _ operation: String) throws {
        try checkOpen(operation)
        try validateLockRange(range, operation: operation)
        if exclusive && readOnly { throw StorageError.io(path: path, operation: operation, errno: EBADF) }
    }

    func close() throws {
        if !isOpen.exchange(false, ordering: .acquiringAndReleasing) {
            throw StorageError.io(path: path, operation: "close", errno: EBADF)
        }
        fileSystem.state.withLock { $0.locks.releaseAll(owner: id) }
    }
}
