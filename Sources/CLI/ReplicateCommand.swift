import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Scrollback
import ScrollbackJSON
import ScrollbackReplication

/// `scrollback replicate lead|follow`: a store's changes through a NATS JetStream stream
/// (README, "Replication").
struct Replicate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replicate a store through a NATS JetStream stream: lead (publish) or follow (apply).",
        discussion: """
            One store leads a stream and publishes every committed change to it; followers apply \
            the stream to their own stores. A write is replicated once JetStream acknowledged it. \
            Run `lead` on a follower's store to promote it (it applies the rest of the stream, then \
            claims it: a former leader can no longer publish). See the README, "Replication".
            """,
        subcommands: [Lead.self, Follow.self])

    struct Connection: ParsableArguments {
        @Option(name: .customLong("nats"), help: "NATS server URLs, comma-separated (nats://host:port,…).")
        var servers: String

        @Option(help: "The JetStream stream of the store's changes (letters, digits, - and _).")
        var stream: String

        @Option(name: .customLong("progress-ms"), help: "Milliseconds between progress lines on stderr (0: none).")
        var progressMilliseconds: Int = 1000

        func options() -> ReplicationOptions { ReplicationOptions(servers: servers, stream: stream) }
    }

    /// A JSON progress line on stderr (written at once: another thread may print too).
    static func progress(_ fields: [(String, String)]) {
        var line = "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}\n"
        line.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
    }

    static func quoted(_ text: String?) -> String {
        guard let text else { return "null" }
        var w = JSONWriter()
        w.string(text)
        return w.text
    }

    /// The store with full durability (an acknowledged write is durable before it is published).
    static func openStore(_ path: String, command: String) throws -> MessageStore {
        var options = StoreOptions()
        options.durability = .full
        return try StoreAccess.openOrCreate(path, command: command, options: options)
    }

    static func mapped(_ error: any Error) -> any Error {
        if let error = error as? ReplicationError { return CLIError(error.description) }
        return error
    }

    struct Lead: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lead a stream: serve exec requests on stdin and publish every change.",
            discussion: """
                Opens the store as its writer, creates the stream when missing, claims it (after \
                applying whatever the stream holds that the store lacks, when the store follows it), \
                and prints {"op":"lead","leader":ID,"claim":SEQ} on stdout. Then it reads exec requests \
                on stdin (the contract of `scrollback exec`) and answers each on stdout; with --ack \
                replicated (the default) a write's answer is printed only after JetStream acknowledged \
                it, with --ack local once it is durable in the store. Progress lines on stderr: \
                {"role":"leader","sequence":N,"published":N,"resyncs":N,"caughtUp":true|false,\
                "lagSeconds":S} (S: how long changes have waited for JetStream, sampled per line). \
                End of stdin: waits until every change is replicated, then exits 0. SIGINT or SIGTERM: \
                stops publishing, closes the store, exits 0. Exit 1 when it cannot lead (another \
                store claimed the stream since, JetStream unreachable) or stops leading.
                """)

        @Argument(help: "The store directory (created if missing).")
        var store: String

        @OptionGroup var connection: Connection

        @Option(help: "Subject partitions of the stream when it is created (1 ... 1024).")
        var partitions: Int = 16

        @Option(name: .customLong("stream-replicas"), help: "Copies JetStream keeps when the stream is created (1, 3 or 5).")
        var streamReplicas: Int = 1

        @Option(name: .customLong("stream-max-bytes"), help: "Retention of the stream when it is created: most bytes kept.")
        var streamMaxBytes: Int64?

        @Option(help: "When a write is answered: replicated (acknowledged by JetStream) or local (durable in the store).")
        var ack: String = "replicated"

        func validate() throws {
            guard ack == "replicated" || ack == "local" else { throw ValidationError("--ack must be replicated or local") }
        }

        func run() throws {
            let signals = ShutdownSignal.block()
            var options = connection.options()
            options.partitions = partitions
            options.streamReplicas = streamReplicas
            options.streamMaxBytes = streamMaxBytes
            let store = try openStore(self.store, command: "replicate lead")
            // A signal during the catch-up before the claim ends the process at once: every
            // batch applied so far is an atomic commit, and nothing was claimed.
            let shutdown = LeaderShutdown(store: store)
            signals.onSignal { shutdown.signalled() }
            let leader: ReplicationLeader
            do {
                leader = try ReplicationLeader(store: store, options: options) { status in
                    Replicate.progress([("role", "\"catching-up\""), ("applied", "\(status.appliedSequence)"),
                                        ("stream", "\(status.streamSequence)")])
                }
            } catch {
                try? store.close()
                throw Replicate.mapped(error)
            }
            shutdown.leading(leader)
            leader.start()
            let out = Output.standardOutput
            out.line("{\"op\":\"lead\",\"leader\":\"\(String(leader.leaderID, radix: 16))\",\"claim\":\(leader.claimSequence)}")
            out.flush()
            let every = connection.progressMilliseconds
            if every > 0 {
                Thread.detachNewThread {
                    var lastCaughtUp = Date()
                    while true {
                        usleep(UInt32(every) * 1000)
                        let status = leader.status
                        let caughtUp = (try? status.replicatedPosition >= store.changePosition()) ?? false
                        if caughtUp { lastCaughtUp = Date() }
                        // Lag: how long the store has had changes JetStream has not acknowledged
                        // (sampled at each progress line).
                        let lag = caughtUp ? 0 : Date().timeIntervalSince(lastCaughtUp)
                        Replicate.progress([("role", "\"leader\""), ("sequence", "\(status.acknowledgedSequence)"),
                                            ("published", "\(status.publishedChanges)"), ("resyncs", "\(status.resyncs)"),
                                            ("caughtUp", "\(caughtUp)"), ("lagSeconds", String(format: "%.3f", lag))])
                        if status.failure != nil { return }
                    }
                }
            }
            // Answers wait in `held` until what they acknowledge is replicated (--ack local:
            // until the leader is known to still lead). Answers never printed acknowledge nothing.
            var held: [String] = []
            var heldThrough: ChangePosition? = nil
            func release() throws {
                if let failure = leader.status.failure { throw Replicate.mapped(failure) }
                if let position = heldThrough, ack == "replicated" {
                    try leader.waitUntilReplicated(position, timeout: .seconds(120))
                }
                for line in held { out.line(line) }
                held.removeAll(keepingCapacity: true)
                heldThrough = nil
                out.flush()
            }
            let reader = LineReader(fd: 0)
            var failure: (any Error)? = nil
            reader.beforeBlocking = {
                guard failure == nil else { return }
                do { try release() } catch { failure = error }
            }
            do {
                while failure == nil, let line = try reader.next() {
                    switch line {
                    case .line(let bytes):
                        held.append(shutdown.serving { ExecRequest.respond(to: bytes, store: store) })
                        heldThrough = try store.changePosition()
                    case .tooLong(let n):
                        held.append(RequestError.invalidRequest("line of \(n) bytes is longer than \(reader.maxLineBytes)").jsonLine)
                    }
                    if held.count >= 256 { try release() }
                }
                if let failure { throw failure }
                try release()
                try leader.waitUntilReplicated(try store.changePosition(), timeout: .seconds(120))
            } catch {
                shutdown.finishing()   // a signal's shutdown wins (exit 0); else this error ends it
                leader.stop()
                try? store.close()
                throw Replicate.mapped(error)
            }
            shutdown.finishing()
            leader.stop()
            try store.close()
        }
    }

    /// A leader's clean shutdown on SIGINT/SIGTERM, against the command's own end: whichever
    /// comes first closes the store; a request being served finishes first.
    final class LeaderShutdown: @unchecked Sendable {
        let store: MessageStore
        private let lock = NSLock()
        private var leader: ReplicationLeader?
        private var done = false

        init(store: MessageStore) { self.store = store }

        func leading(_ leader: ReplicationLeader) {
            lock.withLock { self.leader = leader }
        }

        /// Runs one request unless the process is shutting down (then waits to be ended).
        func serving<T>(_ body: () -> T) -> T {
            lock.lock()
            defer { lock.unlock() }
            if done { parkForever() }
            return body()
        }

        /// The command ends on its own: a later signal does nothing; an earlier one ends it here.
        func finishing() {
            lock.lock()
            if done { lock.unlock(); parkForever() }
            done = true
            lock.unlock()
        }

        /// On the signal thread: stop publishing, close the store, exit 0 — unless the command
        /// is already ending on its own.
        func signalled() {
            lock.lock()
            if done { lock.unlock(); return }
            done = true
            let leader = self.leader
            lock.unlock()
            leader?.stop()
            try? store.close()
            Output.standardError.flush()
            Glibc.exit(0)
        }

        private func parkForever() -> Never {
            while true { pause() }
        }
    }

    struct Follow: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Follow a stream: apply its changes to the store, resuming where it stopped.",
            discussion: """
                Opens the store as its writer and applies the stream from after the store's replica \
                mark (an empty store without a mark starts at the stream's first message). Progress \
                lines on stderr: {"role":"follower","applied":N,"stream":N,"lagChanges":N,\
                "lagSeconds":S,"changes":N,"leader":ID}. SIGINT or SIGTERM: finishes the batch being \
                applied and exits 0 (a later follow continues exactly after it). --until-caught-up: \
                exits 0 once it applied the stream's last message as of its start. Exit 1 when the \
                stream no longer holds the next message (restore a backup of a follower's store), \
                the store cannot follow this stream, or JetStream is unreachable.
                """)

        @Argument(help: "The store directory (created if missing).")
        var store: String

        @OptionGroup var connection: Connection

        @Flag(help: "Exit once the stream's last message (as of the start) is applied.")
        var untilCaughtUp = false

        func run() throws {
            let signals = ShutdownSignal.block()
            let store = try openStore(self.store, command: "replicate follow")
            let follower: ReplicationFollower
            do {
                follower = try ReplicationFollower(store: store, options: connection.options())
            } catch {
                try? store.close()
                throw Replicate.mapped(error)
            }
            signals.onSignal { follower.stop() }
            let every = connection.progressMilliseconds
            do {
                try follower.run(untilCaughtUp: untilCaughtUp) { status in
                    guard every > 0 else { return }
                    Replicate.progress([
                        ("role", "\"follower\""), ("applied", "\(status.appliedSequence)"), ("stream", "\(status.streamSequence)"),
                        ("lagChanges", "\(status.lagChanges)"), ("lagSeconds", String(format: "%.3f", status.lagSeconds)),
                        ("changes", "\(status.appliedChanges)"), ("leader", Replicate.quoted(status.leader)),
                    ])
                }
            } catch {
                try? store.close()
                throw Replicate.mapped(error)
            }
            let status = follower.status
            Replicate.progress([("role", "\"follower\""), ("applied", "\(status.appliedSequence)"), ("stopped", "true")])
            try store.close()
        }
    }
}

/// SIGINT and SIGTERM, handled on a thread of their own (the command's thread may be blocked
/// in a read or a wait). `block()` first, before any thread starts (threads inherit the mask,
/// so no thread of the NATS client ever takes the signal's default action); then `onSignal`
/// runs its action once when either arrives (a signal that came meanwhile is pending).
final class ShutdownSignal: @unchecked Sendable {
    let set: sigset_t

    private init(set: sigset_t) { self.set = set }

    static func block() -> ShutdownSignal {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        return ShutdownSignal(set: set)
    }

    func onSignal(_ action: @escaping @Sendable () -> Void) {
        Thread.detachNewThread { [self] in
            var signal: Int32 = 0
            var set = self.set
            _ = sigwait(&set, &signal)
            action()
        }
    }
}
