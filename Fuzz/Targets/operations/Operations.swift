// Operation-sequence fuzz target. Input: byte 0 crash mode, bytes 1-2 crash step (LE u16),
// byte 3 simulator seed, then operations (one opcode byte + argument bytes each). The
// sequence runs on MessageStore over CrashSimulatingFileSystem, and on ReferenceStore. At the
// crash step the machine loses power; the simulator applies the crash mode, the store
// reopens, and its primitives must equal the model after the last acknowledged operation or
// after the one in flight; verify() must be empty (with the search index on, every posting
// checked against the messages); a second reopen must read the same.
@testable import ScrollbackReferenceModel
import FuzzSupport
import Glibc
@testable import Scrollback
import ScrollbackFormat
import ScrollbackIO

let ids = (0..<12).map { "m\($0)" }
let conversations = ["c0", "c1", "c2"]
let users = ["u0", "u1"]

enum Op {
    case append(Message)
    case edit(String, String)
    case delete(String)
    case markRead(String, String, String)
    case batch([WriteBatch.Operation])
    case checkpoint, compact, reopen
    /// enableSearchIndex() (true) or disableSearchIndex() (false): records 31–34 and the
    /// search trees, under every later write, crash and replay.
    case searchIndex(Bool)
}

struct Bytes {
    var bytes: [UInt8]
    var index = 0
    var isAtEnd: Bool { index >= bytes.count }
    mutating func next() -> UInt8 {
        defer { index += 1 }
        return index < bytes.count ? bytes[index] : 0
    }
}

func message(_ input: inout Bytes) -> Message {
    let a = input.next(), b = input.next()
    return Message(
        id: ids[Int(a) % ids.count], conversation: conversations[Int(a >> 4) % conversations.count],
        sender: users[Int(b) & 1], createdAt: Int64(b >> 1 & 7), body: String(repeating: "x", count: Int(b >> 4) * 9),
        metadata: a >> 3 & 1 == 1 ? [a, b] : nil)
}

func writeOperation(_ input: inout Bytes) -> WriteBatch.Operation {
    let code = input.next()
    switch code % 8 {
    case 0, 1, 2: return .append(message(&input))
    case 3: return .edit(id: ids[Int(input.next()) % ids.count], body: "e\(code)")
    case 4: return .delete(id: ids[Int(input.next()) % ids.count])
    case 5:
        let a = input.next()
        return .join(user: users[Int(a) & 1], conversation: conversations[Int(a >> 1) % 3])
    case 6:
        let a = input.next()
        return .leave(user: users[Int(a) & 1], conversation: conversations[Int(a >> 1) % 3])
    default:
        let a = input.next()
        return .markRead(user: users[Int(a) & 1], conversation: conversations[Int(a >> 1) % 3], through: ids[Int(a >> 3) % ids.count])
    }
}

func parse(_ input: inout Bytes) -> [Op] {
    var ops: [Op] = []
    while !input.isAtEnd, ops.count < 64 {
        let code = input.next()
        switch code % 10 {
        case 0, 1, 2: ops.append(.append(message(&input)))
        case 3: ops.append(.edit(ids[Int(input.next()) % ids.count], "edit \(code)"))
        case 4: ops.append(.delete(ids[Int(input.next()) % ids.count]))
        case 5:
            let a = input.next()
            ops.append(.markRead(users[Int(a) & 1], conversations[Int(a >> 1) % 3], ids[Int(a >> 3) % ids.count]))
        case 6: ops.append(.batch((0..<(1 + Int(code >> 4) % 5)).map { _ in writeOperation(&input) }))
        case 7: ops.append(.checkpoint)
        case 8: ops.append(.compact)
        default: ops.append(code & 0x10 == 0 ? .reopen : .searchIndex(code & 0x20 == 0))
        }
    }
    return ops
}

func options() -> StoreOptions {
    var options = StoreOptions()
    options.cacheBytes = 1 << 20
    options.pageSize = 4096
    options.segmentBytes = 64 << 10
    options.checkpointDirtyBytes = 16 << 10
    options.checkpointLogBytes = 32 << 10
    options.autoCompactGarbageRatio = nil
    return options
}

/// Applies `op` to the model; nil if the model rejects it (the store must reject it too).
func apply(_ op: Op, to model: ReferenceStore) -> ReferenceStore? {
    var copy = model
    do {
        switch op {
        case let .append(m): try copy.append(m)
        case let .edit(id, body): try copy.edit(id: id, body: body)
        case let .delete(id): try copy.delete(id: id)
        case let .markRead(u, c, id): try copy.markRead(user: u, conversation: c, through: id)
        case let .batch(operations):
            var batch = WriteBatch()
            for operation in operations {
                switch operation {
                case let .append(m): batch.append(m)
                case let .edit(id, body): batch.edit(id: id, body: body)
                case let .delete(id): batch.delete(id: id)
                case let .markRead(u, c, id): batch.markRead(user: u, conversation: c, through: id)
                case let .join(u, c): batch.join(user: u, conversation: c)
                case let .leave(u, c): batch.leave(user: u, conversation: c)
                }
            }
            try copy.write(batch)
        case .checkpoint, .compact, .reopen, .searchIndex: break
        }
    } catch {
        return nil
    }
    return copy
}

