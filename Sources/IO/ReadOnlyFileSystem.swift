import ScrollbackFormat

/// A view of the real file system that never changes it, for inspection tools (`scrollback
/// dump` runs the log's own recovery scan on it): existing files open read-only; files the
/// engine creates (a new log segment, …) live in memory; truncates and syncs of real files
/// are ignored (the log's open cuts a torn tail this way only in its own view); removes and
/// renames of real files fail.
package final class ReadOnlyFileSystem: FileSystem {
    private let disk = PosixFileSystem()
    private let memory = MemoryFileSystem()

    package init() {}

    package func open(_ path: String, mode: OpenMode) throws -> any FileHandle {
        if memory.fileExists(path) { return try memory.open(path, mode: mode == .createNew ? .existing : mode) }
        if disk.fileExists(path) {
            if mode == .createNew { throw StorageError.io(path: path, operation: "open", errno: 17) }  // EEXIST
            return ReadOnlyHandle(try disk.open(path, mode: .readOnly))
        }
        guard mode == .createNew || mode == .createIfMissing else {
            return try disk.open(path, mode: .readOnly)  // throws ENOENT naming the path
        }
        try memory.createDirectory(Path.directory(of: path))
        return try memory.open(path, mode: mode)
    }

    package func fileExists(_ path: String) -> Bool { memory.fileExists(path) || disk.fileExists(path) }

    package func listDirectory(_ path: String) throws -> [String] {
        var names = Set(try disk.listDirectory(path))
        if let inMemory = try? memory.listDirectory(path) { names.formUnion(inMemory) }
        return names.sorted()
    }

    package func createDirectory(_ path: String) throws {
        if !disk.fileExists(path) { try memory.createDirectory(path) }
    }

    package func rename(_ source: String, to destination: String) throws {
        guard memory.fileExists(source) else {
            throw StorageError.invalidArgument("read-only view: cannot rename \(source); open the store once to let it recover")
        }
        try memory.rename(source, to: destination)
    }

    package func removeFile(_ path: String) throws {
        guard memory.fileExists(path) else {
            throw StorageError.invalidArgument("read-only view: cannot remove \(path); open the store once to let it recover")
        }
        try memory.removeFile(path)
    }

    package func syncDirectory(_ directory: String) throws {}
}

/// A real file opened read-only; truncation and sync are no-ops, writes fail.
private final class ReadOnlyHandle: FileHandle {
    let base: any FileHandle
    init(_ base: any FileHandle) { self.base = base }
    var path: String { base.path }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        try base.read(into: buffer, at: offset)
    }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        throw StorageError.invalidArgument("read-only view: cannot write \(path)")
    }
    func truncate(to size: UInt64) throws {}
    func allocate(upTo size: UInt64) throws {}
    func syncData() throws {}
    func size() throws -> UInt64 { try base.size() }
    func close() throws { try base.close() }
    func tryLock(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool { try base.tryLock(range, exclusive: exclusive) }
    func unlock(_ range: Range<UInt64>) throws { try base.unlock(range) }
    func isLockedByOthers(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool { try base.isLockedByOthers(range, exclusive: exclusive) }
}
