#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ScrollbackPager
import ScrollbackFormat
import ScrollbackIO
import Synchronization
import Testing

let directory = "/store"
let pagesPath = "/store/pages"

/// A memory file system with a store directory.
func makeFileSystem() throws -> MemoryFileSystem {
    let fs = MemoryFileSystem()
    try fs.createDirectory(directory)
    return fs
}

func makePager(_ fs: any FileSystem, pageSize: Int = 4096, cacheBytes: Int = 1 << 20) throws -> Pager {
    try Pager.create(fileSystem: fs, path: pagesPath, pageSize: pageSize, cacheBytes: cacheBytes)
}

/// Fills the user part of an owned page with a pattern derived from `stamp`.
func fill(_ txn: PageTransaction, _ page: PageNumber, stamp: UInt64) throws {
    let ref = try txn.mutablePage(page)
    let bytes = ref.bytes
    bytes.storeLE(PageType.btreeLeaf.rawValue, at: PageHeader.pageType)
    bytes.storeLE(stamp, at: PageHeader.userWord)
    var offset = PageHeader.size
    while offset < bytes.count {
        bytes.storeLE(stamp &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(offset), at: offset)
        offset += 8
    }
}

/// Reads the stamp of a page written by `fill`, checking the whole pattern.
func stamp(_ txn: PageTransaction, _ page: PageNumber) throws -> UInt64 {
    let ref = try txn.page(page)
    let bytes = ref.bytes
    let stamp = bytes.loadLE(UInt64.self, at: PageHeader.userWord)
    #expect(bytes.loadLE(UInt64.self, at: PageHeader.pageNumber) == page)
    var offset = PageHeader.size
    while offset < bytes.count {
        if bytes.loadLE(UInt64.self, at: offset) != stamp &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(offset) {
            Issue.record("page \(page): pattern of stamp \(stamp) broken at byte \(offset)")
            break
        }
        offset += 8
    }
    return stamp
}

/// Allocates and fills `count` pages, returning them.
@discardableResult
func allocateFilled(_ txn: PageTransaction, count: Int, stampBase: UInt64) throws -> [PageNumber] {
    var pages: [PageNumber] = []
    for i in 0..<count {
        let page = try txn.allocatePage()
        try fill(txn, page, stamp: stampBase + UInt64(i))
        pages.append(page)
    }
    return pages
}

/// Marks `pages` as the committed content: tree slot 0 points at the first page (so the
/// catalog is valid) and counter 0 carries `version`.
func setState(_ txn: PageTransaction, root: PageNumber?, version: UInt64) {
    txn.state.trees[0] = root.map { TreeRoot(rootPage: $0, entryCount: 1, height: 1, keyWords: 1, valueSize: 8) } ?? .unused
    txn.state.counters[0] = version
}

