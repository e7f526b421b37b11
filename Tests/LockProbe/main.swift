// lock-probe: a small process for the multi-process tests of the store lock and the reader
// table (Tests/ProcessLockTests). It takes the lock or a reader slot through the real file
// system, says so on stdout, then holds it until stdin reaches end of file (or a line
// "release" arrives), the process is killed, or `--timeout` seconds pass (SIGALRM), so a
// test that dies never leaves a probe behind for long.
//
//   LockProbe lock DIR [--label L] [--timeout S]
//       prints "locked <pid>" and holds the store lock, or prints "refused <error text>"
//       and exits 3.
//   LockProbe read DIR --transaction T --position P [--timeout S]
//       opens the reader table as a reader, claims a slot for (T, P), prints
//       "reading <slot> <pid>" and holds it; on release zeroes the slot and prints "released".
//   LockProbe alive DIR
//       prints "alive" if some process holds the store lock, else "none".
//   LockProbe writer DIR --count N [--edits E] [--compact-every K]
//       a store's writer (Writer.swift): appends m1…mN, printing "acked I" for each.
//   LockProbe bench DIR [--iterations N]
//       a benchmark-style run (not a test): the cost per call of the writer's `publish` and
//       `oldestReader()` with 0…64 live readers (in this process, each its own handle), and
//       of a reader's claim + release, on the real file system.
#if canImport(Glibc)
import Glibc
#endif
import ScrollbackFormat
import ScrollbackIO
import ScrollbackStorage

func say(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { Glibc.write(1, $0.baseAddress, $0.count) }
        if n <= 0 { exit(4) }
        offset += n
    }
}

func fail(_ message: String) -> Never {
    let bytes = Array((message + "\n").utf8)
    _ = bytes.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    exit(2)
}

/// Blocks until stdin ends or a line "release" arrives.
func waitForRelease() {
    var line: [UInt8] = []
    var byte: UInt8 = 0
    while true {
        let n = read(0, &byte, 1)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        if byte == UInt8(ascii: "\n") {
            if String(decoding: line, as: UTF8.self) == "release" { return }
            line = []
        } else {
            line.append(byte)
        }
    }
}

func nanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// Runs `body` `count` times; the mean in nanoseconds per call.
func measure(_ count: Int, _ body: (Int) throws -> Void) rethrows -> Double {
    for index in 0..<min(count, 1000) { try body(index) }   // warm up
    let start = nanoseconds()
    for index in 0..<count { try body(index) }
    return Double(nanoseconds() - start) / Double(count)
}

func bench(directory: String, iterations: Int) throws {
    let fs = PosixFileSystem()
    try fs.createDirectory(directory)
    let lock = try StoreLock.acquire(fileSystem: fs, directory: directory, label: "lock-probe bench")
    defer { try? lock.release() }
    let writer = try ReaderTable.open(fileSystem: fs, directory: directory, role: .writer)
    defer { try? writer.close() }
    func show(_ what: String, _ nanoseconds: Double) {
        say(what + String(repeating: " ", count: max(1, 56 - what.count)) + String(Int(nanoseconds.rounded())) + " ns/call")
    }
    show("publish(durableEnd:checkpointTransaction:)", try measure(iterations) { index in
        try writer.publish(durableEnd: UInt64(index), checkpointTransaction: UInt64(index))
    })
    var readers: [ReaderTable] = []
    for live in [0, 1, 4, 16, 64] {
        while readers.count < live {
            let reader = try ReaderTable.open(fileSystem: fs, directory: directory, role: .reader)
            try reader.claimSlot(snapshot: ReaderSnapshot(transactionID: UInt64(readers.count + 1), logPosition: 24))
            readers.append(reader)
        }
        show("oldestReader() with \(live) live readers of 126 slots", try measure(iterations / 10) { _ in
            _ = try writer.oldestReader()
        })
    }
    for reader in readers { try reader.close() }
    let reader = try ReaderTable.open(fileSystem: fs, directory: directory, role: .reader)
    show("claimSlot + release (a reader's register/unregister)", try measure(iterations / 10) { index in
        try reader.claimSlot(snapshot: ReaderSnapshot(transactionID: UInt64(index), logPosition: 24))
        try reader.release()
    })
    show("update(snapshot:) (a reader's refresh)", try measure(iterations / 10) { index in
        if index == 0, reader.claimedSlot == nil { try reader.claimSlot(snapshot: ReaderSnapshot(transactionID: 0, logPosition: 24)) }
        try reader.update(snapshot: ReaderSnapshot(transactionID: UInt64(index), logPosition: 24))
    })
    try reader.close()
    show("ReaderTable.open + close (reader, table in use)", try measure(iterations / 100) { _ in
        try ReaderTable.open(fileSystem: fs, directory: directory, role: .reader).close()
    })
    show("StoreLock.isWriterAlive", try measure(iterations / 10) { _ in
        _ = try StoreLock.isWriterAlive(fileSystem: fs, directory: directory)
    })
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 2 else { fail("usage: LockProbe lock|read|alive DIR [options]") }
let command = arguments[0]
let directory = arguments[1]
var options: [String: String] = [:]
var index = 2
while index + 1 < arguments.count {
    options[arguments[index]] = arguments[index + 1]
    index += 2
}
alarm(UInt32(options["--timeout"].flatMap { UInt32($0) } ?? 60))
let fileSystem = PosixFileSystem()

do {
    switch command {
    case "lock":
        let lock: StoreLock
        do {
            lock = try StoreLock.acquire(fileSystem: fileSystem, directory: directory, label: options["--label"] ?? "lock-probe")
        } catch let error as StorageError {
            if case .storeLocked = error {
                say("refused \(error)")
                exit(3)
            }
            throw error
        }
        say("locked \(getpid())")
        waitForRelease()
        try lock.release()
        say("released")
    case "read":
        guard let transaction = options["--transaction"].flatMap({ UInt64($0) }),
            let position = options["--position"].flatMap({ UInt64($0) })
        else { fail("read needs --transaction T --position P") }
        let table = try ReaderTable.open(fileSystem: fileSystem, directory: directory, role: .reader)
        let slot = try table.claimSlot(snapshot: ReaderSnapshot(transactionID: transaction, logPosition: position))
        say("reading \(slot) \(getpid())")
        waitForRelease()
        try table.release()
        try table.close()
        say("released")
    case "bench":
        try bench(directory: directory, iterations: options["--iterations"].flatMap { Int($0) } ?? 200_000)
    case "writer":
        try runWriter(directory: directory, options: options)
    case "alive":
        say(try StoreLock.isWriterAlive(fileSystem: fileSystem, directory: directory) ? "alive" : "none")
    default:
        fail("unknown command \(command)")
    }
} catch {
    say("error \(error)")
    exit(1)
}
