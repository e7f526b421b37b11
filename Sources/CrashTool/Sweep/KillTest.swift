import Foundation
import Scrollback
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One write of the kill test's child, as printed on its stdout (one JSON object a line).
package struct WireOperation: Codable, Sendable {
    package var t: String   // a(ppend) e(dit) d(elete) r(ead marker)
    package var id: String
    package var conversation: String?
    package var sender: String?
    package var createdAt: Int64?
    package var kind: UInt8?
    package var body: String?
    package var replyTo: String?
    package var user: String?

    init(_ operation: WriteBatch.Operation) {
        switch operation {
        case .append(let m):
            t = "a"; id = m.id; conversation = m.conversation; sender = m.sender; createdAt = m.createdAt
            kind = m.kind.rawValue; body = m.body; replyTo = m.replyTo
        case let .edit(id, body): t = "e"; self.id = id; self.body = body
        case let .delete(id): t = "d"; self.id = id
        case let .markRead(user, conversation, through): t = "r"; id = through; self.user = user; self.conversation = conversation
        case let .join(user, conversation): t = "j"; id = ""; self.user = user; self.conversation = conversation
        case let .leave(user, conversation): t = "l"; id = ""; self.user = user; self.conversation = conversation
        }
    }

    var operation: WriteBatch.Operation? {
        switch t {
        case "a":
            guard let conversation, let sender, let createdAt, let kind = kind.flatMap(MessageKind.init(rawValue:)), let body
            else { return nil }
            return .append(Message(id: id, conversation: conversation, sender: sender, createdAt: createdAt, kind: kind,
                                   body: body, replyTo: replyTo))
        case "e": return body.map { .edit(id: id, body: $0) }
        case "d": return .delete(id: id)
        case "r": return user.flatMap { u in conversation.map { .markRead(user: u, conversation: $0, through: id) } }
        case "j": return user.flatMap { u in conversation.map { .join(user: u, conversation: $0) } }
        case "l": return user.flatMap { u in conversation.map { .leave(user: u, conversation: $0) } }
        default: return nil
        }
    }
}

/// One call of the child: a single-operation call (`append`, `edit`, `delete`, `markRead`), a
/// batch (`write`), or `checkpoint` / `compact` (no model change).
package struct WireCall: Codable, Sendable {
    package var call: String
    package var operations: [WireOperation]
}

