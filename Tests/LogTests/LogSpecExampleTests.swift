import Foundation
import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import Testing
import TestSupport

/// Decodes exactly the worked hex examples of spec/log-segment.md and spec/sealed-segment.md
/// (read from the documents, so the documents cannot drift from the code).
@Suite struct LogSpecExampleTests {
    /// The bytes of the single ```hex block of a spec document. Each line is
    /// `offset: hex bytes ; comment`; the offsets must match the running byte count.
    /// The bytes of the document's hex block (```` ```hex ````), or of the block labelled
    /// `label` (```` ```hex LABEL ````); line offsets continue from `startOffset`.
    func exampleBytes(_ document: String, label: String? = nil, startOffset: Int = 0) throws -> [UInt8] {
        let specDirectory = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("spec")
        let text = try String(contentsOf: specDirectory.appendingPathComponent(document), encoding: .utf8)
        let blocks = text.components(separatedBy: label.map { "```hex \($0)\n" } ?? "```hex\n")
        #expect(blocks.count == 2, "exactly one hex block \(label ?? "") in \(document)")
        let block = try #require(blocks.last?.components(separatedBy: "```").first)
        var bytes: [UInt8] = []
        for line in block.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let offset = Int(parts[0], radix: 16) else {
                Issue.record("bad example line: \(line)")
                continue
            }
            #expect(offset == startOffset + bytes.count, "line offset \(parts[0]) in \(document)")
            let hex = parts[1].split(separator: ";", maxSplits: 1).first ?? ""
            for pair in hex.split(separator: " ") {
                bytes.append(try #require(UInt8(pair, radix: 16), "bad hex \(pair)"))
            }
        }
        return bytes
    }

    let hello = ModelRecord(type: 16, payload: Array("hello".utf8))
    let second = ModelRecord(type: 32, payload: [1, 2])

