import Foundation
@testable import Scrollback
import ScrollbackFormat
import ScrollbackIO
import Testing
import TestSupport

/// One writer per store, any number of read-only opens (spec/reader-table.md), in one process
/// on the simulated file systems and on real files. (Real processes: Tests/ProcessLockTests.)
@Suite struct ReadOnlyStoreTests {
    static func options() -> StoreOptions {
        var options = StoreOptions()
        options.pageSize = 4096
        options.cacheBytes = 1 << 20
        options.segmentBytes = 64 << 10
        options.checkpointDirtyBytes = 64 << 10
        options.checkpointLogBytes = 128 << 10
        options.autoCompactGarbageRatio = nil
        options.changeRetentionBytes = 0
        return options
    }

    static func message(_ i: Int, in conversation: String? = nil, body: String? = nil) -> Message {
        Message(id: "m\(i)", conversation: conversation ?? "c\(i % 4)", sender: "s\(i % 3)", createdAt: Int64(1000 + i),
                body: body ?? "message \(i) " + String(repeating: "x", count: 100))
    }

    /// Every message of every conversation, oldest first, through keyset pages.
    static func contents(_ store: MessageStore) throws -> [String: [Message]] {
        var result: [String: [Message]] = [:]
        for conversation in ["c0", "c1", "c2", "c3"] {
            var cursor: Cursor?
            repeat {
                let page = try store.page(in: conversation, after: cursor, limit: 7, order: .oldestFirst)
                result[conversation, default: []] += page.messages
                cursor = page.next
            } while cursor != nil
        }
        return result
    }

    /// `base` observed: every call that could change a file or a name is noted in `changed`
    /// ("write /db/readers", "create /db/x", …).
    static func recordingChanges(of base: MemoryFileSystem) -> (fs: ObservedFileSystem, changed: Lock<[String]>) {
        let changed = Lock<[String]>([])
        let fs = ObservedFileSystem(base: base) { call in
            let note: String? = switch call {
            case let .open(path, mode): mode != .readOnly && mode != .existing && !base.fileExists(path) ? "create \(path)" : nil
            case .read: nil
            case let .write(path, _, _): "write \(path)"
            case let .truncate(path, _): "truncate \(path)"
            case let .syncData(path): "fdatasync \(path)"
            case let .createDirectory(path): "mkdir \(path)"
            case let .rename(source, _): "rename \(source)"
            case let .removeFile(path): "unlink \(path)"
            case let .syncDirectory(directory): "fsync \(directory)"
            }
            if let note { changed.withLock { $0.append(note) } }
        }
        return (fs, changed)
    }

    // MARK: One writer

    @Test func aSecondOpenForWritingInOneProcessIsRefusedAndWritesNothing() throws {
        let fs = MemoryFileSystem()
        let first = try MessageStore(path: "/db", options: Self.options(), fileSystem: fs)
        for i in 0..<20 { try first.append(Self.message(i)) }
        let names = try fs.listDirectory("/db")
        let bytes = names.map { fs.contents(of: "/db/" + $0) }
        do {
            _ = try MessageStore(path: "/db", options: Self.options(), fileSystem: fs)
            Issue.record("a second writer opened the store")
        } catch let ScrollbackError.storeLocked(path, holder) {
            #expect(path == "/db")
            #expect(holder?.contains("pid \(getpid()), this process") == true, "\(holder ?? "nil")")
            let text = "\(ScrollbackError.storeLocked(path: path, holder: holder))"
            #expect(text.hasPrefix("store /db is in use by another writer (pid \(getpid()), this process, "), "\(text)")
        }
        #expect(try fs.listDirectory("/db") == names)
        #expect(names.map { fs.contents(of: "/db/" + $0) } == bytes, "the refused open wrote")
        for i in 20..<40 { try first.append(Self.message(i)) }
        try first.close()
        let second = try MessageStore(path: "/db", options: Self.options(), fileSystem: fs)
        #expect(try second.statistics.messages == 40)
        try second.close()
    }

