// swift-tools-version:6.1
// Scrollback: an embedded storage engine for chat messages.
// Layers (one target each; dependencies point down only; see README.md, "Design and format"):
//   Scrollback  public API: MessageStore, Message, cursors, options, errors
//   Messaging   the chat schema (trees, records, queries, compaction) on Storage and BTree only
//   Storage     the closed façade: commit + group commit, checkpoint, recovery, snapshots,
//               record reads, the segment lifecycle and liveness accounting, backup, verify
//   BTree       copy-on-write counted B+tree
//   Pager       page file, meta pages, free list, page cache
//   Log         append-only segments, group commit, recovery scan, LZ4 sealing
//   IO          file-system protocol: POSIX, in-memory, crash-simulating, read-only
//   Format      byte codecs, CRC32C, varints, on-disk constants (mirrors spec/)
// Above Scrollback: JSON (the message codec), Workload (dataset generator), the CLI (public
// API only; its dump files use the layers' own decoders), the crash tool and the benchmark.
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Scrollback",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Scrollback", targets: ["Scrollback"]),
        .library(name: "ScrollbackReplication", targets: ["ScrollbackReplication"]),
        .executable(name: "scrollback", targets: ["ScrollbackCLI"]),
        .executable(name: "scrollback-crash", targets: ["ScrollbackCrashTool"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The ecosystem's logging and metrics APIs (StoreOptions.logger, StoreOptions.metrics).
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLZ4",
            path: "Sources/CLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"])]
        ),
        // A header-only C module: the CPU's prefetch hint for the run scans (no library).
        .systemLibrary(name: "CPrefetch", path: "Sources/CPrefetch"),
        // A header-only C module: Linux's sync_file_range, which Swift's Glibc does not declare.
        .systemLibrary(name: "CWriteback", path: "Sources/CWriteback"),
        .target(name: "ScrollbackFormat", path: "Sources/Format", swiftSettings: strict),
        .target(name: "ScrollbackIO", dependencies: ["ScrollbackFormat", "CWriteback"], path: "Sources/IO", swiftSettings: strict),
        .target(
            name: "ScrollbackLog",
            dependencies: ["ScrollbackFormat", "ScrollbackIO", "CLZ4", "CPrefetch"],
            path: "Sources/Log", swiftSettings: strict),
        .target(
            name: "ScrollbackPager",
            dependencies: ["ScrollbackFormat", "ScrollbackIO"],
            path: "Sources/Pager", swiftSettings: strict),
        .target(
            name: "ScrollbackBTree",
            dependencies: ["ScrollbackFormat", "ScrollbackPager"],
            path: "Sources/BTree", swiftSettings: strict),
        .target(
            name: "ScrollbackStorage",
            dependencies: ["ScrollbackFormat", "ScrollbackIO", "ScrollbackLog", "ScrollbackPager", "ScrollbackBTree"],
            path: "Sources/Storage", swiftSettings: strict),

        .executableTarget(name: "FormatBench", dependencies: ["ScrollbackFormat"], path: "Benchmarks/FormatBench", swiftSettings: strict),
        .executableTarget(name: "SearchBench", dependencies: ["Scrollback"], path: "Benchmarks/SearchBench", swiftSettings: strict),
        .executableTarget(name: "PostingBench", dependencies: ["ScrollbackMessaging", "ScrollbackBTree"], path: "Benchmarks/PostingBench", swiftSettings: strict),
        .executableTarget(name: "BTreeBench", dependencies: ["ScrollbackBTree", "ScrollbackPager", "ScrollbackIO", "ScrollbackFormat"], path: "Benchmarks/BTreeBench", swiftSettings: strict),

        .target(
            name: "ScrollbackMessaging",
            dependencies: ["ScrollbackStorage", "ScrollbackBTree"],
            path: "Sources/Messaging", swiftSettings: strict),
        .target(
            name: "Scrollback",
            dependencies: [
                "ScrollbackMessaging", "ScrollbackStorage", "ScrollbackIO",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            path: "Sources/Scrollback", swiftSettings: strict),

        // Benchmark suite against SQLite (issue 4), LMDB and RocksDB (issue 13): dataset
        // generator + validator + JSONL, the system SQLite, LMDB and RocksDB libraries, and the
        // `scrollback-bench` executable.
        .systemLibrary(
            name: "CSQLite",
            path: "Sources/CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        // The benchmark's key-value peers (issue 13): LMDB and RocksDB through their C libraries.
        .systemLibrary(
            name: "CLMDB",
            path: "Sources/CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        .systemLibrary(
            name: "CRocksDB",
            path: "Sources/CRocksDB",
            pkgConfig: "rocksdb",
            providers: [.apt(["librocksdb-dev"])]
        ),
        // Replication through NATS JetStream (issue 16): the NATS C client (Debian libnats-dev)
        // and the module on the public API; the engine does not depend on it.
        .systemLibrary(
            name: "CNATS",
            path: "Sources/CNATS",
            pkgConfig: "libnats",
            providers: [.apt(["libnats-dev"])]
        ),
        .target(
            name: "ScrollbackReplication", dependencies: ["Scrollback", "ScrollbackJSON", "CNATS"], path: "Sources/Replication",
            swiftSettings: strict),
        .executableTarget(
            name: "scrollback-replication-bench", dependencies: ["Scrollback", "ScrollbackReplication"],
            path: "Benchmarks/ReplicationBench", swiftSettings: strict),
        // The one message JSON codec (and the JSON reader and writer under it), shared by the
        // command-line tool and the workload's JSON-lines files.
        .target(name: "ScrollbackJSON", dependencies: ["Scrollback"], path: "Sources/JSON", swiftSettings: strict),
        .testTarget(name: "JSONTests", dependencies: ["ScrollbackJSON", "Scrollback"], swiftSettings: strict),
        .target(name: "ScrollbackWorkload", dependencies: ["Scrollback", "ScrollbackJSON"], path: "Sources/Workload", swiftSettings: strict),
        // Durable appends from Swift tasks: sync calls, a hand-written thread pool, the async
        // API (issue 14; `make async-bench`).
        .executableTarget(
            name: "scrollback-async-bench", dependencies: ["Scrollback", "ScrollbackStorage"],
            path: "Benchmarks/AsyncBench", swiftSettings: strict),
        .executableTarget(
            name: "scrollback-bench",
            dependencies: ["Scrollback", "ScrollbackWorkload", "CSQLite", "CLMDB", "CRocksDB"],
            path: "Benchmarks/ChatBench", swiftSettings: strict),
        .testTarget(name: "WorkloadTests", dependencies: ["ScrollbackWorkload", "ScrollbackJSON", "Scrollback"], swiftSettings: strict),
        .executableTarget(
            name: "ScrollbackCLI",
            // The command-line tool stands on the public API (Scrollback); only its `dump`
            // files (Dump*.swift) import the layers below, for their own decoders.
            dependencies: [
                "Scrollback", "ScrollbackJSON", "ScrollbackWorkload", "CSQLite", "ScrollbackReplication",
                "ScrollbackMessaging", "ScrollbackBTree", "ScrollbackPager", "ScrollbackLog", "ScrollbackIO", "ScrollbackFormat",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/CLI", swiftSettings: strict),

        .target(
            name: "TestSupport",
            dependencies: ["ScrollbackFormat", "ScrollbackIO"],
            path: "Tests/TestSupport", swiftSettings: strict),
        .testTarget(name: "FormatTests", dependencies: ["ScrollbackFormat", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "IOTests", dependencies: ["ScrollbackIO", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "LogTests", dependencies: ["ScrollbackLog", "ScrollbackIO", "ScrollbackFormat", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "PagerTests", dependencies: ["ScrollbackPager", "ScrollbackIO", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "BTreeTests", dependencies: ["ScrollbackBTree", "ScrollbackPager", "ScrollbackIO", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "StorageTests",
            dependencies: ["ScrollbackStorage", "ScrollbackBTree", "ScrollbackPager", "ScrollbackLog", "ScrollbackIO", "TestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "MessagingTests",
            dependencies: ["Scrollback", "ScrollbackMessaging", "ScrollbackStorage", "ScrollbackBTree", "ScrollbackFormat", "ScrollbackLog", "ScrollbackIO", "TestSupport"],
            exclude: ["README.md"],
            swiftSettings: strict),
        .target(
            name: "ScrollbackReferenceModel", dependencies: ["Scrollback"], path: "Tests/ReferenceModel",
            swiftSettings: strict),
        .testTarget(
            name: "ScrollbackTests",
            dependencies: [
                "Scrollback", "ScrollbackMessaging", "ScrollbackStorage", "ScrollbackIO", "ScrollbackFormat", "TestSupport",
                "ScrollbackReferenceModel",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: strict),
        // Crash-point sweep and real-process kill test (issue 6): the engine, the
        // `scrollback-crash` driver of `make crash`, and the bounded run in `make test`.
        .target(
            name: "ScrollbackCrashSweep",
            dependencies: ["Scrollback", "ScrollbackIO", "ScrollbackFormat", "ScrollbackReferenceModel"],
            path: "Sources/CrashTool/Sweep", swiftSettings: strict),
        .executableTarget(
            name: "ScrollbackCrashTool",
            dependencies: ["ScrollbackCrashSweep", "Scrollback", "ScrollbackIO"],
            path: "Sources/CrashTool/Tool", swiftSettings: strict),
        .testTarget(
            name: "CrashSweepTests",
            dependencies: ["ScrollbackCrashSweep", "ScrollbackCrashTool", "Scrollback", "ScrollbackIO", "TestSupport"],
            exclude: ["README.md"],
            swiftSettings: strict),
        .testTarget(
            name: "FaultTests",
            dependencies: ["Scrollback", "ScrollbackMessaging", "ScrollbackStorage", "ScrollbackIO", "ScrollbackFormat", "TestSupport"],
            swiftSettings: strict),
        // Store locking and the reader table (issue 10): the unit and crash tests, and the
        // probe process the multi-process tests start (hold the store lock / a reader slot, or
        // write a store); the live-store tests also run the `scrollback` executable.
        .executableTarget(
            name: "LockProbe", dependencies: ["Scrollback", "ScrollbackStorage", "ScrollbackIO", "ScrollbackFormat"],
            path: "Tests/LockProbe", swiftSettings: strict),
        .testTarget(
            name: "ProcessLockTests",
            dependencies: [
                "Scrollback", "ScrollbackStorage", "ScrollbackIO", "ScrollbackFormat", "TestSupport", "LockProbe", "ScrollbackCLI",
            ],
            swiftSettings: strict),
        // Replication with real NATS servers and real processes (issue 16).
        .testTarget(
            name: "ReplicationTests", dependencies: ["Scrollback", "ScrollbackJSON", "ScrollbackReplication", "ScrollbackCLI", "TestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "CLITests",
            dependencies: ["ScrollbackCLI", "Scrollback", "ScrollbackJSON", "CSQLite"],
            swiftSettings: strict),
    ]
)

// `make docs` (the DocC catalog in Sources/Scrollback/Scrollback.docc): swift-docc-plugin only
// when SCROLLBACK_DOCS is set, because a build of the package builds the plugin's tools
// (SymbolKit among them) and every other build would pay for them. `make docs` builds in
// .build-docs.
if Context.environment["SCROLLBACK_DOCS"] != nil {
    package.dependencies.append(.package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"))
}

// libFuzzer targets (Fuzz/README.md). Added only when SCROLLBACK_FUZZ is set: they take
// their `main` from libFuzzer (LLVMFuzzerRunDriver), so they link only with
// -sanitize=fuzzer. They live in this package because they use `package` API, which a
// separate package cannot see. `make fuzz` builds them in .build-fuzz.
if Context.environment["SCROLLBACK_FUZZ"] != nil {
    let engine: [Target.Dependency] = [
        "Scrollback", "ScrollbackMessaging", "ScrollbackStorage", "ScrollbackBTree", "ScrollbackPager",
        "ScrollbackLog", "ScrollbackIO", "ScrollbackFormat",
    ]
    package.targets.append(.target(
        name: "FuzzSupport", dependencies: ["Scrollback", "ScrollbackFormat"], path: "Fuzz/Targets/Support",
        swiftSettings: strict))
    for name in ["decoders", "operations", "damage"] {
        package.targets.append(.executableTarget(
            name: "fuzz-\(name)", dependencies: engine + ["FuzzSupport"] + (name == "operations" ? ["ScrollbackReferenceModel"] : []),
            path: "Fuzz/Targets/\(name)", swiftSettings: strict))
    }
}
