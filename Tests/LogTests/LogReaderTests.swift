import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import Testing
import TestSupport

/// The read-only log reader: complete transactions in order, tailing a live log, limits,
/// torn ends, damage, removed segments; it never writes.
@Suite struct LogReaderTests {
    /// A log of `count` transactions over several segments (some sealed), still open.
    func makeLog(_ fs: MemoryFileSystem, count: Int, seal: Bool) throws -> (Log, [Replayed]) {
        try fs.createDirectory(testDirectory)
        let (log, _) = try openLog(fs, smallOptions(segmentSize: 1024))
        var written: [Replayed] = []
        for i in 0..<count {
            let transaction = try append(log, [record(i, count: 20 + i % 50), record(i + 1000, count: 3, type: 17)])
            written.append(asReplayed(transaction))
        }
        try log.sync(through: log.endPosition)
        if seal { _ = try log.sealFullSegments() }
        return (log, written)
    }

    func readAll(_ reader: LogReader, from: LogPosition = 0, through limit: LogPosition? = nil) throws -> ([Replayed], LogPosition) {
        var seen: [Replayed] = []
        let end = try reader.read(from: from, through: limit) { seen.append(copy($0)) }
        return (seen, end)
    }

    @Test(arguments: [false, true])
    func readsEveryCompleteTransactionInOrder(seal: Bool) throws {
        let fs = MemoryFileSystem()
        let (log, written) = try makeLog(fs, count: 60, seal: seal)
        let names = try fs.listDirectory(testDirectory)
        let before = names.map { fs.contents(of: testDirectory + "/" + $0) }
        let reader = LogReader(fileSystem: fs, directory: testDirectory)
        #expect(try reader.segmentIDs().count > 3)
        let (seen, end) = try readAll(reader)
        #expect(seen == written)
        #expect(end == written.last?.end)
        // From a middle position, and with a limit.
        let (tail, _) = try readAll(reader, from: written[24].end)
        #expect(tail == Array(written[25...]))
        let (limited, limitedEnd) = try readAll(reader, from: written[9].end, through: written[30].end)
        #expect(limited == Array(written[10...30]) && limitedEnd == written[30].end)
        #expect(try fs.listDirectory(testDirectory) == names && names.map { fs.contents(of: testDirectory + "/" + $0) } == before, "the reader wrote nothing")
        try log.close()
    }

    @Test func tailsALiveLog() throws {
        let fs = MemoryFileSystem()
        let (log, written) = try makeLog(fs, count: 10, seal: false)
        let reader = LogReader(fileSystem: fs, directory: testDirectory)
        var (seen, position) = try readAll(reader)
        #expect(seen == written)
        var more: [Replayed] = []
        for round in 0..<5 {
            for i in 0..<7 { more.append(asReplayed(try append(log, [record(500 + round * 10 + i, count: 40)]))) }
            let (next, end) = try readAll(reader, from: position)
            seen += next
            position = end
        }
        #expect(seen == written + more)
        // Nothing new: nothing delivered, same position.
        let (none, same) = try readAll(reader, from: position)
        #expect(none.isEmpty && same == position)
        try log.close()
    }

    @Test func stopsQuietlyAtATornEndOfTheLastSegment() throws {
        let fs = MemoryFileSystem()
        let (log, written) = try makeLog(fs, count: 12, seal: false)
        let last = try #require(try LogReader(fileSystem: fs, directory: testDirectory).segmentIDs().last)
        try log.close()
        let path = segmentPath(last.id)
        var bytes = try #require(fs.contents(of: path))
        let clean = bytes.count
        bytes += [9, 0, 0, 0, 50, 0, 0, 0, 16, 1, 2, 3]   // a frame header whose payload never arrived
        fs.setContents(of: path, to: bytes)
        let reader = LogReader(fileSystem: fs, directory: testDirectory)
        let (seen, end) = try readAll(reader)
        #expect(seen == written && end == written.last?.end)
        #expect(fs.contents(of: path)?.count == clean + 12, "nothing truncated")
    }

    @Test func damageBeforeTheLastSegmentIsCorruption() throws {
        let fs = MemoryFileSystem()
        let (log, _) = try makeLog(fs, count: 40, seal: false)
        try log.close()
        let first = try #require(try LogReader(fileSystem: fs, directory: testDirectory).segmentIDs().first)
        var bytes = try #require(fs.contents(of: segmentPath(first.id)))
        bytes[100] ^= 0xFF
        fs.setContents(of: segmentPath(first.id), to: bytes)
        expectCorrupted(file: segmentPath(first.id)) { _ = try readAll(LogReader(fileSystem: fs, directory: testDirectory)) }
    }

    @Test func aRemovedSegmentMeansResync() throws {
        let fs = MemoryFileSystem()
        let (log, written) = try makeLog(fs, count: 40, seal: false)
        try log.close()
        let reader = LogReader(fileSystem: fs, directory: testDirectory)
        let first = try #require(try reader.segmentIDs().first)
        try fs.removeFile(segmentPath(first.id))
        #expect(throws: StorageError.self) { _ = try readAll(reader, from: written[0].end) }
        #expect(try reader.oldestPosition() == LogPositions.make(segment: first.id + 1, offset: 24))
    }
}
