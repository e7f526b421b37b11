#ifndef SCROLLBACK_CPREFETCH_SHIM_H
#define SCROLLBACK_CPREFETCH_SHIM_H
/* A hint to the CPU to start loading the cache line at `address` (read, keep in all cache
   levels). Never faults, whatever the address; the Swift standard library has no prefetch. */
static inline void scrollback_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }
#endif
