import ScrollbackIO

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The store's own threads for its `async` methods: each call runs the blocking synchronous
/// operation (a group commit that waits for `fdatasync`, a read that may miss the cache) on one
/// of them and resumes the caller's task from there, so no thread of Swift's cooperative pool
/// ever blocks on the store.
///
/// Threads are started on demand, up to `maxThreads`, when a call finds none idle; idle ones
/// park on a condition variable; `shutDown()` ends them. Several durable writes share one
/// group commit exactly when several threads are in the engine's commit at once, which is why
/// the pool may grow beyond the number of cores: a thread waiting for a sync costs no CPU.
///
/// Cancellation: a call whose task is cancelled before a thread has taken it ends with
/// `CancellationError` and runs nothing; once a thread has started it, it runs to completion
/// and its result (or error) is returned, cancelled or not.
///
/// Thread-safety: every method may be called from any thread. All mutable state, the jobs'
/// included, is guarded by `mutex`.
final class BlockingPool: @unchecked Sendable {
    let maxThreads: Int
    private let name: String
    private let mutex = ConditionMutex()
    // Guarded by `mutex`:
    private var queue = JobQueue()
    private var threads = 0
    /// Threads waiting on the condition.
    private var idle = 0
    /// Signals sent to idle threads that none has consumed yet: an idle thread is available
    /// to a new job only if `idle > wakeups` (otherwise a burst of jobs would all signal the
    /// same sleeping thread and start no other).
    private var wakeups = 0
    private var isShutDown = false
    /// Threads ever started (tests).
    private var started = 0

    init(maxThreads: Int, name: String = "scrollback") {
        self.maxThreads = max(1, maxThreads)
        self.name = name
    }

    /// One submitted call. `state` is guarded by the pool's mutex; `run` and `abandon` are
    /// called at most once between them, by whoever moves `state` out of `.queued`.
    class Job: @unchecked Sendable {
        enum State { case new, queued, running, ended }
        var state = State.new
        /// Runs the call and resumes its task with the result.
        func run() {}
        /// Resumes its task with `error` instead.
        func abandon(_ error: any Error) {}
    }

    /// A call resuming a continuation (one allocation per call besides the caller's closure).
    private final class ContinuationJob<R: Sendable>: Job, @unchecked Sendable {
        let body: @Sendable () throws -> R
        /// Set before `submit` publishes the job under the mutex.
        var continuation: UnsafeContinuation<R, any Error>?

        init(_ body: @escaping @Sendable () throws -> R) { self.body = body }

        override func run() { continuation?.resume(with: Result(catching: body)) }
        override func abandon(_ error: any Error) { continuation?.resume(throwing: error) }
    }

    /// Runs `body` on a pool thread and returns its result. Throws `CancellationError` if the
    /// task is cancelled before a thread took the call, `ScrollbackError.closed` after
    /// `shutDown()`.
    func run<R: Sendable>(_ body: @escaping @Sendable () throws -> R) async throws -> R {
        try Task.checkCancellation()
        let job = ContinuationJob(body)
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<R, any Error>) in
                job.continuation = continuation
                if let refusal = submit(job) { continuation.resume(throwing: refusal) }
            }
        } onCancel: {
            cancel(job)
        }
    }

    /// Queues `job` and makes sure a thread will take it; returns why it cannot run instead.
    private func submit(_ job: Job) -> (any Error)? {
        mutex.lock()
        defer { mutex.unlock() }
        if job.state == .ended { return CancellationError() }   // cancelled before submission
        if isShutDown {
            job.state = .ended
            return ScrollbackError.closed
        }
        job.state = .queued
        queue.push(job)
        if idle > wakeups {
            wakeups += 1
            mutex.signal()
        } else if threads < maxThreads, let failure = startThread(), threads == 0 {
            // No thread to take it, and none could be started.
            queue.removeAll()
            job.state = .ended
            return failure
        }
        return nil
    }

    /// A cancelled task's job: ends it if no thread has taken it yet.
    private func cancel(_ job: Job) {
        mutex.lock()
        switch job.state {
        case .new:
            job.state = .ended   // `submit` will refuse it
            mutex.unlock()
        case .queued:
            job.state = .ended   // a thread that pops it skips it
            mutex.unlock()
            job.abandon(CancellationError())
        case .running, .ended:
            mutex.unlock()
        }
    }

    /// Ends the pool: queued calls fail with `.closed`, running ones finish, and every thread
    /// exits once idle. Does not wait for them (it may be called from a pool thread).
    func shutDown() {
        mutex.lock()
        if isShutDown {
            mutex.unlock()
            return
        }
        isShutDown = true
        var abandoned: [Job] = []
        while let job = queue.pop() {
            guard job.state == .queued else { continue }
            job.state = .ended
            abandoned.append(job)
        }
        mutex.broadcast()
        mutex.unlock()
        for job in abandoned { job.abandon(ScrollbackError.closed) }
    }

    /// Threads started so far and threads running now (tests).
    var threadCounts: (started: Int, running: Int) { mutex.withLock { (started, threads) } }

    /// Calls waiting for a thread (tests).
    var queuedCount: Int { mutex.withLock { queue.count { $0.state == .queued } } }

    // MARK: Threads

    /// The body of every pool thread: take jobs until the pool is shut down and drained.
    private func workerLoop() {
        mutex.lock()
        while true {
            if let job = queue.pop() {
                guard job.state == .queued else { continue }   // cancelled while queued
                job.state = .running
                mutex.unlock()
                job.run()
                mutex.lock()
                job.state = .ended
                continue
            }
            if isShutDown { break }
            idle += 1
            repeat { mutex.wait() } while wakeups == 0 && !isShutDown
            if wakeups > 0 { wakeups -= 1 }
            idle -= 1
        }
        threads -= 1
        mutex.unlock()
    }

    /// Starts one more thread; returns why it could not. REQUIRES: mutex.
    private func startThread() -> ScrollbackError? {
        threads += 1
        started += 1
        let context = Unmanaged.passRetained(ThreadContext(pool: self)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        defer { pthread_attr_destroy(&attributes) }
        var thread = pthread_t()
        let status = pthread_create(&thread, &attributes, { raw in
            guard let raw else { return nil }
            let context = Unmanaged<ThreadContext>.fromOpaque(raw).takeRetainedValue()
            context.pool.workerLoop()
            return nil
        }, context)
        guard status == 0 else {
            // The queued jobs stay for the threads that exist, if any (see `submit`).
            Unmanaged<ThreadContext>.fromOpaque(context).release()
            threads -= 1
            started -= 1
            return .io(path: name, operation: "pthread_create", errno: status)
        }
        return nil
    }

    private final class ThreadContext {
        let pool: BlockingPool
        init(pool: BlockingPool) { self.pool = pool }
    }
}

/// A FIFO of jobs (amortized O(1) push and pop).
private struct JobQueue {
    private var items: [BlockingPool.Job] = []
    private var head = 0

    mutating func push(_ job: BlockingPool.Job) { items.append(job) }

    func count(where predicate: (BlockingPool.Job) -> Bool) -> Int {
        items[head...].count(where: predicate)
    }

    mutating func removeAll() {
        items.removeAll()
        head = 0
    }

    mutating func pop() -> BlockingPool.Job? {
        guard head < items.count else { return nil }
        let job = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64, head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return job
    }
}
