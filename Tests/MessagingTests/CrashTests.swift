@testable import Scrollback
import ScrollbackFormat
import ScrollbackIO
import Testing
import TestSupport

/// A reference of committed batches for the crash tests: operations are generated valid
/// against it, so every batch either applies entirely or not at all.
struct CrashModel: Equatable {
    var messages: [String: Message] = [:]
    var order: [String: Int] = [:]   // id → insertion sequence
    var next = 0
    var markers: [String: String] = [:]   // "user|conversation" → message id marked
    var memberships: Set<String> = []     // "user|conversation" of each membership

    mutating func apply(_ batch: WriteBatch) {
        for operation in batch.operations {
            switch operation {
            case .append(let m):
                if messages[m.id] == nil {
                    messages[m.id] = m
                    next += 1
                    order[m.id] = next
                }
            case let .edit(id, body):
                messages[id]?.body = body
                messages[id]?.edited = true
            case let .delete(id):
                messages[id] = nil
            case let .markRead(user, conversation, through):
                markers["\(user)|\(conversation)"] = through   // generator only moves forward
            case let .join(user, conversation):
                memberships.insert("\(user)|\(conversation)")
            case let .leave(user, conversation):
                memberships.remove("\(user)|\(conversation)")
            }
        }
    }

    func ordered(_ conversation: String) -> [Message] {
        messages.values.filter { $0.conversation == conversation }
            .sorted { ($0.createdAt, order[$0.id]!) < ($1.createdAt, order[$1.id]!) }
    }
}

enum CrashWorkload {
    static let conversations = ["c0", "c1", "c2", "c3"]

    static func randomBatch(_ rng: inout SeededRandom, model: CrashModel, serial: inout Int) -> WriteBatch {
        var batch = WriteBatch()
        var scratch = model
        for _ in 0..<Int.random(in: 1...8, using: &rng) {
            let live = Array(scratch.messages.keys).sorted()
            let choice = Int.random(in: 0..<10, using: &rng)
            if choice < 6 || live.isEmpty {
                serial += 1
                let conversation = conversations.randomElement(using: &rng)!
                let id = Int.random(in: 0..<8, using: &rng) == 0 && !live.isEmpty ? live.randomElement(using: &rng)! : "m\(serial)"
                // A live id keeps its conversation (a duplicate; in another one it would be a conflict).
                let m = Message(id: id, conversation: scratch.messages[id]?.conversation ?? conversation, sender: "s\(serial % 3)",
                                createdAt: Int64.random(in: 0..<500, using: &rng), body: String(repeating: "b", count: Int.random(in: 0..<300, using: &rng)))
                batch.append(m)
            } else if choice < 8 {
                batch.edit(id: live.randomElement(using: &rng)!, body: "edited \(serial)")
            } else {
                batch.delete(id: live.randomElement(using: &rng)!)
            }
            scratch.apply(WriteBatch(operations: Array(batch.operations.suffix(1))))
        }
        return batch
    }

    /// Compares every conversation of the store with the model.
    static func matches(_ store: MessageStore, _ model: CrashModel) throws -> Bool {
        for conversation in conversations {
            let stored = try store.messages(in: conversation, from: 0, through: 1 << 40, limit: 10_000)
            if stored != model.ordered(conversation) { return false }
        }
        return try store.statistics.messages == model.messages.count
    }
}

extension WriteBatch {
    init(operations: [Operation]) {
        self.init()
        for operation in operations {
            switch operation {
            case .append(let m): append(m)
            case let .edit(id, body): edit(id: id, body: body)
            case let .delete(id): delete(id: id)
            case let .markRead(user, conversation, through): markRead(user: user, conversation: conversation, through: through)
            case let .join(user, conversation): join(user: user, conversation: conversation)
            case let .leave(user, conversation): leave(user: user, conversation: conversation)
            }
        }
    }
}

@Suite struct CrashTests {
    /// Random batches, checkpoints and compactions with power losses at random I/O steps in
    /// every crash mode (sometimes during recovery). After each reopen the store must equal
    /// the model after the last acknowledged batch, or after the one batch in flight — never
    /// half a batch — and `verify()` must be empty.
    @Test(arguments: TestSeeds.seeds(default: [11, 12, 13, 14, 15, 16]))
    func crashesNeverSplitABatch(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        let fs = CrashSimulatingFileSystem(seed: seed)
        var options = Fixture.options()
        options.autoCompactGarbageRatio = 0.3
        var model = CrashModel()
        var inFlight: WriteBatch?
        var serial = 0
        var acknowledged = 0
        var compactions = 0
        for round in 0..<25 {
            let context = "seed \(seed) round \(round) (replay: SCROLLBACK_SEED=\(seed))"
            var store: MessageStore?
            var attempts = 0
            while store == nil {
                attempts += 1
                if attempts < 3 && Int.random(in: 0..<4, using: &rng) == 0 {
                    fs.scheduleCrash(afterSteps: Int.random(in: 0..<15, using: &rng))
                }
                do {
                    let opened = try MessageStore(path: "/db", options: options, fileSystem: fs)
                    if fs.isPoweredOff {
                        fs.crash(mode: CrashMode.allCases.randomElement(using: &rng)!)
                        continue
                    }
                    fs.scheduleCrash(afterSteps: Int.max)
                    store = opened
                } catch {
                    #expect(fs.isPoweredOff, "open failed without a crash: \(error) — \(context)")
                    if !fs.isPoweredOff { return }
                    fs.crash(mode: CrashMode.allCases.randomElement(using: &rng)!)
                }
            }
            guard let store else { return }
            if try CrashWorkload.matches(store, model) {
            } else if let batch = inFlight, try { var m = model; m.apply(batch); return try CrashWorkload.matches(store, m) }() {
                model.apply(batch)
            } else {
                Issue.record("state after recovery matches neither the acknowledged model nor the in-flight batch — \(context)")
                return
            }
            inFlight = nil
            let problems = try store.verify()
            #expect(problems == [], "\(context)")
            if !problems.isEmpty { return }

            fs.scheduleCrash(afterSteps: Int.random(in: 1..<400, using: &rng))
            while true {
                let roll = Int.random(in: 0..<40, using: &rng)
                do {
                    if roll == 0 {
                        try store.checkpoint()
                    } else if roll == 1 {
                        try store.compact()
                        compactions += 1
                    } else {
                        let batch = CrashWorkload.randomBatch(&rng, model: model, serial: &serial)
                        inFlight = batch
                        try store.write(batch)
                        model.apply(batch)
                        acknowledged += 1
                    }
                    inFlight = nil
                } catch {
                    if !fs.isPoweredOff {
                        Issue.record("operation failed without a crash: \(error) — \(context)")
                        return
                    }
                    break
                }
            }
            fs.crash(mode: CrashMode.allCases.randomElement(using: &rng)!)
        }
        #expect(acknowledged > 100)
        print("message crash test seed \(seed): \(acknowledged) acknowledged batches, \(compactions) compactions")
    }
}
