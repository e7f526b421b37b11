import Scrollback

/// SplitMix64, the sweep's only source of randomness (a seed replays everything).
package struct SweepRandom: RandomNumberGenerator, Sendable {
    package private(set) var state: UInt64
    package init(seed: UInt64) { state = seed }
    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    package mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(max(bound, 1))) }
    package mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    /// A hash of several words (case seeds).
    package static func mix(_ words: UInt64...) -> UInt64 {
        var r = SweepRandom(seed: 0x5C20_11BA_C4C2_A5E5)
        for word in words { r.state ^= word; _ = r.next() }
        return r.next()
    }
}

/// One step of a crash workload.
package enum SweepOp: Sendable, CustomStringConvertible {
    case append(Message)
    case batch(WriteBatch)
    case edit(id: String, body: String)
    case delete(id: String)
    case markRead(user: String, conversation: String, through: String)
    /// A bulk load (`MessageStore.load`): the messages' appends, all or nothing.
    case load([Message])
    /// A replica's apply (`MessageStore.apply(_:mark:)`): the batch's operations as changes,
    /// with the replica mark `sequence` (source `SweepOp.replicaSource`), all or nothing.
    case replicate(WriteBatch, sequence: UInt64)
    case checkpoint
    /// A checkpoint with a read marker committed between its plan and its I/O (what a
    /// background checkpoint does beside commits, in a fixed order).
    case checkpointDuring(user: String, conversation: String, through: String)
    case compact
    /// `disableSearchIndex()` then `enableSearchIndex()`: the index's pages freed, then built
    /// again from the messages, step by step.
    case rebuildSearchIndex
    case sync
    /// The log's allocation-ahead step (its background thread's work, run between commits).
    case allocateAhead
    /// close() then open again.
    case reopen

    /// The model change, for the operations that write.
    package var writes: WriteBatch? {
        var batch = WriteBatch()
        switch self {
        case .append(let m): batch.append(m)
        case .batch(let b), .replicate(let b, _): return b
        case let .edit(id, body): batch.edit(id: id, body: body)
        case let .delete(id): batch.delete(id: id)
        case let .markRead(user, conversation, through), let .checkpointDuring(user, conversation, through):
            batch.markRead(user: user, conversation: conversation, through: through)
        case .load(let messages): for m in messages { batch.append(m) }
        case .checkpoint, .compact, .rebuildSearchIndex, .sync, .allocateAhead, .reopen: return nil
        }
        return batch
    }

    package var description: String {
        switch self {
        case .append(let m): "append(\(m.id) in \(m.conversation) at \(m.createdAt), \(m.body.utf8.count) B)"
        case .batch(let b): "batch(\(b.operations.count) operations)"
        case let .replicate(b, sequence): "apply(\(b.operations.count) changes, mark \(sequence))"
        case let .edit(id, body): "edit(\(id), \(body.utf8.count) B)"
        case let .delete(id): "delete(\(id))"
        case let .markRead(user, conversation, through): "markRead(\(user), \(conversation), \(through))"
        case .load(let messages): "load(\(messages.count) messages)"
        case .checkpoint: "checkpoint"
        case let .checkpointDuring(user, conversation, through): "checkpoint during markRead(\(user), \(conversation), \(through))"
        case .compact: "compact"
        case .rebuildSearchIndex: "search index off + on"
        case .sync: "sync"
        case .allocateAhead: "allocate log ahead"
        case .reopen: "close + reopen"
        }
    }

    /// The replica mark's source in the workloads.
    package static let replicaSource: UInt64 = 0x5C20_11BA

    /// A batch's operations as the changes a leader's stream would carry.
    static func changes(_ batch: WriteBatch) throws -> [Change] {
        let position = try ChangePosition(token: "1.18.18.0")   // apply ignores positions
        return batch.operations.map { operation in
            let change: Change.Operation
            switch operation {
            case .append(let m): change = .append(m)
            case let .edit(id, body): change = .edit(conversation: "", id: id, body: body)
            case let .delete(id): change = .delete(conversation: "", id: id)
            case let .markRead(u, c, t): change = .markRead(user: u, conversation: c, through: t)
            case let .join(u, c): change = .join(user: u, conversation: c)
            case let .leave(u, c): change = .leave(user: u, conversation: c)
            }
            return Change(position: position, operation: change)
        }
    }

    /// Runs the operation on `store` (reopen replaces it).
    package func run(on store: inout MessageStore, reopen: () throws -> MessageStore) throws {
        switch self {
        case .append(let m): try store.append(m)
        case .batch(let b): try store.write(b)
        case let .replicate(b, sequence): try store.apply(try Self.changes(b), mark: ReplicaMark(source: Self.replicaSource, sequence: sequence))
        case let .edit(id, body): try store.edit(id: id, body: body)
        case let .delete(id): try store.delete(id: id)
        case let .markRead(user, conversation, through): try store.markRead(user: user, conversation: conversation, through: through)
        case .load(let messages): try store.load(messages)
        case .checkpoint: try store.checkpoint()
        case let .checkpointDuring(user, conversation, through):
            let writer = store
            try store.checkpoint(during: { try writer.markRead(user: user, conversation: conversation, through: through) })
        case .compact: try store.compact()
        case .rebuildSearchIndex:
            try store.disableSearchIndex()
            try store.enableSearchIndex()
        case .sync: try store.sync()
        case .allocateAhead: try store.allocateLogAhead()
        case .reopen:
            try store.close()
            store = try reopen()
        }
    }
}

