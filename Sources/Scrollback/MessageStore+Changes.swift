import ScrollbackMessaging
import ScrollbackStorage
import ScrollbackIO
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A place in a store's commit order, after which a reader of the change stream continues
/// (spec/change-stream.md). Opaque: keep it as its `token` string (e.g. beside what a
/// consumer derived from the changes so far) and give it back to continue exactly after it.
///
/// Positions compare in commit order. They belong to one store's log: a position of another
/// store names an unrelated place (at worst it is `.positionExpired` or lies in the future,
/// where nothing is delivered until the log gets there).
public struct ChangePosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    let point: ChangePoint

    init(_ point: ChangePoint) { self.point = point }

    /// Parses a token (`token` of a position). Throws `.invalidArgument(argument: "position")`
    /// for a string that is not one.
    public init(token: String) throws {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        func bad(_ reason: String) -> ScrollbackError {
            .invalidArgument(argument: "position", reason: "\"\(token.prefix(64))\" is not a change position (\(reason))")
        }
        guard parts.count == 4, parts[0] == "1" else { throw bad("expected 1.<start>.<record>.<index>") }
        guard parts[1].utf8.count <= 16, parts[2].utf8.count <= 16, parts[3].utf8.count <= 8,
              let start = UInt64(parts[1], radix: 16), let record = UInt64(parts[2], radix: 16),
              let index = UInt32(parts[3], radix: 16), parts[1...].allSatisfy({ $0.allSatisfy(\.isHexDigit) && !$0.isEmpty }) else {
            throw bad("fields must be hexadecimal")
        }
        // A change's record lies in its transaction: at or after its start (the end point of a
        // boundary is the position just before it).
        guard record &+ 1 >= start else {
            throw bad("the record lies before its transaction")
        }
        point = ChangePoint(transactionStart: start, record: record, index: index)
    }

    /// The position as a string: `1.` then the transaction start, the record and the index in
    /// lowercase hexadecimal, separated by dots. Stable across versions of the library.
    public var token: String {
        "1.\(String(point.transactionStart, radix: 16)).\(String(point.record, radix: 16)).\(String(point.index, radix: 16))"
    }

    public var description: String { token }

    /// Which committed write the change belongs to: the changes of one write (one `write`
    /// batch, one `apply`, one bulk load) share it, and consecutive writes differ. Opaque
    /// beyond that (it is where the write begins in the log); a replica uses it to apply a
    /// leader's writes whole.
    public var transaction: UInt64 { point.transactionStart }

    public static func < (a: ChangePosition, b: ChangePosition) -> Bool { a.point < b.point }
}

/// One committed change of a store, at its position in commit order.
public struct Change: Sendable, Hashable {
    /// Where the change lies; `changes(after: position)` continues after it.
    public var position: ChangePosition
    public var operation: Operation

    /// A change as a replica receives it from elsewhere (e.g. decoded from a replicated log).
    public init(position: ChangePosition, operation: Operation) {
        self.position = position
        self.operation = operation
    }

    /// What changed. Only writes that changed something are changes: a duplicate append, a
    /// marker that did not move forward, a join of a member or a leave of a non-member are not.
    public enum Operation: Sendable, Hashable {
        /// A new message (by `append`, `write` or a bulk load; `edited` is false).
        case append(Message)
        /// A message's new body (`edit`); its other fields are unchanged.
        case edit(conversation: String, id: String, body: String)
        case delete(conversation: String, id: String)
        /// A read marker moved forward to message `through`. nil only for a marker that an
        /// upgrade from format 1 restored for a message deleted before the change was read.
        case markRead(user: String, conversation: String, through: String?)
        case join(user: String, conversation: String)
        case leave(user: String, conversation: String)
    }

    /// The conversation the change concerns.
    public var conversation: String {
        switch operation {
        case .append(let message): message.conversation
        case .edit(let conversation, _, _), .delete(let conversation, _), .markRead(_, let conversation, _),
             .join(_, let conversation), .leave(_, let conversation):
            conversation
        }
    }
}

