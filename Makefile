# Scrollback build entry points. `make test` is what CI runs (.ci/run).
SWIFT ?= swift
# Tests run in release mode: the randomized model tests and crash sweeps do millions of
# operations. Assertions inside the engine are `assert` (debug only); every check on bad
# input or bad bytes is an explicit throw and runs in both modes.
TEST_CONFIG ?= release


.PHONY: replication-bench test-replication
.PHONY: test build deps clean bench bench-deps bench-dev bench-staging bench-plot tsan fuzz fuzz-ci fuzz-build async-bench docs

deps:
	@if [ ! -f /usr/include/lz4.h ]; then \
		echo "liblz4-dev missing: installing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq liblz4-dev; \
	fi
	@# Replication (Sources/Replication) links the NATS C client; its tests run nats-server.
	@missing=""; [ -f /usr/include/nats/nats.h ] || missing="$$missing libnats-dev"; \
	command -v nats-server >/dev/null 2>&1 || missing="$$missing nats-server"; \
	if [ -n "$$missing" ]; then \
		echo "missing:$$missing: installing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

build: deps bench-deps
	$(SWIFT) build -c release

test: deps bench-deps
	$(SWIFT) build --build-tests -c $(TEST_CONFIG) -Xswiftc -enable-testing
	$(SWIFT) test --skip-build -c $(TEST_CONFIG) -Xswiftc -enable-testing
	@echo "benchmark smoke run: Scrollback, both SQLite schemas, LMDB and RocksDB must agree on every sampled query"
	$(SWIFT) build -c $(TEST_CONFIG) -Xswiftc -enable-testing --product scrollback-bench
	.build/$(TEST_CONFIG)/scrollback-bench --quick --dir .build/bench-quick

# The benchmark's peers link the system libsqlite3, liblmdb and librocksdb (Debian packages).
BENCH_PACKAGES = sqlite3.h:libsqlite3-dev lmdb.h:liblmdb-dev rocksdb/c.h:librocksdb-dev
bench-deps:
	@missing=""; for p in $(BENCH_PACKAGES); do \
		[ -f /usr/include/$${p%%:*} ] || missing="$$missing $${p#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "missing:$$missing: installing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# The comparison on the reference dataset (Benchmarks/README.md): release build, generate +
# validate, load Scrollback, both SQLite schemas, LMDB and RocksDB, run the query suite,
# readers with a writer, cold reads and compaction, print the tables, write
# Benchmarks/RESULTS.md and Benchmarks/bands.json, then draw the charts (bench-plot).
# BENCH_ARGS passes flags (e.g. BENCH_ARGS="--durability normal").
BENCH_JSON ?= .build/bench.json
bench: deps bench-deps
	$(SWIFT) build -c release --product scrollback-bench
	.build/release/scrollback-bench --json $(BENCH_JSON) $(BENCH_ARGS)
	@$(MAKE) --no-print-directory bench-plot || echo "bench-plot failed: the charts were not redrawn (the tables are in Benchmarks/RESULTS.md)"

# The dev band (5M messages) with every engine, and the staging band (100M messages) with
# Scrollback and RocksDB (hours; about 45 GB of disk, no compaction phase). LMDB at 100M
# needs about 40 GB where RocksDB needs 12 (STAGING_ENGINES=scrollback,lmdb where the disk
# has room: the run checks first). Each adds its figures to Benchmarks/bands.json and the bands
# table of Benchmarks/RESULTS.md, and writes Benchmarks/RESULTS-<band>.md.
bench-dev: deps bench-deps
	$(SWIFT) build -c release --product scrollback-bench
	.build/release/scrollback-bench --band dev --json .build/bench-dev.json $(BENCH_ARGS)
	@$(MAKE) --no-print-directory bench-plot BENCH_PLOT_RUN=.build/bench-dev.json BENCH_PLOT_OUT=Benchmarks/bench-dev.png || true
STAGING_ENGINES ?= scrollback,rocksdb
bench-staging: deps bench-deps
	$(SWIFT) build -c release --product scrollback-bench
	.build/release/scrollback-bench --band staging --engines $(STAGING_ENGINES) --skip compaction --results Benchmarks \
		--json .build/bench-staging.json $(BENCH_ARGS)
	@$(MAKE) --no-print-directory bench-plot BENCH_PLOT_RUN=.build/bench-staging.json BENCH_PLOT_OUT=Benchmarks/bench-staging.png || true

# The charts: per query p50/p99 per engine (from the run's JSON) and the bands (from
# Benchmarks/bands.json). Installs matplotlib from PyPI when it is missing.
BENCH_PLOT_RUN ?= $(BENCH_JSON)
BENCH_PLOT_OUT ?= Benchmarks/bench.png
bench-plot:
	@python3 -c "import matplotlib" 2>/dev/null || python3 -m pip install -q matplotlib
	python3 Benchmarks/plot.py $(BENCH_PLOT_RUN) -o $(BENCH_PLOT_OUT) --bands Benchmarks/bands.json --bands-output Benchmarks/bands.png

# Durable appends from Swift tasks three ways (sync calls, a hand-written 16-thread pool, the
# async API) with a 1 ms timer task's lag, and the async hop on reads (issue 14; README, "In a service").
ASYNC_BENCH_ARGS ?=
async-bench: deps
	$(SWIFT) build -c release --product scrollback-async-bench
	.build/release/scrollback-async-bench $(ASYNC_BENCH_ARGS)

