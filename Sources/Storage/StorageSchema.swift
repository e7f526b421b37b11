import ScrollbackLog
import ScrollbackPager

/// What the layer above tells the storage engine: the shape of each tree it uses, where the
/// engine keeps its segment liveness accounting, the check that the state on disk is one this
/// build reads, and the one function that turns a logged transaction into tree changes.
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

    /// The schema's own trees (the engine adds its segment table, `liveness.segmentTable`).
    package var trees: [Tree]
    /// Where the engine keeps its liveness accounting (on disk: the schema picks the numbers).
    package var liveness: LivenessLayout
    /// Refuses a state this build cannot read (e.g. a newer format of the layer above):
    /// called by `open` after recovery, before the engine changes anything on its own.
    /// Receives the recovered state and the page file's path (for the error).
    package var checkState: @Sendable (CommittedState, String) throws -> Void
    /// Applies the schema's records of one complete logged transaction to the trees in
    /// `transaction` (a write transaction), reporting through the ledger which records become
    /// live (the trees point at them) and which stop being live. Errors abort the commit (and
    /// poison the engine: the transaction is already in the log) or abort recovery.
    package var apply: @Sendable (PageTransaction, SchemaRecords, inout LivenessLedger) throws -> Void

    package init(
        trees: [Tree], liveness: LivenessLayout,
        checkState: @escaping @Sendable (CommittedState, String) throws -> Void = { _, _ in },
        apply: @escaping @Sendable (PageTransaction, SchemaRecords, inout LivenessLedger) throws -> Void
    ) {
        self.trees = trees
        self.liveness = liveness
        self.checkState = checkState
        self.apply = apply
    }

    /// Every tree the engine creates and checks: the schema's, then the segment table.
    var allTrees: [Tree] {
        trees + [Tree(slot: liveness.segmentTable, keyWords: 1, valueSize: SegmentAccount.valueSize)]
    }
}

/// The records of one logged transaction that belong to the schema, in log order: every
/// record but the engine's own (retirements), which the engine applies itself.
///
/// Lifetime: valid only during the `apply` call it is passed to; copy the payloads you keep.
package struct SchemaRecords {
    let logged: LoggedTransaction
    let engineRecordType: UInt8

    /// Calls `body` with each record's position, type and payload. No allocation.
    package func forEach(_ body: (LogPosition, UInt8, UnsafeRawBufferPointer) throws -> Void) rethrows {
        try logged.forEachRecord { position, type, payload in
            if type != engineRecordType { try body(position, type, payload) }
        }
    }
}
