import ScrollbackFormat

/// Why a store component refuses writes after a failed write or sync (a failed `fsync` is
/// never retried: the kernel may have dropped the data; spec/README.md, A6). The first cause
/// wins and stays until the component is reopened; reads are not affected.
///
/// A value type, kept under the lock that already guards its owner's state (the log's sync
/// monitor, the pager's core, the storage engine's latch lock), so setting and checking it
/// never takes a lock of its own.
package struct PoisonLatch: Sendable, Equatable {
    /// The first failure, or nil while healthy.
    package private(set) var cause: String?

    package init() {}

    package var isLatched: Bool { cause != nil }

    /// Records `cause` unless an earlier failure is recorded already.
    package mutating func latch(_ cause: @autoclosure () -> String) {
        if self.cause == nil { self.cause = cause() }
    }

    /// Throws `.poisoned(cause:)` once latched.
    package func check() throws {
        if let cause { throw StorageError.poisoned(cause: cause) }
    }
}
