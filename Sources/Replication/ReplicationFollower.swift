import CNATS
import Foundation
import Scrollback
import ScrollbackJSON

/// Applies a replicated store's stream to another store (README, "Replication").
///
/// A follower reads the stream in sequence order from after its store's replica mark
/// (`MessageStore.replicaMark()`), and applies the changes of each batch of stream messages
/// with `apply(_:mark:)`: the changes and the new mark commit together, so after a crash or a
/// restart it continues exactly after the last change applied. A store without a mark must
/// be empty and starts at the stream's first message, which must be a claim by a leader whose
/// store was empty; otherwise start from a backup of a replica (a follower's store: it
/// carries its mark).
///
/// Thread-safety: `run` on one thread; `stop` and `status` from any.
public final class ReplicationFollower: @unchecked Sendable {
    public let store: MessageStore
    public let options: ReplicationOptions
    let connection: NATSConnection
    let ownsConnection: Bool
    let source: UInt64
    let state = NSCondition()
    // Guarded by `state`:
    var applied: UInt64
    /// The last stream sequence received (applied, or buffered as part of an unfinished write)
    /// and that message's `Nats-Msg-Id`.
    var received: UInt64 = 0
    var receivedID: String?
    var appliedChanges: UInt64 = 0
    var streamLast: UInt64 = 0
    var lastAppliedTimestamp: Int64 = 0
    var leader: String?
    var stopping = false

    /// Progress of a follower.
    public struct Status: Sendable {
        /// The stream sequence of the last message applied (the store's mark).
        public var appliedSequence: UInt64
        /// The stream's last sequence, as last seen.
        public var streamSequence: UInt64
        /// Stream messages not applied yet.
        public var lagChanges: UInt64 { streamSequence > appliedSequence ? streamSequence - appliedSequence : 0 }
        /// Seconds between the last applied message's arrival in the stream and now (0 when
        /// nothing is pending).
        public var lagSeconds: Double
        public var appliedChanges: UInt64
        /// The current leader's id (16 hex digits), once a claim was read.
        public var leader: String?
    }

    /// Connects and checks the store can follow the stream (see the type's description).
    /// Throws `.behindRetention`, `.divergent`, `.notLeader` (the store led the stream) or
    /// `.unavailable`.
    public convenience init(store: MessageStore, options: ReplicationOptions) throws {
        try options.validate()
        let connection = try NATSConnection(servers: options.servers, name: options.connectionName,
                                            requestTimeoutMilliseconds: options.requestTimeoutMilliseconds)
        try self.init(store: store, options: options, connection: connection, ownsConnection: true)
    }

    /// `ownsConnection`: close the connection when the follower goes (false for a leader's
    /// catch-up, which shares the leader's).
    init(store: MessageStore, options: ReplicationOptions, connection: NATSConnection, ownsConnection: Bool) throws {
        self.ownsConnection = ownsConnection
        self.store = store
        self.options = options
        self.connection = connection
        let stream = options.stream
        source = ReplicationProtocol.streamSource(stream)
        let mark = try ReplicationLeader.storeCall { try store.replicaMark() }
        if let mark {
            if ReplicationProtocol.isLeaderID(mark.source) {
                throw ReplicationError(.notLeader, "this store led stream \(stream) (leader \(ReplicationProtocol.hex(mark.source)), "
                    + "claim at sequence \(mark.sequence)); its changes may not all be in the stream: restore it from a backup of a "
                    + "follower to follow, or lead it again")
            }
            guard mark.source == source else {
                throw ReplicationError(.divergent, "this store replicates another stream (mark source "
                    + "\(ReplicationProtocol.hex(mark.source)), not stream \(stream)'s \(ReplicationProtocol.hex(source)))")
            }
            applied = mark.sequence
        } else {
            let empty = try ReplicationLeader.storeCall { try store.statistics.messages == 0 && store.statistics.conversations == 0 }
            guard empty else {
                throw ReplicationError(.divergent, "this store holds data but no replica mark: it cannot follow stream \(stream) "
                    + "(start from an empty store or a backup of a follower)")
            }
            applied = 0
        }
    }

    deinit { if ownsConnection { connection.close() } }

    /// The stream sequence applied so far.
    public var appliedSequence: UInt64 {
        state.lock()
        defer { state.unlock() }
        return applied
    }

    public var status: Status {
        state.lock()
        defer { state.unlock() }
        let pending = streamLast > applied
        let lag = pending && lastAppliedTimestamp > 0 ? max(0, Date().timeIntervalSince1970 - Double(lastAppliedTimestamp) / 1e9) : 0
        return Status(appliedSequence: applied, streamSequence: max(streamLast, applied), lagSeconds: lag,
                      appliedChanges: appliedChanges, leader: leader)
    }

