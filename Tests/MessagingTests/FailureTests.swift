@testable import Scrollback
import ScrollbackFormat
import ScrollbackIO
@testable import ScrollbackMessaging
import Testing
import TestSupport

/// Failed syncs, damaged bytes and newer versions give typed errors, never traps.
@Suite struct FailureTests {
    @Test func failedSyncRefusesWritesUntilReopened() throws {
        let fs = CrashSimulatingFileSystem(seed: 5)
        let store = try Fixture.open(fs)
        try store.append(Fixture.message("a", at: 1))
        fs.injectFault(.syncFails(pathSuffix: ".seg"))
        #expect(throws: ScrollbackError.self) { try store.append(Fixture.message("b", at: 2)) }
        do {
            try store.append(Fixture.message("c", at: 3))
            Issue.record("a write was accepted after a failed sync")
        } catch ScrollbackError.refusesWrites {}
        #expect(try store.latest(in: "c1", limit: 5).map(\.id) == ["a"])   // reads keep working
        fs.clearFaults()
        try? store.close()   // one writer per store: the poisoned one lets go first
        let reopened = try Fixture.open(fs)
        #expect(try reopened.append(Fixture.message("c", at: 3)) == .appended)
        #expect(try reopened.message(id: "a") != nil)
        #expect(try reopened.verify() == [])
    }

    @Test func damagedLogBytesAreReportedNotTrapped() throws {
        for seed in TestSeeds.seeds(default: [1, 2, 3, 4, 5, 6, 7, 8]) {
            var rng = SeededRandom(seed: seed)
            let fs = CrashSimulatingFileSystem(seed: seed)
            do {
                let store = try Fixture.open(fs)
                for i in 0..<600 { try store.append(Fixture.message("m\(i)", in: "c\(i % 3)", at: Int64(i), body: String(repeating: "q", count: 100))) }
                try store.close()
            }
            let segments = fs.allFilePaths().filter { $0.contains("/log-") }
            let victim = segments.randomElement(using: &rng)!
            var bytes = fs.durableContents(of: victim)!
            let offset = Int.random(in: 24..<bytes.count, using: &rng)
            bytes[offset] ^= 0x5A
            fs.setContents(of: victim, to: bytes)
            do {
                let store = try Fixture.open(fs)
                var failures = 0
                for c in 0..<3 {
                    do { _ = try store.messages(in: "c\(c)", from: 0, through: 10_000, limit: 10_000) } catch ScrollbackError.corrupted {
                        failures += 1
                    }
                }
                let problems = try store.verify()
                #expect(failures == 0 || !problems.isEmpty, "seed \(seed): reads failed but verify found nothing")
            } catch ScrollbackError.corrupted {
                // Damage found while recovering: a typed error naming the file.
            }
        }
    }

    @Test func newerMessageFormatIsRefused() throws {
        let fs = MemoryFileSystem()
        let store = try Fixture.open(fs)
        try store.database.engine.commit { _, batch in
            try batch.append(type: MessageRecordType.initialize, payloadCount: 16) { out in
                out.storeLE(MessageLimits.searchFormatVersion + 1, at: 0)
                out.storeLE(UInt64(99), at: 8)
            }
        }
        try store.close()
        do {
            _ = try Fixture.open(fs)
            Issue.record("a store of a newer message format was opened")
        } catch ScrollbackError.unsupportedVersion(_, let found, let supported) {
            #expect(found == UInt32(MessageLimits.searchFormatVersion) + 1 && supported == UInt32(MessageLimits.searchFormatVersion))
        }
    }

    @Test func closedStoreThrowsClosed() throws {
        let store = try Fixture.open()
        try store.append(Fixture.message("a", at: 1))
        try store.close()
        #expect(throws: ScrollbackError.closed) { try store.append(Fixture.message("b", at: 1)) }
        #expect(throws: ScrollbackError.closed) { try store.message(id: "a") }
        #expect(throws: ScrollbackError.closed) { try store.verify() }
        #expect(throws: ScrollbackError.closed) { try store.statistics }
        #expect(throws: ScrollbackError.closed) { try store.compact() }
    }
}
