import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import Testing
import TestSupport

/// The read-only view of a live log (a reader process's record reads) and the log reader's
/// handling of a torn tail that a restarted writer writes over.
@Suite struct LogReadOnlyViewTests {
    func contents(_ fs: MemoryFileSystem) throws -> [String: [UInt8]] {
        var result: [String: [UInt8]] = [:]
        for name in try fs.listDirectory(testDirectory) { result[name] = fs.contents(of: testDirectory + "/" + name) }
        return result
    }

    @Test func readsWhatTheReaderReplayedAndFollowsSealingAndRemoval() throws {
        let fs = MemoryFileSystem()
        try fs.createDirectory(testDirectory)
        let (log, _) = try openLog(fs, smallOptions(segmentSize: 1024))
        var written: [ModelTransaction] = []
        for i in 0..<40 { written.append(try append(log, [record(i, count: 30 + i % 40)])) }
        try log.sync(through: log.endPosition)

        let view = try Log.openReadOnlyView(fileSystem: fs, directory: testDirectory, options: smallOptions(segmentSize: 1024))
        let before = try contents(fs)
        try view.refreshReadOnlyView(through: written[29].end)
        for transaction in written[...29] {
            #expect(try read(view, transaction.positions[0]) == transaction.records[0])
        }
        let listed = try view.listSegments()
        #expect(listed.last?.id == LogPositions.segment(written[29].end))
        #expect(listed.allSatisfy { $0.id <= LogPositions.segment(written[29].end) })

        // The writer seals its full segments and appends more; the view follows.
        _ = try log.sealFullSegments()
        for i in 40..<60 { written.append(try append(log, [record(i, count: 30)])) }
        try log.sync(through: log.endPosition)
        try view.refreshReadOnlyView(through: written[59].end)
        let states = Dictionary(uniqueKeysWithValues: try view.listSegments().map { ($0.id, $0.state) })
        #expect(states[LogPositions.segment(written[0].end)] == .sealed)
        for transaction in written { #expect(try read(view, transaction.positions[0]) == transaction.records[0]) }

        // The writer removes the oldest segment: the view forgets it at its next refresh,
        // and until then reads it through the handle it holds.
        let oldest = LogPositions.segment(written[0].end)
        try log.removeSegment(oldest)
        #expect(try read(view, written[0].positions[0]) == written[0].records[0])
        try view.refreshReadOnlyView(through: written[59].end)
        #expect(try view.listSegments().map(\.id).contains(oldest) == false)

        // The view wrote nothing: what the writer did not touch is as it was.
        let after = try contents(fs)
        for (name, bytes) in before where !name.hasSuffix(".seg") || name == segmentName(oldest) + ".seg" {
            if let now = after[name] { #expect(now == bytes, "\(name)") }
        }
        try view.close()
        try log.close()
    }

    @Test func aCopyOfTheViewRecoversToTheReplayedEnd() throws {
        let fs = MemoryFileSystem()
        try fs.createDirectory(testDirectory)
        let (log, _) = try openLog(fs, smallOptions(segmentSize: 1024))
        var written: [Replayed] = []
        for i in 0..<50 { written.append(asReplayed(try append(log, [record(i, count: 25)]))) }
        try log.sync(through: log.endPosition)
        _ = try log.sealFullSegments()
        let view = try Log.openReadOnlyView(fileSystem: fs, directory: testDirectory, options: smallOptions(segmentSize: 1024))
        let end = written[44].end
        try view.refreshReadOnlyView(through: end)
        try fs.createDirectory("/copy")
        try view.copyReadOnlyView(through: end, into: "/copy")
        var replayed: [Replayed] = []
        let copied = try Log.open(fileSystem: fs, directory: "/copy", options: smallOptions(segmentSize: 1024), replayFrom: 0) {
            replayed.append(copy($0))
        }
        #expect(replayed == Array(written[...44]))
        try copied.close()
        try view.close()
        try log.close()
    }

    /// A writer killed in the middle of a transaction leaves a torn tail; the next writer cuts
    /// it off and appends over it. A reader that read the torn bytes must see the new ones.
    @Test func theReaderForgetsATornTailThatIsWrittenOver() throws {
        let fs = MemoryFileSystem()
        try fs.createDirectory(testDirectory)
        var (log, _) = try openLog(fs, smallOptions(segmentSize: 4096))
        var written: [Replayed] = []
        for i in 0..<5 { written.append(asReplayed(try append(log, [record(i, count: 40)]))) }
        try log.sync(through: log.endPosition)
        try log.close()
        // A torn transaction: half of a real one's bytes after the last commit.
        let path = segmentPath(1)
        let clean = fs.contents(of: path)!
        do {
            let (scratch, _) = try openLog(fs, smallOptions(segmentSize: 4096))
            _ = try append(scratch, [record(99, count: 200)])
            try scratch.close()
        }
        let grown = fs.contents(of: path)!
        fs.setContents(of: path, to: Array(grown[..<(clean.count + (grown.count - clean.count) / 2)]))

        let reader = LogReader(fileSystem: fs, directory: testDirectory)
        var seen: [Replayed] = []
        var position = try reader.read(from: 0, through: nil) { seen.append(copy($0)) }
        #expect(seen == written)
        // The next writer recovers (cutting the torn tail) and appends a different transaction.
        (log, _) = try openLog(fs, smallOptions(segmentSize: 4096))
        let next = asReplayed(try append(log, [record(7, count: 300)]))
        try log.sync(through: log.endPosition)
        position = try reader.read(from: position, through: nil) { seen.append(copy($0)) }
        #expect(seen == written + [next])
        #expect(position == next.end)
        try log.close()
    }
}
