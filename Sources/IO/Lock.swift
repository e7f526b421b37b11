#if SCROLLBACK_TSAN
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The engine's mutual-exclusion lock, in builds made for ThreadSanitizer
/// (`-Xswiftc -DSCROLLBACK_TSAN`): a pthread mutex, whose lock and unlock TSan intercepts.
/// `Synchronization.Mutex` is built on raw futexes that TSan on Linux does not model, so
/// under TSan every access it protects would be reported as a race. The locking discipline
/// (which state is guarded by which lock) is the same in both builds; only the primitive
/// differs, so a TSan run checks the discipline the release build uses.
package final class Lock<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

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
#else
import Synchronization

/// The engine's mutual-exclusion lock: `Synchronization.Mutex` (a futex-based lock, inlined
/// into every caller). Builds for ThreadSanitizer substitute a pthread mutex (see the
/// `SCROLLBACK_TSAN` branch of this file), because TSan does not model raw futexes.
package typealias Lock<Value> = Mutex<Value>
#endif
