// `LockProbe writer`: a store's writer for the multi-process tests of read-only opens
// (Tests/ProcessLockTests/LiveStoreTests.swift). It writes through `MessageStore` with small
// segments and checkpoint thresholds, so checkpoints, sealing and compaction happen often,
// and prints each acknowledged append on stdout.
//
//   LockProbe writer DIR --count N [--edits E] [--compact-every K] [--normal 1] [--timeout S]
//
// (--normal 1: `.normal` durability, for tests that need many writes and no acknowledgements.)
// Appends m1…mN (message mI in conversation c(I mod 5), createdAt I), printing "acked I" once
// each append returned (it is durable). After each append it also edits E messages of the
// conversation "churn" (a fixed set of 50 messages, rewritten over and over: pages are freed
// and reused without the store growing), and every 20 appends it appends, edits and deletes a
// message of the conversation "garbage" (dead records for compaction). Every K appends (default
// 300; 0: never) it compacts. Every 50 appends it prints
//   "stats <pagesAwaitingReaders> <pageFileBytes> <liveReaders> <oldestPid>"
// Then prints "done" and holds the store until stdin closes (or "release"), closes it and
// prints "closed". A refused open prints "refused <error text>" and exits 3.
#if canImport(Glibc)
import Glibc
#endif
import Scrollback

func runWriter(directory: String, options: [String: String]) throws {
    let count = options["--count"].flatMap { Int($0) } ?? 1000
    let edits = options["--edits"].flatMap { Int($0) } ?? 0
    let compactEvery = options["--compact-every"].flatMap { Int($0) } ?? 300
    var storeOptions = StoreOptions()
    storeOptions.segmentBytes = 64 << 10
    storeOptions.checkpointDirtyBytes = 256 << 10
    storeOptions.checkpointLogBytes = 512 << 10
    storeOptions.autoCompactGarbageRatio = nil
    storeOptions.lockLabel = "lock-probe writer"
    if options["--normal"] != nil { storeOptions.durability = .normal }
    let store: MessageStore
    do {
        store = try MessageStore(path: directory, options: storeOptions)
    } catch let error as ScrollbackError {
        if case .storeLocked = error {
            say("refused \(error)")
            exit(3)
        }
        throw error
    }
    say("writer \(getpid())")
    let filler = String(repeating: "x", count: 120)
    func stats() throws {
        let s = try store.statistics
        say("stats \(s.pagesAwaitingReaders) \(s.pageFileBytes) \(s.oldestReader?.liveReaders ?? 0) \(s.oldestReader?.oldestProcessID ?? 0)")
    }
    if edits > 0 {
        try store.write { batch in
            for k in 0..<50 {
                batch.append(Message(id: "churn-\(k)", conversation: "churn", sender: "w", createdAt: Int64(k), body: filler))
            }
        }
    }
    var churn = 0
    for i in 1...max(1, count) {
        try store.append(Message(id: "m\(i)", conversation: "c\(i % 5)", sender: "w", createdAt: Int64(i), body: "message \(i) \(filler)"))
        say("acked \(i)")
        for _ in 0..<edits {
            churn += 1
            try store.edit(id: "churn-\(churn % 50)", body: "edit \(churn) \(filler)")
        }
        if i % 20 == 0 {
            try store.append(Message(id: "g\(i)", conversation: "garbage", sender: "w", createdAt: Int64(i), body: filler))
            try store.edit(id: "g\(i)", body: "edited \(filler)")
            if i >= 40 { try store.delete(id: "g\(i - 20)") }
        }
        if compactEvery > 0 && i % compactEvery == 0 {
            _ = try store.compact()
            say("compacted \(i)")
        }
        if i % 50 == 0 { try stats() }
    }
    try stats()
    say("done")
    waitForRelease()
    try store.close()
    say("closed")
}
