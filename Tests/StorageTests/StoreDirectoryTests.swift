import ScrollbackFormat
import ScrollbackIO
import ScrollbackStorage
import Testing

/// The one decision whether a directory is a store, and what `open` does with each answer.
@Suite struct StoreDirectoryTests {
    static func kind(_ fs: MemoryFileSystem, _ directory: String) -> StoreDirectory.Kind {
        StoreDirectory.inspect(fileSystem: fs, directory: directory).kind
    }

    @Test func everyKindOfDirectory() throws {
        let fs = MemoryFileSystem()
        #expect(Self.kind(fs, "/missing") == .empty)
        try fs.createDirectory("/empty")
        #expect(Self.kind(fs, "/empty") == .empty)
        try fs.createDirectory("/foreign")
        fs.setContents(of: "/foreign/notes.txt", to: Array("notes".utf8))
        #expect(Self.kind(fs, "/foreign") == .foreign)
        try fs.createDirectory("/crashed")
        fs.setContents(of: "/crashed/pages.tmp", to: [1, 2, 3])
        #expect(Self.kind(fs, "/crashed") == .interruptedCreation)
        try fs.createDirectory("/damaged")
        fs.setContents(of: "/damaged/log-00000001.seg", to: [1, 2, 3])
        let damaged = StoreDirectory.inspect(fileSystem: fs, directory: "/damaged")
        #expect(damaged.kind == .logWithoutPageFile && damaged.logSegment == "log-00000001.seg")

        let engine = try StorageEngine.open(fileSystem: fs, directory: "/store", options: StorageEngineTests.smallOptions(),
                                            schema: KeyValueSchema.schema)
        try engine.close()
        #expect(Self.kind(fs, "/store") == .store)
    }

    @Test func openActsOnTheDecision() throws {
        let fs = MemoryFileSystem()
        let options = StorageEngineTests.smallOptions()
        try fs.createDirectory("/foreign")
        fs.setContents(of: "/foreign/notes.txt", to: Array("notes".utf8))
        #expect(throws: StorageError.notAStore(path: "/foreign")) {
            try StorageEngine.open(fileSystem: fs, directory: "/foreign", options: options, schema: KeyValueSchema.schema)
        }
        #expect(try fs.listDirectory("/foreign") == ["notes.txt"], "nothing is written into a foreign directory")
        try fs.createDirectory("/damaged")
        fs.setContents(of: "/damaged/log-00000001.seg", to: [1, 2, 3])
        do {
            _ = try StorageEngine.open(fileSystem: fs, directory: "/damaged", options: options, schema: KeyValueSchema.schema)
            Issue.record("a log without its page file was opened")
        } catch StorageError.corrupted(let file, _, _) {
            #expect(file == "/damaged/pages")
        }
        try fs.createDirectory("/crashed")
        fs.setContents(of: "/crashed/pages.tmp", to: [1, 2, 3])
        let engine = try StorageEngine.open(fileSystem: fs, directory: "/crashed", options: options, schema: KeyValueSchema.schema)
        try KeyValueSchema.commit([.put(1, 2)], to: engine)
        #expect(try KeyValueSchema.contents(of: engine) == [1: 2])
        try engine.close()
    }
}
