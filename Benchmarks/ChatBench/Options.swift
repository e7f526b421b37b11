import Foundation
import Scrollback
import ScrollbackWorkload

/// Command-line options of `scrollback-bench`.
struct Options {
    var configuration = DatasetConfiguration.reference
    var band: DatasetBand? = nil
    var quick = false
    var durability: Durability = .full
    var jsonPath: String? = nil
    var queries: Set<String>? = nil
    var engines = allEngineNames
    var directory = ".build/bench-data"
    var cacheBytes = 256 << 20
    /// Distinct parameter sets per query (each checked for agreement on every engine).
    var distinctParameters = 250
    /// Timed executions per query and engine (cycling over the parameter sets).
    var iterations = 1000
    /// Stop timing a query on an engine after this long (once it has `minimumSamples`).
    var secondsPerQuery = 2.0
    var minimumSamples = 50
    /// Untimed runs of a query on an engine just before each round of its timed runs (cycling
    /// over the first parameter sets), at most `warmUpSeconds` over all rounds: switching
    /// engines costs, so without them an engine's first timed runs find the CPU caches
    /// holding the other engines' pages (its first ~40 samples ran at 2–3× its p50, and a p99
    /// of 1,000 samples is the 10th slowest).
    var warmUpIterations = 100
    var warmUpSeconds = 0.2
    /// The timed runs of a read or search query are taken in this many rounds, each engine in
    /// turn per round (the order reversed every other round), each round after its own
    /// warm-up: a change of the machine's speed during a query (this machine's runs shift by
    /// about a third at times) then falls on every engine alike instead of on whichever one
    /// was timed then. 1: each engine's runs back to back, as before.
    var rounds = 5
    var sends = 200
    /// Durable sends to random conversations (`sendSpread`): enough that a store's
    /// checkpoints and (at the larger bands) seals happen during them.
    var spreadSends = 3000
    var writerThreads = 8
    var sendsPerWriter = 100
    var keep = false
    var force = false
    var loadBatch = 10_000
    /// Readers with a writer: reader thread counts, seconds per count, the writer's rate.
    var readerThreads = [1, 4, 16, 64]
    var concurrencySeconds = 3.0
    var writerRate = 200.0
    var simulatedUsers = 1_000
    /// Change delivery: subscribers of Scrollback's change stream while the writer sends.
    var deliverySubscribers = 100
    /// Scrollback's change-stream retention (nil: the store's default).
    var changeRetentionBytes: Int? = nil
    /// Phases left out (`concurrency`, `cold`, `compaction`).
    var skip: Set<String> = []
    /// Where RESULTS.md and bands.json go; nil: not written (see `resultsDefault`).
    var resultsDirectory: String? = nil
    var writeResults: Bool? = nil
    /// `reference`, `dev`, `staging`, `perf`, or `custom` (any other size).
    var bandLabel = "reference"

    static let usage = """
        usage: scrollback-bench [options]

        Generates the reference chat dataset (../shared/workload.md), validates it, loads it into
        Scrollback, SQLite (two schemas), LMDB and RocksDB, checks that every engine returns the
        same results for every sampled query, and prints p50/p99 per query with ratios; then
        readers with a writer, cold reads, compaction.

          --messages N         dataset size (conversations and users scale with it)
          --band B             reference | dev (5M) | staging (100M) | perf (300M)
          --seed S             dataset and sampling seed (default \(DatasetConfiguration.defaultSeed))
          --queries LIST       comma-separated query keys to run (default: all); see --list-queries
          --quick              small smoke run (3,000 messages): checks agreement, no timing claims
          --durability MODE    full (default: every commit fsyncs; SQLite synchronous=FULL)
                               | normal (SQLite synchronous=NORMAL, Scrollback .normal)
          --json PATH          write every figure, machine, commit and configuration as JSON
          --engines LIST       subset of scrollback,sqlite-rowid,sqlite-clustered,lmdb,rocksdb
          --cache-mb N         page-cache budget of every engine (default 256)
          --change-retention-mb N  Scrollback's StoreOptions.changeRetentionBytes (default: the store's, 16)
          --iterations N       timed runs per query and engine (default 1000)
          --seconds-per-query S  time cap per query and engine (default 2)
          --warm-up N          untimed runs per query and engine before each round of its
                               timed runs (default 100; at most 0.2 s over all rounds; 0: none)
          --rounds N           take a query's timed runs in N rounds, the engines in turn in
                               each (default 5; 1: each engine's runs back to back)
          --dir PATH           where the databases go (default .build/bench-data; wiped first)
          --keep               leave the databases on disk
          --threads LIST       reader threads of the readers-with-a-writer phase (default 1,4,16,64)
          --concurrency-seconds S  seconds per reader-thread count and engine (default 3)
          --writer-rate R      the writer's durable sends per second meanwhile (default 200)
          --skip LIST          leave out phases: concurrency, cold, compaction, search
          --results DIR        write RESULTS.md and update bands.json in DIR (default: Benchmarks/
                               for the reference size and the bands, when run from the repository)
          --no-results         do not write them
          --force              run even on a dataset that fails the workload rules (figures are
                               then not the benchmark's: for experiments only)
          --list-queries       print the query keys
        """

