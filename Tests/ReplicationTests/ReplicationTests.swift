import Foundation
import Scrollback
import ScrollbackJSON
import ScrollbackReplication
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Replication through NATS JetStream with real servers and real processes (README,
/// "Replication"): a three-node JetStream cluster on loopback ports, a leader
/// (`scrollback replicate lead`) under a write load, two followers; then a NATS node and the
/// leader are SIGKILLed, a follower is promoted, a late follower catches up from the start, and
/// every store is compared primitive by primitive. Also a follower that fell out of the
/// stream's retention, resynced from a backup of another follower plus the stream.
///
/// Skipped (with the reason) only when `nats-server` is not installed (`make deps` installs it).
/// Failures print the seed (SCROLLBACK_SEED replays a workload).
@Suite(.serialized, .enabled(if: executableOnPath("nats-server") != nil, "nats-server is not installed (apt-get install nats-server)"))
struct ReplicationTests {
    static let conversations = (0..<8).map { "room-\($0)" }
    static let users = ["ana", "bo", "cy", "dee"]

    /// A deterministic workload of exec requests: appends (unique ids), edits and deletes of
    /// earlier ids, read markers, joins and leaves.
    struct Workload {
        var random: UInt64
        var serial = 0
        var ids: [String] = []
        var deletesSent: Set<String> = []
        /// The body of the last edit sent for each id.
        var lastEditSent: [String: String] = [:]
        var conversationOf: [String: String] = [:]
        /// What each request does (for checking acknowledged writes).
        enum Write { case append(id: String, body: String), edit(id: String, body: String), delete(id: String), other }

        init(seed: UInt64) { random = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }

        mutating func next(_ bound: Int) -> Int {
            random ^= random << 13
            random ^= random >> 7
            random ^= random << 17
            return Int(random % UInt64(bound))
        }

        mutating func request(prefix: String) -> (String, Write) {
            let roll = next(100)
            let conversation = ReplicationTests.conversations[next(ReplicationTests.conversations.count)]
            let user = ReplicationTests.users[next(ReplicationTests.users.count)]
            if ids.isEmpty || roll < 60 {
                serial += 1
                let id = "\(prefix)-\(serial)"
                ids.append(id)
                conversationOf[id] = conversation
                let body = "message \(serial) from \(user) " + String(repeating: "·", count: next(40))
                let line = #"{"op":"append","id":"\#(id)","conversation":"\#(conversation)","sender":"\#(user)","createdAt":\#(1_700_000_000_000 + next(100_000)),"kind":"text","body":"\#(body)"}"#
                return (line, .append(id: id, body: body))
            }
            let id = ids[next(ids.count)]
            switch roll {
            case ..<72:
                let body = "edited \(next(1_000_000))"
                lastEditSent[id] = body
                return (#"{"op":"edit","id":"\#(id)","body":"\#(body)"}"#, .edit(id: id, body: body))
            case ..<78:
                deletesSent.insert(id)
                return (#"{"op":"delete","id":"\#(id)"}"#, .delete(id: id))
            case ..<90:
                return (#"{"op":"markRead","user":"\#(user)","conversation":"\#(conversationOf[id]!)","through":"\#(id)"}"#, .other)
            case ..<96:
                return (#"{"op":"join","user":"\#(user)","conversation":"\#(conversation)"}"#, .other)
            case ..<98:
                return (#"{"op":"leave","user":"\#(user)","conversation":"\#(conversation)"}"#, .other)
            default:
                // One write of several changes: followers apply it whole.
                var ops: [String] = []
                for _ in 0..<3 {
                    serial += 1
                    let id = "\(prefix)-\(serial)"
                    ids.append(id)
                    conversationOf[id] = conversation
                    ops.append(#"{"op":"append","id":"\#(id)","conversation":"\#(conversation)","sender":"\#(user)","createdAt":\#(1_700_000_000_000 + next(100_000)),"kind":"text","body":"batched \#(serial)"}"#)
                }
                ops.append(#"{"op":"markRead","user":"\#(user)","conversation":"\#(conversation)","through":"\#(prefix)-\#(serial)"}"#)
                return (#"{"op":"batch","ops":[\#(ops.joined(separator: ","))]}"#, .other)
            }
        }
    }

    /// Sends `count` requests to a leader in pipelined chunks; returns the writes it
    /// acknowledged ("ok":true). Stops early (returning what was acknowledged) when
    /// `killAfter` answers arrived: then it SIGKILLs the leader mid-chunk.
    static func drive(_ leader: Child, _ workload: inout Workload, prefix: String, count: Int, killAfter: Int? = nil)
        throws -> [Workload.Write] {
        var acknowledged: [Workload.Write] = []
        var answered = 0
        var sent = 0
        while sent < count {
            let chunk = min(16, count - sent)
            var writes: [Workload.Write] = []
            var lines: [String] = []
            for _ in 0..<chunk {
                let (line, write) = workload.request(prefix: prefix)
                lines.append(line)
                writes.append(write)
            }
            try leader.send(lines)
            sent += chunk
            for write in writes {
                if let killAfter, answered >= killAfter {
                    leader.signal(SIGKILL)
                    leader.wait(within: 10)
                    return acknowledged
                }
                guard let answer = leader.nextLine(within: 60) else {
                    throw ReplicationTestFailure("leader gave no answer after \(answered): \(leader.stderrText.suffix(2000))")
                }
                answered += 1
                if answer.hasPrefix("{\"ok\":true") {
                    acknowledged.append(write)
                } else if !answer.contains("notFound") {
                    // notFound: an edit or delete of an id deleted before — the workload allows it.
                    throw ReplicationTestFailure("unexpected answer \(answer)")
                }
            }
        }
        return acknowledged
    }

    static func startLeader(_ store: String, _ cluster: NATSCluster, stream: String, extra: [String] = []) throws -> Child {
        let leader = try Child("leader", scrollbackExecutable,
                               ["replicate", "lead", store, "--nats", cluster.urls, "--stream", stream, "--progress-ms", "0"] + extra)
        guard let line = leader.nextLine(within: 90), line.hasPrefix("{\"op\":\"lead\"") else {
            throw ReplicationTestFailure("the leader did not start: \(leader.stderrText.suffix(2000))")
        }
        return leader
    }

    static func startFollower(_ store: String, _ cluster: NATSCluster, stream: String) throws -> Child {
        try Child("follower", scrollbackExecutable,
                  ["replicate", "follow", store, "--nats", cluster.urls, "--stream", stream, "--progress-ms", "500"])
    }

    /// Waits until JetStream in the cluster accepts a stream of `replicas` copies (meta leader elected).
    static func waitForJetStream(_ cluster: NATSCluster, replicas: Int) throws {
        let deadline = Date().addingTimeInterval(60)
        var last = ""
        let scratch = try Scratch("probe")
        while Date() < deadline {
            let (status, _, errors) = try runTool(
                ["replicate", "lead", scratch.path + "/p", "--nats", cluster.urls, "--stream", "probe",
                 "--stream-replicas", "\(replicas)", "--progress-ms", "0"], within: 20)
            if status == 0 { return }
            last = errors
            usleep(500_000)
        }
        throw ReplicationTestFailure("JetStream did not become ready: \(last)")
    }

    /// One nats-server with JetStream, ready, and a scratch directory named for the test.
    static func singleServer(_ name: String, configuration: String? = nil) throws -> (NATSCluster, Scratch) {
        let cluster = try NATSCluster(nodes: 1, executable: executableOnPath("nats-server")!, configuration: configuration)
        try waitForJetStream(cluster, replicas: 1)
        return (cluster, try Scratch(name))
    }

    @Test func failoverKeepsEveryReplicatedWriteAndFollowersConverge() throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["SCROLLBACK_SEED"] ?? "") ?? UInt64.random(in: 1...1_000_000)
        print("replication failover test seed \(seed) (replay: SCROLLBACK_SEED=\(seed))")
        let cluster = try NATSCluster(nodes: 3, executable: executableOnPath("nats-server")!)
        try Self.waitForJetStream(cluster, replicas: 3)
        let scratch = try Scratch("replication")
        let (leaderStore, aStore, bStore, cStore) = (scratch.path + "/leader", scratch.path + "/a", scratch.path + "/b", scratch.path + "/c")
        let stream = "chat"

        var leader = try Self.startLeader(leaderStore, cluster, stream: stream, extra: ["--stream-replicas", "3"])
        let followerA = try Self.startFollower(aStore, cluster, stream: stream)
        let followerB = try Self.startFollower(bStore, cluster, stream: stream)
        var workload = Workload(seed: seed)
        // Both followers follow before the failover starts (a follower reports progress once
        // its consumer exists; on a busy machine creating it can take several request timeouts).
        for follower in [followerA, followerB] {
            guard follower.waitForStderr(containing: "\"role\":\"follower\"", within: 120) else {
                throw ReplicationTestFailure("seed \(seed): a follower never started following: \(follower.stderrText.suffix(1000))")
            }
        }

        // Writes under load; a NATS node dies in the middle; then the leader dies mid-chunk.
        var acknowledged = try Self.drive(leader, &workload, prefix: "m", count: 200)
        cluster.kill(node: Int(seed % 3))
        acknowledged += try Self.drive(leader, &workload, prefix: "m", count: 300, killAfter: 100 + Int(seed % 100))
        #expect(acknowledged.count > 200, "seed \(seed)")

        // Promote follower A: stop it cleanly, then lead on its store (it applies the rest of
        // the stream first, then claims it).
        followerA.signal(SIGTERM)
        #expect(followerA.wait(within: 30) == 0, "seed \(seed): follower A stops cleanly: \(followerA.stderrText.suffix(1000))")
        leader = try Self.startLeader(aStore, cluster, stream: stream)
        // Every acknowledged append is in the promoted store unless a delete of it was sent.
        let deletedAtAll = workload.deletesSent
        do {
            let store = try openReadOnly(aStore)
            var missing: [String] = []
            for write in acknowledged {
                guard case .append(let id, let body) = write, !deletedAtAll.contains(id) else { continue }
                guard let message = try store.message(id: id) else {
                    missing.append(id)
                    continue
                }
                if !message.edited { #expect(message.body == body, "seed \(seed): body of \(id)") }
            }
            #expect(missing.isEmpty, "seed \(seed): acknowledged appends missing after failover: \(missing.prefix(10))")
            // An acknowledged edit that was the last one sent for its message decides its body;
            // an acknowledged delete removed its message.
            var checkedEdits = 0
            for write in acknowledged {
                switch write {
                case let .edit(id, body) where workload.lastEditSent[id] == body && !deletedAtAll.contains(id):
                    #expect(try store.message(id: id)?.body == body, "seed \(seed): the acknowledged last edit of \(id)")
                    checkedEdits += 1
                case let .delete(id):
                    #expect(try store.message(id: id) == nil, "seed \(seed): acknowledged delete of \(id)")
                default:
                    break
                }
            }
            #expect(checkedEdits > 5, "seed \(seed): only \(checkedEdits) acknowledged edits checked")
            try store.close()
        }

        // The new leader takes writes; the old leader's store can no longer lead.
        acknowledged += try Self.drive(leader, &workload, prefix: "n", count: 60)
        try leader.closeInput()
        #expect(leader.wait(within: 60) == 0, "seed \(seed): the promoted leader ends cleanly: \(leader.stderrText.suffix(1000))")
        let (oldStatus, _, oldErrors) = try runTool(["replicate", "lead", leaderStore, "--nats", cluster.urls, "--stream", stream,
                                                     "--progress-ms", "0"], within: 60)
        #expect(oldStatus == 1 && oldErrors.contains("no longer leads"), "seed \(seed): the old leader is fenced: \(oldErrors)")

        // B catches up (stop, then follow to the end); C, a new follower, reads the whole stream.
        followerB.signal(SIGTERM)
        #expect(followerB.wait(within: 30) == 0, "seed \(seed): follower B stops cleanly")
        for store in [bStore, cStore] {
            let (status, _, errors) = try runTool(["replicate", "follow", store, "--nats", cluster.urls, "--stream", stream,
                                                   "--until-caught-up", "--progress-ms", "0"], within: 120)
            #expect(status == 0, "seed \(seed): follow \(store) --until-caught-up: \(errors)")
        }

        let a = try openReadOnly(aStore), b = try openReadOnly(bStore), c = try openReadOnly(cStore)
        let ids = workload.ids
        try expectEqualStores(a, b, conversations: Self.conversations, users: Self.users, ids: ids, "seed \(seed): promoted vs B")
        try expectEqualStores(a, c, conversations: Self.conversations, users: Self.users, ids: ids, "seed \(seed): promoted vs late C")
        #expect(try a.statistics.messages > 120, "seed \(seed)")
        for store in [a, b, c] { try store.close() }
    }

    /// A follower stopped (SIGINT/SIGTERM) while it retries a request JetStream did not
    /// answer (its stream lookup or its consumer's creation) stops cleanly: `run` returns
    /// instead of throwing the last timeout. Other errors are thrown; a success is returned.
    @Test func aStopWhileRetryingEndsTheRetriesCleanly() throws {
        var calls = 0
        var stopped = false
        let result: Int? = try ReplicationFollower.retryingUnlessStopped({ stopped }) {
            calls += 1
            if calls == 3 { stopped = true }
            throw ReplicationError(.unavailable, "reading stream s: Timeout")
        }
        #expect(result == nil && calls == 3)
        #expect(throws: ReplicationError(.malformed, "x")) {
            try ReplicationFollower.retryingUnlessStopped({ false }) { () throws -> Int in throw ReplicationError(.malformed, "x") }
        }
        // Stopped, but the error is not a retried one: it is thrown.
        #expect(throws: ReplicationError(.store, "z")) {
            try ReplicationFollower.retryingUnlessStopped({ true }) { () throws -> Int in throw ReplicationError(.store, "z") }
        }
        #expect(try ReplicationFollower.retryingUnlessStopped({ false }) { 7 } == 7)
    }

    /// A follower whose next message the stream dropped (retention) fails with a clear
    /// message; restored from a backup of another follower, it follows again and converges.
    @Test func aFollowerBehindRetentionResyncsFromABackup() throws {
        let (cluster, scratch) = try Self.singleServer("retention")
        let (leaderStore, upToDate, behind, restored) = (scratch.path + "/leader", scratch.path + "/g", scratch.path + "/d",
                                                         scratch.path + "/restored")
        let stream = "small"
        let leader = try Self.startLeader(leaderStore, cluster, stream: stream, extra: ["--stream-max-bytes", "65536"])
        let follower = try Self.startFollower(upToDate, cluster, stream: stream)
        var workload = Workload(seed: 7)
        _ = try Self.drive(leader, &workload, prefix: "r", count: 40)
        var (status, _, errors) = try runTool(["replicate", "follow", behind, "--nats", cluster.urls, "--stream", stream,
                                               "--until-caught-up", "--progress-ms", "0"], within: 60)
        #expect(status == 0, "the early follower catches up: \(errors)")
        _ = try Self.drive(leader, &workload, prefix: "s", count: 800)
        try leader.closeInput()
        #expect(leader.wait(within: 60) == 0)
        // The retention dropped the leader's claim: a restart still finds itself leading (by
        // the stream's last message) and takes writes.
        let restarted = try Self.startLeader(leaderStore, cluster, stream: stream)
        _ = try Self.drive(restarted, &workload, prefix: "t", count: 20)
        try restarted.closeInput()
        #expect(restarted.wait(within: 60) == 0, "the restarted leader: \(restarted.stderrText.suffix(1000))")

        (status, _, errors) = try runTool(["replicate", "follow", behind, "--nats", cluster.urls, "--stream", stream,
                                           "--until-caught-up", "--progress-ms", "0"], within: 60)
        #expect(status == 1 && errors.contains("restore a backup"), "a follower behind retention is told to resync: \(errors)")

        follower.signal(SIGTERM)
        #expect(follower.wait(within: 30) == 0)
        (status, _, errors) = try runTool(["replicate", "follow", upToDate, "--nats", cluster.urls, "--stream", stream,
                                           "--until-caught-up", "--progress-ms", "0"], within: 60)
        #expect(status == 0, "\(errors)")
        (status, _, errors) = try runTool(["backup", restored, upToDate], within: 60)
        #expect(status == 0, "backup: \(errors)")
        (status, _, errors) = try runTool(["replicate", "follow", restored, "--nats", cluster.urls, "--stream", stream,
                                           "--until-caught-up", "--progress-ms", "0"], within: 60)
        #expect(status == 0, "the restored follower follows: \(errors)")

        let a = try openReadOnly(leaderStore), b = try openReadOnly(restored)
        try expectEqualStores(a, b, conversations: Self.conversations, users: Self.users, ids: workload.ids, "leader vs restored")
        try a.close()
        try b.close()
    }

    // In-process leader and follower on one server: a follower applies the leader's writes
    // whole (never a part of a batch), also when a write is larger than the leader's and the
    // follower's batches, and ends equal to the leader.

    static func changes(_ store: MessageStore, after start: ChangePosition) throws -> [Change] {
        var all: [Change] = []
        var position = start
        while true {
            let page = try store.changes(after: position, limit: 1000)
            all += page.changes
            position = page.next
            if page.changes.isEmpty { return all }
        }
    }

    /// Indices where a new write starts.
    static func boundaries(_ changes: [Change]) -> Set<Int> {
        Set(changes.indices.dropFirst().filter { changes[$0].position.transaction != changes[$0 - 1].position.transaction })
    }

    @Test func followersApplyWholeWrites() throws {
        let (cluster, scratch) = try Self.singleServer("whole")
        var options = ReplicationOptions(servers: cluster.urls, stream: "whole")
        options.batchSize = 4
        let leaderStore = try MessageStore(path: scratch.path + "/leader")
        let leaderStart = try leaderStore.changePosition()
        let leader = try ReplicationLeader(store: leaderStore, options: options)
        leader.start()
        var serial = 0
        for round in 0..<60 {
            try leaderStore.write { batch in
                for _ in 0..<(1 + round % 11) {
                    serial += 1
                    batch.append(Message(id: "w\(serial)", conversation: "c\(serial % 5)", sender: "s", createdAt: Int64(serial),
                                         body: "write \(round)"))
                    if serial % 4 == 0 { batch.markRead(user: "u", conversation: "c\(serial % 5)", through: "w\(serial)") }
                }
            }
        }
        try leader.waitUntilReplicated(try leaderStore.changePosition())
        leader.stop()

        options.batchSize = 3
        let followerStore = try MessageStore(path: scratch.path + "/follower")
        let followerStart = try followerStore.changePosition()
        let follower = try ReplicationFollower(store: followerStore, options: options)
        try follower.run(untilCaughtUp: true)
        let leaderChanges = try Self.changes(leaderStore, after: leaderStart)
        let followerChanges = try Self.changes(followerStore, after: followerStart)
        #expect(followerChanges.count == leaderChanges.count, "follower \(followerChanges.count) changes, leader \(leaderChanges.count), status \(follower.status), leader \(leader.status)")
        #expect(followerChanges.map(\.operation) == leaderChanges.map(\.operation))
        let followerWrites = Self.boundaries(followerChanges)
        #expect(followerWrites.isSubset(of: Self.boundaries(leaderChanges)),
                "a follower's write ends inside a leader's write: \(followerWrites.subtracting(Self.boundaries(leaderChanges)).sorted().prefix(5))")
        #expect(followerWrites.count > 5, "the follower applied in several writes (\(followerWrites.count))")
        try expectEqualStores(leaderStore, followerStore, conversations: (0..<5).map { "c\($0)" }, users: ["u"],
                              ids: (1...serial).map { "w\($0)" }, "whole writes")
        try followerStore.close()
        try leaderStore.close()
    }

    /// A change larger than the server's max_payload stops the leader with a typed error
    /// naming the limit (it can neither skip nor split it); nothing after it is published.
    @Test func aChangeLargerThanMaxPayloadStopsTheLeader() throws {
        let (cluster, scratch) = try Self.singleServer("payload", configuration: "max_payload: 8192\n")
        let store = try MessageStore(path: scratch.path + "/leader")
        let leader = try ReplicationLeader(store: store, options: ReplicationOptions(servers: cluster.urls, stream: "big"))
        leader.start()
        try store.append(Message(id: "small", conversation: "c", sender: "s", createdAt: 1, body: "fits"))
        try leader.waitUntilReplicated(try store.changePosition())
        try store.append(Message(id: "large", conversation: "c", sender: "s", createdAt: 2, body: String(repeating: "x", count: 20_000)))
        do {
            try leader.waitUntilReplicated(try store.changePosition(), timeout: .seconds(30))
            Issue.record("a change over max_payload was reported replicated")
        } catch let error as ReplicationError {
            #expect(error.kind == .changeTooLarge && error.description.contains("max_payload"), "\(error)")
        }
        #expect(leader.status.failure?.kind == .changeTooLarge)
        try store.append(Message(id: "after", conversation: "c", sender: "s", createdAt: 3, body: "after the large one"))
        leader.stop()
        // Nothing at or after the large change is in the stream: a follower gets the first only.
        let followerStore = try MessageStore(path: scratch.path + "/follower")
        try ReplicationFollower(store: followerStore, options: ReplicationOptions(servers: cluster.urls, stream: "big"))
            .run(untilCaughtUp: true)
        #expect(try followerStore.latest(in: "c", limit: 10).map(\.id) == ["small"])
        try followerStore.close()
        try store.close()
    }

    /// A leader that is still alive and publishing while another store is promoted: from the
    /// claim on, none of its publishes lands (also those queued behind a refused one), it stops
    /// with `.notLeader`, and a new follower of the stream equals the promoted store.
    @Test func aLiveFormerLeaderIsFencedAtTheClaim() throws {
        let (cluster, scratch) = try Self.singleServer("fence")
        var options = ReplicationOptions(servers: cluster.urls, stream: "fence")
        options.batchSize = 64
        let oldStore = try MessageStore(path: scratch.path + "/old")
        let old = try ReplicationLeader(store: oldStore, options: options)
        old.start()
        // The former leader keeps writing until it is fenced (within a deadline): a fixed
        // number of writes could all be published before the claim on a busy machine, and a
        // leader with nothing left to publish never learns it was fenced. Paced (about 1,000
        // pairs a second at most) so the promoted store's catch-up passes it.
        let writing = Thread {
            let stopAt = Date().addingTimeInterval(60)
            var n = 0
            while Date() < stopAt {
                guard (try? oldStore.write({ batch in
                    batch.append(Message(id: "o\(n)", conversation: "c\(n % 4)", sender: "s", createdAt: Int64(n), body: "old \(n)"))
                    batch.append(Message(id: "p\(n)", conversation: "c\(n % 3)", sender: "s", createdAt: Int64(n), body: "pair \(n)"))
                })) != nil else { return }
                if old.status.failure != nil { return }
                n += 1
                usleep(1_000)
            }
        }
        writing.start()
        usleep(300_000)
        // Promote: a new store catches up on what is in the stream, then claims it.
        let newStore = try MessageStore(path: scratch.path + "/new")
        let promoted = try ReplicationLeader(store: newStore, options: options)
        promoted.start()
        for n in 0..<50 { try newStore.append(Message(id: "n\(n)", conversation: "c0", sender: "t", createdAt: Int64(10_000 + n), body: "new")) }
        try promoted.waitUntilReplicated(try newStore.changePosition())
        let deadline = Date().addingTimeInterval(30)
        while old.status.failure == nil && Date() < deadline { usleep(20_000) }
        #expect(old.status.failure?.kind == .notLeader, "the former leader stops: \(String(describing: old.status.failure))")
        while writing.isExecuting { usleep(10_000) }
        old.stop()
        promoted.stop()
        // A follower reads the whole stream: it would fail (.malformed) at a former leader's
        // message after the claim.
        let followerStore = try MessageStore(path: scratch.path + "/follower")
        try ReplicationFollower(store: followerStore, options: options).run(untilCaughtUp: true)
        try expectEqualStores(newStore, followerStore, conversations: (0..<4).map { "c\($0)" }, users: [],
                              ids: (0..<50).map { "n\($0)" }, "promoted vs follower")
        #expect(try followerStore.message(id: "n49") != nil)
        for store in [followerStore, newStore, oldStore] { try store.close() }
    }

    /// A bulk load larger than a follower applies whole (50,000 changes) is published with its
    /// end marked and applied in parts; the follower ends equal to the leader.
    @Test func aLargeBulkLoadReplicates() throws {
        let (cluster, scratch) = try Self.singleServer("bulk")
        let options = ReplicationOptions(servers: cluster.urls, stream: "bulk")
        let leaderStore = try MessageStore(path: scratch.path + "/leader")
        let leader = try ReplicationLeader(store: leaderStore, options: options)
        leader.start()
        let messages = (0..<60_000).map { n in
            Message(id: "b\(n)", conversation: "c\(n % 10)", sender: "s", createdAt: Int64(n), body: "bulk \(n)")
        }
        try leaderStore.load(messages)
        try leaderStore.append(Message(id: "last", conversation: "c0", sender: "s", createdAt: 70_000, body: "after the load"))
        try leader.waitUntilReplicated(try leaderStore.changePosition(), timeout: .seconds(120))
        leader.stop()
        let followerStore = try MessageStore(path: scratch.path + "/follower")
        try ReplicationFollower(store: followerStore, options: options).run(untilCaughtUp: true)
        try expectEqualStores(leaderStore, followerStore, conversations: (0..<10).map { "c\($0)" }, users: [],
                              ids: ["b0", "b59999", "last"], "bulk load")
        #expect(try followerStore.statistics.messages == 60_001)
        try followerStore.close()
        try leaderStore.close()
    }
}

func openReadOnly(_ path: String) throws -> MessageStore { try MessageStore(readingAt: path) }
