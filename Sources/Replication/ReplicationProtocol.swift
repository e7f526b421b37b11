import Scrollback

/// The bytes of the replication stream (README, "Replication"; one JetStream stream per
/// replicated store):
///
/// - A **change** is one stream message on subject `<stream>.p<k>`, `k` = the conversation's
///   partition (`ReplicationProtocol.partition`), data = the change as `ChangeJSON`, headers
///   `Scrollback-Leader` (the publishing leader's id, 16 hex digits) and `Scrollback-Position`
///   (the change's position token in the leader's store), and `Scrollback-End: 1` on the last
///   change of each of the leader's writes (a follower applies whole writes: a change without
///   it is followed by more of the same write).
/// - A **claim** is a message on subject `<stream>.lead` that starts a leader's term: headers
///   `Scrollback-Leader` (the new leader's id) and `Scrollback-Position` (its store's change
///   position at the claim: it publishes every change after it), data `{"empty":true|false}`
///   (whether the leader's store held nothing at the claim).
///
/// Every message has a `Nats-Msg-Id` (`changeID`, `claimID`) and every publish carries
/// `Nats-Expected-Last-Sequence` and `Nats-Expected-Last-Msg-Id` = the sequence and id of the
/// message the publisher believes is last, so JetStream appends it only when no other publisher
/// got in between — also for a publish queued behind one that was refused: after a claim, a
/// former leader's publishes fail (JetStream errors 10071, 10070) and it stops. A replica's mark
/// (`MessageStore.apply(_:mark:)`) is `(streamSource, sequence)` for a follower — the last
/// stream sequence applied — and `(leaderID, claimSequence)` for a store that claimed.
enum ReplicationHeaders {
    static let leader = "Scrollback-Leader"
    static let position = "Scrollback-Position"
    static let end = "Scrollback-End"
}

enum ReplicationProtocol {
    /// The subject of changes of partition `k`.
    static func changeSubject(_ stream: String, partition: Int) -> String { "\(stream).p\(partition)" }
    /// The subject of leader claims.
    static func claimSubject(_ stream: String) -> String { "\(stream).lead" }

    /// FNV-1a 64 over UTF-8 bytes (fixed: the partition of a conversation never changes).
    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash
    }

    /// The partition of a conversation: FNV-1a 64 of its UTF-8 bytes modulo `partitions`.
    static func partition(of conversation: String, partitions: Int) -> Int {
        Int(fnv1a(conversation) % UInt64(partitions))
    }

    /// The replica-mark source of a follower of `stream`: top bit clear, never 0.
    static func streamSource(_ stream: String) -> UInt64 { (fnv1a("scrollback-stream:" + stream) & ~(1 << 63)) | 1 }

    /// Leader ids have the top bit set (so a mark tells a leader's store from a follower's).
    static func isLeaderID(_ source: UInt64) -> Bool { source & (1 << 63) != 0 }
    static func newLeaderID() -> UInt64 { UInt64.random(in: 0...UInt64.max) | (1 << 63) }

    /// The `Nats-Msg-Id` of a change: the leader's id and the change's position (unique per
    /// leader store, so a republished change is recognized).
    static func changeID(_ leader: UInt64, _ position: ChangePosition) -> String { "\(hex(leader)).\(position.token)" }
    /// The `Nats-Msg-Id` of a leader's claim.
    static func claimID(_ leader: UInt64) -> String { "\(hex(leader)).claim" }

    static func hex(_ id: UInt64) -> String {
        let digits = String(id, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
