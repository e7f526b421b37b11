import ScrollbackBTree
import ScrollbackFormat
import ScrollbackPager
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The worked hex example of spec/btree-page.md, and decoding of damaged pages.
@Suite struct BTreePageFormatTests {
    /// Reads the hex block that follows `<!-- hex: <label> -->` in spec/btree-page.md into a
    /// zero-padded page of `pageSize` bytes.
    static func specHex(_ label: String, pageSize: Int = 4096) throws -> [UInt8] {
        let specPath = String(#filePath.split(separator: "/Tests/", omittingEmptySubsequences: false)[0]) + "/spec/btree-page.md"
        guard let file = fopen(specPath, "r") else { throw ModelFailure(description: "cannot open \(specPath)") }
        defer { fclose(file) }
        var text = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, file)
            if n <= 0 { break }
            text.append(contentsOf: buffer[0..<n])
        }
        let lines = String(decoding: text, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard let marker = lines.firstIndex(where: { $0.contains("<!-- hex: \(label) -->") }) else {
            throw ModelFailure(description: "no hex block \(label) in the spec")
        }
        var page = [UInt8](repeating: 0, count: pageSize)
        var seen = 0
        for line in lines[(marker + 2)...] {
            if line.hasPrefix("```") { break }
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let offset = Int(parts[0], radix: 16) else { throw ModelFailure(description: "bad hex line \(line)") }
            for (i, byte) in parts[1].split(separator: " ").enumerated() {
                guard let value = UInt8(byte, radix: 16) else { throw ModelFailure(description: "bad hex byte \(byte)") }
                page[offset + i] = value
                seen += 1
            }
        }
        guard seen > 32 else { throw ModelFailure(description: "hex block \(label) too short") }
        return page
    }

    @Test func workedExampleDecodes() throws {
        let leafBytes = try Self.specHex("leaf page 3")
        let leaf = try leafBytes.withUnsafeBytes { try BTree.decodePage($0, pageNumber: 3) }
        #expect(leaf.type == .leaf && leaf.treeSlot == 1 && leaf.level == 0 && leaf.keyWords == 2 && leaf.valueSize == 4)
        #expect(leaf.keys == [BTreeKey(7, 100), BTreeKey(7, 200)])
        #expect(leaf.values == [Array("abcd".utf8), [4, 3, 2, 1]])
        #expect(leafBytes.withUnsafeBytes { $0.loadLE(UInt64.self, at: 8) } == 3)

        let branchBytes = try Self.specHex("branch page 4")
        let branch = try branchBytes.withUnsafeBytes { try BTree.decodePage($0, pageNumber: 4) }
        #expect(branch.type == .branch && branch.treeSlot == 1 && branch.level == 1 && branch.keyWords == 2 && branch.valueSize == 0)
        #expect(branch.children == [3, 5])
        #expect(branch.subtreeCounts == [2, 3])
        #expect(branch.keys == [BTreeKey(7, 100), BTreeKey(9, 0)])
    }

    /// The tree code writes exactly the documented leaf bytes (apart from the pager's fields).
    @Test func treeWritesTheDocumentedLeaf() throws {
        let expected = try Self.specHex("leaf page 3")
        let pager = try makePager()
        let txn = try pager.beginWrite()
        let tree = try BTree.create(in: txn, slot: 1, keyWords: 2, valueSize: 4)
        try tree.insert(BTreeKey(7, 200), value: [4, 3, 2, 1])
        try tree.insert(BTreeKey(7, 100), value: Array("abcd".utf8))
        try txn.commit()
        let snapshot = pager.beginRead()
        let root = snapshot.state.trees[1].rootPage
        let ref = try snapshot.page(root)
        let actual = Array(ref.bytes)
        let firstDifference = (4..<4096).first { !(8..<24).contains($0) && actual[$0] != expected[$0] }
        #expect(firstDifference == nil, "leaf differs from the spec at byte \(firstDifference ?? -1)")
        #expect(snapshot.state.trees[1].height == 1 && snapshot.state.trees[1].entryCount == 2)
    }

