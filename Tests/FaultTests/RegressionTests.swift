@testable import Scrollback
import ScrollbackFormat
import ScrollbackIO
import Testing
import TestSupport

/// Regression tests for the engine bugs the fault tests found (each failed before its fix).
@Suite struct FaultRegressionTests {
    static func fileSystem(_ files: [String: [UInt8]]) -> MemoryFileSystem {
        let fs = MemoryFileSystem()
        try? fs.createDirectory(FaultFixture.directory)
        for (path, bytes) in files { fs.setContents(of: path, to: bytes) }
        return fs
    }

    /// Bug: a damaged newest meta page made the pager fall back to the older checkpoint,
    /// whose log position lies in a segment compaction had removed since; recovery then
    /// replayed the later segments only, silently skipping the transactions in between
    /// (acknowledged messages were missing, reads failed with "no log segment").
    /// Now: recovery reports the missing segment as corruption.
    @Test func damagedNewestMetaPageAfterCompactionIsReportedNotSilentlyOlder() throws {
        let seed: UInt64 = 0xC0FFEE
        let files = try FaultFixture.healthyImage(seed: seed, messages: 330, bodyBytes: 300, finalCompaction: true)
        let ids = FaultFixture.allIDs(messages: 330)
        let expected = Observation.observe(
            try MessageStore(path: FaultFixture.directory, options: FaultFixture.options(), fileSystem: Self.fileSystem(files)), ids: ids)
        let pages = files["/db/pages"]!
        let layout = StoreImage(files: files).pageLayout(pages)
        for slot in [0, 1] {
            var damaged = files
            damaged["/db/pages"]![slot * layout.pageSize + 0x1FC] ^= 0x10   // the meta page's checksum
            do {
                let store = try MessageStore(path: FaultFixture.directory, options: FaultFixture.options(), fileSystem: Self.fileSystem(damaged))
                let observation = Observation.observe(store, ids: ids)
                #expect(observation.errors.isEmpty && observation == expected,
                        "meta page \(slot) (in use: \(layout.metaInUse)) damaged: the store opened with other data")
            } catch ScrollbackError.corrupted(let file, _, _) {
                #expect(file.hasPrefix("/db/"), "meta page \(slot): the error names \(file)")
            }
        }
    }

    /// Bug (the damage fuzzer's known limit, Fuzz/README.md): damage to the newest meta page
    /// *and* inside the last transaction of the raw log opened without an error at the older
    /// checkpoint's state plus the log before the damage — the last acknowledged message was
    /// silently gone, because the damaged transaction read as a torn, unsynced tail. Now the
    /// sync witness after it (written after its sync, made durable by the clean close) proves
    /// it was synced, and open reports the corruption. Without the witness (a crash right
    /// after the sync, the one state the log cannot prove) the old behaviour remains.
    @Test func damagedNewestMetaPageAndLastTransactionAreReported() throws {
        let fs = CrashSimulatingFileSystem(seed: 0x5EED)   // never crashed: a plain file system here
        let store = try MessageStore(path: FaultFixture.directory, options: FaultFixture.options(), fileSystem: fs)
        for step in FaultFixture.workload(seed: 0x5EED, messages: 40, bodyBytes: 120) { try step.run(store) }
        try store.checkpoint()
        let last = Message(id: "last", conversation: "general", sender: "ann", createdAt: 9_000_000, body: "the last acknowledged write")
        try store.append(last)
        try store.close()   // checkpoints: the newest meta page is the only state that holds `last`
        var files: [String: [UInt8]] = [:]
        for path in fs.allFilePaths() { files[path] = fs.contents(of: path)! }
        let segment = try #require(files.keys.filter { $0.hasSuffix(".seg") }.max())
        let pages = files["/db/pages"]!
        let layout = StoreImage(files: files).pageLayout(pages)
        var damaged = files
        damaged["/db/pages"]![layout.metaInUse * layout.pageSize + 0x1FC] ^= 0x10    // newest meta page's checksum
        let witness = LogSegmentLayout.commitFrameSize
        let end = damaged[segment]!.count - witness                               // `last`'s transaction ends here
        damaged[segment]!.replaceSubrange((end - 30)..<(end - 5), with: [UInt8](repeating: 0, count: 25))
        do {
            let reopened = try MessageStore(path: FaultFixture.directory, options: FaultFixture.options(),
                                            fileSystem: Self.fileSystem(damaged))
            let found = try? reopened.message(id: "last")
            Issue.record("the store opened (last: \(found?.body ?? "missing"))")
        } catch ScrollbackError.corrupted(let file, _, let reason) {
            #expect(file == segment, "\(reason)")
            #expect(reason.contains("durable through"), "\(reason)")
        }
        // The same damage without the witness: indistinguishable from a crash during the sync.
        var unwitnessed = damaged
        unwitnessed[segment]!.removeLast(witness)
        let reopened = try MessageStore(path: FaultFixture.directory, options: FaultFixture.options(),
                                        fileSystem: Self.fileSystem(unwitnessed))
        #expect(try reopened.message(id: "last") == nil, "the remaining limit: an unwitnessed last window reads as torn")
        try reopened.close()
    }

    /// Bug: a lost sealed segment file that still held live messages went unnoticed at open;
    /// reads of its messages failed later with an error naming no file ("no log segment").
    /// Now open reports it. In format 2 a sealed segment's live messages are in a run: a lost
    /// run file the run table lists is reported at open, naming the file.
    @Test func lostSegmentFileWithLiveMessagesIsReportedAtOpen() throws {
        var files = try FaultFixture.healthyImage(seed: 0xC0FFEE, messages: 480, bodyBytes: 300)
        let runs = files.keys.filter { $0.hasSuffix(".run") }.sorted()
        #expect(!runs.isEmpty)
        guard let lost = runs.first else { return }
        files[lost] = nil
        do {
            _ = try MessageStore(path: FaultFixture.directory, options: FaultFixture.options(), fileSystem: Self.fileSystem(files))
            Issue.record("a store missing \(lost) opened")
        } catch ScrollbackError.corrupted(let file, _, let reason) {
            #expect(file == lost && reason.contains("missing"), "\(file): \(reason)")
        }
    }

    /// Bug: a page file whose meta pages both lack the magic (truncated to nothing, zeroed)
    /// next to an existing log was reported as `.notAStore`, not as corruption of the page file.
    @Test func emptyPageFileNextToALogIsCorruption() throws {
        let fs = MemoryFileSystem()
        do {
            let store = try MessageStore(path: "/db", options: FaultFixture.options(), fileSystem: fs)
            try store.append(Message(id: "a", conversation: "c", sender: "s", createdAt: 1, body: "b"))
            try store.close()
        }
        fs.setContents(of: "/db/pages", to: [])
        #expect(throws: ScrollbackError.corrupted(file: "/db/pages", offset: 0,
                                                  reason: "neither meta page of the page file is valid but the log exists (log-00000001.seg)")) {
            _ = try MessageStore(path: "/db", options: FaultFixture.options(), fileSystem: fs)
        }
    }

    /// Bug: when compaction's roll or seal failed (EIO writing the sealed temp file; in format
    /// 2 the temporary file of the segment's sorted run), the
    /// error reached the caller but the store kept accepting writes, unlike the same failure
    /// in the commit path. Now it refuses writes until reopened.
    @Test func failedSealDuringCompactionRefusesWrites() throws {
        let fs = CrashSimulatingFileSystem(seed: 9)
        let store = try MessageStore(path: "/db", options: FaultFixture.options(), fileSystem: fs)
        for i in 0..<20 {
            try store.append(Message(id: "m\(i)", conversation: "c", sender: "s", createdAt: Int64(i), body: String(repeating: "z", count: 500)))
        }
        try store.delete(id: "m3")
        fs.injectFault(.writeFails(pathSuffix: ".run.tmp"))
        #expect(throws: ScrollbackError.self) { try store.compact() }
        do {
            try store.append(Message(id: "late", conversation: "c", sender: "s", createdAt: 99, body: "b"))
            Issue.record("a write was accepted after a failed seal")
        } catch ScrollbackError.refusesWrites {}
        #expect(try store.latest(in: "c", limit: 1).map(\.id) == ["m19"])
        try? store.close()
        fs.crash(mode: .dropAllUnsynced)
        let reopened = try MessageStore(path: "/db", options: FaultFixture.options(), fileSystem: fs)
        #expect(try reopened.count(in: "c", after: -1) == 19)
        #expect(try reopened.verify() == [])
        try reopened.compact()
        #expect(try reopened.verify() == [])
        try reopened.close()
    }
}
