@testable import ScrollbackPager
import ScrollbackFormat
import ScrollbackIO
import Testing

/// The byte layouts of spec/page-file.md: the worked examples decode exactly, encoders
/// produce exactly them, and decoders reject damage with typed errors.
@Suite struct PageFileFormatTests {
    static let exampleMeta: MetaPage = {
        var state = CommittedState.initial
        state.transactionID = 42
        state.logPosition = 0x0000_0001_0000_0200
        state.counters[0] = 100
        state.trees[0] = TreeRoot(rootPage: 5, entryCount: 1000, height: 2, keyWords: 3, valueSize: 24)
        return MetaPage(pageSize: 4096, checkpointSequence: 7, pageCount: 10, freeListHead: 9,
                        freeListPageCount: 1, freePageCount: 3, state: state)
    }()

    @Test func specMetaExampleDecodes() throws {
        let bytes = try specHexBlock("meta-example", size: 4096)
        let decoded = bytes.withUnsafeBytes { MetaPage.decode($0, fileOffset: 4096, expectedSlot: 1) }
        #expect(decoded == .valid(Self.exampleMeta))
        #expect(Self.exampleMeta.encoded() == bytes)
        #expect(bytes.withUnsafeBytes { $0.loadLE(UInt32.self, at: MetaPageLayout.checksum) } == 0xB91F_3423)
    }

    @Test func specFreeListExampleDecodes() throws {
        let bytes = try specHexBlock("freelist-example", size: 4096)
        try bytes.withUnsafeBytes { raw in
            try Pager.verifyPage(raw, number: 9, maxSequence: 7, file: pagesPath)
            let decoded = try FreeListPage.decode(raw, pageCount: 10, file: pagesPath, fileOffset: 9 * 4096)
            #expect(decoded.next == 0)
            #expect(decoded.ranges == [FreeRange(start: 3, length: 2), FreeRange(start: 8, length: 1)])
            #expect(raw.loadLE(UInt32.self, at: 0) == 0x9432_FACE)
        }
        var encoded = [UInt8](repeating: 0xEE, count: 4096)
        encoded.withUnsafeMutableBytes { raw in
            FreeListPage.encode(into: raw, pageNumber: 9, next: 0,
                                ranges: [FreeRange(start: 3, length: 2), FreeRange(start: 8, length: 1)][...])
            Pager.seal(raw, sequence: 7)
        }
        #expect(encoded == bytes)
    }

    @Test func specExamplesOpenAsAFile() throws {
        // Meta 1 = the example (sequence 7); meta 0 = the same state at sequence 6. Page 9 =
        // the free-list example. Page 5 (the tree root) is never read by the pager.
        var file = [UInt8](repeating: 0, count: 10 * 4096)
        var older = Self.exampleMeta
        older.checkpointSequence = 6
        file.replaceSubrange(0..<4096, with: older.encoded())
        file.replaceSubrange(4096..<8192, with: try specHexBlock("meta-example", size: 4096))
        file.replaceSubrange((9 * 4096)..<(10 * 4096), with: try specHexBlock("freelist-example", size: 4096))
        let fs = try fileSystem(withPageFile: file)
        let pager = try Pager.open(fileSystem: fs, path: pagesPath, cacheBytes: 1 << 16)
        #expect(pager.checkpointSequence == 7)
        #expect(pager.committedState == Self.exampleMeta.state)
        let accounting = pager.pageAccounting()
        #expect(accounting == PageAccounting(pageCount: 10, freePages: [3, 4, 8], freeListPages: [9]))
        try accounting.check(reachable: [2, 5, 6, 7])
    }

    @Test func layoutConstantsMatchTheSpecTables() {
        #expect(MetaPageLayout.treeCatalog + PageFileLayout.treeSlotCount * MetaPageLayout.treeEntrySize == MetaPageLayout.reserved)
        #expect(MetaPageLayout.counters + 8 * PageFileLayout.counterCount == MetaPageLayout.treeCatalog)
        #expect(MetaPageLayout.checksum + 4 == MetaPageLayout.bodySize)
        #expect(FreeListPageLayout.capacity(pageSize: 4096) == 254)
        #expect(FreeListPageLayout.capacity(pageSize: 8192) == 510)
        #expect(FreeListPageLayout.capacity(pageSize: 16384) == 1022)
        #expect(Array("SCRBPAGE".utf8) == withUnsafeBytes(of: PageFileLayout.magic.littleEndian) { Array($0) })
    }

