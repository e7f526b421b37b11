import ScrollbackPager
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

    /// The version-2 example: slot 9 and counter 12 live in the second sector.
    static let exampleMetaV2: MetaPage = {
        var meta = exampleMeta
        meta.state.counters[12] = 7
        meta.state.trees[9] = TreeRoot(rootPage: 6, entryCount: 3, height: 1, keyWords: 1, valueSize: 0)
        return meta
    }()

    @Test func specMetaExampleDecodes() throws {
        let bytes = try specHexBlock("meta-example-v2", size: 4096)
        let decoded = bytes.withUnsafeBytes { MetaPage.decode($0, fileOffset: 4096, expectedSlot: 1) }
        #expect(decoded == .valid(Self.exampleMetaV2))
        #expect(Self.exampleMetaV2.encoded() == bytes)
        #expect(bytes.withUnsafeBytes { $0.loadLE(UInt32.self, at: MetaPageLayout.checksum) } == 0x2757_31CA)
        #expect(bytes.withUnsafeBytes { $0.loadLE(UInt32.self, at: MetaPageLayout.extendedChecksum) } == 0xD68F_E96C)
        // A tear that leaves only the first sector (the second still zero) is invalid.
        var torn = bytes
        for i in 0x200..<0x400 { torn[i] = 0 }
        guard case .damaged(let offset, _) = torn.withUnsafeBytes({ MetaPage.decode($0, fileOffset: 4096, expectedSlot: 1) }) else {
            Issue.record("a meta page with a torn second sector decoded")
            return
        }
        #expect(offset == 4096 + UInt64(MetaPageLayout.extendedChecksum))
    }

    /// A version-1 page (a store from before format 2) decodes, marked as version 1.
    @Test func specVersion1MetaExampleDecodes() throws {
        let bytes = try specHexBlock("meta-example", size: 4096)
        let decoded = bytes.withUnsafeBytes { MetaPage.decode($0, fileOffset: 4096, expectedSlot: 1) }
        var expected = Self.exampleMeta
        expected.formatVersion = 1
        #expect(decoded == .valid(expected))
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
        file.replaceSubrange(4096..<8192, with: try specHexBlock("meta-example-v2", size: 4096))
        file.replaceSubrange((9 * 4096)..<(10 * 4096), with: try specHexBlock("freelist-example", size: 4096))
        let fs = try fileSystem(withPageFile: file)
        let pager = try Pager.open(fileSystem: fs, path: pagesPath, cacheBytes: 1 << 16)
        #expect(pager.checkpointSequence == 7)
        #expect(pager.committedState == Self.exampleMetaV2.state)
        let accounting = pager.pageAccounting()
        #expect(accounting == PageAccounting(pageCount: 10, freePages: [3, 4, 8], freeListPages: [9]))
        try accounting.check(reachable: [2, 5, 6, 7])
        #expect(pager.fileFormatVersion == 2)
    }

    /// A version-1 page file opens for reading; writing or checkpointing it is refused and
    /// leaves the file as it was.
    @Test func version1FileIsReadOnly() throws {
        var file = [UInt8](repeating: 0, count: 10 * 4096)
        var older = Self.exampleMeta
        older.checkpointSequence = 6
        var olderBytes = older.encoded()
        // Re-encode as version 1: only the first sector, version 1, its checksum.
        for i in 0x200..<0x400 { olderBytes[i] = 0 }
        olderBytes.withUnsafeMutableBytes { raw in
            raw.storeLE(UInt32(1), at: MetaPageLayout.formatVersion)
            raw.storeLE(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<MetaPageLayout.checksum])), at: MetaPageLayout.checksum)
        }
        file.replaceSubrange(0..<4096, with: olderBytes)
        file.replaceSubrange(4096..<8192, with: try specHexBlock("meta-example", size: 4096))
        file.replaceSubrange((9 * 4096)..<(10 * 4096), with: try specHexBlock("freelist-example", size: 4096))
        let fs = try fileSystem(withPageFile: file)
        let pager = try Pager.open(fileSystem: fs, path: pagesPath, cacheBytes: 1 << 16)
        #expect(pager.fileFormatVersion == 1 && pager.checkpointSequence == 7)
        #expect(throws: StorageError.needsUpgrade(file: "pages", found: 1, current: PageFileLayout.formatVersion)) { _ = try pager.beginWrite() }
        #expect(throws: StorageError.needsUpgrade(file: "pages", found: 1, current: PageFileLayout.formatVersion)) { try pager.checkpoint() }
        #expect(fs.contents(of: pagesPath) == file)
    }

    @Test func layoutConstantsMatchTheSpecTables() {
        #expect(MetaPageLayout.treeCatalog + 8 * MetaPageLayout.treeEntrySize == MetaPageLayout.reserved)
        #expect(MetaPageLayout.counters + 8 * 8 == MetaPageLayout.treeCatalog)
        #expect(MetaPageLayout.checksum + 4 == MetaPageLayout.version1BodySize)
        #expect(MetaPageLayout.extendedCounters == MetaPageLayout.version1BodySize)
        #expect(MetaPageLayout.extendedCounters + 8 * 8 == MetaPageLayout.extendedTreeCatalog)
        #expect(MetaPageLayout.extendedTreeCatalog + 8 * MetaPageLayout.treeEntrySize == MetaPageLayout.extendedReserved)
        #expect(MetaPageLayout.extendedChecksum + 4 == MetaPageLayout.bodySize)
        #expect(PageFileLayout.treeSlotCount == 16 && PageFileLayout.counterCount == 16)
        #expect(MetaPageLayout.treeEntryOffset(9) == 0x258 && MetaPageLayout.counterOffset(12) == 0x220)
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
