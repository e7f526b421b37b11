import Foundation

/// Where and how a store is replicated (README, "Replication").
public struct ReplicationOptions: Sendable {
    /// The NATS servers, comma-separated `nats://host:port` URLs (any of a cluster's nodes: the
    /// client fails over and reconnects among them).
    public var servers: String
    /// The JetStream stream carrying this store's changes (subjects `<stream>.>`). One stream
    /// per replicated store.
    public var stream: String
    /// Subject partitions of changes (`<stream>.p0` … ): a consumer interested in some
    /// conversations can filter on their partitions. Fixed for the life of the stream.
    public var partitions: Int = 16
    /// Copies JetStream keeps of the stream when the leader creates it (R: 1, 3 or 5; a
    /// cluster needs at least that many servers).
    public var streamReplicas: Int = 1
    /// Retention of the stream when the leader creates it: the oldest messages are dropped
    /// beyond this many bytes (nil: no limit) or this age (nil: no limit). A follower whose
    /// position was dropped must be restored from a replica's backup.
    public var streamMaxBytes: Int64? = nil
    public var streamMaxAge: Duration? = nil
    /// How long a JetStream request (a publish acknowledgement, a stream lookup) may take
    /// before it counts as failed (the leader then resynchronizes with the stream).
    public var requestTimeout: Duration = .seconds(5)
    /// Most changes a leader publishes before waiting for their acknowledgements, and a
    /// follower applies in one atomic write.
    public var batchSize: Int = 1024
    /// A name for the NATS connection (server monitoring shows it).
    public var connectionName: String = "scrollback"

    public init(servers: String, stream: String) {
        self.servers = servers
        self.stream = stream
    }

    func validate() throws {
        func bad(_ what: String) -> ReplicationError { ReplicationError(.invalidArgument, "invalid replication option: \(what)") }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
        guard !stream.isEmpty, stream.count <= 64, stream.allSatisfy({ allowed.contains($0) }) else {
            throw bad("stream name \"\(stream.prefix(80))\" must be 1…64 letters, digits, - or _")
        }
        guard (1...1024).contains(partitions) else { throw bad("partitions \(partitions) must be 1…1024") }
        guard [1, 3, 5].contains(streamReplicas) else { throw bad("stream replicas \(streamReplicas) must be 1, 3 or 5") }
        guard (1...10_000).contains(batchSize) else { throw bad("batch size \(batchSize) must be 1…10,000") }
        guard !servers.isEmpty else { throw bad("no NATS server given") }
    }

    var requestTimeoutMilliseconds: Int64 {
        let (seconds, attoseconds) = requestTimeout.components
        return max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }
}
