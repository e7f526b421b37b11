import ScrollbackFormat
import ScrollbackIO
import Testing

@Suite struct MemoryFileSystemTests {
    @Test func readWriteTruncateRename() throws {
        let fs = MemoryFileSystem()
        try fs.createDirectory("/db")
        let file = try fs.open("/db/a", mode: .createNew)
        try file.write(Array("hello".utf8), at: 3)
        #expect(try file.size() == 8)
        #expect(try file.readBytes(count: 16, at: 0) == [0, 0, 0] + Array("hello".utf8))
        try file.truncate(to: 4)
        #expect(try file.readBytes(count: 16, at: 0) == [0, 0, 0, UInt8(ascii: "h")])
        #expect(throws: StorageError.self) { try fs.open("/db/a", mode: .createNew) }
        #expect(throws: StorageError.self) { try fs.open("/db/missing", mode: .existing) }
        try fs.rename("/db/a", to: "/db/b")
        #expect(try fs.listDirectory("/db") == ["b"])
        // The handle survives the rename (POSIX semantics).
        try file.write([9], at: 0)
        #expect(fs.contents(of: "/db/b")?.first == 9)
        try file.close()
        #expect(throws: StorageError.self) { try file.size() }
    }

    @Test func shortReadAtEndIsReportedAsCorruption() throws {
        let fs = MemoryFileSystem()
        let file = try fs.open("/x", mode: .createNew)
        try file.write([1, 2, 3], at: 0)
        var buffer = [UInt8](repeating: 0, count: 8)
        #expect(throws: StorageError.self) {
            try buffer.withUnsafeMutableBytes { (raw) throws in try file.readExactly(into: raw, at: 0) }
        }
    }
}
