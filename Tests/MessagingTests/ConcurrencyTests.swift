import Foundation
@testable import Scrollback
import ScrollbackIO
import Synchronization
import Testing
import TestSupport

/// Runs `body(i)` for i in 0..<count, each on its own thread, and waits for all of them.
func runThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for i in 0..<count {
        group.enter()
        let thread = Thread {
            body(i)
            group.leave()
        }
        thread.start()
    }
    group.wait()
}

/// Shared state of a threaded test.
final class Shared: Sendable {
    let published: Lock<[Int]>
    let done = Atomic<Bool>(false)
    let finishedWriters = Atomic<Int>(0)
    let failures = Lock<[String]>([])
    let reads = Atomic<Int>(0)
    let compactions = Atomic<Int>(0)
    let before = Lock<[Int]>([])
    let after = Lock<[Int]>([])

    init(writers: Int) { published = Lock(Array(repeating: 0, count: writers)) }

    func fail(_ text: String) { failures.withLock { if $0.count < 20 { $0.append(text) } } }
}

@Suite struct ConcurrencyTests {
    static func body(_ writer: Int, _ n: Int) -> String { "w\(writer)-n\(n) " + String(repeating: "z", count: n % 40) }

    /// Writer threads append (each to its own conversation) and publish what they committed;
    /// a churn thread edits and deletes in another conversation (garbage); a compaction thread
    /// compacts over and over; reader threads check every read against committed state:
    /// everything acknowledged before a read began is visible, counts never go back, and every
    /// message read is exactly as written.
    @Test func readersWritersAndCompactionTogether() throws {
        let store = try Fixture.open(options: Fixture.options(segmentBytes: 64 << 10))
        let writers = 3, perWriter = 400
        let shared = Shared(writers: writers)

        runThreads(writers + 1 + 1 + 3) { index in
            if index < writers {
                defer {
                    // The last writer to finish (or fail) ends the run.
                    if shared.finishedWriters.add(1, ordering: .acquiringAndReleasing).newValue == writers {
                        shared.done.store(true, ordering: .releasing)
                    }
                }
                for n in 0..<perWriter {
                    do {
                        let m = Message(id: "w\(index)-\(n)", conversation: "conv\(index)", sender: "writer\(index)",
                                        createdAt: Int64(n / 3), body: Self.body(index, n))
                        if try store.append(m) != .appended { shared.fail("append w\(index)-\(n) was a duplicate") }
                        shared.published.withLock { $0[index] = n + 1 }
                    } catch {
                        shared.fail("writer \(index): \(error)")
                        return
                    }
                }
            } else if index == writers {
                var n = 0
                while !shared.done.load(ordering: .acquiring) || n < 200 {
                    do {
                        try store.append(Message(id: "j\(n)", conversation: "junk", sender: "x", createdAt: Int64(n), body: String(repeating: "j", count: 200)))
                        if n % 2 == 0 { try store.edit(id: "j\(n)", body: "edited") } else { try store.delete(id: "j\(n)") }
                    } catch {
                        shared.fail("churn: \(error)")
                        return
                    }
                    n += 1
                    if n > 5000 { break }
                }
            } else if index == writers + 1 {
                while !shared.done.load(ordering: .acquiring) {
                    do {
                        try store.compact()
                        shared.compactions.add(1, ordering: .relaxed)
                    } catch {
                        shared.fail("compaction: \(error)")
                        return
                    }
                }
            } else {
                var lastCounts = Array(repeating: 0, count: writers)
                var rng = SeededRandom(seed: UInt64(index))
                var rounds = 0
                while !shared.done.load(ordering: .acquiring) || rounds < 20 {
                    rounds += 1
                    let w = Int.random(in: 0..<writers, using: &rng)
                    let floor = shared.published.withLock { $0[w] }
                    do {
                        let count = try store.count(in: "conv\(w)", after: -1)
                        if count < floor { shared.fail("reader saw \(count) messages of conv\(w), \(floor) were acknowledged") }
                        if count < lastCounts[w] { shared.fail("count of conv\(w) went back from \(lastCounts[w]) to \(count)") }
                        lastCounts[w] = count
                        let latest = try store.latest(in: "conv\(w)", limit: 30)
                        let page = try store.page(in: "conv\(w)", offset: Int.random(in: 0..<max(1, count), using: &rng), limit: 10, order: .oldestFirst)
                        for m in latest + page {
                            guard m.id.hasPrefix("w\(w)-"), let n = Int(m.id.dropFirst("w\(w)-".count)) else {
                                shared.fail("unexpected id \(m.id) in conv\(w)")
                                continue
                            }
                            if m.body != Self.body(w, n) || m.createdAt != Int64(n / 3) || m.sender != "writer\(w)" || m.edited {
                                shared.fail("message \(m.id) read differently than written: \(m)")
                            }
                        }
                        if latest.count != min(30, count) && latest.count < min(30, floor) { shared.fail("latest returned \(latest.count) of \(count)") }
                        _ = try store.feed(["conv0", "conv1", "junk"], limit: 20)
                        _ = try store.conversations(limit: 10)
                        shared.reads.add(1, ordering: .relaxed)
                    } catch {
                        shared.fail("reader: \(error)")
                        return
                    }
                }
            }
        }
        #expect(shared.failures.withLock { $0 } == [])
        #expect(shared.reads.load(ordering: .relaxed) > 0)
        for w in 0..<writers {
            let all = try store.messages(in: "conv\(w)", from: 0, through: 1 << 40, limit: 10_000)
            #expect(all.count == perWriter)
            #expect(all.map(\.id) == (0..<perWriter).map { "w\(w)-\($0)" })
        }
        #expect(try store.verify() == [])
        print("concurrency test: \(shared.reads.load(ordering: .relaxed)) reader rounds, \(shared.compactions.load(ordering: .relaxed)) compactions")
    }