    /// The worked example installed in a pager as a two-level tree answers queries.
    @Test func workedExampleAsATree() throws {
        let pager = try makePager()
        let txn = try pager.beginWrite()
        _ = try BTree.create(in: txn, slot: 1, keyWords: 2, valueSize: 4)
        let leafA = try txn.allocatePage(), leafB = try txn.allocatePage(), root = try txn.allocatePage()
        let leaf = try Self.specHex("leaf page 3")
        var branch = try Self.specHex("branch page 4")
        // Leaf 5: (9, 0), (9, 1), (12, 5).
        var other = leaf
        other[6] = 3
        for (i, key) in [BTreeKey(9, 0), BTreeKey(9, 1), BTreeKey(12, 5)].enumerated() {
            other.withUnsafeMutableBytes { b in
                b.storeLE(key.w0, at: 32 + i * 20)
                b.storeLE(key.w1, at: 40 + i * 20)
                b.storeLE(UInt32(i), at: 48 + i * 20)
            }
        }
        branch.withUnsafeMutableBytes { b in
            b.storeLE(leafA, at: 32)
            b.storeLE(leafB, at: 64)
        }
        for (page, bytes) in [(leafA, leaf), (leafB, other), (root, branch)] {
            let ref = try txn.mutablePage(page)
            bytes.withUnsafeBytes { source in
                ref.bytes.baseAddress!.advanced(by: 4).copyMemory(from: source.baseAddress! + 4, byteCount: 4)
                ref.bytes.baseAddress!.advanced(by: 24).copyMemory(from: source.baseAddress! + 24, byteCount: 4096 - 24)
            }
        }
        txn.state.trees[1].rootPage = root
        txn.state.trees[1].entryCount = 5
        txn.state.trees[1].height = 2
        let tree = try BTree(txn, slot: 1)
        // The example's leaves are far below the minimum fill (12 of 203 at this shape):
        // queries work, and checkInvariants names exactly that problem.
        do {
            try tree.checkInvariants()
            Issue.record("checkInvariants accepted under-filled leaves")
        } catch let StorageError.corrupted(_, offset, reason) {
            #expect(offset == leafA * 4096 + 6 && reason.contains("minimum fill"))
        }
        #expect(try tree.rank(BTreeKey(8, 0)) == 2)
        #expect(try tree.key(atRank: 3) == BTreeKey(9, 1))
        #expect(try tree.get(BTreeKey(7, 100)) == Array("abcd".utf8))
        #expect(try tree.count(in: BTreeKey(7, 150)...BTreeKey(9, 1)) == 3)
        txn.rollback()
        try checkCommitted(pager)
    }

    @Test func damagedPagesThrowCorruptedNeverTrap() throws {
        let good = try Self.specHex("leaf page 3")
        func decode(_ mutate: (inout [UInt8]) -> Void) -> StorageError? {
            var bytes = good
            mutate(&bytes)
            do {
                _ = try bytes.withUnsafeBytes { try BTree.decodePage($0, pageNumber: 3) }
                return nil
            } catch let error as StorageError {
                return error
            } catch {
                return nil
            }
        }
        /// The corruption offset relative to the page start, -1 for no error, -2 for another error.
        func offset(_ mutate: (inout [UInt8]) -> Void) -> Int {
            switch decode(mutate) {
            case nil: return -1
            case let .corrupted(_, offset, _)?: return Int(offset) - 3 * 4096
            default: return -2
            }
        }
        let unchanged = offset { _ in }
        let countTooLarge = offset { $0[6] = 0xFF; $0[7] = 0xFF }
        let emptyPage = offset { $0[6] = 0; $0[7] = 0 }
        let unknownType = offset { $0[4] = 9 }
        let branchWithValueSize = offset { $0[4] = 1 }
        let keyWordsOutOfRange = offset { $0[25] = 5 }
        let valueSizeOutOfRange = offset { $0[26] = 0xFF; $0[27] = 0xFF }
        let reservedBytes = offset { $0[30] = 1 }
        let garbageAfterEntries = offset { $0[0x48] = 1 }
        let anyHint = offset { $0[28] = 0x34; $0[29] = 0x12 }
        #expect(unchanged == -1)
        #expect(countTooLarge == 6)
        #expect(emptyPage == 6)
        #expect(unknownType == 4)
        #expect(branchWithValueSize == 26)
        #expect(keyWordsOutOfRange == 25)
        #expect(valueSizeOutOfRange == 26)
        #expect(reservedBytes == 30)
        #expect(garbageAfterEntries == 0x48)
        #expect(anyHint == -1)  // the insert hint is only a hint: any value decodes
        var short = good
        short.removeLast(2048)
        let shortPage: Bool = short.withUnsafeBytes { (try? BTree.decodePage($0, pageNumber: 3)) == nil }
        #expect(shortPage)
    }
}
