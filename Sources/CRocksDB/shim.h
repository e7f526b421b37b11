#ifndef SCROLLBACK_CROCKSDB_SHIM_H
#define SCROLLBACK_CROCKSDB_SHIM_H
// RocksDB's C API (Debian librocksdb-dev), for the benchmark's RocksDB peer only
// (Benchmarks/ChatBench).
#include <stddef.h>
#include <stdint.h>
#include <rocksdb/c.h>
#endif
