import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import Testing
import TestSupport

@Suite struct LogSealingTests {
    let options = smallOptions(segmentSize: 600, blockSize: 200, cacheBytes: 700)

    /// A log of 40 transactions over several segments, all but the active one sealed.
    func sealedLog(_ fs: MemoryFileSystem) throws -> (Log, [ModelTransaction]) {
        let (log, _) = try openLog(fs, options)
        var all: [ModelTransaction] = []
        for i in 0..<40 {
            all.append(try append(log, (0..<(i % 4 + 1)).map { record(i * 10 + $0, count: (i * 37 + $0 * 11) % 150) }))
        }
        #expect(try log.sealFullSegments() > 2)
        return (log, all)
    }

    func expectReadable(_ log: Log, _ all: [ModelTransaction], sourceLocation: SourceLocation = #_sourceLocation) throws {
        for t in all {
            for (i, p) in t.positions.enumerated() {
                #expect(try read(log, p) == t.records[i], sourceLocation: sourceLocation)
            }
        }
    }

    @Test func sealThenReadEveryRecordByPosition() throws {
        let fs = MemoryFileSystem()
        let (log, all) = try sealedLog(fs)
        let segments = try log.listSegments()
        #expect(segments.last?.state == .active)
        #expect(segments.dropLast().allSatisfy { $0.state == .sealed })
        for segment in segments.dropLast() {
            #expect(fs.fileExists(sealedPath(segment.id)) && !fs.fileExists(segmentPath(segment.id)))
        }
        try expectReadable(log, all)
        try expectReadable(log, all.reversed())
        let stats = log.statistics
        #expect(stats.sealedSegmentCount == segments.count - 1)
        #expect(stats.blockCache.misses > 0 && stats.blockCache.hits > 0 && stats.blockCache.evictions > 0)
        #expect(stats.blockCache.cachedBytes <= 700)
        #expect(stats.segmentsSealed == UInt64(segments.count - 1))
        // Sealing again finds nothing to do.
        #expect(try log.sealFullSegments() == 0)
        try log.close()

        let (reopened, replayed) = try openLog(fs, options)
        #expect(replayed == all.map(asReplayed))
        try expectReadable(reopened, all)
        // Appends continue after the sealed segments.
        let t = try append(reopened, [record(99, count: 10)])
        #expect(try read(reopened, t.positions[0]) == t.records[0])
    }

    @Test func forEachTransactionVisitsASealedSegment() throws {
        let fs = MemoryFileSystem()
        let (log, all) = try sealedLog(fs)
        var seen: [Replayed] = []
        try log.forEachTransaction(inSegment: 2) { seen.append(copy($0)) }
        #expect(seen == all.filter { LogPositions.segment($0.start) == 2 }.map(asReplayed))
        var active: [Replayed] = []
        let activeID = try #require(try log.listSegments().last?.id)
        try log.forEachTransaction(inSegment: activeID) { active.append(copy($0)) }
        #expect(active == all.filter { LogPositions.segment($0.start) == activeID }.map(asReplayed))
    }

    @Test func sealingRunsWhileAppendsContinue() throws {
        let fs = MemoryFileSystem()
        let (log, all) = try sealedLog(fs)
        var more = all
        for i in 0..<30 {
            more.append(try append(log, [record(500 + i, count: 40)]))
            if i % 7 == 0 { try log.sealFullSegments() }
            if i % 5 == 0 { try expectReadable(log, more.suffix(8)) }
        }
        try expectReadable(log, more)
    }

    @Test func crashLeftoverRawAndSealedBothPresentKeepsSealed() throws {
        let fs = MemoryFileSystem()
        let (log, _) = try openLog(fs, options)
        var all: [ModelTransaction] = []
        for i in 0..<12 { all.append(try append(log, [record(i, count: 90)])) }
        let raw1 = try #require(fs.contents(of: segmentPath(1)))
        try log.sealFullSegments()
        try log.close()
        // The crash hit after the rename, before the raw segment was removed.
        fs.setContents(of: segmentPath(1), to: raw1)
        let (reopened, replayed) = try openLog(fs, options)
        #expect(!fs.fileExists(segmentPath(1)) && fs.fileExists(sealedPath(1)))
        #expect(replayed == all.map(asReplayed))
        try expectReadable(reopened, all)
    }

