#if canImport(Glibc)
import Glibc
#endif
import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import Testing
import TestSupport

/// The named edge cases of reading a log back (after LevelDB's log_test.cc).
@Suite struct LogRecoveryTests {
    let options = smallOptions(segmentSize: 4096)

    /// Two transactions, the first synced (so the sync witness follows it), the second only
    /// written; then a crash: `fs` gets the segment as written, without its preallocated zeros.
    func twoTransactions(_ fs: MemoryFileSystem) throws -> (ModelTransaction, ModelTransaction) {
        let scratch = MemoryFileSystem()
        let (log, _) = try openLog(scratch, options)
        let t1 = try append(log, [record(1, count: 10)])
        try log.sync(through: t1.end)
        let t2 = try append(log, [record(2, count: 50), record(3, count: 5, type: 200)])
        let written = try #require(scratch.contents(of: segmentPath(1)))
        try fs.createDirectory(testDirectory)
        fs.setContents(of: segmentPath(1), to: Array(written[..<Int(LogPositions.offset(t2.end))]))
        return (t1, t2)
    }

    /// `count` transactions of one 40-byte record each, every one synced on its own (so each
    /// is followed by its witness), then a clean close.
    func syncedTransactions(_ fs: MemoryFileSystem, count: Int) throws -> [ModelTransaction] {
        let (log, _) = try openLog(fs, options)
        var transactions: [ModelTransaction] = []
        for i in 1...count {
            let t = try append(log, [record(i, count: 40)])
            try log.sync(through: t.end)
            transactions.append(t)
        }
        try log.close()
        return transactions
    }

    /// The end of `t`'s sync witness (a 21-byte empty transaction right after `t`).
    func witnessEnd(_ t: ModelTransaction) -> LogPosition { t.end + UInt64(LogSegmentLayout.commitFrameSize) }

    func expectTruncatedToFirst(_ fs: MemoryFileSystem, _ t1: ModelTransaction) throws {
        let (log, replayed) = try openLog(fs, options)
        #expect(replayed == [asReplayed(t1)])
        #expect(fs.contents(of: segmentPath(1))?.count == Int(LogPositions.offset(witnessEnd(t1))))
        #expect(log.endPosition == witnessEnd(t1))
        // The log keeps working after the cut.
        let t3 = try append(log, [record(9, count: 7)])
        #expect(t3.start == witnessEnd(t1))
        try log.sync(through: t3.end)
        #expect(try read(log, t3.positions[0]) == t3.records[0])
        try log.close()
        let (_, again) = try openLog(fs, options)
        #expect(again == [asReplayed(t1), asReplayed(t3)])
    }

