/// The size bands of `workload.md`. `reference` is the default run.
package enum DatasetBand: String, Sendable, CaseIterable, CustomStringConvertible {
    /// 977,561 messages, 15,000 users, 24,000 conversations (the reference dataset).
    case reference
    /// 5M messages, 5k users.
    case dev
    /// 100M messages, 150k users.
    case staging
    /// 300M messages, 250k users.
    case perf

    package var description: String { rawValue }
}

/// What the generator makes. Every figure is configurable; `reference` is `workload.md`'s
/// reference dataset. The same configuration (including `seed`) always yields the same
/// dataset, message for message.
package struct DatasetConfiguration: Sendable, Hashable, CustomStringConvertible {
    package var users: Int
    package var conversations: Int
    package var messages: Int
    /// Length of the time span, ending at `endMillis` (exclusive).
    package var days: Int
    /// End of the span in milliseconds since the Unix epoch. Fixed (not "now") so that the
    /// dataset is the same on every run. Default 2026-01-01T00:00:00Z.
    package var endMillis: Int64
    package var seed: UInt64

    package static let referenceUsers = 15_000
    package static let referenceConversations = 24_000
    package static let referenceMessages = 977_561
    package static let defaultSeed: UInt64 = 20_260_101
    package static let defaultEndMillis: Int64 = 1_767_225_600_000

    package init(
        users: Int = referenceUsers, conversations: Int = referenceConversations, messages: Int = referenceMessages,
        days: Int = 30, endMillis: Int64 = defaultEndMillis, seed: UInt64 = defaultSeed
    ) {
        self.users = users
        self.conversations = conversations
        self.messages = messages
        self.days = days
        self.endMillis = endMillis
        self.seed = seed
    }

    /// The reference dataset of `workload.md`.
    package static let reference = DatasetConfiguration()

    /// A band of `workload.md`. Conversations scale with messages at the reference ratio
    /// (about 40.7 messages per conversation), users are the band's figure.
    package static func band(_ band: DatasetBand, seed: UInt64 = defaultSeed) -> DatasetConfiguration {
        switch band {
        case .reference: return DatasetConfiguration(seed: seed)
        case .dev: return scaled(messages: 5_000_000, users: 5_000, seed: seed)
        case .staging: return scaled(messages: 100_000_000, users: 150_000, seed: seed)
        case .perf: return scaled(messages: 300_000_000, users: 250_000, seed: seed)
        }
    }

    /// A dataset of `messages` messages with the reference's proportions: conversations at
    /// the reference messages-per-conversation ratio, users at the reference ratio unless
    /// given. At least 2 users and 1 conversation.
    package static func scaled(messages: Int, users: Int? = nil, seed: UInt64 = defaultSeed) -> DatasetConfiguration {
        let ratio = Double(messages) / Double(referenceMessages)
        let conversations = max(1, min(messages, Int((Double(referenceConversations) * ratio).rounded())))
        let userCount = users ?? max(2, Int((Double(referenceUsers) * ratio).rounded()))
        return DatasetConfiguration(
            users: max(2, userCount), conversations: conversations, messages: messages, seed: seed)
    }

    /// Checks the figures: throws a message naming the first bad one.
    package func validate() throws {
        guard users >= 2 else { throw WorkloadError("users must be at least 2 (got \(users))") }
        guard conversations >= 1 else { throw WorkloadError("conversations must be at least 1 (got \(conversations))") }
        guard messages >= conversations else {
            throw WorkloadError("messages (\(messages)) must be at least the number of conversations (\(conversations))")
        }
        guard conversations <= Int(Int32.max), users <= Int(Int32.max) else {
            throw WorkloadError("at most \(Int32.max) users and conversations")
        }
        guard days >= 1, days <= 3650 else { throw WorkloadError("days must be 1…3650 (got \(days))") }
        guard endMillis - Int64(days) * 86_400_000 >= 0 else { throw WorkloadError("time span starts before 1970") }
        guard Int64(messages) < Int64(days) * 86_400_000 / 4 else {
            throw WorkloadError("too many messages for \(days) days: timestamps are unique milliseconds")
        }
    }

    package var startMillis: Int64 { endMillis - Int64(days) * 86_400_000 }

    package var description: String {
        "\(messages) messages, \(conversations) conversations, \(users) users, \(days) days, seed \(seed)"
    }
}

/// A workload error (bad configuration, malformed JSONL line, …) with a message for people.
package struct WorkloadError: Error, Sendable, Hashable, CustomStringConvertible {
    package var message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}