func expectCorrupted(_ error: any Error, offset: UInt64? = nil, file: String = pagesPath, _ comment: Comment? = nil) {
    guard case let StorageError.corrupted(errorFile, errorOffset, _) = error as? StorageError ?? .closed else {
        Issue.record("expected .corrupted, got \(error) \(comment.map { "\($0)" } ?? "")")
        return
    }
    #expect(errorFile == file)
    if let offset { #expect(errorOffset == offset, "\(error)") }
}

/// Flips one byte of a file in a memory file system.
func damage(_ fs: MemoryFileSystem, _ path: String = pagesPath, at offset: Int, xor: UInt8 = 0x5A) {
    var bytes = fs.contents(of: path) ?? []
    bytes[offset] ^= xor
    fs.setContents(of: path, to: bytes)
}

// MARK: A file system that fails after N steps, and crash images

/// Wraps a `MemoryFileSystem`: counts I/O steps (writes, syncs, truncates) and, once armed,
/// throws EIO from the step after the budget ("power lost"). It remembers each file's
/// contents as of its last successful sync, so a test can build the disk image a crash would
/// leave: everything written (an in-order device that wrote all), only synced data, or the
/// last write torn.
final class FaultyFileSystem: FileSystem, @unchecked Sendable {
    struct State {
        var stepsLeft: Int? = nil
        var steps = 0
        var synced: [String: [UInt8]] = [:]
        var lastWrite: (path: String, offset: Int, count: Int)? = nil
        var failed = false
    }

    let base: MemoryFileSystem
    let state = Lock(State())

    init(base: MemoryFileSystem) { self.base = base }

    /// After `steps` more successful steps, every further step throws EIO.
    func failAfter(steps: Int) { state.withLock { $0.stepsLeft = steps; $0.failed = false } }
    var steps: Int { state.withLock { $0.steps } }
    var failed: Bool { state.withLock { $0.failed } }

    func step(_ path: String, _ operation: String) throws {
        try state.withLock { state in
            if let left = state.stepsLeft {
                if left <= 0 {
                    state.failed = true
                    throw StorageError.io(path: path, operation: operation, errno: EIO)
                }
                state.stepsLeft = left - 1
            }
            state.steps += 1
        }
    }

    enum CrashImage { case everythingWritten, syncedOnly, lastWriteTorn }

    /// The bytes of `path` a crash now would leave.
    func image(of path: String, _ kind: CrashImage) -> [UInt8] {
        let current = base.contents(of: path) ?? []
        return state.withLock { state in
            switch kind {
            case .everythingWritten: return current
            case .syncedOnly: return state.synced[path] ?? current
            case .lastWriteTorn:
                guard let last = state.lastWrite, last.path == path else { return current }
                var bytes = current
                // Keep the first 256 bytes of the last write; garbage in the rest of it.
                let tornStart = last.offset + min(256, last.count)
                let tornEnd = min(last.offset + last.count, bytes.count)
                if tornStart < tornEnd { for i in tornStart..<tornEnd { bytes[i] = UInt8(truncatingIfNeeded: i &* 131 &+ 7) } }
                return bytes
            }
        }
    }

    func open(_ path: String, mode: OpenMode) throws -> any FileHandle {
        let handle = try base.open(path, mode: mode)
        let contents = base.contents(of: path) ?? []
        state.withLock { if $0.synced[path] == nil { $0.synced[path] = contents } }
        return FaultyHandle(fileSystem: self, inner: handle)
    }

    func fileExists(_ path: String) -> Bool { base.fileExists(path) }
    func listDirectory(_ path: String) throws -> [String] { try base.listDirectory(path) }
    func createDirectory(_ path: String) throws { try base.createDirectory(path) }
    func rename(_ source: String, to destination: String) throws {
        try step(source, "rename")
        try base.rename(source, to: destination)
        state.withLock { $0.synced[destination] = $0.synced.removeValue(forKey: source) }
    }
    func removeFile(_ path: String) throws { try step(path, "unlink"); try base.removeFile(path) }
    func syncDirectory(_ directory: String) throws { try step(directory, "fsync(dir)"); try base.syncDirectory(directory) }
}

final class FaultyHandle: FileHandle, @unchecked Sendable {
    let fileSystem: FaultyFileSystem
    let inner: any FileHandle
    var path: String { inner.path }

    init(fileSystem: FaultyFileSystem, inner: any FileHandle) {
        self.fileSystem = fileSystem
        self.inner = inner
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        try inner.read(into: buffer, at: offset)
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        try fileSystem.step(path, "pwrite")
        try inner.write(bytes, at: offset)
        fileSystem.state.withLock { $0.lastWrite = (path, Int(offset), bytes.count) }
    }

    func truncate(to size: UInt64) throws {
        try fileSystem.step(path, "ftruncate")
        try inner.truncate(to: size)
    }

    func syncData() throws {
        try fileSystem.step(path, "fdatasync")
        try inner.syncData()
        let contents = fileSystem.base.contents(of: path) ?? []
        fileSystem.state.withLock { state in
            state.synced[path] = contents
            // A synced write can no longer tear.
            if state.lastWrite?.path == path { state.lastWrite = nil }
        }
    }

    func size() throws -> UInt64 { try inner.size() }
    func close() throws { try inner.close() }
    func tryLock(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool { try inner.tryLock(range, exclusive: exclusive) }
    func unlock(_ range: Range<UInt64>) throws { try inner.unlock(range) }
    func isLockedByOthers(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool { try inner.isLockedByOthers(range, exclusive: exclusive) }
}

/// A fresh memory file system holding `bytes` as the page file.
func fileSystem(withPageFile bytes: [UInt8]) throws -> MemoryFileSystem {
    let fs = try makeFileSystem()
    fs.setContents(of: pagesPath, to: bytes)
    return fs
}

/// Parses the hex dump lines of a fenced block tagged `hex <name>` in spec/page-file.md:
/// lines `OFFSET: xx xx …` place bytes at OFFSET (hex); everything else is zero.
func specHexBlock(_ name: String, size: Int) throws -> [UInt8] {
    var root = "\(#filePath)"
    for _ in 0..<3 { root = String(root[..<(root.lastIndex(of: "/") ?? root.startIndex)]) }
    let specPath = root + "/spec/page-file.md"
    guard let handle = fopen(specPath, "r") else {
        Issue.record("cannot open \(specPath)")
        return []
    }
    defer { fclose(handle) }
    var text = ""
    var buffer = [CChar](repeating: 0, count: 4096)
    while fgets(&buffer, Int32(buffer.count), handle) != nil {
        text += String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    var bytes = [UInt8](repeating: 0, count: size)
    var inBlock = false
    var found = false
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        let trimmed = line.trimmingCharacters(in: " ")
        if trimmed == "```hex \(name)" { inBlock = true; found = true; continue }
        if inBlock && trimmed.hasPrefix("```") { inBlock = false; continue }
        guard inBlock, let colon = trimmed.firstIndex(of: ":") else { continue }
        guard let offset = Int(trimmed[..<colon], radix: 16) else { continue }
        let digits = trimmed[trimmed.index(after: colon)...].split(separator: " ")
        for (i, digit) in digits.enumerated() {
            guard let byte = UInt8(digit, radix: 16) else { break }
            bytes[offset + i] = byte
        }
    }
    #expect(found, "spec/page-file.md has no ```hex \(name) block")
    return bytes
}

extension Substring {
    func trimmingCharacters(in set: Character) -> Substring {
        var s = self
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return s
    }
}

/// Prints a hex dump in the spec's format (skipping all-zero lines), for writing the spec.
func hexDump(_ bytes: [UInt8]) -> String {
    var lines: [String] = []
    for start in stride(from: 0, to: bytes.count, by: 16) {
        let row = bytes[start..<min(start + 16, bytes.count)]
        if row.allSatisfy({ $0 == 0 }) { continue }
        let offset = String(start, radix: 16)
        let digits = row.map { b -> String in let h = String(b, radix: 16); return h.count == 1 ? "0" + h : h }
        lines.append(String(repeating: "0", count: 4 - offset.count) + offset + ": " + digits.joined(separator: " "))
    }
    return lines.joined(separator: "\n")
}
