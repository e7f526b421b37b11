#ifndef SCROLLBACK_CSQLITE_SHIM_H
#define SCROLLBACK_CSQLITE_SHIM_H
#include <sqlite3.h>

/// SQLITE_TRANSIENT is a macro around a function-pointer cast that Swift cannot import.
static inline sqlite3_destructor_type csqlite_transient(void) { return SQLITE_TRANSIENT; }
/// SQLITE_STATIC likewise (the caller keeps the bound bytes alive until the step is done).
static inline sqlite3_destructor_type csqlite_static(void) { return SQLITE_STATIC; }
#endif