    /// The active segment is allocated ahead of its end (zeros), so appends do not change the
    /// file's size; a roll and a clean close cut the zeros; after a crash recovery reads them
    /// as a torn tail and cuts them (spec/log-segment.md, "Writing").
    @Test func preallocatedZerosAreCutByRollCloseAndRecovery() throws {
        let options = smallOptions(segmentSize: 256 << 10)
        let fs = MemoryFileSystem()
        let (log, _) = try openLog(fs, options)
        let t1 = try append(log, [record(1, count: 100)])
        try log.sync(through: t1.end)
        let end1 = Int(LogPositions.offset(t1.end))
        let preallocated = try #require(fs.contents(of: segmentPath(1)))
        #expect(preallocated.count == Int(Log.preallocationBytes), "allocated ahead in one 64 KiB step")
        #expect(preallocated[(end1 + LogSegmentLayout.commitFrameSize)...].allSatisfy { $0 == 0 })
        // Appends inside the allocation leave the size alone.
        let t2 = try append(log, [record(2, count: 2000)])
        try log.sync(through: t2.end)
        #expect(fs.contents(of: segmentPath(1))?.count == Int(Log.preallocationBytes))
        // Past it: the next step, never beyond the segment size.
        let big = try append(log, [record(3, count: 100_000)])
        try log.sync(through: big.end)
        let grown = try #require(fs.contents(of: segmentPath(1))).count
        #expect(grown == 2 * Int(Log.preallocationBytes) && grown > Int(LogPositions.offset(big.end)))
        // A crash (no close): the zeros are a torn tail; every transaction comes back.
        let crashed = MemoryFileSystem()
        try crashed.createDirectory(testDirectory)
        crashed.setContents(of: segmentPath(1), to: try #require(fs.contents(of: segmentPath(1))))
        let (recovered, replayed) = try openLog(crashed, options)
        #expect(replayed == [asReplayed(t1), asReplayed(t2), asReplayed(big)])
        #expect(crashed.contents(of: segmentPath(1))?.count == Int(LogPositions.offset(witnessEnd(big))),
                "recovery cut the zeros (after the last sync's witness)")
        try recovered.close()
        // A roll cuts the finished segment to its end before the next one exists.
        try log.rollSegment()
        #expect(fs.contents(of: segmentPath(1))?.count == Int(LogPositions.offset(witnessEnd(big))))
        let t4 = try append(log, [record(4, count: 10)])
        try log.sync(through: t4.end)
        #expect(try #require(fs.contents(of: segmentPath(2))).count > Int(LogPositions.offset(witnessEnd(t4))))
        // A clean close cuts the active segment.
        try log.close()
        #expect(fs.contents(of: segmentPath(2))?.count == Int(LogPositions.offset(witnessEnd(t4))))
        let (_, again) = try openLog(fs, options)
        #expect(again == [asReplayed(t1), asReplayed(t2), asReplayed(big), asReplayed(t4)])
    }