/// How far a replica has applied another store's changes: a source chosen by the replicator
/// (never 0; e.g. a hash of the replicated stream's name) and the sequence of the last change
/// applied from it (e.g. the stream's message sequence). Set by `MessageStore.apply(_:mark:)`
/// atomically with the changes; read by `MessageStore.replicaMark()`.
public struct ReplicaMark: Sendable, Hashable, Codable {
    public var source: UInt64
    public var sequence: UInt64

    public init(source: UInt64, sequence: UInt64) {
        self.source = source
        self.sequence = sequence
    }
}

/// Changes read at once, and where the next read continues (`MessageStore.changes(after:limit:conversations:)`).
public struct ChangePage: Sendable, Hashable {
    public var changes: [Change]
    /// After the last change returned — or, when the read reached the end of the committed
    /// log, after everything read (changes the filter left out included).
    public var next: ChangePosition
}

/// The change stream (spec/change-stream.md): every committed append, edit, delete, marker move,
/// join and leave has a position in commit order, and can be read again from the log.
///
/// Delivery: a change is read once it is committed — in `.full` durability, once it is
/// durable; in `.normal`, once the write returned (it may still be lost by a power failure,
/// like the write itself). A read-only store (`init(readingAt:)`) sees what the writer has made
/// durable, as of its last `refresh()`.
///
/// Retention: the log a position needs stays at least while less than
/// `StoreOptions.changeRetentionBytes` of log was written after it; an older position is
/// `ScrollbackError.positionExpired` — read the state again, then follow from `changePosition()`.
extension MessageStore {
    /// The position after every change committed so far (in a read-only store: as of its last
    /// `refresh()`). Follow from here to get only new changes.
    public func changePosition() throws -> ChangePosition {
        try mapErrors { ChangePosition(database.changeEnd) }
    }

    /// Up to `limit` changes after `position` (from the end when nil: none then) in commit
    /// order, only of `conversations` when given (at most `maxConversationsPerQuery`; every
    /// conversation when nil). Never waits: an empty page means nothing newer is committed.
    /// A bulk load's appends come in pages of up to `max(limit, 65,536)`.
    ///
    /// Cost: reads the log from the position's transaction on (the newest segments from
    /// memory). Throws `.positionExpired` when the log at `position` is no longer kept.
    public func changes(after position: ChangePosition?, limit: Int, conversations: [String]? = nil) throws -> ChangePage {
        try Self.checkLimit(limit)
        let filter = try Self.changeFilter(conversations)
        var follower = ChangeFollower()
        return try readChanges(after: position?.point, limit: limit, filter: filter, follower: &follower)
    }

    /// The conversation filter of a change read: checked like every conversation list, as
    /// byte strings (nil: every conversation).
    static func changeFilter(_ conversations: [String]?) throws -> Set<ByteString>? {
        try conversations.map { list in
            try checkConversations(list)
            return Set(list.map(ByteString.init))
        }
    }

    func readChanges(after point: ChangePoint?, limit: Int, filter: Set<ByteString>?, follower: inout ChangeFollower) throws
        -> ChangePage {
        do {
            let from = point ?? database.changeEnd
            let batch = try database.readChanges(after: from, conversations: filter, limit: limit, follower: &follower)
            return ChangePage(changes: batch.changes.map { Change(position: ChangePosition($0.point), operation: Self.operation($0.change)) },
                              next: ChangePosition(batch.next))
        } catch let gone as ChangeHistoryGone {
            throw ScrollbackError.positionExpired(position: ChangePosition(gone.point).token)
        } catch {
            throw scrollbackError(error)
        }
    }

    /// The changes after `position` (from the end when nil), as they are committed, for as long
    /// as the sequence is iterated; only of `conversations` when given. Each iteration step
    /// reads from the log on the store's threads (never blocking the cooperative pool) and, when
    /// nothing is new, waits for the next commit (a read-only store checks for one every
    /// `pollInterval`). A slow consumer never holds writers up: it reads the log behind them,
    /// and fails with `.positionExpired` once it falls further behind than the retention
    /// window. Ends (returns nil) when the iterating task is cancelled; throws `.closed` after
    /// the store is closed.
    ///
    /// Invalid arguments (a conversation list too long or with a bad name) are thrown by the
    /// first `next()`.
    public func changes(after position: ChangePosition? = nil, conversations: [String]? = nil,
                        pollInterval: Duration = .milliseconds(10)) -> ChangeStream {
        ChangeStream(store: self, start: position, conversations: conversations, pollInterval: pollInterval)
    }

