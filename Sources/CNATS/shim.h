#ifndef SCROLLBACK_CNATS_SHIM_H
#define SCROLLBACK_CNATS_SHIM_H
// The NATS C client (Debian libnats-dev), for the replication module only (Sources/Replication).
#include <nats/nats.h>
#endif