    /// Allocation ahead (`Log.allocateAhead`, the background thread's step): it extends the
    /// active segment to 256 KiB past its end and syncs the file only when fewer than 128 KiB
    /// allocated bytes are left, never past the segment size; appends inside the allocation
    /// need no extension of their own; the zeros are a torn tail after a crash.
    @Test func allocationAheadExtendsAndSyncsOffTheCommitPath() throws {
        let options = smallOptions(segmentSize: 1 << 20)
        let base = MemoryFileSystem()
        let fs = CountingFileSystem(base: base)
        let (log, _) = try openLog(fs, options)
        let t1 = try append(log, [record(1, count: 100)])
        try log.sync(through: t1.end)
        #expect(fs.base.contents(of: segmentPath(1))?.count == Log.preallocationBytes)
        let syncs = fs.segmentSyncs.load(ordering: .relaxed)
        #expect(try log.allocateAhead(), "64 KiB allocated: below the 128 KiB low water")
        let ahead = Int(LogPositions.offset(t1.end)) + LogSegmentLayout.commitFrameSize + Log.allocationAheadBytes
        let expected = (ahead + Log.preallocationBytes - 1) / Log.preallocationBytes * Log.preallocationBytes
        #expect(fs.base.contents(of: segmentPath(1))?.count == expected)
        #expect(fs.segmentSyncs.load(ordering: .relaxed) == syncs + 1, "the new size is synced by the step itself")
        #expect(log.statistics.allocationsAhead == 1)
        #expect(try log.allocateAhead() == false, "enough is allocated")
        // Appends up to the low water leave the size alone; then the step extends again.
        var transactions = [t1]
        while Int(LogPositions.offset(log.endPosition)) + Log.allocationLowWater < expected {
            let t = try append(log, [record(transactions.count + 1, count: 4000)])
            try log.sync(through: t.end)
            transactions.append(t)
        }
        #expect(fs.base.contents(of: segmentPath(1))?.count == expected)
        #expect(try log.allocateAhead())
        #expect(fs.base.contents(of: segmentPath(1))!.count > expected)
        // Never past the segment size.
        while Int(LogPositions.offset(log.endPosition)) + 8000 < options.segmentSize {
            let t = try append(log, [record(transactions.count + 1, count: 4000)])
            transactions.append(t)
            _ = try log.allocateAhead()
        }
        try log.sync(through: log.endPosition)
        #expect(fs.base.contents(of: segmentPath(1))?.count == options.segmentSize)
        #expect(try log.allocateAhead() == false)
        // A crash: the zeros are a torn tail; every synced transaction comes back.
        let crashed = MemoryFileSystem()
        try crashed.createDirectory(testDirectory)
        crashed.setContents(of: segmentPath(1), to: try #require(base.contents(of: segmentPath(1))))
        let (_, replayed) = try openLog(crashed, options)
        #expect(replayed == transactions.map(asReplayed))
        try log.close()
    }

    /// With `allocateAhead` on, the log's own thread runs the step as appends approach the
    /// allocated end; the commit path then never extends the file after its first step.
    @Test func allocationAheadRunsOnItsOwnThread() throws {
        var options = smallOptions(segmentSize: 4 << 20)
        options.allocateAhead = true
        let fs = MemoryFileSystem()
        let (log, _) = try openLog(fs, options)
        var transactions: [ModelTransaction] = []
        for i in 1...200 {
            let t = try append(log, [record(i, count: 1000)])
            try log.sync(through: t.end)
            transactions.append(t)
        }
        // The thread runs when woken; wait for it (bounded) rather than for a time.
        var waited = 0
        while log.statistics.allocationsAhead == 0, waited < 10_000 {
            usleep(1000)
            waited += 1
        }
        #expect(log.statistics.allocationsAhead >= 1, "the allocation thread never ran")
        #expect(try #require(fs.contents(of: segmentPath(1))).count > Int(LogPositions.offset(log.endPosition)))
        try log.close()
        #expect(fs.contents(of: segmentPath(1))?.count == Int(LogPositions.offset(log.endPosition)), "close cut the zeros")
        let (_, replayed) = try openLog(fs, smallOptions(segmentSize: 4 << 20))
        #expect(replayed == transactions.map(asReplayed))
    }

    @Test func roundTripReplaysEveryTransaction() throws {
        let fs = MemoryFileSystem()
        let (t1, t2) = try twoTransactions(fs)
        let (log, replayed) = try openLog(fs, options)
        #expect(replayed == [asReplayed(t1), asReplayed(t2)])
        for t in [t1, t2] {
            for (i, position) in t.positions.enumerated() { #expect(try read(log, position) == t.records[i]) }
        }
    }

    @Test func truncatedTrailingRecordIsIgnored() throws {
        let fs = MemoryFileSystem()
        let (t1, _) = try twoTransactions(fs)
        fs.mutate(segmentPath(1)) { $0.removeLast(30) }   // inside t2's second record
        try expectTruncatedToFirst(fs, t1)
    }

    @Test func truncatedTrailingHeaderIsIgnored() throws {
        let fs = MemoryFileSystem()
        let (t1, t2) = try twoTransactions(fs)
        let keep = Int(LogPositions.offset(t2.start)) + 4   // half a frame header
        fs.mutate(segmentPath(1)) { $0.removeLast($0.count - keep) }
        try expectTruncatedToFirst(fs, t1)
    }

    @Test func badLengthAtEndIsIgnored() throws {
        let fs = MemoryFileSystem()
        let (t1, t2) = try twoTransactions(fs)
        let lengthOffset = Int(LogPositions.offset(t2.positions[0])) + 4
        fs.mutate(segmentPath(1)) { $0[lengthOffset + 2] = 0x7F }
        try expectTruncatedToFirst(fs, t1)
    }

    @Test func badChecksumAtTailIsIgnored() throws {
        let fs = MemoryFileSystem()
        let (t1, t2) = try twoTransactions(fs)
        let payloadOffset = Int(LogPositions.offset(t2.positions[1])) + 9
        fs.mutate(segmentPath(1)) { $0[payloadOffset] ^= 0x01 }
        try expectTruncatedToFirst(fs, t1)
    }

    @Test func zeroFilledTailIsIgnored() throws {
        let fs = MemoryFileSystem()
        let (t1, _) = try twoTransactions(fs)
        fs.mutate(segmentPath(1)) { $0.append(contentsOf: [UInt8](repeating: 0, count: 700)) }
        let (log, replayed) = try openLog(fs, options)
        #expect(replayed.count == 2)
        #expect(replayed.first == asReplayed(t1))
        #expect(fs.contents(of: segmentPath(1))?.count == Int(LogPositions.offset(log.endPosition)))
    }

    @Test func tornTransactionWithoutCommitIsNotApplied() throws {
        let fs = MemoryFileSystem()
        let (t1, t2) = try twoTransactions(fs)
        // Every record of t2 is intact; only its commit record is missing.
        fs.mutate(segmentPath(1)) { $0.removeLast(LogSegmentLayout.commitFrameSize) }
        #expect(fs.contents(of: segmentPath(1))?.count == Int(LogPositions.offset(t2.end)) - 21)
        try expectTruncatedToFirst(fs, t1)
    }

    @Test func corruptionInTheMiddleIsReported() throws {
        let fs = MemoryFileSystem()
        let transactions = try syncedTransactions(fs, count: 3)
        let (t2, t3) = (transactions[1], transactions[2])
        let damaged = Int(LogPositions.offset(t2.positions[0]))
        fs.mutate(segmentPath(1)) { $0[damaged + 20] ^= 0x40 }
        // t3's commit says the segment was durable through t2's end: the damage is in synced data.
        expectCorrupted(file: segmentPath(1), offset: UInt64(damaged)) { _ = try openLog(fs, options) }
        // Nothing was cut.
        #expect(fs.contents(of: segmentPath(1))?.count == Int(LogPositions.offset(witnessEnd(t3))))
    }

    @Test func corruptionOfACommitRecordInTheMiddleIsReported() throws {
        let fs = MemoryFileSystem()
        let (log, _) = try openLog(fs, options)
        let t1 = try append(log, [record(1, count: 40)])
        try log.sync(through: t1.end)
        let t2 = try append(log, [record(2, count: 40)])
        try log.close()
        let commit = Int(LogPositions.offset(t1.end)) - LogSegmentLayout.commitFrameSize
        fs.mutate(segmentPath(1)) { $0[commit + 10] ^= 0x01 }
        _ = t2
        expectCorrupted(file: segmentPath(1), offset: UInt64(commit)) { _ = try openLog(fs, options) }
    }

    /// Damage inside the last synced window — the transactions the last sync covered, with
    /// nothing appended after them — is reported: the sync witness written after that sync
    /// proves the window durable (before witnesses, this read as a torn tail and was cut).
    @Test func damageInsideTheLastSyncedWindowIsReported() throws {
        let fs = MemoryFileSystem()
        let (log, _) = try openLog(fs, options)
        let t1 = try append(log, [record(1, count: 40)])
        try log.sync(through: t1.end)
        let t2 = try append(log, [record(2, count: 40)])
        let t3 = try append(log, [record(3, count: 40)])
        try log.sync(through: t3.end)   // one sync covered t2 and t3
        #expect(log.endPosition == witnessEnd(t3), "the sync appended its witness")
        #expect(log.statistics.syncWitnesses == 2)
        try log.close()
        let damaged = Int(LogPositions.offset(t2.positions[0]))
        fs.mutate(segmentPath(1)) { $0[damaged + 20] ^= 0x40 }
        let before = fs.contents(of: segmentPath(1))
        expectCorrupted(file: segmentPath(1), offset: UInt64(damaged)) { _ = try openLog(fs, options) }
        #expect(fs.contents(of: segmentPath(1)) == before, "nothing was cut")
    }

    /// A clean close witnesses what it synced: damage to a transaction that only the close
    /// made durable is reported too.
    @Test func damageToWhatTheCloseSyncedIsReported() throws {
        let fs = MemoryFileSystem()
        let (log, _) = try openLog(fs, options)
        let t1 = try append(log, [record(1, count: 40)])
        let t2 = try append(log, [record(2, count: 40)])
        try log.close()
        #expect(fs.contents(of: segmentPath(1))?.count == Int(LogPositions.offset(witnessEnd(t2))))
        let damaged = Int(LogPositions.offset(t2.positions[0]))
        fs.mutate(segmentPath(1)) { $0[damaged + 12] ^= 0x01 }
        expectCorrupted(file: segmentPath(1), offset: UInt64(damaged)) { _ = try openLog(fs, options) }
        _ = t1
    }

    /// The limit that remains: if the witness itself did not survive (a crash right after the
    /// sync returned, before the witness reached the disk), damage in the last synced window
    /// still reads as a torn tail — the log holds nothing written after the data to prove it.
    @Test func damageInTheLastSyncedWindowWithoutItsWitnessReadsAsTornTail() throws {
        let fs = MemoryFileSystem()
        let transactions = try syncedTransactions(fs, count: 2)
        let (t1, t2) = (transactions[0], transactions[1])
        fs.mutate(segmentPath(1)) {
            $0.removeLast(LogSegmentLayout.commitFrameSize)   // t2's witness
            $0[Int(LogPositions.offset(t2.positions[0])) + 20] ^= 0x40
        }
        let (_, replayed) = try openLog(fs, options)
        #expect(replayed == [asReplayed(t1)])
    }

    /// A record whose payload embeds a commit frame (built without the segment salt) cannot
    /// be mistaken for proof of durability after a torn write.
    @Test func forgedCommitInsidePayloadIsNotEvidence() throws {
        let fs = MemoryFileSystem()
        let (log, _) = try openLog(fs, options)
        let t1 = try append(log, [record(1, count: 40)])
        try log.sync(through: t1.end)
        var forged = [UInt8](repeating: 0, count: 21)
        forged.withUnsafeMutableBytes { b in
            b.storeLE(UInt32(12), at: 4)
            b[8] = 1
            b.storeLE(UInt32(4000), at: 9)          // durable through: far past anything
            b.storeLE(UInt32(24), at: 13)
            b.storeLE(UInt32(0), at: 17)
            b.storeLE(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[4..<21])), at: 0)
        }
        let t2 = try append(log, [ModelRecord(type: 17, payload: [1, 2, 3] + forged + [4, 5])])
        // A crash before t2 was synced: the segment as written, without its preallocated zeros.
        fs.mutate(segmentPath(1)) { $0.removeLast($0.count - Int(LogPositions.offset(t2.end))) }
        fs.mutate(segmentPath(1)) { $0[Int(LogPositions.offset(t2.positions[0]))] ^= 0xFF }
        let (_, replayed) = try openLog(fs, options)
        #expect(replayed == [asReplayed(t1)])
    }

