import Foundation

/// Runs `body(index)` on `count` real threads at once and waits for all of them.
/// (`DispatchQueue.concurrentPerform` caps concurrency at the number of cores, which on a
/// 2-core machine hides contention a multi-writer test wants to create.)
package func runOnThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        let thread = Thread {
            body(index)
            group.leave()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
    group.wait()
}

/// Runs `body` on a new real thread and returns at once. For work that blocks (a checkpoint
/// held at a gate): on a busy 2-core machine `DispatchQueue.global()` may have no free worker
/// for a second block while the first is blocked, and the test would wait on itself.
package func startThread(_ body: @escaping @Sendable () -> Void) {
    let thread = Thread { body() }
    thread.stackSize = 1 << 20
    thread.start()
}
