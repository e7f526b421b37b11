import Dispatch
import Foundation
@testable import Scrollback
import ScrollbackIO
import Synchronization
import Testing

/// A store on a file system that allows background I/O checkpoints and seals on its own
/// thread and extends its log ahead of the writers. Ordering is observed, never timed: the
/// test waits (bounded) for the background work to show up in the statistics.
@Suite struct BackgroundMaintenanceTests {
    @Test func checkpointsAndSealingRunBesideConcurrentWriters() throws {
        let fs = MemoryFileSystem(allowsBackgroundIO: true)
        let options = ReadOnlyStoreTests.options()   // 64 KiB segments, 64 KiB dirty pages per checkpoint
        let store = try MessageStore(path: "/db", options: options, fileSystem: fs)
        let failures = Lock<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 3) { writer in
            for i in stride(from: writer, to: 1800, by: 3) {
                do {
                    try store.append(ReadOnlyStoreTests.message(i))
                    if i % 5 == 0 { try store.markRead(user: "u\(writer)", conversation: "c\(i % 4)", through: "m\(i)") }
                } catch {
                    failures.withLock { $0.append("writer \(writer), message \(i): \(error)") }
                    return
                }
            }
        }
        #expect(failures.withLock { $0 } == [])
        // Full segments are sealed by the store's thread: wait for it (at most 60 s).
        var waited = 0
        while try store.statistics.sealedLogBytes == 0, waited < 60_000 {
            usleep(1000)
            waited += 1
        }
        let statistics = try store.statistics
        #expect(statistics.sealedLogBytes > 0, "no segment was sealed")
        #expect(statistics.checkpoints > 0, "no checkpoint ran")
        #expect(statistics.messages == 1800)
        let contents = try ReadOnlyStoreTests.contents(store)
        #expect(contents.values.map(\.count).reduce(0, +) == 1800)
        #expect(try store.verify() == [])
        try store.close()
        let reopened = try MessageStore(path: "/db", options: options, fileSystem: fs)
        #expect(try ReadOnlyStoreTests.contents(reopened) == contents)
        #expect(try reopened.verify() == [])
        try reopened.close()
    }

    /// `backgroundActivity` counts every checkpoint and seal when it begins and when it ends;
    /// `overlapped(since:)` names those that ran inside an interval. Here the committing
    /// thread runs them (no background I/O), and one checkpoint is held open by its body.
    @Test func backgroundActivityCountsCheckpointsAndSeals() throws {
        let fs = MemoryFileSystem()
        let options = ReadOnlyStoreTests.options()   // 64 KiB segments, 64 KiB dirty pages per checkpoint
        let store = try MessageStore(path: "/db", options: options, fileSystem: fs)
        let opened = store.backgroundActivity
        #expect(opened.checkpointsRunning == 0 && opened.sealsRunning == 0)
        for i in 0..<1800 { try store.append(ReadOnlyStoreTests.message(i)) }
        let written = store.backgroundActivity
        let statistics = try store.statistics
        #expect(statistics.checkpoints > 0 && statistics.sealedLogBytes > 0)
        #expect(written.checkpointsBegun == statistics.checkpoints, "every checkpoint since open is counted once")
        #expect(written.checkpointsEnded == written.checkpointsBegun && written.sealsEnded == written.sealsBegun)
        #expect(written.sealsBegun > opened.sealsBegun, "sealing a filled segment is counted")
        #expect(written.overlapped(since: opened).checkpoints == written.checkpointsBegun - opened.checkpointsEnded)

        var inside: BackgroundActivity? = nil
        try store.database.engine.checkpoint { inside = store.backgroundActivity }
        let after = store.backgroundActivity
        #expect(inside?.checkpointsRunning == 1, "a checkpoint is running while its body runs")
        #expect(after.checkpointsRunning == 0 && after.checkpointsBegun == written.checkpointsBegun + 1)
        #expect(after.overlapped(since: inside!) == (checkpoints: 1, seals: 0) as (UInt64, UInt64))
        #expect(store.backgroundActivity.overlapped(since: after).checkpoints == 0, "nothing ran since")
        try store.close()
        #expect(store.backgroundActivity.checkpointsRunning == 0, "readable after close")
    }
}