    @Test func emptySegment() throws {
        let fs = MemoryFileSystem()
        let (log, replayed) = try openLog(fs, options)
        #expect(replayed.isEmpty)
        #expect(log.endPosition == LogPositions.make(segment: 1, offset: 24))
        try log.close()
        #expect(fs.contents(of: segmentPath(1))?.count == LogSegmentLayout.headerSize)
        let (again, replayedAgain) = try openLog(fs, options)
        #expect(replayedAgain.isEmpty)
        #expect(try again.listSegments().map(\.state) == [.active])
        let empty = try append(again, [])
        #expect(empty.start == empty.end)
        #expect(fs.contents(of: segmentPath(1))?.count == LogSegmentLayout.headerSize)
    }

    @Test func tornSegmentHeaderWithoutRecordsIsRewritten() throws {
        let fs = MemoryFileSystem()
        let (log, _) = try openLog(fs, options)
        try log.close()
        fs.mutate(segmentPath(1)) { $0.removeLast(10) }
        let (reopened, replayed) = try openLog(fs, options)
        #expect(replayed.isEmpty)
        #expect(fs.contents(of: segmentPath(1))?.count == LogSegmentLayout.headerSize)
        let t = try append(reopened, [record(1, count: 3)])
        #expect(try read(reopened, t.positions[0]) == t.records[0])
    }

