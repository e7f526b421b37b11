import Dispatch
import Foundation
import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import Synchronization
import Testing
import TestSupport

@Suite struct LogAppendTests {
    @Test func positionsAndReadsOfTheActiveSegment() throws {
        let fs = MemoryFileSystem()
        let (log, _) = try openLog(fs, smallOptions(segmentSize: 1 << 16))
        var batch = LogBatch(capacity: 16)
        let t = try append(log, [record(1, count: 0), record(2, count: 1, type: 255), record(3, count: 300)], batch: &batch)
        #expect(t.start == LogPositions.make(segment: 1, offset: 24))
        let offsets: [UInt32] = [24, 33, 43]
        let expected = offsets.map { LogPositions.make(segment: 1, offset: $0) }
        #expect(t.positions == expected)
        let end: UInt32 = 43 + 309 + 21
        #expect(t.end == LogPositions.make(segment: 1, offset: end))
        for (i, p) in t.positions.enumerated() { #expect(try read(log, p) == t.records[i]) }
        // The commit record is a record too, of type 1.
        let commitType = try log.withRecord(at: t.end - 21) { type, bytes in (type, bytes.count) }
        #expect(commitType.0 == LogRecordType.commit && commitType.1 == 12)
        let stats = log.statistics
        #expect(stats.transactionsAppended == 1 && stats.recordsAppended == 3)
        #expect(stats.bytesAppended == UInt64(LogPositions.offset(t.end) - 24))
    }

    @Test func readingAPositionWithNoRecordIsRejected() throws {
        let fs = MemoryFileSystem()
        let (log, _) = try openLog(fs, smallOptions())
        let t = try append(log, [record(1, count: 20)])
        #expect(throws: StorageError.self) { try read(log, t.end) }                         // past the end
        #expect(throws: StorageError.self) { try read(log, LogPositions.make(segment: 1, offset: 3)) } // in the header
        #expect(throws: StorageError.self) { try read(log, LogPositions.make(segment: 9, offset: 24)) }
        // Not a frame boundary: the checksum cannot match.
        expectCorrupted(file: segmentPath(1), offset: UInt64(LogPositions.offset(t.start)) + 2) {
            _ = try read(log, t.start + 2)
        }
    }

    @Test func damageUnderAnOpenFullSegmentIsReportedOnRead() throws {
        let fs = MemoryFileSystem()
        let options = smallOptions(segmentSize: 200)
        let (log, _) = try openLog(fs, options)
        let t1 = try append(log, [record(1, count: 100)])
        _ = try append(log, [record(2, count: 100)])
        _ = try append(log, [record(3, count: 100)])
        try log.close()
        // Reopened, segment 1 is a full segment read from its file.
        let (reopened, _) = try openLog(fs, options, replayFrom: LogPositions.make(segment: 3, offset: 24))
        #expect(try read(reopened, t1.positions[0]) == t1.records[0])
        fs.mutate(segmentPath(1)) { $0[Int(LogPositions.offset(t1.positions[0])) + 50] ^= 1 }
        expectCorrupted(file: segmentPath(1), offset: UInt64(LogPositions.offset(t1.positions[0]))) {
            _ = try read(reopened, t1.positions[0])
        }
    }

    @Test func groupCommitSharesFdatasyncs() throws {
        let fs = CountingFileSystem(syncDelayMicroseconds: 200)
        let (log, _) = try openLog(fs, smallOptions(segmentSize: 1 << 20))
        let before = fs.segmentSyncs.load(ordering: .relaxed)
        let threads = 8
        let perThread = 40
        // The first sync waits until every thread has appended once, so at least those
        // commits share one fdatasync however the threads are scheduled.
        fs.syncGateWrites.store(fs.segmentWrites.load(ordering: .relaxed) + threads, ordering: .relaxed)
        let written = Lock<[ModelTransaction]>([])
        let failures = Lock<[String]>([])
        let done = DispatchGroup()
        for thread in 0..<threads {
            done.enter()
            let worker = Thread {
                var batch = LogBatch()
                for i in 0..<perThread {
                    do {
                        let t = try append(log, [record(thread * 1000 + i, count: 20 + i), record(i, count: 3, type: 17)],
                                           batch: &batch)
                        try log.sync(through: t.end)
                        if log.durablePosition < t.end { failures.withLock { $0.append("not durable after sync") } }
                        written.withLock { $0.append(t) }
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                    }
                }
                done.leave()
            }
            worker.start()
        }
        done.wait()
        fs.syncGateWrites.store(0, ordering: .relaxed)
        #expect(failures.withLock { $0 } == [])
        let commits = threads * perThread
        let syncs = fs.segmentSyncs.load(ordering: .relaxed) - before
        #expect(syncs <= commits - threads + 1, "\(syncs) fdatasyncs for \(commits) commits")
        #expect(syncs >= 1)
        #expect(log.statistics.syncs >= UInt64(syncs))
        let all = written.withLock { $0 }
        #expect(all.count == commits)
        for t in all {
            for (i, p) in t.positions.enumerated() { #expect(try read(log, p) == t.records[i]) }
        }
        try log.close()
        let (_, replayed) = try openLog(fs, smallOptions(segmentSize: 1 << 20))
        #expect(replayed.sorted { $0.start < $1.start } == all.sorted { $0.start < $1.start }.map(asReplayed))
    }

    @Test func syncingAnAlreadyDurablePositionDoesNotSync() throws {
        let fs = CountingFileSystem()
        let (log, _) = try openLog(fs, smallOptions())
        let t = try append(log, [record(1, count: 5)])
        try log.sync(through: t.end)
        let after = fs.segmentSyncs.load(ordering: .relaxed)
        try log.sync(through: t.end)
        try log.sync(through: t.start)
        #expect(fs.segmentSyncs.load(ordering: .relaxed) == after)
        #expect(throws: StorageError.self) { try log.sync(through: log.endPosition + 1) }
    }

    @Test func failedSyncPoisonsTheLog() throws {
        let fs = CountingFileSystem()
        let (log, _) = try openLog(fs, smallOptions())
        let t1 = try append(log, [record(1, count: 5)])
        try log.sync(through: t1.end)
        let t2 = try append(log, [record(2, count: 5)])
        fs.failSyncs.store(true, ordering: .relaxed)
        #expect(throws: StorageError.io(path: segmentPath(1), operation: "fdatasync", errno: 5)) {
            try log.sync(through: t2.end)
        }
        fs.failSyncs.store(false, ordering: .relaxed)
        func isPoisoned(_ body: () throws -> Void) -> Bool {
            do { try body() } catch StorageError.poisoned { return true } catch { return false }
            return false
        }
        #expect(isPoisoned { try log.sync(through: t2.end) })
        #expect(isPoisoned { _ = try append(log, [record(3, count: 5)]) })
        #expect(isPoisoned { try log.rollSegment() })
        // Reads keep working.
        #expect(try read(log, t1.positions[0]) == t1.records[0])
        try log.close()
        let (reopened, replayed) = try openLog(fs, smallOptions())
        #expect(replayed.count == 2)
        _ = try append(reopened, [record(4, count: 5)])
    }

    @Test func failedWritePoisonsTheLog() throws {
        let fs = CountingFileSystem()
        let (log, _) = try openLog(fs, smallOptions())
        fs.failWrites.store(true, ordering: .relaxed)
        #expect(throws: StorageError.self) { _ = try append(log, [record(1, count: 5)]) }
        fs.failWrites.store(false, ordering: .relaxed)
        #expect(throws: StorageError.poisoned(cause: "write to \(segmentPath(1)) failed: I/O error: pwrite on \(segmentPath(1)) failed: Input/output error (errno 5)")) {
            _ = try append(log, [record(2, count: 5)])
        }
    }

