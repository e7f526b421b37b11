#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The engine's mutual-exclusion lock: a value guarded by a pthread mutex (the platform's
/// default, non-recursive type).
///
/// Thread-safety: safe from any thread; not reentrant (locking it again from the thread that
/// holds it deadlocks). `withLockIfAvailable` never blocks.
///
/// Why a pthread mutex and not `Synchronization.Mutex`: on Linux `Mutex` is a
/// priority-inheritance futex (`FUTEX_LOCK_PI`/`FUTEX_UNLOCK_PI`). Under contention its unlock
/// goes through the kernel and hands the lock to a waiter, which owns it before it is even
/// running; with more runnable threads than cores the lock then sits with a thread waiting
/// for a CPU while the others spin and sleep behind it (a lock convoy). The page cache's lock,
/// taken for every page a reader touches, held 16 reader threads on 2 cores to about 600
/// reads/s (4 threads: 11,000–15,000) in the readers-with-a-writer benchmark: `strace` counted
/// about 36 `FUTEX_LOCK_PI` calls per read, `perf` put 59% of the samples in
/// `Mutex._lockSlow`, and one of the two cores stayed idle. glibc's default mutex lets a
/// running thread take a released lock (no hand-off) and only wakes a sleeper: the same run
/// does 15,000–19,000 reads/s at 16 and 64 threads. ThreadSanitizer intercepts pthread
/// mutexes too, so TSan runs (`make tsan`) check the primitive the release build runs.
///
/// The class is public (its members are not) only so that `withLock` is inlined and
/// specialized in the modules above: Swift 6.3 emits the `@inlinable` bodies of a package
/// type's members into no client module, so each call went through the generic method, its
/// closure and type metadata (`perf`: about 1% of a short read, besides the calls).
///
/// Cost: `withLock` is `@inlinable` (callers get it specialized). Single-threaded, the
/// pthread calls and the lock's own heap object cost the reference queries about 10–20%
/// against `Mutex` stored inline (A/B runs, ratios to SQLite: unread count 4.3–4.8× against
/// 5.0–5.8×, latest 20 1.5–1.6× against 1.6–1.9×; the spread between runs is of the same
/// order). Tried and measured: an inlined compare-and-swap on a futex word with a short spin
/// before sleeping (Drepper's mutex) — single-threaded the same as this, and at 16 and 64
/// reader threads a 2–3× worse read p99 (32 and 121 ms against 12–20 and 46–59 ms).
public final class Lock<Value>: @unchecked Sendable {
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Exclusivity is not checked at run time: the mutex is what serializes access. The
    /// dynamic check (`swift_beginAccess`/`swift_endAccess`, a thread-local lookup each) on
    /// every `withLock` was about a tenth of an unread count's samples in `perf`. (Keeping
    /// the value behind a pointer of its own instead made some client modules allocate
    /// `Lock<Void>` at the old instance size with Swift 6.3 — heap corruption — so the value
    /// stays a stored property.)
    @usableFromInline @exclusivity(unchecked) var value: Value

    package init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inlinable
    package func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if MemoryLayout<Value>.size == 0 {
            // A zero-sized value (`Lock<Void>`) has no storage of its own: TSan attributes its
            // `inout` access to the object's address, which other threads read (to call this
            // method) before they lock, and would report a race that is not there.
            var nothing = value
            return try body(&nothing)
        }
        return try body(&value)
    }

    /// Runs `body` if the lock is free now (nil otherwise, also when this thread holds it).
    @inlinable
    package func withLockIfAvailable<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result? {
        guard pthread_mutex_trylock(mutex) == 0 else { return nil }
        defer { pthread_mutex_unlock(mutex) }
        if MemoryLayout<Value>.size == 0 {
            var nothing = value
            return try body(&nothing)
        }
        return try body(&value)
    }
}
