import CNATS
import Foundation
import Scrollback
import ScrollbackJSON

/// Publishes every committed change of a store to its JetStream stream (README,
/// "Replication"; the stream's bytes: `ReplicationProtocol`).
///
/// `start` makes the store the stream's leader: on an empty stream it claims it; on a stream
/// this store already leads (a restart) it resumes after the last change the stream holds;
/// on a stream another store led, this store must be a follower of it — it first applies
/// every change the stream holds, then claims it (promotion). A claim is a publish with
/// JetStream's expected-last-sequence check, so two stores never both lead: a former leader's
/// next publish fails and it stops with `.notLeader`.
///
/// Writes go to the store as usual (from any thread or process-local caller); the leader
/// reads them from the change stream on its own thread and publishes them in order, in
/// batches of up to `batchSize`, each change once (after a failed publish or a lost
/// acknowledgement it reads the stream's last message to learn where to continue). A write is
/// **replicated** once JetStream acknowledged it (stored on a majority of the stream's
/// replicas): `waitUntilReplicated(_:)`.
///
/// Thread-safety: every method may be called from any thread.
public final class ReplicationLeader: @unchecked Sendable {
    public let store: MessageStore
    public let options: ReplicationOptions
    /// This leader's id (in the claim and every change's `Scrollback-Leader` header).
    public let leaderID: UInt64
    /// The stream sequence of this leader's claim.
    public let claimSequence: UInt64

    let connection: NATSConnection
    let ackBox: AckBox
    let state = NSCondition()
    // Guarded by `state`:
    var replicated: ChangePosition
    var acknowledgedSequence: UInt64
    /// The `Nats-Msg-Id` of the stream's last message as this leader knows it: every publish
    /// expects it (`Nats-Expected-Last-Msg-Id`) besides the sequence, so a publish queued behind
    /// one that was refused can never land after another store's message.
    var lastMessageID: String?
    var publishedChanges: UInt64 = 0
    var resyncs = 0
    var failure: ReplicationError?
    var stopping = false
    var running = false
    // Written by the ack handler (the client's thread), read after js_PublishAsyncComplete.
    let ackErrors = NSLock()
    var firstAckError: ReplicationError?

    /// What the leader has done so far.
    public struct Status: Sendable {
        /// After the last change JetStream acknowledged (or that needed no publish).
        public var replicatedPosition: ChangePosition
        /// The stream's sequence of the last acknowledged publish.
        public var acknowledgedSequence: UInt64
        public var publishedChanges: UInt64
        /// Times the leader lost its place (a failed publish or a lost acknowledgement) and
        /// read the stream's end to continue.
        public var resyncs: Int
        /// Why the leader stopped, if it did.
        public var failure: ReplicationError?
    }