    @Test func crashLeftoverInvalidSealedBesideRawKeepsRaw() throws {
        let fs = MemoryFileSystem()
        let (log, _) = try openLog(fs, options)
        var all: [ModelTransaction] = []
        for i in 0..<12 { all.append(try append(log, [record(i, count: 90)])) }
        let raw1 = try #require(fs.contents(of: segmentPath(1)))
        try log.sealFullSegments()
        try log.close()
        fs.setContents(of: segmentPath(1), to: raw1)
        fs.mutate(sealedPath(1)) { $0.removeLast(3) }
        let (reopened, replayed) = try openLog(fs, options)
        #expect(fs.fileExists(segmentPath(1)) && !fs.fileExists(sealedPath(1)))
        #expect(replayed == all.map(asReplayed))
        try expectReadable(reopened, all)
        // And it can be sealed again.
        #expect(try reopened.sealFullSegments() == 1)
        try expectReadable(reopened, all)
    }

    @Test func crashLeftoverTemporaryFileIsRemoved() throws {
        let fs = MemoryFileSystem()
        let (log, _) = try openLog(fs, options)
        var all: [ModelTransaction] = []
        for i in 0..<12 { all.append(try append(log, [record(i, count: 90)])) }
        try log.close()
        fs.setContents(of: temporaryPath(1), to: [1, 2, 3, 4, 5])
        fs.setContents(of: testDirectory + "/unrelated-file", to: [9])
        let (reopened, replayed) = try openLog(fs, options)
        #expect(!fs.fileExists(temporaryPath(1)))
        #expect(fs.fileExists(testDirectory + "/unrelated-file"))
        #expect(replayed == all.map(asReplayed))
        #expect(try reopened.sealFullSegments() >= 1)
        try expectReadable(reopened, all)
    }

    /// Reopens without replay (so nothing is read at open) and returns the footer fields.
    func footer(_ fs: MemoryFileSystem, _ id: UInt32) throws -> (indexOffset: Int, size: Int) {
        let bytes = try #require(fs.contents(of: sealedPath(id)))
        let indexOffset = bytes.withUnsafeBytes { Int($0.loadLE(UInt64.self, at: bytes.count - 24)) }
        return (indexOffset, bytes.count)
    }

    @Test func corruptSealedBlockIsReported() throws {
        let fs = MemoryFileSystem()
        let (log, all) = try sealedLog(fs)
        try log.close()
        fs.mutate(sealedPath(1)) { $0[SealedSegmentLayout.headerSize + 3] ^= 0x10 }
        let (reopened, _) = try openLog(fs, options, replayFrom: all.last!.start)
        let first = all[0].positions[0]
        #expect(LogPositions.segment(first) == 1)
        expectCorrupted(file: sealedPath(1), offset: UInt64(SealedSegmentLayout.headerSize)) { _ = try read(reopened, first) }
        // Records in other blocks still read.
        let later = try #require(all.first { LogPositions.segment($0.start) == 2 })
        #expect(try read(reopened, later.positions[0]) == later.records[0])
        try reopened.close()
        expectCorrupted(file: sealedPath(1), offset: UInt64(SealedSegmentLayout.headerSize)) { _ = try openLog(fs, options) }
    }

    @Test func corruptSealedIndexIsReported() throws {
        let fs = MemoryFileSystem()
        let (log, all) = try sealedLog(fs)
        try log.close()
        let (indexOffset, _) = try footer(fs, 1)
        fs.mutate(sealedPath(1)) { $0[indexOffset + 5] ^= 0x01 }
        let (reopened, _) = try openLog(fs, options, replayFrom: all.last!.start)
        expectCorrupted(file: sealedPath(1), offset: UInt64(indexOffset)) { _ = try read(reopened, all[0].positions[0]) }
        expectCorrupted(file: sealedPath(1), offset: UInt64(indexOffset)) { _ = try reopened.listSegments() }
    }

    @Test func corruptSealedFooterIsReported() throws {
        let fs = MemoryFileSystem()
        let (log, all) = try sealedLog(fs)
        try log.close()
        let (_, size) = try footer(fs, 1)
        fs.mutate(sealedPath(1)) { $0[size - 10] ^= 0x01 }
        let (reopened, _) = try openLog(fs, options, replayFrom: all.last!.start)
        expectCorrupted(file: sealedPath(1), offset: UInt64(size - 24)) { _ = try read(reopened, all[0].positions[0]) }
    }

    @Test func truncatedSealedFileIsReported() throws {
        let fs = MemoryFileSystem()
        let (log, all) = try sealedLog(fs)
        try log.close()
        fs.mutate(sealedPath(1)) { $0.removeLast(30) }
        let (reopened, _) = try openLog(fs, options, replayFrom: all.last!.start)
        expectCorrupted(file: sealedPath(1)) { _ = try read(reopened, all[0].positions[0]) }
        fs.setContents(of: sealedPath(2), to: [1, 2, 3])
        let second = try #require(all.first { LogPositions.segment($0.start) == 2 })
        expectCorrupted(file: sealedPath(2), offset: 0) { _ = try read(reopened, second.positions[0]) }
    }