/// The real-process kill test (issue 6): a child writes through the real file system with
/// full durability and reports every write before the call (`B <json>`) and after it returned
/// (`A`); the parent SIGKILLs it at random moments, reopens the store, and checks that it is
/// the model after every acknowledged write (or also the one in flight), on every read
/// primitive, and that `verify()` is empty — then starts the next child on the same store.
package enum KillTest {
    /// The child: opens `path`, learns the live messages, then writes until killed (or `maxCalls`).
    package static func child(path: String, seed: UInt64, run: Int, maxCalls: Int) throws {
        func say(_ line: String) {
            let bytes = Array((line + "\n").utf8)
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { Glibc.write(1, $0.baseAddress, $0.count) }
                if n <= 0 { exit(3) }
                offset += n
            }
        }
        let store = try MessageStore(path: path, options: Workload.options)
        var live: [String: String] = [:]   // id → conversation
        for conversation in Workload.conversations {
            var cursor: Cursor? = nil
            repeat {
                let page = try store.page(in: conversation, after: cursor, limit: 1000, order: .oldestFirst)
                for m in page.messages { live[m.id] = m.conversation }
                cursor = page.next
            } while cursor != nil
        }
        say("ready \(live.count)")
        var rng = SweepRandom(seed: SweepRandom.mix(seed, UInt64(run)))
        var serial = 0
        let encoder = JSONEncoder()
        func operation() -> WriteBatch.Operation {
            let ids = live.keys.sorted()
            let roll = rng.below(100)
            if ids.isEmpty || roll < 60 {
                serial += 1
                let large = rng.chance(10)
                let body = String(repeating: "run \(run) message \(serial) ", count: large ? 150 + rng.below(200) : 1 + rng.below(6))
                let m = Message(id: "k\(run)-\(serial)", conversation: Workload.conversations[rng.below(Workload.conversations.count)],
                                sender: Workload.users[rng.below(Workload.users.count)], createdAt: Int64(rng.below(500)),
                                body: body, replyTo: rng.chance(10) ? ids.first : nil)
                return .append(m)
            }
            let id = ids[rng.below(ids.count)]
            if roll < 75 { return .edit(id: id, body: "edited by run \(run) #\(rng.below(1000))") }
            if roll < 88 { return .delete(id: id) }
            return .markRead(user: Workload.users[rng.below(Workload.users.count)], conversation: live[id]!, through: id)
        }
        func track(_ operation: WriteBatch.Operation) {
            switch operation {
            case .append(let m): live[m.id] = m.conversation
            case .delete(let id): live[id] = nil
            default: break
            }
        }
        for _ in 0..<maxCalls {
            let roll = rng.below(100)
            var call = WireCall(call: "", operations: [])
            var batch = WriteBatch()
            if roll < 2 {
                call.call = "checkpoint"
            } else if roll < 4 {
                call.call = "compact"
            } else if roll < 30 {
                call.call = "write"
                for _ in 0..<(2 + rng.below(6)) {
                    let op = operation()
                    track(op)
                    call.operations.append(WireOperation(op))
                    switch op {
                    case .append(let m): batch.append(m)
                    case let .edit(id, body): batch.edit(id: id, body: body)
                    case let .delete(id): batch.delete(id: id)
                    case let .markRead(u, c, t): batch.markRead(user: u, conversation: c, through: t)
                    case let .join(u, c): batch.join(user: u, conversation: c)
                    case let .leave(u, c): batch.leave(user: u, conversation: c)
                    }
                }
            } else {
                let op = operation()
                track(op)
                call.operations = [WireOperation(op)]
                switch op {
                case .append: call.call = "append"
                case .edit: call.call = "edit"
                case .delete: call.call = "delete"
                case .markRead: call.call = "markRead"
                case .join: call.call = "join"
                case .leave: call.call = "leave"
                }
            }
            say("B " + String(decoding: try encoder.encode(call), as: UTF8.self))
            switch call.call {
            case "checkpoint": try store.checkpoint()
            case "compact": try store.compact()
            case "write": try store.write(batch)
            default:
                switch call.operations[0].operation! {
                case .append(let m): try store.append(m)
                case let .edit(id, body): try store.edit(id: id, body: body)
                case let .delete(id): try store.delete(id: id)
                case let .markRead(u, c, t): try store.markRead(user: u, conversation: c, through: t)
                case let .join(u, c): try store.join(user: u, conversation: c)
                case let .leave(u, c): try store.leave(user: u, conversation: c)
                }
            }
            say("A")
        }
        try store.close()
        say("done")
    }

    package struct Report: Sendable {
        package var kills = 0
        package var acknowledgedCalls = 0
        package var inFlightSurvived = 0
        package var inFlightLost = 0
        package var killedBeforeReady = 0
        package var failures: [String] = []
        package var summary: String {
            "kill test: \(kills) SIGKILLs, \(acknowledgedCalls) acknowledged calls checked, in-flight call survived \(inFlightSurvived) / lost \(inFlightLost), \(killedBeforeReady) kills during open or recovery, \(failures.count) failures"
        }
    }

    /// The parent: `kills` rounds on the store at `path` (created if missing).
    package static func run(executable: String, path: String, kills: Int, seed: UInt64, maxDelayMicroseconds: Int = 150_000,
                            log: (String) -> Void) -> Report {
        var report = Report()
        var model = SweepModel()
        var ids = Set<String>()
        var rng = SweepRandom(seed: seed)
        let decoder = JSONDecoder()
        for round in 0..<kills {
            let replay = "replay: scrollback-crash kill --seed \(seed) --kills \(round + 1) (round \(round))"
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = ["child", path, "--seed", "\(seed)", "--run", "\(round)"]
            let output = Pipe()
            let errors = Pipe()
            process.standardOutput = output
            process.standardError = errors
            let collected = ReaderThread(output.fileHandleForReading)
            let collectedErrors = ReaderThread(errors.fileHandleForReading)
            do { try process.run() } catch {
                report.failures.append("cannot start \(executable): \(error)")
                return report
            }
            // Sometimes during open/recovery, mostly while writing.
            let delay = rng.chance(15) ? rng.below(20_000) : 5_000 + rng.below(maxDelayMicroseconds)
            usleep(UInt32(delay))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let text = String(decoding: collected.wait(), as: UTF8.self)
            let stderr = String(decoding: collectedErrors.wait(), as: UTF8.self)
            report.kills += 1
            if process.terminationReason != .uncaughtSignal {
                report.failures.append("child exited by itself (status \(process.terminationStatus)) before the kill: \(stderr) — \(replay)")
                return report
            }
            var pending: WireCall? = nil
            var ready = false
            var acknowledged = 0
            for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
                if line.hasPrefix("ready") {
                    ready = true
                } else if line.hasPrefix("B ") {
                    guard let call = try? decoder.decode(WireCall.self, from: Data(line.dropFirst(2).utf8)) else {
                        // A line cut by the kill is the last one, and its call never started.
                        continue
                    }
                    pending = call
                } else if line == "A", let call = pending {
                    for op in call.operations { if let operation = op.operation { model.apply(operation) } }
                    acknowledged += 1
                    pending = nil
                }
                if line.hasPrefix("B "), let call = pending {
                    for op in call.operations where op.t == "a" { ids.insert(op.id) }
                }
            }
            if !ready { report.killedBeforeReady += 1 }
            report.acknowledgedCalls += acknowledged
            var candidates = [model]
            if let call = pending, !call.operations.isEmpty {
                var withPending = model
                for op in call.operations { if let operation = op.operation { withPending.apply(operation) } }
                candidates.insert(withPending, at: 0)
            }
            let universe = Universe(conversations: Workload.conversations, users: Workload.users, ids: ids.sorted())
            do {
                let store = try MessageStore(path: path, options: Workload.options)
                var matched: Int? = nil
                var differences: [String] = []
                for (index, candidate) in candidates.enumerated() {
                    if let d = try StoreComparison.difference(store, candidate, universe) {
                        differences.append(d)
                    } else {
                        matched = index
                        break
                    }
                }
                guard let matched else {
                    report.failures.append("after kill \(round) (\(acknowledged) calls acknowledged this round): state matches no allowed model: \(differences.joined(separator: "; ")) — \(replay)")
                    return report
                }
                if candidates.count == 2 {
                    if matched == 0 { report.inFlightSurvived += 1 } else { report.inFlightLost += 1 }
                }
                model = candidates[matched]
                let problems = try store.verify()
                if !problems.isEmpty {
                    report.failures.append("verify() after kill \(round): \(problems) — \(replay)")
                    return report
                }
                try store.close()
            } catch {
                report.failures.append("reopening after kill \(round) failed: \(error) — \(replay)")
                return report
            }
            log("kill \(round): after \(delay / 1000) ms, \(acknowledged) calls acknowledged, \(model.messageCount) live messages, ok")
        }
        return report
    }
}

/// Reads a file handle to its end on a thread of its own (so a child never blocks on a full pipe).
final class ReaderThread: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var data = Data()

    init(_ handle: Foundation.FileHandle) {
        let thread = Thread { [self] in
            data = (try? handle.readToEnd()) ?? Data()
            done.signal()
        }
        thread.start()
    }

    func wait() -> Data {
        done.wait()
        return data
    }
}