    @Test func metaDecoderRejectsEveryFieldOutOfRange() {
        let good = Self.exampleMeta.encoded()
        // (offset, value) edits that keep the checksum valid but break a rule.
        let edits: [(Int, UInt64, Int)] = [
            (MetaPageLayout.pageSize, 5000, 4),
            (MetaPageLayout.pageCount, 1, 8),
            (MetaPageLayout.freeListHead, 10, 8),
            (MetaPageLayout.freeListHead, 1, 8),
            (MetaPageLayout.freeListPageCount, 0, 8),
            (MetaPageLayout.treeCatalog + MetaPageLayout.TreeEntry.rootPage, 99, 8),
            (MetaPageLayout.treeCatalog + MetaPageLayout.TreeEntry.height, 0, 1),
            (MetaPageLayout.treeCatalog + MetaPageLayout.TreeEntry.keyWords, 5, 1),
            (MetaPageLayout.treeCatalog + MetaPageLayout.TreeEntry.valueSize, 1025, 2),
            (MetaPageLayout.treeCatalog + MetaPageLayout.TreeEntry.reserved, 1, 4),
            (MetaPageLayout.reserved + 7, 1, 1),
            (MetaPageLayout.checkpointSequence, 8, 8),
            (MetaPageLayout.formatVersion, 0, 4),
        ]
        for (offset, value, size) in edits {
            var bytes = good
            bytes.withUnsafeMutableBytes { raw in
                switch size {
                case 1: raw.storeLE(UInt8(value), at: offset)
                case 2: raw.storeLE(UInt16(value), at: offset)
                case 4: raw.storeLE(UInt32(value), at: offset)
                default: raw.storeLE(value, at: offset)
                }
                raw.storeLE(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<MetaPageLayout.checksum])), at: MetaPageLayout.checksum)
            }
            let decoded = bytes.withUnsafeBytes { MetaPage.decode($0, fileOffset: 4096, expectedSlot: 1) }
            guard case .damaged = decoded else {
                Issue.record("edit of \(size) bytes at \(offset) to \(value) accepted: \(decoded)")
                continue
            }
        }
        // Slot 1 at the wrong offset for its page size; short bodies; foreign bytes.
        #expect(good.withUnsafeBytes { MetaPage.decode($0, fileOffset: 8192, expectedSlot: 1) } != .valid(Self.exampleMeta))
        #expect(good.withUnsafeBytes { MetaPage.decode($0, fileOffset: 4096, expectedSlot: 0) } != .valid(Self.exampleMeta))
        for length in [0, 7, 8, 100, 511] {
            let decoded = Array(good.prefix(length)).withUnsafeBytes { MetaPage.decode($0, fileOffset: 4096, expectedSlot: 1) }
            #expect(decoded != .valid(Self.exampleMeta), "prefix \(length)")
        }
    }

    @Test func metaDecoderNeverTrapsOnRandomBytes() {
        var rng = SplitMix(seed: 11)
        for round in 0..<2000 {
            var bytes = Self.exampleMeta.encoded()
            let flips = 1 + Int(rng.next() % 4)
            for _ in 0..<flips { bytes[Int(rng.next() % 512)] = UInt8(truncatingIfNeeded: rng.next()) }
            if round % 3 == 0 {  // re-seal so the field checks run
                bytes.withUnsafeMutableBytes { raw in
                    raw.storeLE(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<MetaPageLayout.checksum])), at: MetaPageLayout.checksum)
                }
            }
            _ = bytes.withUnsafeBytes { MetaPage.decode($0, fileOffset: 4096, expectedSlot: 1) }
        }
    }

    @Test func freeListDecoderRejectsBadRuns() throws {
        func page(_ ranges: [FreeRange], next: PageNumber = 0, type: UInt8 = 3, count: UInt16? = nil) -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: 4096)
            bytes.withUnsafeMutableBytes { raw in
                FreeListPage.encode(into: raw, pageNumber: 9, next: next, ranges: ranges[...])
                raw.storeLE(type, at: PageHeader.pageType)
                if let count { raw.storeLE(count, at: PageHeader.entryCount) }
            }
            return bytes
        }
        let bad: [[UInt8]] = [
            page([FreeRange(start: 3, length: 0)]),
            page([FreeRange(start: 1, length: 1)]),
            page([FreeRange(start: 9, length: 2)]),
            page([FreeRange(start: 3, length: .max)]),
            page([], next: 10),
            page([], next: 1),
            page([], type: 2),
            page([], count: 255),
        ]
        for bytes in bad {
            #expect(throws: StorageError.self) {
                try bytes.withUnsafeBytes { try FreeListPage.decode($0, pageCount: 10, file: pagesPath, fileOffset: 9 * 4096) }
            }
        }
        let ok = page([FreeRange(start: 2, length: 8)], next: 3)
        let decoded = try ok.withUnsafeBytes { try FreeListPage.decode($0, pageCount: 10, file: pagesPath, fileOffset: 0) }
        #expect(decoded.ranges == [FreeRange(start: 2, length: 8)])
        #expect(decoded.next == 3)
    }

    @Test func rangesCoalesce() {
        #expect(FreeListPage.ranges(ofSorted: []) == [])
        #expect(FreeListPage.ranges(ofSorted: [2, 3, 4, 7, 9, 10]) == [
            FreeRange(start: 2, length: 3), FreeRange(start: 7, length: 1), FreeRange(start: 9, length: 2),
        ])
        #expect(FreeListPage.pagesNeeded(rangeCount: 0, pageSize: 4096) == 0)
        #expect(FreeListPage.pagesNeeded(rangeCount: 254, pageSize: 4096) == 1)
        #expect(FreeListPage.pagesNeeded(rangeCount: 255, pageSize: 4096) == 2)
    }
}
