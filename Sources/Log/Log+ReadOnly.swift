#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ScrollbackFormat
import ScrollbackIO

/// A read-only view of a log that another process writes: record reads (`withRecord`), the
/// segment listing and statistics, and whole-segment scans, over the segments a reader has
/// replayed (spec/reader-table.md, "Reader protocol"). It never creates, writes, truncates,
/// renames or removes a file, and never appends (the layer above refuses writes first; an
/// `append` would go to a placeholder that is not a file).
///
/// `refreshReadOnlyView(through:)` makes it cover every segment up to a position the reader
/// has replayed: it opens the segments it does not hold yet and loads the raw segments' new
/// bytes into memory (the reader's replay verified them), so reads of recent records cost no
/// system call. A segment the writer seals is switched to its sealed file (freeing the raw
/// bytes); one it removes is dropped (the writer removes a file only once every reader's
/// snapshot is past it). Open files stay readable after the writer removes them.
extension Log {
    /// An empty view of the log in `directory`; `refreshReadOnlyView(through:)` fills it.
    package static func openReadOnlyView(fileSystem: any FileSystem, directory: String, options: LogOptions) throws -> Log {
        try options.validate()
        let placeholder = RawSegment(
            id: 0, file: SegmentFile(NoFile(path: Path.join(directory, "(read-only view)"))), salt: 0,
            image: SegmentImage(capacity: L.headerSize), fixedLength: 0)
        placeholder.image?.publish(L.headerSize)
        let log = Log(fileSystem: fileSystem, directory: directory, options: options, segments: [:], active: placeholder)
        log.table.withLock { $0.segments[0] = nil }
        return log
    }

    /// Makes the view hold every segment through `end` (the end of the last transaction the
    /// reader replayed; positions below it must be readable): raw segments are loaded into
    /// memory through `end` (earlier raw segments whole), segments the writer sealed switch to
    /// their sealed file, segments the writer removed are forgotten. A file removed between
    /// listing the directory and opening it is looked up again.
    package func refreshReadOnlyView(through end: LogPosition) throws {
        let endSegment = LogPositions.segment(end)
        for attempt in 0..<8 {
            do {
                try refreshOnce(endSegment: endSegment, endOffset: Int(LogPositions.offset(end)))
                return
            } catch StorageError.io(_, _, let code) where code == ENOENT && attempt < 7 {
                continue
            }
        }
    }

    private func refreshOnce(endSegment: UInt32, endOffset: Int) throws {
        var raw = Set<UInt32>(), sealed = Set<UInt32>()
        for name in try fileSystem.listDirectory(directory) {
            guard let (id, kind) = SegmentFileName.parse(name), id <= endSegment else { continue }
            switch kind {
            case .raw: raw.insert(id)
            case .sealed: sealed.insert(id)
            case .temporary: break
            }
        }
        let held = table.withLock { $0.segments }
        var next = held
        // Forget what the writer removed (no snapshot of this process can read it any more).
        for id in held.keys where !raw.contains(id) && !sealed.contains(id) { next[id] = nil }
        for id in raw.union(sealed).sorted() {
            let length = id == endSegment ? endOffset : nil
            switch held[id] {
            case .sealed?:
                continue
            case .raw(let segment)? where !sealed.contains(id) || id == endSegment:
                next[id] = .raw(try extend(segment, to: length))
            case .raw?, nil:
                if sealed.contains(id) && (id < endSegment || !raw.contains(id)) {
                    let handle = try fileSystem.open(path(id, .sealed), mode: .readOnly)
                    next[id] = .sealed(SealedSegment(id: id, file: SegmentFile(handle), fileSize: try handle.size()))
                } else if raw.contains(id) {
                    next[id] = .raw(try openRaw(id, length: length))
                }
            }
        }
        let active = next.keys.max() ?? 0
        table.withLock { table in
            table.segments = next
            table.activeID = active
        }
    }