# Replication through a real three-node JetStream cluster (issue 16; README, "Replication"):
# the cost on the durable send, the time until JetStream acknowledged a send, follower lag and a
# follower's apply rate. REPLICATION_BENCH_ARGS passes flags (e.g. "--rate 500 --seconds 20").
REPLICATION_BENCH_ARGS ?=
replication-bench: deps
	$(SWIFT) build -c release --product scrollback-replication-bench
	.build/release/scrollback-replication-bench $(REPLICATION_BENCH_ARGS)

# The replication tests alone (they also run in `make test`): real nats-server processes.
test-replication: deps bench-deps
	$(SWIFT) build --build-tests -c $(TEST_CONFIG) -Xswiftc -enable-testing
	$(SWIFT) test --skip-build -c $(TEST_CONFIG) -Xswiftc -enable-testing --filter ReplicationTests

# The DocC catalog (Sources/Scrollback/Scrollback.docc) and the public API's documentation, with
# swift-docc-plugin (added to the package by SCROLLBACK_DOCS; built in .build-docs), into
# .build/docs: a static site (serve the directory, open /documentation/scrollback). Fails on
# any warning (a broken symbol link, a missing article).
docs: deps
	SCROLLBACK_DOCS=1 $(SWIFT) package --scratch-path .build-docs --allow-writing-to-directory .build/docs \
		generate-documentation --target Scrollback --output-path .build/docs --transform-for-static-hosting \
		--warnings-as-errors

# Every concurrency test under ThreadSanitizer. The engine's Lock is a pthread mutex, which TSan
# sees (Sources/IO/Lock.swift); -DSCROLLBACK_TSAN marks the build for code that must differ
# under TSan (none at present). Nothing is suppressed. Fails on any report.
TSAN_TESTS ?= ConcurrencyTests|concurrentWritersShareSyncs|LogConcurrencyTests|groupCommit|AsyncAPITests|ObservabilityTests
tsan: deps bench-deps
	$(SWIFT) build --build-tests --scratch-path .build-tsan --sanitize=thread -Xswiftc -DSCROLLBACK_TSAN
	TSAN_OPTIONS=halt_on_error=1 $(SWIFT) test --skip-build --scratch-path .build-tsan --sanitize=thread \
		-Xswiftc -DSCROLLBACK_TSAN --filter '$(TSAN_TESTS)'

# Long crash testing (issue 6; Tests/CrashSweepTests/README.md): the crash-point sweep for
# CRASH_SECONDS from workload seed CRASH_SEED (every I/O step of each workload in every crash
# mode, plus fsync EIO / ENOSPC / write EIO faults), then CRASH_KILLS SIGKILLs of a real
# writer process. Fails on any failure; each failure prints the command that replays it.
CRASH_SECONDS ?= 600
CRASH_SEED ?= 1
CRASH_KILLS ?= 200
# Crash modes per step in the long sweep (1…6, rotating so each mode gets an equal share;
# make test runs all six at every step of its workloads). 2 favours more distinct workloads.
CRASH_MODES ?= 2
.PHONY: crash
crash: deps
	$(SWIFT) build -c release --product scrollback-crash
	.build/release/scrollback-crash sweep --seconds $(CRASH_SECONDS) --seed $(CRASH_SEED) --modes-per-point $(CRASH_MODES)
	.build/release/scrollback-crash kill --kills $(CRASH_KILLS) --seed $(CRASH_SEED)

# libFuzzer targets (Fuzz/README.md), built with -sanitize=fuzzer,address in .build-fuzz
# (SCROLLBACK_FUZZ=1 adds them to the package; lld because gold fails on the fuzzer runtime).
# Each target runs FUZZ_SECONDS on its seed corpus (Fuzz/Corpus/<t>) plus the inputs it grew
# before (Fuzz/artifacts/corpus/<t>); a crash is saved as Fuzz/artifacts/<t>/crash-<sha1> and fails the run.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?= decoders operations damage
FUZZ_ARGS ?=
FUZZ_MAX_LEN_decoders = 70000
FUZZ_MAX_LEN_operations = 512
FUZZ_MAX_LEN_damage = 128
FUZZ_BUILD = SCROLLBACK_FUZZ=1 $(SWIFT) build -c release --scratch-path .build-fuzz \
	-Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld -Xswiftc -enable-testing
fuzz-build: deps
	for t in $(FUZZ_TARGETS); do $(FUZZ_BUILD) --product fuzz-$$t || exit 1; done
fuzz-run-%: fuzz-build
	mkdir -p Fuzz/artifacts/$* Fuzz/artifacts/corpus/$*
	SWIFT_BACKTRACE=enable=no .build-fuzz/release/fuzz-$* -max_total_time=$(FUZZ_SECONDS) -timeout=60 \
		-rss_limit_mb=4096 -max_len=$(FUZZ_MAX_LEN_$*) -print_final_stats=1 -artifact_prefix=Fuzz/artifacts/$*/ \
		$(FUZZ_ARGS) Fuzz/artifacts/corpus/$* Fuzz/Corpus/$*
fuzz: $(addprefix fuzz-run-,$(FUZZ_TARGETS))
# What CI runs: every target for 30 seconds.
fuzz-ci:
	$(MAKE) fuzz FUZZ_SECONDS=30

clean:
	rm -rf .build