    /// Ends `run` (after the batch being applied).
    public func stop() {
        state.lock()
        stopping = true
        state.broadcast()
        state.unlock()
    }

    /// Applies the stream until `stop()` is called (or, with `untilCaughtUp`, until it received
    /// the stream's last sequence as read when it started). Applies whole writes of the leader
    /// (`applyWholeWrites`): a write whose last change has not arrived waits. Calls `progress`
    /// about once a second. Throws what stopped it: `.behindRetention` when the stream no
    /// longer holds the next sequence, `.store` when the store refused a change, `.malformed`.
    public func run(untilCaughtUp: Bool = false, progress: (@Sendable (Status) -> Void)? = nil) throws {
        let stream = options.stream
        // JetStream may be electing a stream or consumer leader (a server just went away):
        // retry what fails as unavailable for up to a minute.
        // A stop requested while JetStream is unavailable ends the run cleanly: nothing was
        // being applied.
        guard let lookup = try Self.retryingUnlessStopped({ isStopping }, { try connection.streamState(stream) }) else { return }
        let streamState = lookup
        guard let streamState else {
            if untilCaughtUp { return }
            throw ReplicationError(.unavailable, "stream \(stream) does not exist (a leader creates it)")
        }
        setStreamLast(streamState.last)
        let target = streamState.last
        var next = appliedSequence + 1
        if untilCaughtUp && next > target { return }
        if streamState.messages > 0 && next < streamState.first {
            throw ReplicationError(.behindRetention, "stream \(stream) starts at sequence \(streamState.first) but this store needs "
                + "\(next): restore a backup of a replica (a follower's store), then follow again")
        }
        let start = next
        guard let subscription = try Self.retryingUnlessStopped({ isStopping }, { try subscribe(from: start) }) else { return }
        defer {
            natsSubscription_Unsubscribe(subscription)
            natsSubscription_Destroy(subscription)
        }
        var lastReport = Date()
        var lastInfo = Date()
        var buffer: [StreamMessage] = []
        while true {
            if isStopping { return }
            if untilCaughtUp && next > target { return }
            var message: OpaquePointer? = nil
            let status = natsSubscription_NextMsg(&message, subscription, 200)
            if status == NATS_OK, let first = message {
                var received = 0
                try accept(first, into: &buffer, expecting: &next)
                var pending: Int32 = 0
                while received < options.batchSize,
                      natsSubscription_GetPending(subscription, &pending, nil) == NATS_OK, pending > 0,
                      natsSubscription_NextMsg(&message, subscription, 10) == NATS_OK, let more = message {
                    try accept(more, into: &buffer, expecting: &next)
                    received += 1
                }
                try applyWholeWrites(&buffer)
            } else if status != NATS_TIMEOUT && status != NATS_SLOW_CONSUMER {
                // (A slow consumer dropped messages: the ordered consumer starts again after the
                // last one delivered, so reading on is right.)
                throw ReplicationError.status(status, "reading stream \(stream)")
            }
            let now = Date()
            if now.timeIntervalSince(lastInfo) >= 1, let info = try? connection.streamState(stream) {
                setStreamLast(info.last)
                lastInfo = now
            }
            if let progress, now.timeIntervalSince(lastReport) >= 1 {
                progress(self.status)
                lastReport = now
            }
        }
    }

    /// Takes a delivered message (and frees it): a message delivered again after a consumer
    /// reset is dropped; a gap means the stream dropped messages this store needs.
    func accept(_ delivered: OpaquePointer, into buffer: inout [StreamMessage], expecting next: inout UInt64) throws {
        let message = StreamMessage(delivered)
        natsMsg_Destroy(delivered)
        if message.sequence < next { return }
        guard message.sequence == next else {
            throw ReplicationError(.behindRetention, "stream \(options.stream) skipped from sequence \(next) to "
                + "\(message.sequence) (dropped by its retention): restore a backup of a replica, then follow again")
        }
        next += 1
        state.lock()
        received = message.sequence
        receivedID = message.messageID
        state.unlock()
        buffer.append(message)
    }

    /// Runs `body` again while it fails as `.unavailable` (a timeout, no responders), every
    /// 250 ms for up to a minute, unless `stopped()`.
    static func retrying<T>(while stopped: () -> Bool, _ body: () throws -> T) throws -> T {
        let deadline = Date().addingTimeInterval(60)
        while true {
            do {
                return try body()
            } catch let error as ReplicationError where error.kind == .unavailable && Date() < deadline && !stopped() {
                usleep(250_000)
            }
        }
    }

