/// What a `MessageStore` runs beside its database: the threads of its `async` methods
/// (`StoreOptions.asyncThreads`).
///
/// Thread-safety: any thread.
final class StoreServices: Sendable {
    let pool: BlockingPool

    init(options: StoreOptions) {
        pool = BlockingPool(maxThreads: options.asyncThreads, name: "scrollback-io")
    }

    /// Stops the threads (queued async calls fail with `.closed`; running ones finish).
    func shutDown() {
        pool.shutDown()
    }
}