    /// Connects, then resumes this store's leadership of the stream or claims it (creating the
    /// stream when missing, catching up first when the store follows it). Does not publish
    /// until `start()`. Throws `.notLeader` when another store's claim came after this store's,
    /// `.divergent` when the store cannot lead this stream (see README), `.unavailable` when
    /// JetStream does not answer.
    public init(store: MessageStore, options: ReplicationOptions,
                progress: (@Sendable (ReplicationFollower.Status) -> Void)? = nil) throws {
        try options.validate()
        self.store = store
        self.options = options
        let box = AckBox()
        ackBox = box
        connection = try NATSConnection(
            servers: options.servers, name: options.connectionName, requestTimeoutMilliseconds: options.requestTimeoutMilliseconds,
            ackHandler: leaderAckHandler, // Retained for the process's life: a late acknowledgement may call back after the
            // leader is gone (a few bytes per leader).
            ackClosure: Unmanaged.passRetained(box).toOpaque(),
            maxPending: Int64(max(options.batchSize * 2, 256)))
        let stream = options.stream
        let connection = connection
        let retry = { (body: () throws -> Void) in try ReplicationFollower.retrying(while: { false }, body) }
        try retry {
            try connection.ensureStream(stream, replicas: options.streamReplicas, maxBytes: options.streamMaxBytes ?? -1,
                                        maxAgeSeconds: options.streamMaxAge.map { $0.components.seconds } ?? 0)
        }
        let mark = try Self.storeCall { try store.replicaMark() }
        if let mark, ReplicationProtocol.isLeaderID(mark.source) {
            // A restart of a store that claimed: still the leader exactly when the stream's last
            // message is its own (a claim appends at the end, so after another store's claim the
            // last message is never this one's; the claim itself may be gone to retention).
            let (resume, last, lastID) = try ReplicationFollower.retrying(while: { false }) {
                try Self.resumePoint(connection, stream: stream, leader: mark.source)
            }
            let end = try Self.storeCall { try store.changePosition() }
            guard resume <= end else {
                throw ReplicationError(.divergent, "stream \(stream) holds this store's changes up to position \(resume.token), "
                    + "past the store's end \(end.token) (was it restored from an older backup?): restore it from a backup of a "
                    + "follower")
            }
            leaderID = mark.source
            claimSequence = mark.sequence
            replicated = resume
            acknowledgedSequence = last
            lastMessageID = lastID
        } else {
            // Follow to the stream's end (nothing to do on a new stream: a store with data may
            // lead it, but followers then need a copy of it, README), then claim.
            let state = try ReplicationFollower.retrying(while: { false }) { try connection.streamState(stream) }
            let follower = state.map { $0.last > 0 } == true
                ? try ReplicationFollower(store: store, options: options, connection: connection, ownsConnection: false) : nil
            let id = ReplicationProtocol.newLeaderID()
            let (claimed, position) = try Self.catchUpAndClaim(connection, store: store, stream: stream, leader: id,
                                                               follower: follower, progress: progress)
            // Only after the mark is durable does this store publish as the leader: a crash
            // before it leaves a claim without changes, which a restart follows past.
            try Self.storeCall { try store.apply([], mark: ReplicaMark(source: id, sequence: claimed)) }
            leaderID = id
            claimSequence = claimed
            replicated = position
            acknowledgedSequence = claimed
            lastMessageID = ReplicationProtocol.claimID(id)
        }
        box.leader = self
    }

    deinit { connection.close() }

    /// Starts publishing on a thread of its own.
    public func start() {
        state.lock()
        guard !running, !stopping else { state.unlock(); return }
        running = true
        state.unlock()
        let thread = Thread { [self] in publishLoop() }
        thread.name = "scrollback-replication-leader"
        thread.start()
    }

    /// Stops publishing (changes not yet acknowledged stay unreplicated until a leader
    /// resumes) and waits for the publishing thread to end.
    public func stop() {
        state.lock()
        stopping = true
        state.broadcast()
        while running { state.wait() }
        state.unlock()
    }

    public var status: Status {
        state.lock()
        defer { state.unlock() }
        return Status(replicatedPosition: replicated, acknowledgedSequence: acknowledgedSequence,
                      publishedChanges: publishedChanges, resyncs: resyncs, failure: failure)
    }

