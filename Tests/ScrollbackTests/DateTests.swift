import Foundation
import Scrollback
import ScrollbackIO
import Testing

/// `Date` beside the millisecond integers (Message+Date.swift): exact round trips, rounding of
/// dates between milliseconds, query bounds, and dates the store cannot hold.
@Suite struct DateTests {
    static func options() -> StoreOptions {
        var options = StoreOptions()
        options.pageSize = 4096
        options.cacheBytes = 1 << 20
        return options
    }

    /// Every millisecond value converts to a `Date` and back to itself (samples across the
    /// valid range up to the year 10000, and around whole seconds).
    @Test func millisecondsRoundTrip() {
        var samples: [Int64] = [0, 1, 999, 1000, 1001, 1_767_225_600_000, 1_767_225_600_001, 1_767_225_600_999,
                                253_402_300_799_999]   // 9999-12-31T23:59:59.999Z
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<20_000 {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            samples.append(Int64(x % 253_402_300_800_000))
        }
        for ms in samples {
            let message = Message(id: "m", conversation: "c", sender: "s", createdAt: ms, body: "")
            let back = Message(id: "m", conversation: "c", sender: "s", date: message.date, body: "")
            #expect(back.createdAt == ms, "\(ms) → \(message.date.timeIntervalSince1970) → \(back.createdAt)")
            var set = message
            set.date = message.date
            #expect(set.createdAt == ms)
        }
    }

    @Test func datesBetweenMillisecondsRoundToTheNearest() {
        func ms(_ seconds: Double) -> Int64 {
            Message(id: "m", conversation: "c", sender: "s", date: Date(timeIntervalSince1970: seconds), body: "").createdAt
        }
        #expect(ms(1.0004) == 1000)
        #expect(ms(1.0006) == 1001)
        #expect(ms(1_767_225_600.2504) == 1_767_225_600_250)
        #expect(ms(1_767_225_600.2496) == 1_767_225_600_250)
        let message = Message(id: "m", conversation: "c", sender: "s", date: Date(timeIntervalSince1970: 1_767_225_600.5), body: "")
        #expect(message.createdAt == 1_767_225_600_500)
        #expect(message.date == Date(timeIntervalSince1970: 1_767_225_600.5))
        #expect(ConversationSummary(id: "c", lastActivity: 1_500, messageCount: 1).lastActivityDate
            == Date(timeIntervalSince1970: 1.5))
    }

    /// A date the store cannot hold becomes a `createdAt` it rejects, never a trap.
    @Test func datesOutsideTheStoresRangeAreRejected() throws {
        let store = try MessageStore(path: "/db", options: Self.options(), fileSystem: MemoryFileSystem())
        defer { try? store.close() }
        for date in [Date(timeIntervalSince1970: -0.001), Date(timeIntervalSince1970: -1e300), Date.distantPast,
                     Date(timeIntervalSince1970: 9_007_199_254_741), Date(timeIntervalSince1970: 1e300),
                     Date(timeIntervalSince1970: .infinity), Date(timeIntervalSince1970: -.infinity),
                     Date(timeIntervalSince1970: .nan)] {
            let message = Message(id: "m", conversation: "c", sender: "s", date: date, body: "")
            #expect(!(0..<(Int64(1) << 53)).contains(message.createdAt))
            #expect(throws: ScrollbackError.self) { try store.append(message) }
        }
        #expect(try store.statistics.messages == 0)
        #expect(try store.count(in: "c", after: Date(timeIntervalSince1970: .nan)) == 0)
        #expect(try store.messages(in: "c", from: .distantPast, through: .distantFuture).isEmpty)
    }

    /// The `Date` query variants equal the millisecond ones; a bound between two milliseconds
    /// excludes the millisecond outside it.
    @Test func queriesWithDates() async throws {
        let store = try MessageStore(path: "/db", options: Self.options(), fileSystem: MemoryFileSystem())
        let base: Int64 = 1_767_225_600_000
        let written = try (0..<20).map { n -> Message in
            let message = Message(id: "m\(n)", conversation: "c", sender: "s", createdAt: base + Int64(n) * 10, body: "\(n)")
            return try { try store.append(message); return message }()
        }
        func date(_ ms: Int64, plus fraction: Double = 0) -> Date {
            Date(timeIntervalSince1970: (Double(ms) + fraction) / 1000)
        }
        let sync = { () throws -> ([Message], [Message], [Message], Int, Int, Int) in
            (try store.messages(in: "c", from: date(base + 50), through: date(base + 100)),
             try store.messages(in: "c", from: date(base + 50, plus: -0.5), through: date(base + 100, plus: 0.5), order: .newestFirst),
             try store.messages(in: "c", from: date(base + 50, plus: 0.5), through: date(base + 100, plus: -0.5), limit: 3),
             try store.count(in: "c", after: date(base + 150)),
             try store.count(in: "c", after: date(base + 150, plus: -0.5)),
             try store.count(in: "c", after: date(base + 150, plus: 0.5)))
        }
        let (inclusive, widened, narrowed, after, afterBefore, afterPast) = try sync()
        #expect(inclusive == Array(written[5...10]))
        #expect(widened == Array(written[5...10].reversed()))
        #expect(narrowed == Array(written[6...8]))
        #expect(after == 4)         // 160, 170, 180, 190
        #expect(afterBefore == 5)   // 150 too
        #expect(afterPast == 4)
        #expect(try await store.messages(in: "c", from: date(base + 50), through: date(base + 100)) == inclusive)
        #expect(try await store.count(in: "c", after: date(base + 150, plus: -0.5)) == 5)
        #expect(written[3].date == date(base + 30))
        try await store.close()
    }
}
