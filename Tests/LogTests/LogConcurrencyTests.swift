import Dispatch
import Foundation
import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import Synchronization
import Testing
import TestSupport

/// Appends, group-commit syncs, sealing and reads all at once (run under
/// `swift test --sanitize=thread` to check for races).
@Suite struct LogConcurrencyTests {
    @Test func readersSealerAndSyncersRunAlongsideTheAppender() throws {
        let fs = MemoryFileSystem()
        let options = smallOptions(segmentSize: 2048, blockSize: 256, cacheBytes: 2048)
        let (log, _) = try openLog(fs, options)
        let known = Lock<[(LogPosition, ModelRecord)]>([])
        let lastEnd = Atomic<UInt64>(0)
        let finished = Atomic<Bool>(false)
        let failures = Lock<[String]>([])
        let done = DispatchGroup()
        func spawn(_ body: @escaping @Sendable () -> Void) {
            done.enter()
            Thread { body(); done.leave() }.start()
        }
        spawn {
            var batch = LogBatch()
            for i in 0..<1500 {
                do {
                    let t = try append(log, [record(i, count: i % 200), record(i + 1, count: 7, type: 99)], batch: &batch)
                    known.withLock { list in
                        for (j, p) in t.positions.enumerated() { list.append((p, t.records[j])) }
                    }
                    lastEnd.store(t.end, ordering: .releasing)
                } catch {
                    failures.withLock { $0.append("append: \(error)") }
                }
            }
            finished.store(true, ordering: .releasing)
        }
        spawn {
            while !finished.load(ordering: .acquiring) {
                do { try log.sealFullSegments() } catch { failures.withLock { $0.append("seal: \(error)") } }
            }
        }
        for seed in 0..<2 {
            spawn {
                var random = SeededRandom(seed: UInt64(seed))
                while !finished.load(ordering: .acquiring) {
                    guard let (position, expected) = known.withLock({ list in
                        list.isEmpty ? nil : list[Int(random.next() % UInt64(list.count))]
                    }) else { continue }
                    do {
                        let got = try read(log, position)
                        if got != expected { failures.withLock { $0.append("read \(position): wrong record") } }
                    } catch {
                        failures.withLock { $0.append("read \(position): \(error)") }
                    }
                }
            }
        }
        spawn {
            while !finished.load(ordering: .acquiring) {
                let end = lastEnd.load(ordering: .acquiring)
                if end == 0 { continue }
                do { try log.sync(through: end) } catch { failures.withLock { $0.append("sync: \(error)") } }
            }
        }
        done.wait()
        #expect(failures.withLock { $0 } == [])
        try log.sealFullSegments()
        for (position, expected) in known.withLock({ $0 }) { #expect(try read(log, position) == expected) }
        #expect(log.statistics.sealedSegmentCount > 3)
        try log.close()
        let (_, replayed) = try openLog(fs, options)
        #expect(replayed.count == 1500)
    }
}