func run(_ op: Op, on store: inout MessageStore, _ fs: CrashSimulatingFileSystem) throws {
    switch op {
    case let .append(m): _ = try store.append(m)
    case let .edit(id, body): try store.edit(id: id, body: body)
    case let .delete(id): try store.delete(id: id)
    case let .markRead(u, c, id): try store.markRead(user: u, conversation: c, through: id)
    case let .batch(operations):
        var batch = WriteBatch()
        for operation in operations {
            switch operation {
            case let .append(m): batch.append(m)
            case let .edit(id, body): batch.edit(id: id, body: body)
            case let .delete(id): batch.delete(id: id)
            case let .markRead(u, c, id): batch.markRead(user: u, conversation: c, through: id)
            case let .join(u, c): batch.join(user: u, conversation: c)
            case let .leave(u, c): batch.leave(user: u, conversation: c)
            }
        }
        _ = try store.write(batch)
    case .checkpoint: try store.checkpoint()
    case .compact: _ = try store.compact()
    case .searchIndex(let on):
        if on { try store.enableSearchIndex() } else { try store.disableSearchIndex() }
    case .reopen:
        try store.close()
        store = try MessageStore(path: "/db", options: options(), fileSystem: fs)
    }
}

/// What the fuzzer compares: the primitives the model tracks.
struct Observed: Equatable {
    var messages: [Message?] = []
    var latest: [[Message]] = []
    var counts: [Int] = []
    var unread: [Int] = []
    var inboxes: [[InboxEntry]] = []
}

func observe(_ store: MessageStore) throws -> Observed {
    var o = Observed()
    o.messages = try ids.map { try store.message(id: $0) }
    for c in conversations {
        o.latest.append(try store.latest(in: c, limit: 100))
        o.counts.append(try store.count(in: c, after: -1))
        for u in users { o.unread.append(try store.unreadCount(user: u, in: c)) }
    }
    o.inboxes = try users.map { try store.inbox(user: $0, limit: 100).conversations }
    return o
}

func observe(_ model: ReferenceStore) -> Observed {
    var o = Observed()
    o.messages = ids.map { try! model.message(id: $0) }
    for c in conversations {
        o.latest.append(try! model.latest(in: c, limit: 100))
        o.counts.append(try! model.count(in: c, after: -1))
        for u in users { o.unread.append(try! model.unreadCount(user: u, in: c)) }
    }
    o.inboxes = users.map { model.allInboxEntries(user: $0) }
    return o
}

func fuzzOne(_ data: [UInt8]) {
    guard data.count >= 4 else { return }
    var input = Bytes(bytes: data)
    let modes = CrashMode.allCases
    let mode = modes[Int(input.next()) % modes.count]
    let crashStep = Int(input.next()) | Int(input.next()) << 8
    let fs = CrashSimulatingFileSystem(seed: UInt64(input.next()))
    let ops = parse(&input)

    var model = ReferenceStore(maxBodyBytes: options().maxBodyBytes)
    var candidates: [ReferenceStore] = []
    fs.scheduleCrash(afterSteps: crashStep)
    var store: MessageStore
    do {
        store = try MessageStore(path: "/db", options: options(), fileSystem: fs)
    } catch {
        guard fs.isPoweredOff else { finding("create failed without a crash: \(error)") }
        checkAfterCrash(fs, mode, [model], "crash during create")
        return
    }
    for (i, op) in ops.enumerated() {
        let expected = apply(op, to: model)
        do {
            try run(op, on: &store, fs)
            guard let expected else {
                if fs.isPoweredOff { continue }
                finding("op \(i) \(op) succeeded; the model rejects it")
            }
            model = expected
        } catch {
            expectTyped(error, "op \(i)")
            if fs.isPoweredOff {
                candidates = [model] + (expected.map { [$0] } ?? [])
                checkAfterCrash(fs, mode, candidates, "crash in op \(i) \(op)")
                return
            }
            if expected != nil { finding("op \(i) \(op) threw \(error); the model accepts it") }
        }
    }
    // No crash during the sequence: compare live, then pull the plug with everything acknowledged.
    do {
        let live = try observe(store)
        guard live == observe(model) else { finding("live state differs from the model") }
    } catch {
        if !fs.isPoweredOff { finding("live read failed: \(error)") }
    }
    fs.scheduleCrash(afterSteps: 0)
    checkAfterCrash(fs, mode, [model], "crash after the sequence")
    _ = store
}

func checkAfterCrash(_ fs: CrashSimulatingFileSystem, _ mode: CrashMode, _ candidates: [ReferenceStore], _ context: String) {
    if getenv("FUZZ_VERBOSE") != nil { print("\(context); mode \(mode); \(candidates.count) candidate states") }
    fs.crash(mode: mode)
    let wanted = candidates.map(observe)
    for round in 0..<2 {
        do {
            let store = try MessageStore(path: "/db", options: options(), fileSystem: fs)
            let observed = try observe(store)
            guard wanted.contains(observed) else {
                finding("\(context), mode \(mode), reopen \(round): state matches none of \(candidates.count) candidates\n\(observed)\nwanted \(wanted)")
            }
            let problems = try store.verify()
            guard problems.isEmpty else { finding("\(context), mode \(mode): verify reports \(problems)") }
            try store.close()
        } catch {
            finding("\(context), mode \(mode), reopen \(round): \(error)")
        }
    }
}
