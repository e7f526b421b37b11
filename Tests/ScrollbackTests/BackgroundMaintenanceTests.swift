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
}