    @Test func realFilesTwoWritersInOneProcessAndARegularFile() throws {
        let directory = NSTemporaryDirectory() + "scrollback-ro-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = Self.options()
        options.lockLabel = "the first test writer"
        let first = try MessageStore(path: directory + "/store", options: options)
        try first.append(Self.message(1))
        do {
            _ = try MessageStore(path: directory + "/store")
            Issue.record("a second writer opened the store")
        } catch {
            guard case ScrollbackError.storeLocked = error else { throw error }
            #expect("\(error)".contains("the first test writer"), "\(error)")
            #expect((error as? any LocalizedError)?.errorDescription == "\(error)")
        }
        let reader = try MessageStore(readingAt: directory + "/store")
        #expect(try reader.message(id: "m1") != nil)
        try reader.close()
        try first.close()

        // A regular file is not a store, for either open; nothing is created next to it.
        let file = directory + "/file"
        FileManager.default.createFile(atPath: file, contents: Data("hello".utf8))
        #expect(throws: ScrollbackError.notAStore(path: file)) { _ = try MessageStore(path: file) }
        #expect(throws: ScrollbackError.notAStore(path: file)) { _ = try MessageStore(readingAt: file) }
        #expect(FileManager.default.contents(atPath: file) == Data("hello".utf8))
        // A missing directory is created by a writer only.
        #expect(throws: ScrollbackError.notAStore(path: directory + "/missing")) {
            _ = try MessageStore(readingAt: directory + "/missing")
        }
        #expect(!FileManager.default.fileExists(atPath: directory + "/missing"))
    }

    @Test func errorsReadWell() {
        let io = ScrollbackError.io(path: "/db/pages", operation: "pread", errno: ENOENT)
        #expect(io.description == "I/O error: pread on /db/pages failed: No such file or directory (errno 2)")
        #expect(io.errorDescription == io.description)
        let corrupted = ScrollbackError.corrupted(file: "/db/pages", offset: 8192, reason: "checksum")
        #expect(corrupted.description.contains("/db/pages at offset 8192"))
        #expect(ScrollbackError.readOnly(path: "/db").description.hasPrefix("store /db is open read-only"))
    }

    // MARK: Readers of a live store

    @Test(arguments: [false, true])
    func aReaderKeepsItsSnapshotWhileTheWriterChurnsAndRefreshes(compact: Bool) throws {
        let fs = MemoryFileSystem()
        let writer = try MessageStore(path: "/db", options: Self.options(), fileSystem: fs)
        for i in 0..<300 { try writer.append(Self.message(i)) }
        try writer.checkpoint()   // the reader reads its state from the page file alone
        let reader = try MessageStore(path: "/db", options: Self.options(), fileSystem: fs, readOnly: true)
        #expect(reader.isReadOnly && !writer.isReadOnly)
        // What the reader reads (it reads nothing yet: its cache stays cold, so its reads
        // below come from the page file after the writer's churn).
        let seen = try Self.contents(writer)

        // The writer rewrites and deletes most of what the reader sees, checkpointing,
        // sealing and (one run) compacting meanwhile.
        for round in 0..<6 {
            try writer.write { batch in
                for i in stride(from: round, to: 300, by: 3) { batch.edit(id: "m\(i)", body: "edited \(round) " + String(repeating: "y", count: 150)) }
            }
            for i in 0..<60 { try writer.append(Self.message(1000 + round * 60 + i)) }
            try writer.checkpoint()
        }
        try writer.write { batch in for i in stride(from: 1, to: 300, by: 2) { batch.delete(id: "m\(i)") } }
        if compact { _ = try writer.compact() }
        try writer.checkpoint()
        let status = writer.database.processes
        #expect(status.oldestReader?.liveReaders == 1)
        #expect(status.pagesAwaitingReaders > 0, "no page waits for the reader")
        #expect(try writer.statistics.oldestReader?.oldestProcessID == Int(getpid()))
        if compact {
            #expect(status.segmentsAwaitingRemoval + status.runsAwaitingRemoval > 0,
                    "compaction removed segments or runs the reader may read")
        }

        // The reader's answers are exactly its snapshot: no page or segment it reads was reused.
        #expect(try Self.contents(reader) == seen)
        #expect(try reader.verify() == [])
        #expect(throws: ScrollbackError.readOnly(path: "/db")) { try reader.append(Self.message(5000)) }
        #expect(throws: ScrollbackError.readOnly(path: "/db")) { try reader.checkpoint() }
        #expect(throws: ScrollbackError.readOnly(path: "/db")) { _ = try reader.compact() }
        #expect(try writer.refresh() == false)

        // Refresh: the newest durable state; then the writer reuses what the old one held.
        #expect(try reader.refresh())
        #expect(try Self.contents(reader) == (try Self.contents(writer)))
        #expect(try reader.refresh() == false)
        try writer.append(Self.message(9000))
        try writer.checkpoint()
        let after = writer.database.processes
        #expect(after.pagesAwaitingReaders < status.pagesAwaitingReaders, "reuse did not resume after the reader moved on")
        if compact {
            try writer.database.engine.removeUnreadableFiles()
            #expect(writer.database.processes.segmentsAwaitingRemoval == 0)
            #expect(writer.database.processes.runsAwaitingRemoval == 0)
        }
        #expect(try reader.verify() == [])
        try reader.close()
        try writer.close()
    }

    @Test func aReaderWritesNothingButItsSlot() throws {
        let base = MemoryFileSystem()
        let writer = try MessageStore(path: "/db", options: Self.options(), fileSystem: base)
        for i in 0..<200 { try writer.append(Self.message(i)) }
        try writer.checkpoint()
        for i in 200..<260 { try writer.append(Self.message(i)) }   // in the log only
        let (fs, changed) = Self.recordingChanges(of: base)
        let reader = try MessageStore(path: "/db", options: Self.options(), fileSystem: fs, readOnly: true)
        #expect(try reader.statistics.messages == 260)
        for i in 260..<300 { try writer.append(Self.message(i)) }
        try writer.checkpoint()
        try reader.refresh()
        #expect(try Self.contents(reader) == (try Self.contents(writer)))
        #expect(try reader.verify() == [])
        try reader.close()
        let notes = Set(changed.withLock { $0 })
        #expect(notes.isSubset(of: ["write /db/readers"]), "\(notes.sorted())")
        try writer.close()

        // Without any writer: the log after the last checkpoint is read, never recovered.
        let crashed = try MessageStore(path: "/db", options: Self.options(), fileSystem: base)
        for i in 300..<320 { try crashed.append(Self.message(i)) }
        base.releaseAllLocks()   // the writer "dies"
        let files = try base.listDirectory("/db").filter { $0 != "readers" }.map { base.contents(of: "/db/" + $0) }
        let late = try MessageStore(path: "/db", options: Self.options(), fileSystem: base, readOnly: true)
        #expect(try late.message(id: "m319") != nil)
        try late.close()
        #expect(try base.listDirectory("/db").filter { $0 != "readers" }.map { base.contents(of: "/db/" + $0) } == files)
    }

    @Test func aBackupOfALiveStoreIsTheReadersStateAndVerifies() throws {
        let fs = MemoryFileSystem()
        let writer = try MessageStore(path: "/db", options: Self.options(), fileSystem: fs)
        for i in 0..<400 { try writer.append(Self.message(i)) }
        try writer.write { batch in for i in stride(from: 0, to: 400, by: 5) { batch.delete(id: "m\(i)") } }
        let reader = try MessageStore(path: "/db", options: Self.options(), fileSystem: fs, readOnly: true)
        for i in 400..<450 { try writer.append(Self.message(i)) }   // after the reader's open: refresh takes them
        try reader.backup(to: "/copy")
        for i in 450..<500 { try writer.append(Self.message(i)) }   // after the backup: not in it
        try writer.checkpoint()
        #expect(try fs.listDirectory("/copy").contains("readers") == false)
        #expect(try fs.listDirectory("/copy").contains("lock") == false)
        let copy = try MessageStore(path: "/copy", options: Self.options(), fileSystem: fs)
        #expect(try copy.verify() == [])
        #expect(try Self.contents(copy) == (try Self.contents(reader)))
        #expect(try copy.statistics.messages == 450 - 80)
        try copy.append(Self.message(7000))
        try copy.close()
        let reopened = try MessageStore(path: "/copy", options: Self.options(), fileSystem: fs, readOnly: true)
        #expect(try reopened.message(id: "m7000") != nil)
        try reopened.close()
        try reader.close()
        try writer.close()
    }

    static func runFiles(_ fs: MemoryFileSystem, _ directory: String = "/db") throws -> Set<String> {
        Set(try fs.listDirectory(directory).filter { $0.hasSuffix(".run") })
    }

    /// Format 2: history sealed into sorted runs and merged. A reader reads the runs its state
    /// binds (and raw segments sealed after its state); the writer keeps every run file and
    /// log segment a state the reader holds may read until the reader moves on; the reader's
    /// backup copies the runs.
    @Test func aReaderReadsSortedRunsAndTheWriterKeepsTheFilesItsStateNames() throws {
        let fs = MemoryFileSystem()
        let writer = try MessageStore(path: "/db", options: Self.options(), fileSystem: fs)
        for i in 0..<1200 { try writer.append(Self.message(i)) }
        try writer.checkpoint()
        let sealedBefore = try Self.runFiles(fs)
        #expect(sealedBefore.count >= 2, "the history is not in runs: \(sealedBefore.sorted())")
        let reader = try MessageStore(path: "/db", options: Self.options(), fileSystem: fs, readOnly: true)
        let seen = try Self.contents(writer)
        #expect(try Self.contents(reader) == seen)
        #expect(try reader.statistics.messages == 1200)

        // The writer edits and deletes, seals more segments and merges every run into one.
        try writer.write { batch in for i in stride(from: 0, to: 1200, by: 7) { batch.edit(id: "m\(i)", body: "edited") } }
        try writer.write { batch in for i in stride(from: 1, to: 1200, by: 5) { batch.delete(id: "m\(i)") } }
        for i in 1200..<1500 { try writer.append(Self.message(i)) }
        _ = try writer.compact()
        try writer.checkpoint()
        try writer.database.engine.removeUnreadableFiles()
        let status = writer.database.processes
        #expect(status.runsAwaitingRemoval > 0, "a merge removed runs the reader's state names")
        let whileReading = try Self.runFiles(fs)
        #expect(sealedBefore.isSubset(of: whileReading), "run files the reader may read were removed")
        #expect(try Self.contents(reader) == seen)
        #expect(try reader.verify() == [])
        let space = try reader.spaceUsage()
        #expect(space.contains { $0.structure == "sorted runs" && $0.bytes > 0 }, "\(space)")

        // The reader moves on: it reads the merged run; the old files go at the writer's next removal.
        #expect(try reader.refresh())
        let newest = try Self.contents(writer)
        #expect(try Self.contents(reader) == newest)
        #expect(try reader.verify() == [])
        try writer.append(Self.message(9000))
        try writer.checkpoint()
        try writer.database.engine.removeUnreadableFiles()
        #expect(writer.database.processes.runsAwaitingRemoval == 0)
        let afterMovingOn = try Self.runFiles(fs)
        #expect(sealedBefore.isDisjoint(with: afterMovingOn), "replaced runs stay after the reader moved on")
        #expect(try Self.contents(reader) == newest)
        // A refresh with no older snapshot alive drops the old bindings; reads stay right.
        #expect(try reader.refresh())
        #expect(try reader.refresh() == false)
        #expect(try Self.contents(reader) == (try Self.contents(writer)))
        #expect(try reader.verify() == [])

        // A backup of the live store from the reader holds the runs and reads the same.
        try reader.backup(to: "/copy")
        let copiedRuns = try Self.runFiles(fs, "/copy")
        #expect(!copiedRuns.isEmpty)
        let copy = try MessageStore(path: "/copy", options: Self.options(), fileSystem: fs)
        #expect(try copy.verify() == [])
        #expect(try Self.contents(copy) == (try Self.contents(reader)))
        try copy.close()
        try reader.close()
        try writer.close()
    }

    /// A writer that reopens while a reader holds a state from before a merge: the replaced
    /// run files no table names any more are kept (queued) at open, not removed, until the
    /// reader moves on.
    @Test func aReopenedWriterKeepsTheRunsAnOlderReaderReads() throws {
        let fs = MemoryFileSystem()
        var writer = try MessageStore(path: "/db", options: Self.options(), fileSystem: fs)
        for i in 0..<1200 { try writer.append(Self.message(i)) }
        try writer.checkpoint()
        let runsBefore = try Self.runFiles(fs)
        #expect(runsBefore.count >= 2)
        let reader = try MessageStore(path: "/db", options: Self.options(), fileSystem: fs, readOnly: true)
        let seen = try Self.contents(reader)
        try writer.write { batch in for i in stride(from: 1, to: 1200, by: 3) { batch.delete(id: "m\(i)") } }
        _ = try writer.compact()
        try writer.close()
        writer = try MessageStore(path: "/db", options: Self.options(), fileSystem: fs)
        let reopened = try Self.runFiles(fs)
        #expect(runsBefore.isSubset(of: reopened), "the reopened writer removed runs the reader reads")
        #expect(writer.database.processes.runsAwaitingRemoval > 0)
        #expect(try Self.contents(reader) == seen)
        #expect(try reader.verify() == [])

        #expect(try reader.refresh())
        #expect(try Self.contents(reader) == (try Self.contents(writer)))
        try writer.append(Self.message(9000))
        try writer.checkpoint()
        #expect(writer.database.processes.runsAwaitingRemoval == 0)
        let after = try Self.runFiles(fs)
        #expect(runsBefore.isDisjoint(with: after), "replaced runs stay after the reader moved on")
        #expect(try reader.verify() == [])
        try reader.close()
        try writer.close()
    }

    @Test func aReaderOfAStoreWithoutAStoreIsRefused() throws {
        let fs = MemoryFileSystem()
        #expect(throws: ScrollbackError.notAStore(path: "/none")) {
            _ = try MessageStore(path: "/none", options: Self.options(), fileSystem: fs, readOnly: true)
        }
        try fs.createDirectory("/empty")
        #expect(throws: ScrollbackError.notAStore(path: "/empty")) {
            _ = try MessageStore(path: "/empty", options: Self.options(), fileSystem: fs, readOnly: true)
        }
        #expect(try fs.listDirectory("/empty") == [])
        #expect(!fs.fileExists("/none"))
    }
}