    /// `retrying`, except that a stop requested meanwhile ends it with nil (a clean stop)
    /// instead of the error of the last try.
    package static func retryingUnlessStopped<T>(_ stopped: () -> Bool, _ body: () throws -> T) throws -> T? {
        do {
            return try retrying(while: stopped, body)
        } catch let error as ReplicationError where error.kind == .unavailable && stopped() {
            return nil
        }
    }

    /// `run(untilCaughtUp: true)`, for a store about to lead the stream.
    func catchUp(progress: (@Sendable (Status) -> Void)?) throws {
        try run(untilCaughtUp: true, progress: progress)
    }

    var isStopping: Bool {
        state.lock()
        defer { state.unlock() }
        return stopping
    }

    /// The last stream sequence this follower has received and its message id (a claim that
    /// follows must expect them; 0 and nil before any).
    var lastReceived: (sequence: UInt64, messageID: String?) {
        state.lock()
        defer { state.unlock() }
        return (received, receivedID)
    }

    func setStreamLast(_ last: UInt64) {
        state.lock()
        streamLast = max(streamLast, last)
        state.unlock()
    }

    /// An ordered consumer of every subject of the stream from sequence `start` (the client
    /// recreates it on a gap or a lost server).
    func subscribe(from start: UInt64) throws -> OpaquePointer {
        var subscribeOptions = jsSubOptions()
        jsSubOptions_Init(&subscribeOptions)
        let stream = strdup(options.stream)
        defer { free(stream) }
        subscribeOptions.Stream = UnsafePointer(stream)
        subscribeOptions.Ordered = true
        subscribeOptions.Config.DeliverPolicy = js_DeliverByStartSequence
        subscribeOptions.Config.OptStartSeq = start
        var subscription: OpaquePointer? = nil
        var code = jsErrCode(rawValue: 0)
        let status = js_SubscribeSync(&subscription, connection.jetStream, "\(options.stream).>", nil, &subscribeOptions, &code)
        guard status == NATS_OK, let subscription else {
            throw ReplicationError.status(status, "subscribing to stream \(options.stream)", code: code)
        }
        natsSubscription_SetPendingLimits(subscription, 65_536, 256 << 20)
        return subscription
    }

    /// Most changes of one leader write applied at once: a write larger than this (a bulk load)
    /// is applied in parts.
    static let largestWholeWrite = 50_000

    /// Applies the buffered messages up to the last that ends a leader's write (a change with
    /// `Scrollback-End`, or a claim), atomically with the mark of that message, and keeps the
    /// rest (an unfinished write). A claim discards an unfinished write before it: its leader
    /// stopped before publishing all of it, so it was never replicated (and every follower
    /// drops it alike).
    func applyWholeWrites(_ buffer: inout [StreamMessage]) throws {
        var changes: [Change] = []
        var unfinished: [Change] = []
        var currentLeader = status.leader
        var cut: Int? = nil
        for (index, message) in buffer.enumerated() {
            if message.subject == ReplicationProtocol.claimSubject(options.stream) {
                if message.sequence == 1, message.data != Array("{\"empty\":true}".utf8) {
                    throw ReplicationError(.divergent, "the stream's first leader held data before its claim, which the stream "
                        + "does not carry: start this store from a backup of a follower")
                }
                currentLeader = message.leader
                unfinished = []
                cut = index
                continue
            }
            // A follower resuming mid-term learns the leader from its first change (JetStream's
            // expected-sequence check already keeps other publishers out).
            if currentLeader == nil { currentLeader = message.leader }
            guard message.leader == currentLeader else {
                throw ReplicationError(.malformed, "stream message \(message.sequence) is from leader \(message.leader ?? "?") "
                    + "but leader \(currentLeader ?? "none") holds the stream")
            }
            do {
                unfinished.append(try ChangeJSON.decode(line: message.data))
            } catch {
                throw ReplicationError(.malformed, "stream message \(message.sequence) is not a change: \(error)")
            }
            if message.endsWrite || unfinished.count >= Self.largestWholeWrite {
                changes += unfinished
                unfinished = []
                cut = index
            }
        }
        guard let cut else { return }
        let last = buffer[cut]
        do {
            try store.apply(changes, mark: ReplicaMark(source: source, sequence: last.sequence))
        } catch {
            throw ReplicationError(.store, "applying stream messages up to \(last.sequence): \(error)")
        }
        buffer.removeFirst(cut + 1)
        state.lock()
        applied = last.sequence
        appliedChanges += UInt64(changes.count)
        lastAppliedTimestamp = last.timestamp
        leader = currentLeader
        streamLast = max(streamLast, last.sequence)
        state.broadcast()
        state.unlock()
    }
}