    @Test func corruptSealedHeaderIsReported() throws {
        let fs = MemoryFileSystem()
        let (log, all) = try sealedLog(fs)
        try log.close()
        fs.mutate(sealedPath(1)) { $0[17] ^= 0x01 }   // salt
        let (reopened, _) = try openLog(fs, options, replayFrom: all.last!.start)
        expectCorrupted(file: sealedPath(1), offset: 0) { _ = try read(reopened, all[0].positions[0]) }
    }

    @Test func oversizedRecordGetsABlockOfItsOwn() throws {
        let fs = MemoryFileSystem()
        let (log, _) = try openLog(fs, options)
        let t1 = try append(log, [record(1, count: 5), record(2, count: 1500), record(3, count: 5)])
        let t2 = try append(log, [record(4, count: 5)])
        #expect(try log.sealFullSegments() == 1)
        for t in [t1, t2] { for (i, p) in t.positions.enumerated() { #expect(try read(log, p) == t.records[i]) } }
        // The 1509-byte block is larger than the 700-byte cache: read, not cached.
        #expect(log.statistics.blockCache.cachedBytes <= 700)
    }

    @Test func compressiblePayloadsShrink() throws {
        let fs = MemoryFileSystem()
        let options = smallOptions(segmentSize: 64 << 10, blockSize: 8 << 10, cacheBytes: 1 << 16)
        let (log, _) = try openLog(fs, options)
        let text = Array("hello, this is a chat message about the weekend plans; ".utf8)
        var all: [ModelTransaction] = []
        for i in 0..<200 {
            all.append(try append(log, [ModelRecord(type: 20, payload: text + Array("\(i)".utf8) + text)]))
        }
        try log.rollSegment()
        let rawBytes = try log.listSegments().filter { $0.state == .full }.reduce(UInt64(0)) { $0 + $1.fileBytes }
        #expect(try log.sealFullSegments() >= 1)
        let sealedBytes = log.statistics.sealedSegmentBytes
        #expect(sealedBytes * 3 < rawBytes, "sealed \(sealedBytes) bytes from \(rawBytes) raw")
        for t in all { #expect(try read(log, t.positions[0]) == t.records[0]) }
    }

    @Test(arguments: [200, 1000, 1 << 20])
    func recordCacheServesSealedRecords(recordCacheBytes: Int) throws {
        let fs = MemoryFileSystem()
        var options = smallOptions(segmentSize: 600, blockSize: 200, cacheBytes: 300)
        options.recordCacheBytes = recordCacheBytes
        let (log, _) = try openLog(fs, options)
        var all: [ModelTransaction] = []
        for i in 0..<40 {
            all.append(try append(log, (0..<(i % 4 + 1)).map { record(i * 10 + $0, count: (i * 37 + $0 * 11) % 150) }))
        }
        #expect(try log.sealFullSegments() > 2)
        for _ in 0..<3 {
            try expectReadable(log, all)
            try expectReadable(log, all.reversed())
        }
        // A removed segment's records are gone from the cache too.
        let first = try #require(try log.listSegments().first)
        #expect(first.state == .sealed)
        try log.removeSegment(first.id)
        let gone = try #require(all.first?.positions.first)
        #expect(LogPositions.segment(gone) == first.id)
        #expect(throws: StorageError.self) { try read(log, gone) }
        #expect(try read(log, all.last!.positions[0]) == all.last!.records[0])
    }

    @Test func blockCacheDisabled() throws {
        let fs = MemoryFileSystem()
        let (log, _) = try openLog(fs, smallOptions(segmentSize: 600, blockSize: 200, cacheBytes: 0))
        var all: [ModelTransaction] = []
        for i in 0..<20 { all.append(try append(log, [record(i, count: 60)])) }
        try log.sealFullSegments()
        for t in all { #expect(try read(log, t.positions[0]) == t.records[0]) }
        #expect(log.statistics.blockCache.cachedBytes == 0)
        #expect(log.statistics.blockCache.hits == 0)
    }
}

@Suite struct LogVerifyTests {
    @Test func verifyChecksEverySegment() throws {
        let fs = MemoryFileSystem()
        let options = smallOptions(segmentSize: 400, blockSize: 150)
        let (log, _) = try openLog(fs, options)
        var all: [ModelTransaction] = []
        for i in 0..<30 { all.append(try append(log, [record(i, count: 40 + i)])) }
        try log.verify()
        #expect(try log.sealFullSegments() >= 3)
        try log.verify()
        try log.close()
        // Damage inside a sealed segment that no open or read has touched yet.
        fs.mutate(sealedPath(2)) { $0[30] ^= 0x04 }
        let (reopened, _) = try openLog(fs, options, replayFrom: all.last!.start)
        expectCorrupted(file: sealedPath(2)) { try reopened.verify() }
    }
}
