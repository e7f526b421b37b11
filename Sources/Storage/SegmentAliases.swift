import ScrollbackIO
import ScrollbackLog

/// In memory: which sorted runs hold each sealed segment's live records, and from which
/// transaction on (spec/storage-records.md, "Reading a record").
///
/// A segment's binding starts at the commit that sealed it (or attached its run); a merge
/// adds a newer binding to the merged run. A snapshot of transaction `T` reads a segment's
/// records from the newest run bound at or before `T`: that run holds exactly the version
/// every entry of `T` pointing into the segment names (entries pointing into a sealed segment
/// never change, they only go). A snapshot older than every binding reads the log segment by
/// position (its file is removed only after such snapshots end).
///
/// Built from the segment table at open (every binding valid from transaction 0) and updated
/// by the engine after each commit that seals, attaches or merges. A read-only engine binds
/// from the segment table of each newer state it reads, from that state's (local) transaction
/// on, and resets to the newest state's table once no older snapshot is alive
/// (StorageEngine+ReadOnly.swift).
///
/// Thread-safety: one lock; `bindings(of:)` copies a small array out, `run(of:for:)` does not.
/// The table is an `IntegerMap` (no SipHash): `run(of:for:)` is once per read.
final class SegmentAliases: @unchecked Sendable {
    struct Binding: Equatable {
        var run: UInt32
        /// The first transaction that sees the binding.
        var from: UInt64
    }

    /// Per segment, newest binding first.
    private let table = Lock(IntegerMap<[Binding]>())

    init(_ accounts: [SegmentAccount]) {
        table.withLock { table in
            for account in accounts where account.run != 0 { table[UInt64(account.id)] = [Binding(run: account.run, from: 0)] }
        }
    }

    /// The bindings of `segment`, newest first (empty: read it from the log).
    @inline(__always)
    func bindings(of segment: UInt32) -> [Binding] {
        table.withLock { $0[UInt64(segment)] ?? [] }
    }

    /// The run a snapshot of `transaction` reads `segment` from, or nil for the log. One
    /// lock and one hash; nothing is copied out.
    func run(of segment: UInt32, for transaction: UInt64) -> UInt32? {
        table.withLock { table in
            guard let bindings = table[UInt64(segment)] else { return nil }
            return Self.run(in: bindings, for: transaction)
        }
    }

    /// The run a snapshot of `transaction` reads a segment with `bindings` from, or nil for
    /// the log.
    @inline(__always)
    static func run(in bindings: [Binding], for transaction: UInt64) -> UInt32? {
        for binding in bindings where binding.from <= transaction { return binding.run }
        return nil
    }

    func bind(_ segment: UInt32, to run: UInt32, from transaction: UInt64) {
        table.withLock { $0[UInt64(segment)] = [Binding(run: run, from: transaction)] + ($0[UInt64(segment)] ?? []) }
    }

    /// Every segment whose newest binding is one of `sources` is bound to `result` too.
    func merge(_ sources: Set<UInt32>, into result: UInt32, from transaction: UInt64) {
        table.withLock { table in
            for (segment, bindings) in table where sources.contains(bindings.first?.run ?? 0) {
                table[segment] = [Binding(run: result, from: transaction)] + bindings
            }
        }
    }

    /// Forgets bindings to runs whose files are gone (no snapshot can need them any more).
    func forget(runs: Set<UInt32>) {
        table.withLock { table in
            for (segment, bindings) in table {
                let kept = bindings.filter { !runs.contains($0.run) }
                table[segment] = kept.isEmpty ? nil : kept
            }
        }
    }

    /// Replaces every binding by those of `accounts`, valid from transaction 0. REQUIRES: no
    /// snapshot older than the state `accounts` come from is alive (a read-only engine's
    /// pruning).
    func reset(to accounts: [SegmentAccount]) {
        var fresh = IntegerMap<[Binding]>()
        for account in accounts where account.run != 0 { fresh[UInt64(account.id)] = [Binding(run: account.run, from: 0)] }
        table.withLock { $0 = fresh }
    }

    /// Runs some binding still names.
    var boundRuns: Set<UInt32> {
        table.withLock { Set($0.values.flatMap { $0.map(\.run) }) }
    }
}
