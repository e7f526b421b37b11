#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import Synchronization
import Testing
import TestSupport

/// A file system wrapper that counts fdatasyncs of segment files, can make them slow
/// (to model device latency, so group commit has something to batch) and can make them fail.
final class CountingFileSystem: FileSystem, @unchecked Sendable {
    let base: MemoryFileSystem
    let segmentSyncs = Atomic<Int>(0)
    let failSyncs = Atomic<Bool>(false)
    let failWrites = Atomic<Bool>(false)
    let segmentWrites = Atomic<Int>(0)
    /// While positive, a segment sync waits (up to 5 s) until this many segment writes have
    /// happened: lets a test make sure concurrent appends queue up behind one sync.
    let syncGateWrites = Atomic<Int>(0)
    let syncDelayMicroseconds: UInt32

    init(base: MemoryFileSystem = MemoryFileSystem(), syncDelayMicroseconds: UInt32 = 0) {
        self.base = base
        self.syncDelayMicroseconds = syncDelayMicroseconds
    }

    func open(_ path: String, mode: OpenMode) throws -> any FileHandle {
        CountingFileHandle(base: try base.open(path, mode: mode), owner: self)
    }
    func fileExists(_ path: String) -> Bool { base.fileExists(path) }
    func listDirectory(_ path: String) throws -> [String] { try base.listDirectory(path) }
    func createDirectory(_ path: String) throws { try base.createDirectory(path) }
    func rename(_ source: String, to destination: String) throws { try base.rename(source, to: destination) }
    func removeFile(_ path: String) throws { try base.removeFile(path) }
    func syncDirectory(_ directory: String) throws { try base.syncDirectory(directory) }
}

final class CountingFileHandle: FileHandle, @unchecked Sendable {
    let base: any FileHandle
    let owner: CountingFileSystem

    init(base: any FileHandle, owner: CountingFileSystem) {
        self.base = base
        self.owner = owner
    }

    var path: String { base.path }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        try base.read(into: buffer, at: offset)
    }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        if owner.failWrites.load(ordering: .relaxed) && path.hasSuffix(".seg") {
            throw StorageError.io(path: path, operation: "pwrite", errno: EIO)
        }
        try base.write(bytes, at: offset)
        if path.hasSuffix(".seg") { owner.segmentWrites.add(1, ordering: .relaxed) }
    }
    func truncate(to size: UInt64) throws { try base.truncate(to: size) }
    func allocate(upTo size: UInt64) throws { try base.allocate(upTo: size) }
    func syncData() throws {
        if path.hasSuffix(".seg") {
            owner.segmentSyncs.add(1, ordering: .relaxed)
            if owner.failSyncs.load(ordering: .relaxed) {
                throw StorageError.io(path: path, operation: "fdatasync", errno: EIO)
            }
            if owner.syncDelayMicroseconds > 0 { usleep(owner.syncDelayMicroseconds) }
            let gate = owner.syncGateWrites.load(ordering: .relaxed)
            var waited = 0
            while gate > 0, owner.segmentWrites.load(ordering: .relaxed) < gate, waited < 5_000 {
                usleep(1000)
                waited += 1
            }
        }
        try base.syncData()
    }
    func size() throws -> UInt64 { try base.size() }
    func close() throws { try base.close() }
    func tryLock(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool { try base.tryLock(range, exclusive: exclusive) }
    func unlock(_ range: Range<UInt64>) throws { try base.unlock(range) }
    func isLockedByOthers(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool { try base.isLockedByOthers(range, exclusive: exclusive) }
}

let testDirectory = "/store"

func segmentName(_ id: UInt32) -> String {
    let digits = String(id, radix: 16, uppercase: true)
    return "log-" + String(repeating: "0", count: 8 - digits.count) + digits
}
func segmentPath(_ id: UInt32) -> String { testDirectory + "/" + segmentName(id) + ".seg" }
func sealedPath(_ id: UInt32) -> String { testDirectory + "/" + segmentName(id) + ".sealed" }
func temporaryPath(_ id: UInt32) -> String { testDirectory + "/" + segmentName(id) + ".sealed.tmp" }

/// A transaction as the tests remember it.
struct ModelRecord: Equatable {
    var type: UInt8
    var payload: [UInt8]
}

struct ModelTransaction: Equatable {
    var records: [ModelRecord]
    var positions: [LogPosition] = []
    var start: LogPosition = 0
    var end: LogPosition = 0
}

/// A recovered transaction, copied out of the apply callback.
struct Replayed: Equatable {
    var start: LogPosition
    var end: LogPosition
    var records: [ModelRecord]
    var positions: [LogPosition]
}

func copy(_ transaction: LoggedTransaction) -> Replayed {
    var replayed = Replayed(start: transaction.start, end: transaction.end, records: [], positions: [])
    transaction.forEachRecord { position, type, payload in
        replayed.records.append(ModelRecord(type: type, payload: Array(payload)))
        replayed.positions.append(position)
    }
    return replayed
}

/// Opens a log and collects every replayed transaction.
func openLog(_ fileSystem: any FileSystem, _ options: LogOptions, replayFrom: LogPosition = 0) throws -> (Log, [Replayed]) {
    var replayed: [Replayed] = []
    let log = try Log.open(fileSystem: fileSystem, directory: testDirectory, options: options, replayFrom: replayFrom) {
        replayed.append(copy($0))
    }
    return (log, replayed)
}

func smallOptions(segmentSize: Int = 1024, blockSize: Int = 256, cacheBytes: Int = 4096) -> LogOptions {
    LogOptions(segmentSize: segmentSize, blockSize: blockSize, blockCacheBytes: cacheBytes, saltSeed: 42)
}

/// Deterministic payload bytes.
func payload(_ seed: Int, count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7 &+ 1) }
}