    @Test func damagedSegmentHeaderBeforeRecordsIsCorruption() throws {
        let fs = MemoryFileSystem()
        _ = try twoTransactions(fs)
        fs.mutate(segmentPath(1)) { $0[13] ^= 0x01 }
        expectCorrupted(file: segmentPath(1), offset: 0) { _ = try openLog(fs, options) }
    }

    @Test func segmentExactlyFull() throws {
        let fs = MemoryFileSystem()
        let size = 24 + 9 + 100 + 21
        let options = smallOptions(segmentSize: size)
        let (log, _) = try openLog(fs, options)
        let t1 = try append(log, [record(1, count: 100)])
        #expect(t1.end == LogPositions.make(segment: 1, offset: UInt32(size)))
        #expect(try log.listSegments().count == 1)
        let t2 = try append(log, [record(2, count: 1)])
        #expect(t2.start == LogPositions.make(segment: 2, offset: 24))
        #expect(try log.listSegments().map(\.state) == [.full, .active])
        #expect(fs.contents(of: segmentPath(1))?.count == size)
        try log.close()
        let (reopened, replayed) = try openLog(fs, options)
        #expect(replayed == [asReplayed(t1), asReplayed(t2)])
        #expect(try read(reopened, t1.positions[0]) == t1.records[0])
    }

