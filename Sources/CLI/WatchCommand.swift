import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Scrollback
import ScrollbackJSON

/// `scrollback watch`: follows a store's change stream from another process than its writer.
struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the store's changes as they are committed, one JSON line each.",
        discussion: """
            Opens the store read-only (it runs beside the writer, in another process) and \
            prints {"position":P,"op":"start"} once it follows, then one line per committed \
            change, flushed at once:
              {"position":P,"op":"append","message":M}
              {"position":P,"op":"edit","conversation":C,"id":ID,"body":B}
              {"position":P,"op":"delete","conversation":C,"id":ID}
              {"position":P,"op":"markRead","user":U,"conversation":C,"through":ID}
              {"position":P,"op":"join","user":U,"conversation":C}
              {"position":P,"op":"leave","user":U,"conversation":C}
            P is an opaque string: --from P continues exactly after the change at P (the \
            start line's P: after everything committed when it was printed). Without --from \
            it starts at the end (new changes only). A change is printed once the writer has \
            made it durable; the store is checked for new commits every --poll-ms. \
            A position older than the log the store keeps (StoreOptions.changeRetentionBytes) \
            fails with exit 1 and a message saying to resync. SIGINT or SIGTERM stop it \
            (exit 0).
            """)

    @Argument(help: "The store directory.")
    var store: String

    @Option(name: .customLong("conversation"), help: "Only this conversation's changes (repeatable).")
    var conversations: [String] = []

    @Option(help: "Continue after this position (from an earlier line).")
    var from: String?

    @Option(name: .customLong("poll-ms"), help: "Milliseconds between checks for new commits (1 ... 10000).")
    var pollMilliseconds: Int = 10

    func validate() throws {
        guard (1...10_000).contains(pollMilliseconds) else { throw ValidationError("--poll-ms must be 1 ... 10000") }
    }

    func run() throws {
        let start = try from.map { try ChangePosition(token: $0) }
        let store = try StoreAccess.openReadOnly(self.store)
        defer { try? store.close() }
        WatchSignals.install()
        let out = Output.standardOutput
        let filter = conversations.isEmpty ? nil : conversations
        let reader = try store.changeReader(after: start, conversations: filter)
        let initial = reader.position
        // The first read checks the position (an expired one fails here, before the start line).
        var changes = try reader.read(limit: 1_000)
        var w = JSONWriter()
        w.raw("{\"position\":")
        w.string(initial.token)
        w.raw(",\"op\":\"start\"}")
        out.line(w.text)
        out.flush()
        let pause = timespec(tv_sec: pollMilliseconds / 1000, tv_nsec: (pollMilliseconds % 1000) * 1_000_000)
        while !WatchSignals.stopRequested {
            if changes.isEmpty {
                var rest = pause
                _ = nanosleep(&rest, nil)
                if WatchSignals.stopRequested { break }
                try store.refresh()
            } else {
                for change in changes { out.line(Self.line(change)) }
                out.flush()
            }
            changes = try reader.read(limit: 1_000)
        }
        out.flush()
    }

    /// One change as its JSON line (without the newline): `ChangeJSON`.
    static func line(_ change: Change) -> String { ChangeJSON.encode(change) }
}

/// SIGINT and SIGTERM end `watch` cleanly (its store closes, giving up its reader slot).
enum WatchSignals {
    nonisolated(unsafe) private static var stop: sig_atomic_t = 0

    static var stopRequested: Bool { stop != 0 }

    static func install() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in WatchSignals.stop = 1 }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(SIGINT, &action, nil)
        sigaction(SIGTERM, &action, nil)
        // A parent may have started this process with the signals blocked (the mask is
        // inherited): unblock them.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}
