#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ScrollbackFormat

/// One background thread that runs `work` each time it is woken, for I/O a commit should not
/// wait for (e.g. the log's allocation ahead). Wake-ups that arrive while `work` runs are
/// coalesced into one more run; a wake-up never blocks beyond a mutex and a condition signal.
///
/// `work` must not throw and must not call `stop()`; it may run once more after `wake()`
/// returns and never after `stop()` returns (unless `stop()` is called from `work`'s own
/// thread, e.g. by a deinit that its last reference triggers: the thread is then detached
/// and exits after the current run).
///
/// Thread-safety: `wake()` and `stop()` may be called from any thread; `stop()` is idempotent.
package final class BackgroundWorker: @unchecked Sendable {
    private let monitor = ConditionMutex()
    private var wanted = false
    private var stopping = false
    private var thread: pthread_t?
    private let work: @Sendable () -> Void
    /// Runs of `work` so far (for tests and statistics).
    package var runs: UInt64 { monitor.withLock { runCount } }
    private var runCount: UInt64 = 0

    /// Starts the thread. `name` says what it is for, in the `.io` error thrown when the
    /// system refuses a thread.
    package init(name: String, work: @escaping @Sendable () -> Void) throws {
        self.work = work
        let context = Unmanaged.passRetained(self).toOpaque()
        var created = pthread_t()
        let status = pthread_create(&created, nil, { raw in
            guard let raw else { return nil }
            Unmanaged<BackgroundWorker>.fromOpaque(raw).takeRetainedValue().loop()
            return nil
        }, context)
        guard status == 0 else {
            Unmanaged<BackgroundWorker>.fromOpaque(context).release()
            throw StorageError.io(path: name, operation: "pthread_create", errno: status)
        }
        thread = created
    }

    /// Asks for one more run of `work` (coalesced with any pending request).
    package func wake() {
        monitor.withLock {
            wanted = true
            monitor.signal()
        }
    }

    /// Stops the thread after its current run (pending requests are dropped) and waits for it.
    package func stop() {
        let joining: pthread_t? = monitor.withLock {
            stopping = true
            monitor.signal()
            defer { thread = nil }
            return thread
        }
        guard let joining else { return }
        if pthread_equal(joining, pthread_self()) != 0 {
            pthread_detach(joining)
        } else {
            pthread_join(joining, nil)
        }
    }

    private func loop() {
        monitor.lock()
        while true {
            while !wanted && !stopping { monitor.wait() }
            if stopping { break }
            wanted = false
            monitor.unlock()
            work()
            monitor.lock()
            runCount += 1
        }
        monitor.unlock()
    }
}