/// The size of a workload.
package enum WorkloadSize: String, Sendable, CaseIterable {
    /// ~30 operations, small bodies: a few hundred I/O steps; every step is swept in `make test`.
    case small
    /// ~90 operations with large bodies: log segments fill and seal on their own.
    case large

    var operationCount: Int { self == .small ? 30 : 90 }
    var largeBodyPercent: Int { self == .small ? 5 : 30 }
}

/// A deterministic workload: the operations, the model state after every write, and the names
/// used. Every operation is valid against the model, so an acknowledged one applies in full.
package struct Workload: Sendable {
    package let seed: UInt64
    package let size: WorkloadSize
    package let operations: [SweepOp]
    /// `states[k]` = the model after the first k writing operations.
    package let states: [SweepModel]
    package let universe: Universe

    package static let conversations = ["general", "random", "dev", "ops"]
    package static let users = ["alice", "bob", "carol"]

    /// Store options: 64 KiB segments (the minimum) so segments seal, small checkpoint
    /// thresholds so checkpoints also happen on their own, no automatic compaction (the
    /// workload compacts explicitly, at known points).
    package static var options: StoreOptions {
        var options = StoreOptions()
        options.cacheBytes = 1 << 20
        options.pageSize = 4096
        options.segmentBytes = 64 << 10
        options.checkpointDirtyBytes = 48 << 10
        options.checkpointLogBytes = 96 << 10
        options.autoCompactGarbageRatio = nil
        options.durability = .full
        return options
    }

    /// A read marker that moves forward (so it commits): the first user, over the live ids
    /// from the newest, whose marker in the id's conversation is behind it. No random draw.
    static func advancingMarker(_ model: SweepModel) -> (user: String, conversation: String, id: String)? {
        for id in model.liveIDs.reversed() {
            guard let conversation = model.conversationOf[id], let position = model.entry(id: id)?.position else { continue }
            for user in users where model.markers[user]?[conversation].map({ $0 < position }) ?? true {
                return (user, conversation, id)
            }
        }
        return nil
    }

    package init(seed: UInt64, size: WorkloadSize) {
        self.seed = seed
        self.size = size
        var rng = SweepRandom(seed: SweepRandom.mix(seed, size == .small ? 1 : 2))
        var model = SweepModel()
        var states = [model]
        var operations: [SweepOp] = []
        var serial = 0
        var ids: [String] = []
        var deleted: [String] = []

        func body(_ rng: inout SweepRandom) -> String {
            let length = rng.chance(size.largeBodyPercent) ? 2000 + rng.below(7000) : rng.below(120)
            let words = ["hello", "world", "ok", "see you", "👍", "déjà vu", "lunch?", "ship it", "\n", "🚀🚀"]
            var text = ""
            while text.utf8.count < length { text += words[rng.below(words.count)] + " " }
            return text
        }
        func newMessage(_ rng: inout SweepRandom, _ model: SweepModel) -> Message {
            var id: String
            if !deleted.isEmpty && rng.chance(10) {
                id = deleted.remove(at: rng.below(deleted.count))   // a deleted id may be used again
            } else {
                serial += 1
                id = "m\(serial)"
                ids.append(id)
            }
            let conversation = Self.conversations[rng.below(Self.conversations.count)]
            let createdAt: Int64 = rng.chance(3) ? (rng.chance(50) ? 0 : (1 << 53) - 1) : Int64(1_000 + rng.below(60))
            let kinds = MessageKind.allCases
            let live = model.liveIDs
            return Message(id: id, conversation: conversation, sender: Self.users[rng.below(Self.users.count)], createdAt: createdAt,
                           kind: kinds[rng.below(kinds.count)], body: body(&rng),
                           replyTo: rng.chance(20) && !live.isEmpty ? live[rng.below(live.count)] : nil)
        }
        func writeOperation(_ rng: inout SweepRandom, _ model: SweepModel) -> WriteBatch.Operation {
            let live = model.liveIDs
            let roll = rng.below(100)
            if live.isEmpty || roll < 55 {
                if !live.isEmpty && rng.chance(6) {
                    let old = model.entry(id: live[rng.below(live.count)])!.message
                    return .append(old)   // a duplicate: changes nothing
                }
                return .append(newMessage(&rng, model))
            }
            let id = live[rng.below(live.count)]
            if roll < 72 { return .edit(id: id, body: body(&rng)) }
            if roll < 85 {
                deleted.append(id)
                return .delete(id: id)
            }
            let conversation = model.conversationOf[id]!
            return .markRead(user: Self.users[rng.below(Self.users.count)], conversation: conversation, through: id)
        }

        for _ in 0..<size.operationCount {
            let roll = rng.below(100)
            var op: SweepOp
            if roll < 5 {
                // Every other one with a commit during its I/O (chosen without a draw: seeds
                // keep their workloads).
                if operations.count.isMultiple(of: 2), let (user, conversation, id) = Self.advancingMarker(model) {
                    op = .checkpointDuring(user: user, conversation: conversation, through: id)
                } else {
                    op = .checkpoint
                }
            } else if roll < 9 {
                // Every third a rebuild of the search index instead (no draw: seeds keep
                // their random sequence).
                op = operations.count.isMultiple(of: 3) ? .rebuildSearchIndex : .compact
            } else if roll < 11 {
                op = operations.count.isMultiple(of: 2) ? .sync : .allocateAhead   // no draw: seeds keep their workloads
            } else if roll < 15 {
                op = .reopen
            } else if roll < 19 {
                // A bulk load: its sorted run, the attachment and the trees' bulk build.
                var messages: [Message] = []
                for _ in 0..<(3 + rng.below(30)) {
                    if !messages.isEmpty && rng.chance(5) {
                        messages.append(messages[rng.below(messages.count)])  // a duplicate inside the load
                    } else {
                        messages.append(newMessage(&rng, model))
                    }
                }
                op = .load(messages)
            } else if roll < 35 {
                var batch = WriteBatch()
                var scratch = model
                for _ in 0..<(2 + rng.below(5)) {
                    let operation = writeOperation(&rng, scratch)
                    scratch.apply(operation)
                    switch operation {
                    case .append(let m): batch.append(m)
                    case let .edit(id, body): batch.edit(id: id, body: body)
                    case let .delete(id): batch.delete(id: id)
                    case let .markRead(u, c, t): batch.markRead(user: u, conversation: c, through: t)
                    case let .join(u, c): batch.join(user: u, conversation: c)
                    case let .leave(u, c): batch.leave(user: u, conversation: c)
                    }
                }
                // A quarter of the batches arrive as a replica's apply with a mark.
                op = rng.chance(25) ? .replicate(batch, sequence: UInt64(operations.count + 1)) : .batch(batch)
            } else {
                switch writeOperation(&rng, model) {
                case .append(let m): op = .append(m)
                case let .edit(id, body): op = .edit(id: id, body: body)
                case let .delete(id): op = .delete(id: id)
                case let .markRead(u, c, t): op = .markRead(user: u, conversation: c, through: t)
                case let .join(u, c): op = .batch({ var b = WriteBatch(); b.join(user: u, conversation: c); return b }())
                case let .leave(u, c): op = .batch({ var b = WriteBatch(); b.leave(user: u, conversation: c); return b }())
                }
            }
            operations.append(op)
            if let writes = op.writes {
                model.apply(writes)
                if case .replicate(_, let sequence) = op { model.replicaSequence = sequence }
                states.append(model)
            }
        }
        // Make sure compaction has garbage to rewrite and runs at least once, and end with a close.
        if let id = model.liveIDs.first {
            operations.append(.delete(id: id))
            model.apply(.delete(id: id))
            states.append(model)
        }
        operations.append(.compact)
        operations.append(.reopen)
        self.operations = operations
        self.states = states
        self.universe = Universe(conversations: Self.conversations, users: Self.users, ids: ids)
    }

    /// A few extra writes valid on `state` (fresh appends, an edit, a delete, a read marker),
    /// used after recovery to check that the recovered store takes new writes durably.
    package static func followUp(after state: SweepModel, seed: UInt64) -> [WriteBatch] {
        var rng = SweepRandom(seed: seed)
        var model = state
        var result: [WriteBatch] = []
        for round in 0..<2 {
            var batch = WriteBatch()
            let m = Message(id: "after-\(round)", conversation: conversations[rng.below(conversations.count)],
                            sender: "alice", createdAt: Int64(1_000 + rng.below(60)), body: "written after recovery \(round)")
            batch.append(m)
            model.apply(.append(m))
            let live = model.liveIDs
            let id = live[rng.below(live.count)]
            if round == 0 {
                batch.edit(id: id, body: "edited after recovery")
            } else {
                batch.markRead(user: "bob", conversation: model.conversationOf[id]!, through: id)
                batch.delete(id: id)
            }
            result.append(batch)
            model.apply(batch)
        }
        return result
    }
}
