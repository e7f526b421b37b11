import Scrollback
import ScrollbackWorkload

/// What `generate` needs from a dataset generator: a deterministic stream of messages.
/// The stream is the benchmark's reference generator (ScrollbackWorkload), so a store made by
/// `scrollback generate` holds exactly the dataset `scrollback-bench` measures.
protocol WorkloadSource {
    /// Number of messages the stream yields.
    var messageCount: Int { get }
    /// The next message in append order (`createdAt` non-decreasing), or nil at the end.
    mutating func next() -> Message?
}

struct WorkloadParameters: Sendable {
    var messages: Int
    var seed: UInt64
    var conversations: Int?
    var users: Int?
    /// `createdAt` of the last message (ms); the history spans the 30 days before it.
    var endTime: Int64 = 1_767_225_600_000  // 2026-01-01T00:00:00Z
}

/// The generator `generate` uses.
func makeWorkload(_ parameters: WorkloadParameters) throws -> any WorkloadSource {
    try ReferenceWorkload(parameters)
}

/// The benchmark's reference generator behind `WorkloadSource`.
struct ReferenceWorkload: WorkloadSource {
    let messageCount: Int
    private var iterator: DatasetGenerator.Iterator

    init(_ p: WorkloadParameters) throws {
        var configuration = DatasetConfiguration.scaled(messages: p.messages, users: p.users, seed: p.seed)
        if let conversations = p.conversations { configuration.conversations = conversations }
        configuration.endMillis = p.endTime
        do {
            iterator = try DatasetGenerator(configuration).makeIterator()
        } catch {
            throw CLIError("cannot generate this dataset: \(error)")
        }
        messageCount = configuration.messages
    }

    mutating func next() -> Message? { iterator.next() }
}