    @Test func transactionLargerThanSegmentSize() throws {
        let fs = MemoryFileSystem()
        let options = smallOptions(segmentSize: 256)
        let (log, _) = try openLog(fs, options)
        let big0 = try append(log, [record(0, count: 1000)])         // into the empty segment 1
        #expect(LogPositions.segment(big0.start) == 1)
        let t1 = try append(log, [record(1, count: 10)])
        #expect(LogPositions.segment(t1.start) == 2)
        let big = try append(log, [record(2, count: 700), record(3, count: 900)])
        #expect(big.start == LogPositions.make(segment: 3, offset: 24))
        let t3 = try append(log, [record(4, count: 10)])
        #expect(LogPositions.segment(t3.start) == 4)
        for t in [big0, t1, big, t3] {
            for (i, p) in t.positions.enumerated() { #expect(try read(log, p) == t.records[i]) }
        }
        try log.close()
        let (_, replayed) = try openLog(fs, options)
        #expect(replayed == [big0, t1, big, t3].map(asReplayed))
    }

    @Test func transactionOverTheMaximumIsRejected() throws {
        var batch = LogBatch()
        #expect(throws: StorageError.self) {
            try batch.append(type: 16, payloadCount: LogSegmentLayout.maximumTransactionBytes) { _ in }
        }
        #expect(batch.isEmpty)
        #expect(throws: StorageError.self) { try batch.append(type: 1, payload: [1]) }
        #expect(throws: StorageError.self) { try batch.append(type: 15, payload: [1]) }
    }

    /// 30 transactions over several segments; replay from each transaction's end.
    func multiSegmentLog(_ fs: MemoryFileSystem, _ options: LogOptions) throws -> [ModelTransaction] {
        let (log, _) = try openLog(fs, options)
        var all: [ModelTransaction] = []
        for i in 0..<30 {
            all.append(try append(log, (0..<(i % 3 + 1)).map { record(i * 10 + $0, count: 10 + (i * 7) % 50) }))
        }
        try log.close()
        return all
    }

    @Test func multiSegmentReplayFromAPosition() throws {
        let fs = MemoryFileSystem()
        let options = smallOptions(segmentSize: 300)
        let all = try multiSegmentLog(fs, options)
        #expect(Set(all.map { LogPositions.segment($0.start) }).count > 4)
        for k in [0, 1, 7, 15, 28, 29] {
            let (log, replayed) = try openLog(fs, options, replayFrom: all[k].end)
            #expect(replayed == all[(k + 1)...].map(asReplayed), "replay from end of transaction \(k)")
            try log.close()
        }
        let (log, replayed) = try openLog(fs, options, replayFrom: 0)
        #expect(replayed == all.map(asReplayed))
        try log.close()
    }