    /// Opens raw segment `id` and loads it into memory: through `length`, or whole.
    private func openRaw(_ id: UInt32, length: Int?) throws -> RawSegment {
        let handle = try fileSystem.open(path(id, .raw), mode: .readOnly)
        let file = SegmentFile(handle)
        let header = try handle.readBytes(count: L.headerSize, at: 0)
        let salt = try header.withUnsafeBytes {
            try SegmentFileHeader.decode($0, file: handle.path, magic: L.magic, version: L.formatVersion, expectedID: id).salt
        }
        let image = SegmentImage(capacity: max(options.segmentSize, L.headerSize))
        header.withUnsafeBytes { image.base.copyMemory(from: $0.baseAddress!, byteCount: L.headerSize) }
        image.publish(L.headerSize)
        return try extend(RawSegment(id: id, file: file, salt: salt, image: image, fixedLength: 0), to: length)
    }

    /// The segment with its image extended to `length` bytes (the whole file when nil).
    private func extend(_ segment: RawSegment, to length: Int?) throws -> RawSegment {
        guard let image = segment.image else { return segment }
        let target = try length ?? Int(segment.file.handle.size())
        let have = image.published
        guard target > have else { return segment }
        var current = image
        var result = segment
        if target > image.capacity {
            current = SegmentImage(capacity: max(target, image.capacity * 2))
            current.base.copyMemory(from: image.base, byteCount: have)
            current.publish(have)
            result = RawSegment(id: segment.id, file: segment.file, salt: segment.salt, image: current, fixedLength: 0)
        }
        let buffer = UnsafeMutableRawBufferPointer(start: current.base + have, count: target - have)
        try segment.file.handle.readExactly(into: buffer, at: UInt64(have))
        current.publish(target)
        return result
    }
}

extension Log {
    /// Copies the view's segments through `end` into `destination` (a backup): sealed files
    /// whole (read through the view's open handles, so a file the writer removes meanwhile
    /// is still copied), raw segments from memory, the one holding `end` cut there. Each copy
    /// is created new and synced; the caller syncs the directory.
    package func copyReadOnlyView(through end: LogPosition, into destination: String) throws {
        let endSegment = LogPositions.segment(end)
        let entries = table.withLock { $0.segments }.filter { $0.key <= endSegment }.sorted { $0.key < $1.key }
        for (id, entry) in entries {
            switch entry {
            case .raw(let raw):
                guard let image = raw.image else { continue }
                try withExtendedLifetime(image) {
                    let bytes = image.publishedBytes
                    let length = id == endSegment ? min(bytes.count, Int(LogPositions.offset(end))) : bytes.count
                    try write(UnsafeRawBufferPointer(rebasing: bytes[..<length]),
                              to: Path.join(destination, SegmentFileName.name(id, .raw)))
                }
            case .sealed(let sealed):
                let output = try fileSystem.open(Path.join(destination, SegmentFileName.name(id, .sealed)), mode: .createNew)
                do {
                    var buffer = [UInt8](repeating: 0, count: 1 << 20)
                    var offset: UInt64 = 0
                    while offset < sealed.fileSize {
                        let want = Int(min(UInt64(buffer.count), sealed.fileSize - offset))
                        let n = try buffer.withUnsafeMutableBytes {
                            try sealed.file.handle.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[..<want]), at: offset)
                        }
                        if n == 0 { break }
                        try buffer.withUnsafeBytes { try output.write(UnsafeRawBufferPointer(rebasing: $0[..<n]), at: offset) }
                        offset += UInt64(n)
                    }
                    try output.syncData()
                    try output.close()
                } catch {
                    try? output.close()
                    throw error
                }
            }
        }
    }

    private func write(_ bytes: UnsafeRawBufferPointer, to path: String) throws {
        let output = try fileSystem.open(path, mode: .createNew)
        do {
            try output.write(bytes, at: 0)
            try output.syncData()
            try output.close()
        } catch {
            try? output.close()
            throw error
        }
    }
}

/// The placeholder behind a read-only view's (unused) append state: not a file.
private final class NoFile: FileHandle {
    let path: String
    init(path: String) { self.path = path }
    private func refuse(_ operation: String) -> StorageError {
        .invalidArgument("\(operation) on a read-only view of a log")
    }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int { throw refuse("read") }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws { throw refuse("write") }
    func truncate(to size: UInt64) throws { throw refuse("truncate") }
    func allocate(upTo size: UInt64) throws { throw refuse("allocate") }
    func syncData() throws {}
    func size() throws -> UInt64 { 0 }
    func close() throws {}
}
