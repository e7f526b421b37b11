#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// `Date` beside the millisecond integers the store keeps. A `Date` becomes milliseconds
// since the Unix epoch; a date out of the store's range (before 1970, from 2^53 ms on, not
// finite) becomes a value the store rejects with `.invalidArgument(argument: "createdAt")`
// (on append), never a trap.

extension Message {
    /// A message created at `date`, rounded to the nearest millisecond (`createdAt`).
    public init(
        id: String, conversation: String, sender: String, date: Date,
        kind: MessageKind = .text, body: String, replyTo: String? = nil, edited: Bool = false, metadata: [UInt8]? = nil
    ) {
        self.init(id: id, conversation: conversation, sender: sender, createdAt: Milliseconds.nearest(date), kind: kind,
                  body: body, replyTo: replyTo, edited: edited, metadata: metadata)
    }

    /// `createdAt` as a `Date`; setting it rounds to the nearest millisecond.
    public var date: Date {
        get { Milliseconds.date(createdAt) }
        set { createdAt = Milliseconds.nearest(newValue) }
    }
}

extension ConversationSummary {
    /// `lastActivity` as a `Date`.
    public var lastActivityDate: Date { Milliseconds.date(lastActivity) }
}

extension InboxEntry {
    /// `lastActivity` as a `Date` (nil when the conversation has no live message).
    public var lastActivityDate: Date? { lastActivity.map(Milliseconds.date) }
}

extension MessageStore {
    /// `messages(in:from:through:order:limit:)` with dates: the messages with
    /// `from ≤ date ≤ through` (a bound between two milliseconds excludes the millisecond
    /// outside it).
    public func messages(
        in conversation: String, from: Date, through: Date, order: Order = .oldestFirst, limit: Int? = nil
    ) throws -> [Message] {
        try messages(in: conversation, from: Milliseconds.ceiling(from), through: Milliseconds.floor(through), order: order,
                     limit: limit)
    }

    /// The asynchronous form of `messages(in:from:through:order:limit:)` with dates.
    public func messages(
        in conversation: String, from: Date, through: Date, order: Order = .oldestFirst, limit: Int? = nil
    ) async throws -> [Message] {
        try await messages(in: conversation, from: Milliseconds.ceiling(from), through: Milliseconds.floor(through),
                           order: order, limit: limit)
    }

    /// `count(in:after:)` with a date: the number of messages with `date > after`.
    public func count(in conversation: String, after: Date) throws -> Int {
        try count(in: conversation, after: Milliseconds.floor(after))
    }

    /// The asynchronous form of `count(in:after:)` with a date.
    public func count(in conversation: String, after: Date) async throws -> Int {
        try await count(in: conversation, after: Milliseconds.floor(after))
    }
}

/// Conversions between `Date` and milliseconds since the Unix epoch.
enum Milliseconds {
    static func date(_ milliseconds: Int64) -> Date {
        Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    }

    static func nearest(_ date: Date) -> Int64 { convert(date, .toNearestOrAwayFromZero) }

    /// The largest millisecond not after `date`.
    static func floor(_ date: Date) -> Int64 { convert(date, .down) }

    /// The smallest millisecond not before `date`.
    static func ceiling(_ date: Date) -> Int64 { convert(date, .up) }

    /// A date within the representation error of a whole millisecond (a `Date` is a `Double`
    /// of seconds since 2001) counts as that millisecond, so `date(ms)` converts back to `ms`
    /// whichever the rule.
    private static func convert(_ date: Date, _ rule: FloatingPointRoundingRule) -> Int64 {
        let exact = date.timeIntervalSince1970 * 1000
        let nearest = exact.rounded()
        let value = abs(exact - nearest) <= max(0.001, 4 * exact.ulp) ? nearest : exact.rounded(rule)
        guard let milliseconds = Int64(exactly: value) else { return value < 0 ? .min : .max }   // also NaN: .max
        return milliseconds
    }
}