    /// Applies changes read from another store (a leader) to this one (a replica), in order,
    /// as one atomic write: a replica that applies every change of a leader's stream, from
    /// the leader's first change on, holds the same messages (in the same order), markers and
    /// memberships. A `markRead` without a message (`through` nil) is skipped. At most
    /// `WriteBatch.maxOperations` changes per call.
    ///
    /// Throws as the writes would (e.g. `.notFound` for an edit of a message the replica lacks:
    /// it did not apply an earlier change); nothing is written then.
    public func apply(_ changes: [Change]) throws {
        try write(Self.batch(of: changes))
    }

    /// Applies changes read from another store, as `apply(_:)`, and sets this store's replica
    /// mark to `mark` in the same atomic write: after a crash the store holds either both or
    /// neither, so a replica that resumes after `replicaMark()` applies every change exactly
    /// once. `changes` may be empty (the mark alone moves). At most `WriteBatch.maxOperations
    /// - 1` changes per call. Throws `.invalidArgument(argument: "mark")` for a mark whose
    /// source is 0; nothing is written then.
    public func apply(_ changes: [Change], mark: ReplicaMark) throws {
        guard mark.source != 0 else {
            throw ScrollbackError.invalidArgument(argument: "mark", reason: "the source of a replica mark must not be 0")
        }
        let batch = Self.batch(of: changes)
        guard batch.operations.count < WriteBatch.maxOperations else {
            throw ScrollbackError.limitExceeded(
                "apply of \(batch.operations.count) changes and a mark exceeds \(WriteBatch.maxOperations) operations")
        }
        let operations = batch.operations.map(Self.operation) + [.replicaMark(source: mark.source, sequence: mark.sequence)]
        try mapErrors { _ = try database.write(operations) }
    }

    /// The replica mark the last `apply(_:mark:)` set (as of the last `refresh()` in a
    /// read-only store), or nil when none ever did. Reads a counter of the committed state.
    public func replicaMark() throws -> ReplicaMark? {
        try mapErrors { database.replicaMark.map { ReplicaMark(source: $0.source, sequence: $0.sequence) } }
    }

    /// The write batch that applies `changes` (a markRead without a message is skipped).
    static func batch(of changes: [Change]) -> WriteBatch {
        var batch = WriteBatch()
        for change in changes {
            switch change.operation {
            case .append(let message): batch.append(message)
            case let .edit(_, id, body): batch.edit(id: id, body: body)
            case let .delete(_, id): batch.delete(id: id)
            case let .markRead(user, conversation, through):
                if let through { batch.markRead(user: user, conversation: conversation, through: through) }
            case let .join(user, conversation): batch.join(user: user, conversation: conversation)
            case let .leave(user, conversation): batch.leave(user: user, conversation: conversation)
            }
        }
        return batch
    }

    /// The asynchronous form of `apply(_:)`.
    public func apply(_ changes: [Change]) async throws {
        try await offload { [self] in try apply(changes) }
    }

    /// The asynchronous form of `apply(_:mark:)`.
    public func apply(_ changes: [Change], mark: ReplicaMark) async throws {
        try await offload { [self] in try apply(changes, mark: mark) }
    }

    /// The asynchronous form of `changes(after:limit:conversations:)`.
    public func changes(after position: ChangePosition?, limit: Int, conversations: [String]? = nil) async throws -> ChangePage {
        try await offload { [self] in try changes(after: position, limit: limit, conversations: conversations) }
    }