    @Test func closedLogRejectsCalls() throws {
        let fs = MemoryFileSystem()
        let (log, _) = try openLog(fs, smallOptions())
        let t = try append(log, [record(1, count: 5)])
        try log.close()
        try log.close()
        #expect(throws: StorageError.closed) { _ = try append(log, [record(2, count: 5)]) }
        #expect(throws: StorageError.closed) { try log.sync(through: t.end) }
        #expect(throws: StorageError.closed) { _ = try read(log, t.positions[0]) }
        #expect(throws: StorageError.closed) { try log.sealFullSegments() }
    }

    @Test func rollSegmentAndStatistics() throws {
        let fs = CountingFileSystem()
        let (log, _) = try openLog(fs, smallOptions(segmentSize: 4096))
        try log.rollSegment()   // empty active segment: nothing to roll
        #expect(try log.listSegments().count == 1)
        let t1 = try append(log, [record(1, count: 50)])
        try log.rollSegment()
        let t2 = try append(log, [record(2, count: 50)])
        #expect(LogPositions.segment(t2.start) == 2)
        let segments = try log.listSegments()
        #expect(segments.map(\.id) == [1, 2])
        #expect(segments.map(\.state) == [.full, .active])
        #expect(segments[0].endOffset == LogPositions.offset(t1.end))
        let stats = log.statistics
        #expect(stats.segmentCount == 2 && stats.rawSegmentCount == 2 && stats.sealedSegmentCount == 0)
        let rawBytes = UInt64(LogPositions.offset(t1.end)) + UInt64(LogPositions.offset(t2.end))
        #expect(stats.rawSegmentBytes == rawBytes)
        #expect(stats.syncs >= 2)   // recovery sync of the first segment, the roll
        // The roll made segment 1 durable: syncing its end costs nothing.
        let syncs = fs.segmentSyncs.load(ordering: .relaxed)
        try log.sync(through: t1.end)
        #expect(fs.segmentSyncs.load(ordering: .relaxed) == syncs)
    }

    @Test func removeSegment() throws {
        let fs = MemoryFileSystem()
        let options = smallOptions(segmentSize: 200)
        let (log, _) = try openLog(fs, options)
        let t1 = try append(log, [record(1, count: 100)])
        let t2 = try append(log, [record(2, count: 100)])
        let t3 = try append(log, [record(3, count: 100)])
        try log.sealFullSegments()
        #expect(throws: StorageError.self) { try log.removeSegment(3) }   // active
        #expect(throws: StorageError.self) { try log.removeSegment(7) }   // unknown
        try log.removeSegment(1)   // sealed
        try log.removeSegment(2)
        #expect(!fs.fileExists(sealedPath(1)) && !fs.fileExists(sealedPath(2)))
        #expect(throws: StorageError.self) { _ = try read(log, t1.positions[0]) }
        #expect(try read(log, t3.positions[0]) == t3.records[0])
        try log.close()
        let (_, replayed) = try openLog(fs, options, replayFrom: t2.end)
        #expect(replayed == [asReplayed(t3)])
    }
}
