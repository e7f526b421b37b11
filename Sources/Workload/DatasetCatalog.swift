/// Conversation type of `workload.md` (not stored in a message: the catalog knows it).
package enum ConversationType: UInt8, Sendable, Hashable, CustomStringConvertible {
    case directMessage = 0
    case groupChat = 1

    package var description: String { self == .directMessage ? "DIRECT_MESSAGE" : "GROUP_CHAT" }
}

/// The users and conversations of a dataset: names, types, members and the expected size of
/// every conversation (the heavy-room skew). Derived from the configuration alone;
/// memory O(conversations), never O(messages).
///
/// Skew model (fractions of the conversations by expected size, largest first):
/// - top 1% ("heavy rooms"): Zipf with exponent 0.685, holding 35% of the messages (the
///   largest is about 2.3% of all messages: 22k at the reference size);
/// - next 4%: a steeper power-law tail (exponent 2.2), holding 9.5%;
/// - the other 95%: linearly from 40 down to 8 (relative), holding the remaining 55.5%.
/// Each conversation gets one message for sure (so none is empty); the others are drawn by
/// weight. Top-5% conversations are group chats; the rest are group chats with the
/// probability that makes 30% of all conversations groups.
package struct DatasetCatalog: Sendable {
    package let configuration: DatasetConfiguration
    /// Expected number of messages of each conversation (index = conversation number − 1).
    package let expectedMessages: [Double]
    package let types: [ConversationType]
    package let memberCounts: [Int32]

    package static let heavyShare = 0.35
    package static let tailShare = 0.095

    package init(_ configuration: DatasetConfiguration) {
        self.configuration = configuration
        let n = configuration.conversations
        let total = Double(configuration.messages)
        let n1 = max(1, Int((Double(n) * 0.01).rounded()))
        let n5 = min(n, max(n1 + 1, Int((Double(n) * 0.05).rounded())))
        var byRank = [Double](repeating: 0, count: n)
        var heavySum = 0.0
        for r in 0..<min(n1, n) {
            byRank[r] = 1 / pow(Double(r + 1), 0.685)
            heavySum += byRank[r]
        }
        var tailSum = 0.0
        if n5 > n1 {
            for r in n1..<n5 {
                byRank[r] = 1 / pow(Double(r), 2.2)
                tailSum += byRank[r]
            }
        }
        var restSum = 0.0
        if n > n5 {
            let span = Double(max(1, n - n5 - 1))
            for r in n5..<n {
                byRank[r] = 40 - 32 * Double(r - n5) / span
                restSum += byRank[r]
            }
        }
        // Shares: when a band is missing (tiny datasets), the others absorb its share.
        var heavy = DatasetCatalog.heavyShare
        var tail = n5 > n1 ? DatasetCatalog.tailShare : 0
        var rest = n > n5 ? 1 - DatasetCatalog.heavyShare - DatasetCatalog.tailShare : 0
        let shareSum = heavy + tail + rest
        heavy /= shareSum
        tail /= shareSum
        rest /= shareSum
        for r in 0..<n {
            let share: Double
            if r < n1 { share = heavy * byRank[r] / heavySum }
            else if r < n5 { share = tail * byRank[r] / tailSum }
            else { share = rest * byRank[r] / restSum }
            byRank[r] = max(1, share * total)
        }

        // Ranks are spread over conversation numbers by a seeded shuffle, so `synconv1` is
        // not the largest room.
        var random = WorkloadRandom(seed: configuration.seed, stream: 1)
        var conversationOfRank = Array(0..<n)
        for i in stride(from: n - 1, to: 0, by: -1) {
            conversationOfRank.swapAt(i, random.below(i + 1))
        }
        var expected = [Double](repeating: 0, count: n)
        var types = [ConversationType](repeating: .directMessage, count: n)
        var members = [Int32](repeating: 2, count: n)
        let groupTarget = Int((Double(n) * 0.30).rounded())
        let ordinaryGroups = max(0, groupTarget - n5)
        let ordinaryCount = max(1, n - n5)
        for r in 0..<n {
            let c = conversationOfRank[r]
            expected[c] = byRank[r]
            let isGroup: Bool
            if r < n5 {
                isGroup = true
            } else {
                // Exactly `ordinaryGroups` of the ordinary conversations, spread evenly over ranks.
                let k = r - n5
                isGroup = (k + 1) * ordinaryGroups / ordinaryCount != k * ordinaryGroups / ordinaryCount
            }
            if isGroup && configuration.users >= 3 {
                types[c] = .groupChat
                let size: Int
                if r < n1 { size = 50 + random.below(451) }
                else if r < n5 { size = 10 + random.below(91) }
                else { size = 3 + random.below(28) }
                members[c] = Int32(min(size, configuration.users))
            }
        }
        self.expectedMessages = expected
        self.types = types
        self.memberCounts = members
    }

    package var conversationCount: Int { configuration.conversations }
    package var userCount: Int { configuration.users }

    /// `synconv{N}`, N = index + 1.
    package static func conversationName(_ index: Int) -> String { "synconv\(index + 1)" }
    /// `synuser{N}`, N = index + 1.
    package static func userName(_ index: Int) -> String { "synuser\(index + 1)" }
    /// `synmsg{N}`, N = index + 1 (the position in the generated stream).
    package static func messageID(_ index: Int) -> String { "synmsg\(index + 1)" }

    /// Parses `prefix{N}` with 1 ≤ N ≤ limit; returns N − 1.
    package static func index(of name: String, prefix: String, limit: Int) -> Int? {
        guard name.hasPrefix(prefix) else { return nil }
        let digits = name.utf8.dropFirst(prefix.utf8.count)
        guard !digits.isEmpty, digits.count <= 18, digits.first != UInt8(ascii: "0") else { return nil }
        var value = 0
        for d in digits {
            guard d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(d - UInt8(ascii: "0"))
        }
        guard value >= 1, value <= limit else { return nil }
        return value - 1
    }

    /// The user index of member `k` (0 ≤ k < memberCounts[conversation]) of a conversation.
    /// Deterministic (a hash of seed, conversation and k); the two members of a direct
    /// message are distinct.
    package func member(_ k: Int, of conversation: Int) -> Int {
        let users = UInt64(configuration.users)
        let base = WorkloadRandom.mix(configuration.seed ^ (UInt64(conversation) &* 0x9E37_79B9_7F4A_7C15))
        if types[conversation] == .directMessage {
            let first = base % users
            if k == 0 { return Int(first) }
            let offset = 1 + WorkloadRandom.mix(base) % (users - 1)
            return Int((first + offset) % users)
        }
        return Int(WorkloadRandom.mix(base &+ UInt64(k) &* 0xD6E8_FEB8_6659_FD93) % users)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