    static func operation(_ change: StoredChange) -> Change.Operation {
        switch change {
        case .append(let message): .append(Self.message(message))
        case let .edit(conversation, id, body): .edit(conversation: conversation, id: id, body: body)
        case let .delete(conversation, id): .delete(conversation: conversation, id: id)
        case let .markRead(user, conversation, through): .markRead(user: user, conversation: conversation, through: through)
        case let .join(user, conversation): .join(user: user, conversation: conversation)
        case let .leave(user, conversation): .leave(user: user, conversation: conversation)
        }
    }

    static func message(_ stored: StoredMessage) -> Message {
        Message(id: stored.id, conversation: stored.conversation, sender: stored.sender, createdAt: stored.createdAt,
                kind: MessageKind(rawValue: stored.kind) ?? .text, body: stored.body, replyTo: stored.replyTo, edited: stored.edited,
                metadata: stored.metadata)
    }
}

extension MessageStore {
    /// A reader of the change stream that keeps its place and its read state between calls
    /// (`ChangeReader`): for a synchronous follower that polls. From the end when `position`
    /// is nil. Throws `.invalidArgument` for a bad conversation list.
    public func changeReader(after position: ChangePosition? = nil, conversations: [String]? = nil) throws -> ChangeReader {
        ChangeReader(store: self, position: try position ?? changePosition(), filter: try Self.changeFilter(conversations))
    }
}

/// Reads the change stream synchronously from a position on, keeping its place: each `read`
/// continues after the last change it returned. It keeps the bytes of the log segment it reads
/// from a file between calls (at most one segment), so following the log's end reads only
/// what is new. Use it from one thread at a time.
public final class ChangeReader {
    let store: MessageStore
    let filter: Set<ByteString>?
    var follower = ChangeFollower()
    /// After the last change returned (or everything read).
    public private(set) var position: ChangePosition

    init(store: MessageStore, position: ChangePosition, filter: Set<ByteString>?) {
        self.store = store
        self.position = position
        self.filter = filter
    }

    /// Up to `limit` changes after `position` (a bulk load's appends: up to `max(limit,
    /// 65,536)`), and moves `position` past them; empty when nothing newer is committed (a
    /// read-only store: as of its last `refresh()`). Throws `.positionExpired` when the log
    /// at `position` is no longer kept.
    public func read(limit: Int) throws -> [Change] {
        try MessageStore.checkLimit(limit)
        let page = try store.readChanges(after: position.point, limit: limit, filter: filter, follower: &follower)
        position = page.next
        return page.changes
    }

    /// As `read(limit:)`, but when nothing newer is committed, waits up to `timeout` for a
    /// commit: in the writer's process it wakes at the commit itself (no polling); a read-only
    /// store is refreshed and read again every 10 ms. Empty when the time passed without a
    /// change (after the filter). Blocks the calling thread.
    public func read(limit: Int, waitingUpTo timeout: Duration) throws -> [Change] {
        try MessageStore.checkLimit(limit)
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            let signal = store.database.engine.commitSignal
            let seen = signal.generation
            if store.isReadOnly { try store.refresh() }
            let changes = try read(limit: limit)
            if !changes.isEmpty { return changes }
            let left = clock.now.duration(to: deadline)
            if left <= .zero { return [] }
            let (seconds, attoseconds) = min(left, store.isReadOnly ? .milliseconds(10) : left).components
            let nanoseconds = UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
            if store.isReadOnly {
                var pause = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
                _ = nanosleep(&pause, nil)
            } else {
                CommitWait.block(signal, after: seen, nanoseconds: nanoseconds)
            }
        }
    }
}

/// The changes of a store as they are committed (`MessageStore.changes(after:conversations:pollInterval:)`).
public struct ChangeStream: AsyncSequence, Sendable {
    public typealias Element = Change

    let store: MessageStore
    let start: ChangePosition?
    let conversations: [String]?
    let pollInterval: Duration

    public func makeAsyncIterator() -> Iterator {
        Iterator(state: FollowerState(store: store, position: start?.point, conversations: conversations,
                                      pollInterval: pollInterval))
    }

    /// Reads ahead up to 256 changes at a time. Use one iterator from one task at a time.
    public struct Iterator: AsyncIteratorProtocol {
        let state: FollowerState