    @Test func specExampleSegmentDecodes() throws {
        let bytes = try exampleBytes("log-segment.md")
        #expect(bytes.count == 70)
        let fs = MemoryFileSystem()
        try fs.createDirectory(testDirectory)
        fs.setContents(of: segmentPath(1), to: bytes)
        let (log, replayed) = try openLog(fs, smallOptions())
        #expect(replayed == [Replayed(start: 0x1_0000_0018, end: 0x1_0000_0046, records: [hello, second],
                                      positions: [0x1_0000_0018, 0x1_0000_0026])])
        #expect(try read(log, 0x1_0000_0018) == hello)
        #expect(try read(log, 0x1_0000_0026) == second)
        #expect(fs.contents(of: segmentPath(1)) == bytes)   // nothing truncated
    }

    /// The worked example followed by its sync witness: replays the same transaction, ends
    /// after the witness, and damage to the transaction is now reported instead of cut.
    @Test func specExampleWitnessDecodes() throws {
        let segment = try exampleBytes("log-segment.md")
        let witness = try exampleBytes("log-segment.md", label: "witness", startOffset: segment.count)
        #expect(witness.count == LogSegmentLayout.commitFrameSize)
        let fs = MemoryFileSystem()
        try fs.createDirectory(testDirectory)
        fs.setContents(of: segmentPath(1), to: segment + witness)
        let (log, replayed) = try openLog(fs, smallOptions())
        #expect(replayed == [Replayed(start: 0x1_0000_0018, end: 0x1_0000_0046, records: [hello, second],
                                      positions: [0x1_0000_0018, 0x1_0000_0026])])
        #expect(log.endPosition == 0x1_0000_005B)
        try log.close()
        var damaged = segment + witness
        damaged[0x22] ^= 0x20   // "hello" -> "hEllo"
        let broken = MemoryFileSystem()
        try broken.createDirectory(testDirectory)
        broken.setContents(of: segmentPath(1), to: damaged)
        expectCorrupted(file: segmentPath(1), offset: 0x18) { _ = try openLog(broken, smallOptions()) }
        // Without the witness the same damage is a torn tail (the remaining limit).
        broken.setContents(of: segmentPath(1), to: Array(damaged[..<segment.count]))
        let (_, cut) = try openLog(broken, smallOptions())
        #expect(cut.isEmpty)
    }

    /// A log that writes the example's transaction and syncs writes exactly the example and
    /// its witness.
    @Test func aSyncWritesTheExampleWitness() throws {
        let fs = MemoryFileSystem()
        let (log, _) = try openLog(fs, LogOptions(segmentSize: 4096, blockSize: 4096, blockCacheBytes: 0, saltSeed: 1))
        let t = try append(log, [hello, second])
        try log.sync(through: t.end)
        let segment = try exampleBytes("log-segment.md")
        let witness = try exampleBytes("log-segment.md", label: "witness", startOffset: segment.count)
        try log.sync(through: log.endPosition)   // syncing the witness needs no witness of its own
        #expect(log.endPosition == 0x1_0000_005B)
        try log.close()
        let written = try #require(fs.contents(of: segmentPath(1)))
        #expect(written.count == segment.count + witness.count)
        // The same bytes but for the salt (the example's segment has salt 0x59320DD7): the
        // header's salt and checksum, and every frame checksum, which is XORed with the salt.
        func u32(_ b: [UInt8], _ at: Int) -> UInt32 { b[at..<(at + 4)].enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * $1.offset) } }
        let salt = u32(written, 16)
        for frame in [0x18, 0x26, 0x31, 0x46] {
            #expect(u32(written, frame) ^ salt == u32(segment + witness, frame) ^ 0x5932_0DD7, "frame at \(frame)")
        }
        var unsalted = written, example = segment + witness
        for frame in [16, 20, 0x18, 0x26, 0x31, 0x46] {
            unsalted.replaceSubrange(frame..<(frame + 4), with: [0, 0, 0, 0])
            example.replaceSubrange(frame..<(frame + 4), with: [0, 0, 0, 0])
        }
        #expect(unsalted == example)
    }

    @Test func specExampleSealedSegmentDecodes() throws {
        let bytes = try exampleBytes("sealed-segment.md")
        #expect(bytes.count == 120)
        let fs = MemoryFileSystem()
        try fs.createDirectory(testDirectory)
        fs.setContents(of: sealedPath(1), to: bytes)
        let (log, replayed) = try openLog(fs, smallOptions())
        #expect(replayed == [Replayed(start: 0x1_0000_0018, end: 0x1_0000_0046, records: [hello, second],
                                      positions: [0x1_0000_0018, 0x1_0000_0026])])
        #expect(try read(log, 0x1_0000_0018) == hello)
        #expect(try read(log, 0x1_0000_0026) == second)
        // The sealed segment is the last one, so the log continues in a new segment 2.
        #expect(try log.listSegments().map(\.state) == [.sealed, .active])
    }

    /// The example segment, sealed by this code, is byte-identical to the sealed example.
    @Test func sealingTheSegmentExampleGivesTheSealedExample() throws {
        let fs = MemoryFileSystem()
        try fs.createDirectory(testDirectory)
        fs.setContents(of: segmentPath(1), to: try exampleBytes("log-segment.md"))
        let (log, _) = try openLog(fs, LogOptions(segmentSize: 4096, blockSize: 4096, blockCacheBytes: 0, saltSeed: 1))
        try log.rollSegment()
        #expect(try log.sealFullSegments() == 1)
        #expect(fs.contents(of: sealedPath(1)) == (try exampleBytes("sealed-segment.md")))
    }

    @Test func constantsMatchTheSpec() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(withUnsafeBytes(of: LogSegmentLayout.magic.littleEndian) { Array($0) } == Array("SBLOGSEG".utf8))
        #expect(withUnsafeBytes(of: SealedSegmentLayout.magic.littleEndian) { Array($0) } == Array("SBSEALED".utf8))
        #expect(LogSegmentLayout.commitFrameSize == 21)
    }
}
