import ScrollbackIO

/// One call into a file system or one of its handles, as `ObservedFileSystem` reports it.
package enum FileCall: Sendable {
    case open(path: String, mode: OpenMode)
    case read(path: String, offset: UInt64, count: Int)
    case write(path: String, offset: UInt64, count: Int)
    case truncate(path: String, size: UInt64)
    case syncData(path: String)
    case createDirectory(String)
    case rename(from: String, to: String)
    case removeFile(String)
    case syncDirectory(String)
}

/// A file system that passes every call to `base`, telling `observe` first of each call that
/// reads or changes a file or a name (`FileCall`): for tests that count or record what a
/// store does, without a forwarding wrapper of their own. An error `observe` throws is the
/// call's, and the call is then not passed on. Everything else (listing, sizes, locks,
/// `allowsBackgroundIO`) passes through unobserved.
package final class ObservedFileSystem: FileSystem, @unchecked Sendable {
    package let base: any FileSystem
    let observe: @Sendable (FileCall) throws -> Void

    package init(base: any FileSystem, observe: @escaping @Sendable (FileCall) throws -> Void) {
        self.base = base
        self.observe = observe
    }

    package func open(_ path: String, mode: OpenMode) throws -> any FileHandle {
        try observe(.open(path: path, mode: mode))
        return ObservedHandle(base: try base.open(path, mode: mode), observe: observe)
    }
    package func fileExists(_ path: String) -> Bool { base.fileExists(path) }
    package func listDirectory(_ path: String) throws -> [String] { try base.listDirectory(path) }
    package func createDirectory(_ path: String) throws {
        try observe(.createDirectory(path))
        try base.createDirectory(path)
    }
    package func rename(_ source: String, to destination: String) throws {
        try observe(.rename(from: source, to: destination))
        try base.rename(source, to: destination)
    }
    package func removeFile(_ path: String) throws {
        try observe(.removeFile(path))
        try base.removeFile(path)
    }
    package func syncDirectory(_ directory: String) throws {
        try observe(.syncDirectory(directory))
        try base.syncDirectory(directory)
    }
    package var allowsBackgroundIO: Bool { base.allowsBackgroundIO }
}

private final class ObservedHandle: FileHandle, @unchecked Sendable {
    let base: any FileHandle
    let observe: @Sendable (FileCall) throws -> Void

    init(base: any FileHandle, observe: @escaping @Sendable (FileCall) throws -> Void) {
        self.base = base
        self.observe = observe
    }

    var path: String { base.path }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        try observe(.read(path: path, offset: offset, count: buffer.count))
        return try base.read(into: buffer, at: offset)
    }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        try observe(.write(path: path, offset: offset, count: bytes.count))
        try base.write(bytes, at: offset)
    }
    func truncate(to size: UInt64) throws {
        try observe(.truncate(path: path, size: size))
        try base.truncate(to: size)
    }
    func allocate(upTo size: UInt64) throws { try base.allocate(upTo: size) }
    func writeBack(offset: UInt64, count: UInt64) throws { try base.writeBack(offset: offset, count: count) }
    func syncData() throws {
        try observe(.syncData(path: path))
        try base.syncData()
    }
    func size() throws -> UInt64 { try base.size() }
    func close() throws { try base.close() }
    func tryLock(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool { try base.tryLock(range, exclusive: exclusive) }
    func unlock(_ range: Range<UInt64>) throws { try base.unlock(range) }
    func isLockedByOthers(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool {
        try base.isLockedByOthers(range, exclusive: exclusive)
    }
}