/// Appends one transaction of the given records and returns it with positions filled in.
@discardableResult
func append(_ log: Log, _ records: [ModelRecord], batch: inout LogBatch) throws -> ModelTransaction {
    batch.removeAll()
    var offsets: [UInt32] = []
    for record in records { offsets.append(try batch.append(type: record.type, payload: record.payload)) }
    let result = try log.append(batch)
    var transaction = ModelTransaction(records: records)
    transaction.positions = offsets.map { result.position(ofBatchOffset: $0) }
    transaction.start = result.start
    transaction.end = result.end
    return transaction
}

@discardableResult
func append(_ log: Log, _ records: [ModelRecord]) throws -> ModelTransaction {
    var batch = LogBatch()
    return try append(log, records, batch: &batch)
}

func record(_ seed: Int, count: Int, type: UInt8 = 16) -> ModelRecord {
    ModelRecord(type: type, payload: payload(seed, count: count))
}

func read(_ log: Log, _ position: LogPosition) throws -> ModelRecord {
    try log.withRecord(at: position) { type, bytes in ModelRecord(type: type, payload: Array(bytes)) }
}

func asReplayed(_ transaction: ModelTransaction) -> Replayed {
    Replayed(start: transaction.start, end: transaction.end, records: transaction.records, positions: transaction.positions)
}

/// Expects `body` to throw `.corrupted` naming `file` (and `offset` when given).
func expectCorrupted(file: String, offset: UInt64? = nil, sourceLocation: SourceLocation = #_sourceLocation,
                     _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected a corruption error, got success", sourceLocation: sourceLocation)
    } catch let StorageError.corrupted(errorFile, errorOffset, reason) {
        #expect(errorFile == file, "reason: \(reason)", sourceLocation: sourceLocation)
        if let offset { #expect(errorOffset == offset, "reason: \(reason)", sourceLocation: sourceLocation) }
    } catch {
        Issue.record("expected a corruption error, got \(error)", sourceLocation: sourceLocation)
    }
}

extension MemoryFileSystem {
    func mutate(_ path: String, _ change: (inout [UInt8]) -> Void) {
        var bytes = contents(of: path) ?? []
        change(&bytes)
        setContents(of: path, to: bytes)
    }
}