    @Test func replayFromTheMiddleOfASegment() throws {
        let fs = MemoryFileSystem()
        let options = smallOptions(segmentSize: 300)
        let all = try multiSegmentLog(fs, options)
        // A transaction in the middle of its segment: its predecessor is in the same segment.
        let k = try #require((1..<all.count).first {
            LogPositions.segment(all[$0].start) == LogPositions.segment(all[$0 - 1].start)
        })
        let (log, replayed) = try openLog(fs, options, replayFrom: all[k].start)
        #expect(replayed == all[k...].map(asReplayed))
        try log.close()
        // A position inside a transaction: that transaction has started before it, so it is skipped.
        let (log2, replayed2) = try openLog(fs, options, replayFrom: all[k].start + 1)
        #expect(replayed2 == all[(k + 1)...].map(asReplayed))
        try log2.close()
    }

    @Test func replayPositionBeyondTheEndIsCorruption() throws {
        let fs = MemoryFileSystem()
        let (t1, t2) = try twoTransactions(fs)
        _ = t1
        expectCorrupted(file: segmentPath(1)) { _ = try openLog(fs, options, replayFrom: t2.end + 1) }
        // Past the last segment: the error names the segment the replay needs.
        expectCorrupted(file: segmentPath(2)) {
            _ = try openLog(fs, options, replayFrom: LogPositions.make(segment: 2, offset: 24))
        }
        let (_, replayed) = try openLog(fs, options, replayFrom: t2.end)
        #expect(replayed.isEmpty)
    }

    /// A torn-looking tail below a position the caller saw durable is damage: reported,
    /// and the file is left untouched.
    @Test func tornTailBelowTheReplayPositionIsCorruption() throws {
        let fs = MemoryFileSystem()
        let (t1, t2) = try twoTransactions(fs)
        let damaged = Int(LogPositions.offset(t2.positions[1])) + 9
        fs.mutate(segmentPath(1)) { $0[damaged] ^= 0x01 }
        let before = fs.contents(of: segmentPath(1))
        expectCorrupted(file: segmentPath(1), offset: UInt64(LogPositions.offset(t2.positions[1]))) {
            _ = try openLog(fs, options, replayFrom: t2.end)
        }
        #expect(fs.contents(of: segmentPath(1)) == before)
        let (_, replayed) = try openLog(fs, options, replayFrom: t1.end)
        #expect(replayed.isEmpty)
    }

    @Test func earlierSegmentEndingBadlyIsCorruption() throws {
        let fs = MemoryFileSystem()
        let options = smallOptions(segmentSize: 300)
        let all = try multiSegmentLog(fs, options)
        let lastOfFirst = try #require(all.last { LogPositions.segment($0.start) == 1 })
        fs.mutate(segmentPath(1)) { $0.removeLast(5) }
        expectCorrupted(file: segmentPath(1), offset: UInt64(LogPositions.offset(lastOfFirst.end)) - 21) {
            _ = try openLog(fs, options)
        }
        // Replaying from a later segment does not scan segment 1.
        let later = try #require(all.first { LogPositions.segment($0.start) == 3 })
        let (_, replayed) = try openLog(fs, options, replayFrom: later.start)
        #expect(replayed.first == asReplayed(later))
    }

    @Test func earlierSegmentWithoutFinalCommitIsCorruption() throws {
        let fs = MemoryFileSystem()
        let options = smallOptions(segmentSize: 300)
        let all = try multiSegmentLog(fs, options)
        let lastOfFirst = try #require(all.last { LogPositions.segment($0.start) == 1 })
        fs.mutate(segmentPath(1)) { $0.removeLast(21) }
        expectCorrupted(file: segmentPath(1), offset: UInt64(LogPositions.offset(lastOfFirst.start))) {
            _ = try openLog(fs, options)
        }
    }

    @Test func applyErrorsAbortOpen() throws {
        let fs = MemoryFileSystem()
        _ = try twoTransactions(fs)
        #expect(throws: StorageError.invalidArgument("stop")) {
            _ = try Log.open(fileSystem: fs, directory: testDirectory, options: options, replayFrom: 0) { _ in
                throw StorageError.invalidArgument("stop")
            }
        }
    }
}