    /// A backup taken while writers run opens as a normal store, verifies, and holds a
    /// consistent prefix of every writer's acknowledged appends.
    @Test func backupWhileWriting() throws {
        let fs = MemoryFileSystem()
        let store = try Fixture.open(fs)
        let writers = 2, perWriter = 300
        let shared = Shared(writers: writers)
        for i in 0..<200 { try store.append(Message(id: "pre\(i)", conversation: "pre", sender: "s", createdAt: Int64(i), body: "p")) }
        runThreads(writers + 1) { index in
            if index < writers {
                for n in 0..<perWriter {
                    do {
                        try store.append(Message(id: "w\(index)-\(n)", conversation: "conv\(index)", sender: "s", createdAt: Int64(n), body: "b\(n)"))
                        if index == 0 && n % 5 == 0 { try store.delete(id: "pre\(n / 5)") }
                        shared.published.withLock { $0[index] = n + 1 }
                    } catch {
                        shared.failures.withLock { $0.append("writer: \(error)") }
                        return
                    }
                }
            } else {
                while shared.published.withLock({ $0.reduce(0, +) }) < 100 && shared.failures.withLock({ $0.isEmpty }) {
                    sched_yield()
                }
                shared.before.withLock { $0 = shared.published.withLock { $0 } }
                do { try store.backup(to: "/copy") } catch { shared.failures.withLock { $0.append("backup: \(error)") } }
                shared.after.withLock { $0 = shared.published.withLock { $0 } }
            }
        }
        #expect(shared.failures.withLock { $0 } == [])
        let copy = try Fixture.open(fs, path: "/copy")
        #expect(try copy.verify() == [])
        for w in 0..<writers {
            let ids = try copy.messages(in: "conv\(w)", from: 0, through: 1 << 40, limit: 10_000).map(\.id)
            #expect(ids == (0..<ids.count).map { "w\(w)-\($0)" }, "a prefix of writer \(w)'s appends")
            #expect(ids.count >= shared.before.withLock { $0[w] })
            #expect(ids.count <= shared.after.withLock { $0[w] } + 1)   // + the append in flight when the backup ended
        }
        #expect(throws: ScrollbackError.self) { try store.backup(to: "/copy") }   // not empty
        try copy.close()
        try store.close()
    }
}
