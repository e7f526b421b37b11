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