    /// Blocks until every change at or before `position` (e.g. `store.changePosition()` after
    /// a write returned) is acknowledged by JetStream, or `timeout` passes (`.unavailable`),
    /// or the leader stopped (its failure).
    public func waitUntilReplicated(_ position: ChangePosition, timeout: Duration = .seconds(30)) throws {
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18)
        state.lock()
        defer { state.unlock() }
        while replicated < position {
            if let failure { throw failure }
            if stopping { throw ReplicationError(.notLeader, "the leader was stopped") }
            if !state.wait(until: deadline) {
                throw ReplicationError(.unavailable, "not replicated within \(timeout): JetStream did not acknowledge in time")
            }
        }
    }

    /// The asynchronous form of `waitUntilReplicated(_:timeout:)` (waits on a thread of its own).
    public func waitUntilReplicated(_ position: ChangePosition, timeout: Duration = .seconds(30)) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            Thread.detachNewThread { [self] in
                do {
                    try waitUntilReplicated(position, timeout: timeout)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    // MARK: Publishing

    func publishLoop() {
        defer {
            state.lock()
            running = false
            state.broadcast()
            state.unlock()
        }
        var expected: UInt64
        var expectedID: String?
        var reader: ChangeReader
        do {
            state.lock()
            expected = acknowledgedSequence
            expectedID = lastMessageID
            let from = replicated
            state.unlock()
            reader = try Self.storeCall { try store.changeReader(after: from) }
        } catch {
            fail(error as? ReplicationError ?? ReplicationError(.store, "\(error)"))
            return
        }
        var failures = 0
        // The last write read may continue past a full read: its changes wait here, so that
        // the stream marks every write's last change (followers apply writes whole).
        var carried: [Change] = []
        while !isStopping {
            do {
                // Nothing carried: wait for the next commit (woken by it; checking for a stop
                // every 100 ms).
                let read = try Self.storeCall {
                    carried.isEmpty ? try reader.read(limit: options.batchSize, waitingUpTo: .milliseconds(100))
                        : try reader.read(limit: options.batchSize)
                }
                if read.isEmpty && carried.isEmpty {
                    advance(to: reader.position, sequence: expected, messageID: expectedID, published: 0)
                    continue
                }
                let more = read.count >= options.batchSize
                var changes = carried + read
                carried = []
                if more, let last = changes.last {
                    let tail = changes.lastIndex { $0.position.transaction != last.position.transaction }.map { $0 + 1 } ?? 0
                    if tail > 0 {
                        carried = Array(changes[tail...])
                        changes.removeSubrange(tail...)
                    } else if changes.count < ReplicationFollower.largestWholeWrite {
                        carried = changes   // one write so far: the next read tells whether it ends
                        continue
                    } else {
                        // A write larger than followers apply whole: publish it in parts, always
                        // keeping its last change read back, so that its end is marked.
                        carried = [changes.removeLast()]
                    }
                }
                let ends = changes.indices.map { i in
                    i + 1 < changes.count ? changes[i + 1].position.transaction != changes[i].position.transaction
                        : carried.first.map { $0.position.transaction != changes[i].position.transaction } ?? true
                }
                if let error = publish(changes, ends: ends, expectedLast: expected, expectedLastID: expectedID) {
                    // A failed publish or acknowledgement: read where the stream ends and go on
                    // from there (the stream is the truth about what was replicated). A change
                    // too large stops the leader; so does a refusal that repeats (backing off).
                    failures += 1
                    switch error.kind {
                    case .changeTooLarge, .refused(code: Int(JSStreamMessageExceedsMaximumErr.rawValue)):
                        throw error
                    case .refused(let code) where code != Int(JSStreamWrongLastSequenceErr.rawValue)
                        && code != Int(JSStreamWrongLastMsgIDErr.rawValue) && failures >= 20:
                        throw error
                    default:
                        break   // unavailable, JetStream electing, or the stream moved: resynchronize
                    }
                    if failures > 1 { usleep(UInt32(min(5_000_000, 50_000 << min(failures, 7)))) }
                    let (resume, last, lastID) = try resynchronize(after: error)
                    expected = last
                    expectedID = lastID
                    carried = []
                    reader = try Self.storeCall { try store.changeReader(after: resume) }
                    advance(to: resume, sequence: last, messageID: lastID, published: 0, resync: true)
                    continue
                }
                failures = 0
                expected += UInt64(changes.count)
                expectedID = changes.last.map { ReplicationProtocol.changeID(leaderID, $0.position) } ?? expectedID
                advance(to: carried.isEmpty ? reader.position : changes.last!.position, sequence: expected, messageID: expectedID,
                        published: changes.count)
            } catch {
                fail(error as? ReplicationError ?? ReplicationError(.store, "\(error)"))
                return
            }
        }
    }

    var isStopping: Bool {
        state.lock()
        defer { state.unlock() }
        return stopping
    }

    func advance(to position: ChangePosition, sequence: UInt64, messageID: String?, published: Int, resync: Bool = false) {
        state.lock()
        if replicated < position { replicated = position }
        acknowledgedSequence = sequence
        lastMessageID = messageID
        publishedChanges += UInt64(published)
        if resync { resyncs += 1 }
        state.broadcast()
        state.unlock()
    }

    func fail(_ error: ReplicationError) {
        state.lock()
        if failure == nil { failure = error }
        state.broadcast()
        state.unlock()
    }

    /// Publishes `changes` asynchronously (`ends[i]`: change i is its write's last), each expecting the one before it as the stream's
    /// last message, then waits for every acknowledgement. Nil when all were stored.
    func publish(_ changes: [Change], ends: [Bool], expectedLast: UInt64, expectedLastID: String?) -> ReplicationError? {
        ackErrors.lock()
        firstAckError = nil
        ackErrors.unlock()
        var expected = expectedLast
        var expectedID = expectedLastID
        let leader = ReplicationProtocol.hex(leaderID)
        for (change, end) in zip(changes, ends) {
            let subject = ReplicationProtocol.changeSubject(
                options.stream, partition: ReplicationProtocol.partition(of: change.conversation, partitions: options.partitions))
            let data = Array(ChangeJSON.encode(change).utf8)
            var message: OpaquePointer? = nil
            var status = makeStreamMessage(&message, subject: subject, data: data, leader: leader, position: change.position.token)
            guard status == NATS_OK, let created = message else { return ReplicationError.status(status, "creating a stream message") }
            if end { natsMsgHeader_Set(created, ReplicationHeaders.end, "1") }
            let id = ReplicationProtocol.changeID(leaderID, change.position)
            status = withFencedPublishOptions(id: id, expectedLast: expected, expectedLastID: expectedID,
                                              maxWait: options.requestTimeoutMilliseconds) { publishOptions in
                js_PublishMsgAsync(connection.jetStream, &message, &publishOptions)
            }
            if let message { natsMsg_Destroy(message) }   // not taken by the client (failed)
            guard status == NATS_OK else {
                _ = waitForAcknowledgements()
                if status == NATS_MAX_PAYLOAD {
                    return ReplicationError(.changeTooLarge, "the change at position \(change.position.token) encodes to "
                        + "\(data.count) bytes, more than the NATS server's max_payload (\(natsConnection_GetMaxPayload(connection.connection)) "
                        + "bytes): raise max_payload or lower StoreOptions.maxBodyBytes; replication stops at this change")
                }
                return ReplicationError.status(status, "publishing to stream \(options.stream)")
            }
            expected += 1
            expectedID = id
        }
        if let error = waitForAcknowledgements() { return error }
        ackErrors.lock()
        defer { ackErrors.unlock() }
        return firstAckError
    }

    func waitForAcknowledgements() -> ReplicationError? {
        var waitOptions = jsPubOptions()
        jsPubOptions_Init(&waitOptions)
        waitOptions.MaxWait = options.requestTimeoutMilliseconds * 2
        let status = js_PublishAsyncComplete(connection.jetStream, &waitOptions)
        return status == NATS_OK ? nil : ReplicationError.status(status, "waiting for JetStream's acknowledgements")
    }

    func recordAck(_ error: ReplicationError?) {
        guard let error else { return }
        ackErrors.lock()
        if firstAckError == nil { firstAckError = error }
        ackErrors.unlock()
    }

    /// After a failure: waits for JetStream (retrying, with back-off, until it answers or the
    /// leader is stopped), checks this store still leads, and returns the position after the
    /// last change the stream holds, the stream's last sequence and that message's id.
    func resynchronize(after error: ReplicationError) throws -> (ChangePosition, UInt64, String?) {
        var attempt = 0
        while true {
            if isStopping { throw ReplicationError(.notLeader, "stopped while resynchronizing after: \(error)") }
            do {
                return try Self.resumePoint(connection, stream: options.stream, leader: leaderID)
            } catch let failure as ReplicationError where failure.kind == .unavailable || { if case .refused = failure.kind { true } else { false } }() {
                attempt += 1
                usleep(UInt32(min(5_000_000, 250_000 * attempt)))
            }
        }
    }

    /// Where a leader continues: after the position in the stream's last message, which must
    /// be this leader's (its claim or a change: after a claim only its leader publishes, and
    /// another store's claim would be last or followed by that store's messages).
    static func resumePoint(_ connection: NATSConnection, stream: String, leader: UInt64) throws
        -> (ChangePosition, UInt64, String?) {
        guard let state = try connection.streamState(stream), state.last > 0,
              let last = try connection.message(stream, sequence: state.last) else {
            throw ReplicationError(.divergent, "stream \(stream) is empty or gone, but this store claimed it")
        }
        guard last.leader == ReplicationProtocol.hex(leader), let token = last.position,
              let position = try? ChangePosition(token: token) else {
            throw ReplicationError(.notLeader, "leader \(last.leader ?? "?") holds stream \(stream) (its last message, sequence "
                + "\(last.sequence), is not this store's, leader \(ReplicationProtocol.hex(leader))): this store no longer leads it, "
                + "and its changes not in the stream were not replicated; restore it from a backup of a follower")
        }
        return (position, state.last, last.messageID)
    }

    /// Applies what the stream holds (with `follower`; nil for an empty stream), then claims
    /// the stream for `leader`, expecting the last message received; when the stream moved on
    /// meanwhile (a former leader still publishing) it applies what came and claims again.
    /// Returns the claim's sequence and the store's change position at the claim.
    static func catchUpAndClaim(_ connection: NATSConnection, store: MessageStore, stream: String, leader id: UInt64,
                                follower: ReplicationFollower?, progress: (@Sendable (ReplicationFollower.Status) -> Void)?)
        throws -> (UInt64, ChangePosition) {
        var attempt = 0
        while true {
            var received: UInt64 = 0
            var receivedID: String? = nil
            if let follower {
                try follower.catchUp(progress: progress)
                // The claim follows every message received; an unfinished write at the stream's
                // end (a leader that died while publishing it) is dropped by everyone at the claim.
                (received, receivedID) = follower.lastReceived
            }
            let empty = try storeCall { try store.statistics.messages == 0 && store.statistics.conversations == 0 }
            let position = try storeCall { try store.changePosition() }
            do {
                let sequence = try ReplicationFollower.retrying(while: { false }) {
                    try publishClaim(connection, stream: stream, leader: id, position: position, empty: empty,
                                     expectedLast: received, expectedLastID: receivedID)
                }
                return (sequence, position)
            } catch let error as ReplicationError where error.kind == .notLeader && follower != nil && attempt < 100 {
                attempt += 1
            }
        }
    }

    static func publishClaim(_ connection: NATSConnection, stream: String, leader: UInt64, position: ChangePosition, empty: Bool,
                             expectedLast: UInt64, expectedLastID: String?) throws -> UInt64 {
        let data = Array("{\"empty\":\(empty)}".utf8)
        var created: OpaquePointer? = nil
        var status = makeStreamMessage(&created, subject: ReplicationProtocol.claimSubject(stream), data: data,
                                       leader: ReplicationProtocol.hex(leader), position: position.token)
        guard status == NATS_OK, let message = created else { throw ReplicationError.status(status, "creating the claim") }
        defer { natsMsg_Destroy(message) }
        var ack: UnsafeMutablePointer<jsPubAck>? = nil
        var code = jsErrCode(rawValue: 0)
        status = withFencedPublishOptions(id: ReplicationProtocol.claimID(leader), expectedLast: expectedLast,
                                          expectedLastID: expectedLastID, maxWait: nil) { publishOptions in
            js_PublishMsg(&ack, connection.jetStream, message, &publishOptions, &code)
        }
        guard status == NATS_OK, let ack else {
            if code == JSStreamWrongLastSequenceErr || code == JSStreamWrongLastMsgIDErr {
                // A retry of a claim whose acknowledgement was lost finds its own claim last.
                if let last = try connection.message(stream, lastOn: ReplicationProtocol.claimSubject(stream)),
                   last.leader == ReplicationProtocol.hex(leader) {
                    return last.sequence
                }
                throw ReplicationError(.notLeader, "stream \(stream) moved past sequence \(expectedLast) while this store claimed it: "
                    + "another leader is publishing")
            }
            throw ReplicationError.status(status, "claiming stream \(stream)", code: code)
        }
        defer { jsPubAck_Destroy(ack) }
        return ack.pointee.Sequence
    }

    /// Runs a store call, mapping its errors to `.store`.
    static func storeCall<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ReplicationError {
            throw error
        } catch {
            throw ReplicationError(.store, "the store: \(error)")
        }
    }
}

