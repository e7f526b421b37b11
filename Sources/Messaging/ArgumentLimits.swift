/// The limits of every argument the store accepts (README, "Limits"): the one table the
/// public API (`MessageStore`, `WriteBatch`, `StoreOptions`) and the message layer check
/// against. Where a limit is also a rule of the format (id and name lengths, the kind byte,
/// `createdAt`), the record decoder checks the same numbers.
package enum ArgumentLimits {
    /// UTF-8 bytes of a message id and of `replyTo`.
    package static let idBytes = 1...128
    /// UTF-8 bytes of a conversation id, a sender and a user.
    package static let nameBytes = 1...255
    /// Milliseconds since the Unix epoch.
    package static let createdAt: Range<Int64> = 0..<(1 << 53)
    /// The kind bytes (`MessageKind`'s raw values).
    package static let kinds: ClosedRange<UInt8> = 1...6
    /// Range of `StoreOptions.maxBodyBytes` (the body limit of a store), and its default.
    package static let bodyLimit = 0...(16 << 20)
    package static let defaultBodyBytes = 64 << 10
    /// `limit` of a query.
    package static let queryLimit = 0...10_000
    /// Conversations per `feed` / `latestMessage(in:)`.
    package static let conversationsPerQuery = 10_000
    /// Operations per batch; the encoded batch is also bounded by the log's 1 GiB transaction.
    package static let operationsPerBatch = 100_000

    /// Checks the UTF-8 length of `value` against `range`; throws `.invalidArgument` naming
    /// `argument` ("must not be empty" when empty and that is not allowed).
    package static func check(_ value: String, _ argument: String, bytes range: ClosedRange<Int>) throws {
        let count = value.utf8.count
        if count == 0 && range.lowerBound > 0 {
            throw MessagingError.invalidArgument(argument: argument, reason: "must not be empty")
        }
        if count > range.upperBound {
            throw MessagingError.invalidArgument(
                argument: argument, reason: "\(count) UTF-8 bytes exceed the limit of \(range.upperBound)")
        }
    }
}