    static func parse(_ arguments: [String]) throws -> Options {
        var o = Options()
        var messages: Int? = nil
        var seed: UInt64? = nil
        var i = 0
        func value() throws -> String {
            i += 1
            guard i < arguments.count else { throw OptionError("\(arguments[i - 1]) needs a value") }
            return arguments[i]
        }
        func integer() throws -> Int {
            let text = try value().replacingOccurrences(of: "_", with: "").replacingOccurrences(of: ",", with: "")
            guard let n = Int(text), n >= 0 else { throw OptionError("\(arguments[i - 1]) needs a non-negative integer") }
            return n
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--messages": messages = try integer()
            case "--band":
                let text = try value()
                guard let b = DatasetBand(rawValue: text) else { throw OptionError("unknown band \(text)") }
                o.band = b
            case "--seed": seed = UInt64(try integer())
            case "--queries":
                o.queries = Set(try value().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
            case "--quick": o.quick = true
            case "--durability":
                switch try value() {
                case "full": o.durability = .full
                case "normal": o.durability = .normal
                default: throw OptionError("--durability is full or normal")
                }
            case "--json": o.jsonPath = try value()
            case "--engines":
                let list = try value().split(separator: ",").map(String.init)
                for e in list where !allEngineNames.contains(e) { throw OptionError("unknown engine \(e)") }
                o.engines = allEngineNames.filter(list.contains)
            case "--threads":
                o.readerThreads = try value().split(separator: ",").map {
                    guard let n = Int($0), n >= 1, n <= 1024 else { throw OptionError("--threads needs numbers 1…1024") }
                    return n
                }
            case "--concurrency-seconds":
                guard let s = Double(try value()), s > 0 else { throw OptionError("--concurrency-seconds needs a number") }
                o.concurrencySeconds = s
            case "--writer-rate":
                guard let r = Double(try value()), r >= 0 else { throw OptionError("--writer-rate needs a number") }
                o.writerRate = r
            case "--skip":
                o.skip = Set(try value().split(separator: ",").map(String.init))
                for k in o.skip where !["concurrency", "cold", "compaction", "search"].contains(k) { throw OptionError("unknown phase \(k)") }
            case "--results":
                o.resultsDirectory = try value()
                o.writeResults = true
            case "--no-results": o.writeResults = false
            case "--cache-mb": o.cacheBytes = try integer() << 20
            case "--change-retention-mb": o.changeRetentionBytes = try integer() << 20
            case "--iterations": o.iterations = max(1, try integer())
            case "--seconds-per-query":
                guard let s = Double(try value()), s > 0 else { throw OptionError("--seconds-per-query needs a number") }
                o.secondsPerQuery = s
            case "--warm-up":
                let n = try integer()
                guard n >= 0 else { throw OptionError("--warm-up needs a count ≥ 0") }
                o.warmUpIterations = n
            case "--rounds":
                let n = try integer()
                guard n >= 1 else { throw OptionError("--rounds needs a count ≥ 1") }
                o.rounds = n
            case "--dir": o.directory = try value()
            case "--keep": o.keep = true
            case "--force": o.force = true
            case "--list-queries":
                print(QueryKey.allCases.map { "\($0.rawValue)  \($0.title)" }.joined(separator: "\n"))
                exit(0)
            case "--help", "-h":
                print(usage)
                exit(0)
            default: throw OptionError("unknown option \(arguments[i])\n\n\(usage)")
            }
            i += 1
        }
        let s = seed ?? DatasetConfiguration.defaultSeed
        if let b = o.band {
            o.configuration = .band(b, seed: s)
            if let messages { o.configuration = .scaled(messages: messages, users: o.configuration.users, seed: s) }
        } else if let messages {
            o.configuration = messages == DatasetConfiguration.referenceMessages
                ? DatasetConfiguration(seed: s) : .scaled(messages: messages, seed: s)
        } else if o.quick {
            o.configuration = .scaled(messages: 3_000, seed: s)
        } else {
            o.configuration = DatasetConfiguration(seed: s)
        }
        if let b = o.band, messages == nil {
            o.bandLabel = b.rawValue
        } else {
            o.bandLabel = o.configuration.messages == DatasetConfiguration.referenceMessages && !o.quick ? "reference" : "custom"
        }
        if o.quick {
            o.distinctParameters = 25
            o.iterations = 25
            o.warmUpIterations = 5
            o.secondsPerQuery = 0.5
            o.minimumSamples = 5
            o.sends = 10
            o.spreadSends = 30
            o.sendsPerWriter = 5
            o.loadBatch = 500
            o.concurrencySeconds = 0.15
            o.simulatedUsers = 100
            o.deliverySubscribers = 4
        }
        if o.writeResults == nil {
            // Results of the reference size and of the bands are the project's; others are
            // experiments. A quick run never writes them.
            o.writeResults = o.bandLabel != "custom" && !o.quick && !o.force && o.queries == nil && o.skip.isEmpty
                && o.engines == allEngineNames && FileManager.default.fileExists(atPath: "Benchmarks/ChatBench")
        }
        if o.writeResults == true, o.resultsDirectory == nil { o.resultsDirectory = "Benchmarks" }
        if let q = o.queries {
            let known = Set(QueryKey.allCases.map(\.rawValue))
            for k in q where !known.contains(k) { throw OptionError("unknown query \(k) (see --list-queries)") }
        }
        try o.configuration.validate()
        return o
    }

    func wants(_ key: QueryKey) -> Bool { queries?.contains(key.rawValue) ?? true }
}

struct OptionError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