        public mutating func next() async throws -> Change? {
            try await state.next()
        }
    }
}

/// A stream iterator's state: its position, the changes read ahead, the follower's cache.
/// Used by one task at a time (an iterator is not shared); `@unchecked` because the store's
/// threads run its reads while that task waits.
final class FollowerState: @unchecked Sendable {
    let store: MessageStore
    /// The checked filter, or why the list was refused (thrown by the first `next()`).
    let filter: Result<Set<ByteString>?, any Error>
    let pollInterval: Duration
    var position: ChangePoint?
    var buffer: [Change] = []
    var consumed = 0
    var follower = ChangeFollower()

    static let readAhead = 256

    init(store: MessageStore, position: ChangePoint?, conversations: [String]?, pollInterval: Duration) {
        self.store = store
        self.position = position
        filter = Result { try MessageStore.changeFilter(conversations) }
        self.pollInterval = pollInterval
    }

    func next() async throws -> Change? {
        while true {
            if consumed < buffer.count {
                defer { consumed += 1 }
                return buffer[consumed]
            }
            if Task.isCancelled { return nil }
            let signal = store.database.engine.commitSignal
            let seen = signal.generation
            let readOnly = store.isReadOnly
            let page: ChangePage
            do {
                page = try await store.offload { [self] in try read(refresh: readOnly) }
            } catch is CancellationError {
                return nil
            }
            position = page.next.point
            if !page.changes.isEmpty {
                buffer = page.changes
                consumed = 0
                continue
            }
            buffer.removeAll(keepingCapacity: true)
            consumed = 0
            if readOnly {
                do { try await Task.sleep(for: pollInterval) } catch { return nil }
            } else {
                await CommitWait.wait(signal, after: seen)
            }
        }
    }

    /// One read on the store's threads (the first, without a start position, fixes it at the end).
    private func read(refresh: Bool) throws -> ChangePage {
        let filter = try self.filter.get()
        if refresh { try store.refresh() }
        if position == nil { position = try mapErrors { store.database.changeEnd } }
        return try store.readChanges(after: position, limit: Self.readAhead, filter: filter, follower: &follower)
    }
}

/// Waits for the next published commit (or the store's close), ending early when the task is
/// cancelled.
enum CommitWait {
    /// Blocks the calling thread until the commit signal passes `seen` (or the store closes),
    /// or `nanoseconds` pass.
    static func block(_ signal: CommitSignal, after seen: UInt64, nanoseconds: UInt64) {
        final class Wake: @unchecked Sendable {
            let condition = ConditionMutex()
            var woke = false
        }
        let wake = Wake()
        let token = signal.wait(after: seen) {
            wake.condition.withLock {
                wake.woke = true
                wake.condition.broadcast()
            }
        }
        let start = ContinuousClock.now
        wake.condition.lock()
        while !wake.woke {
            let elapsed = start.duration(to: .now).components
            let spent = UInt64(max(0, elapsed.seconds)) * 1_000_000_000 + UInt64(max(0, elapsed.attoseconds) / 1_000_000_000)
            if spent >= nanoseconds { break }
            wake.condition.wait(nanoseconds: nanoseconds - spent)
        }
        let woke = wake.woke
        wake.condition.unlock()
        if !woke, let token { signal.cancel(token) }
    }

    static func wait(_ signal: CommitSignal, after seen: UInt64) async {
        let registration = Lock<(token: UInt64?, cancelled: Bool)>((nil, false))
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumed = Lock(false)
                let wake: @Sendable () -> Void = {
                    let first = resumed.withLock { done -> Bool in
                        defer { done = true }
                        return !done
                    }
                    if first { continuation.resume() }
                }
                let token = signal.wait(after: seen, wake)
                let cancelledMeanwhile = registration.withLock { state -> Bool in
                    state.token = token
                    return state.cancelled
                }
                if cancelledMeanwhile, let token { signal.cancel(token) }
            }
        } onCancel: {
            let token = registration.withLock { state -> UInt64? in
                state.cancelled = true
                return state.token
            }
            if let token { signal.cancel(token) }
        }
    }
}
