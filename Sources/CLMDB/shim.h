#ifndef SCROLLBACK_CLMDB_SHIM_H
#define SCROLLBACK_CLMDB_SHIM_H
// LMDB (Debian liblmdb-dev), for the benchmark's LMDB peer only (Benchmarks/ChatBench).
#include <lmdb.h>
#endif