/// The ack handler's link to its leader (set once the leader is initialized).
final class AckBox: @unchecked Sendable {
    weak var leader: ReplicationLeader?
}

/// JetStream's asynchronous publish result, on the client's thread.
private let leaderAckHandler: jsPubAckHandler = { _, message, _, error, closure in
    // With an acknowledgement handler the message is the handler's to destroy.
    defer { if let message { natsMsg_Destroy(message) } }
    guard let closure else { return }
    let box = Unmanaged<AckBox>.fromOpaque(closure).takeUnretainedValue()
    guard let error else { return }
    let code = error.pointee.ErrCode
    let text = error.pointee.ErrText.map { String(cString: $0) } ?? String(cString: natsStatus_GetText(error.pointee.Err))
    let failure = code.rawValue != 0
        ? ReplicationError(.refused(code: Int(code.rawValue)), "JetStream refused a change: \(text) (error \(code.rawValue))")
        : ReplicationError(.unavailable, "a change was not acknowledged: \(text)")
    box.leader?.recordAck(failure)
}

/// Calls `body` with a C string of `text`, or nil.
/// Creates in `message` a stream message on `subject` carrying `data`, with the leader and
/// position headers every message of a leader has (a change or a claim). The caller destroys
/// it, or hands it to an asynchronous publish that takes it.
func makeStreamMessage(_ message: inout OpaquePointer?, subject: String, data: [UInt8], leader: String,
                       position: String) -> natsStatus {
    let status = data.withUnsafeBufferPointer {
        natsMsg_Create(&message, subject, nil, UnsafeRawPointer($0.baseAddress)?.assumingMemoryBound(to: CChar.self), Int32($0.count))
    }
    guard status == NATS_OK, let created = message else { return status }
    natsMsgHeader_Set(created, ReplicationHeaders.leader, leader)
    natsMsgHeader_Set(created, ReplicationHeaders.position, position)
    return NATS_OK
}

/// Calls `body` with publish options that fence a publish: it is stored only if the stream's
/// last message is `expectedLast` (sequence) and `expectedLastID` (message id; nil: not
/// checked), and it is deduplicated by `id`. `maxWait` (ms): how long a publish waits for its
/// acknowledgement (nil: the context's default).
func withFencedPublishOptions<R>(id: String, expectedLast: UInt64, expectedLastID: String?, maxWait: Int64?,
                                 _ body: (inout jsPubOptions) -> R) -> R {
    id.withCString { idPointer in
        withOptionalCString(expectedLastID) { expectedIDPointer in
            var publishOptions = jsPubOptions()
            jsPubOptions_Init(&publishOptions)
            publishOptions.ExpectLastSeq = expectedLast
            publishOptions.MsgId = idPointer
            publishOptions.ExpectLastMsgId = expectedIDPointer
            if let maxWait { publishOptions.MaxWait = maxWait }
            return body(&publishOptions)
        }
    }
}

func withOptionalCString<R>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let text else { return body(nil) }
    return text.withCString { body($0) }
}
