import ScrollbackLog
import ScrollbackPager

/// What the layer above tells the storage engine: the shape of each tree it uses and the one
/// function that turns a logged transaction into tree changes.
///
/// The same `apply` runs for a live commit and for recovery replay, so the state rebuilt after
/// a crash is, by construction, the state the commits produced. `apply` must be deterministic:
/// its effect may depend only on the transaction's records and positions and on the trees and
/// counters it reads through the page transaction.
package struct StorageSchema: Sendable {
    package struct Tree: Sendable, Equatable {
        package var slot: Int
        package var keyWords: Int
        package var valueSize: Int
        package init(slot: Int, keyWords: Int, valueSize: Int) {
            self.slot = slot
            self.keyWords = keyWords
            self.valueSize = valueSize
        }
    }

    package var trees: [Tree]
    /// Applies one complete logged transaction to the trees in `transaction` (a write
    /// transaction). Errors abort the commit (and poison the engine: the transaction is
    /// already in the log) or abort recovery.
    package var apply: @Sendable (PageTransaction, LoggedTransaction) throws -> Void

    package init(trees: [Tree], apply: @escaping @Sendable (PageTransaction, LoggedTransaction) throws -> Void) {
        self.trees = trees
        self.apply = apply
    }
}
