import ScrollbackBTree
import ScrollbackFormat
import ScrollbackLog
import ScrollbackPager

extension StorageEngine {
    /// Walks every structure on a snapshot and returns the problems found (empty when
    /// healthy): each tree's invariants (order, separators, counts, depth, page checksums
    /// on read), page accounting (every page reachable, free or holding the free list,
    /// exactly once), and every log record of every segment (frame and block checksums,
    /// complete transactions). Never throws for damage: damage is what it reports.
    ///
    /// Cost: reads every page and every log segment once. Writers wait while the trees are
    /// walked (the page accounting must describe the same state as the walk); readers do not.
    /// A read-only engine checks the state it reads (`verifyReadOnly`).
    package func verify() -> [String] {
        if isReadOnly { return verifyReadOnly() }
        var problems: [String] = []
        withWriterRole {
            do {
                try read { snapshot in
                    do {
                        let reachable = try BTree.checkAllTrees(in: snapshot, file: pager.path)
                        do {
                            try pager.pageAccounting().check(reachable: reachable, file: pager.path)
                        } catch {
                            problems.append("page accounting: \(error)")
                        }
                    } catch {
                        problems.append("trees: \(error)")
                    }
                }
            } catch {
                problems.append("snapshot: \(error)")
            }
        }
        do {
            for segment in try log.listSegments() {
                do {
                    try log.forEachTransaction(inSegment: segment.id) { _ in }
                } catch {
                    problems.append("log segment \(segment.id): \(error)")
                }
            }
        } catch {
            problems.append("log: \(error)")
        }
        return problems
    }

    /// Checks the segment table of `snapshot` against the live records the schema found in
    /// it (`live`): every segment's live bytes match, a segment with live records has its
    /// file, and every segment live records point into has an entry. Reports each mismatch.
    package func verifyLiveness(_ live: LiveRecordTally, in snapshot: PageTransaction, report: (String) -> Void) throws {
        var expected = live.bytes
        let present = Set(try log.listSegments().map(\.id))
        for account in try Self.segmentTable(of: snapshot, schema: schema) {
            let id = account.id
            let bytes = expected.removeValue(forKey: id) ?? 0
            if account.liveBytes != bytes {
                report("segment \(id): \(account.liveBytes) live bytes recorded, messages point at \(bytes)")
            }
            if bytes > 0 && !present.contains(id) { report("segment \(id) holds live messages but its file is missing") }
        }
        for (id, bytes) in expected { report("segment \(id): messages point at \(bytes) bytes but it has no accounting entry") }
    }
}

/// The live record bytes per segment, as the schema's trees point at them (for
/// `verifyLiveness`).
package struct LiveRecordTally {
    var bytes: [UInt32: UInt64] = [:]

    package init() {}

    /// A tree entry points at the record at `position`, `frameBytes` long.
    package mutating func add(recordAt position: LogPosition, frameBytes: UInt64) {
        bytes[LogPositions.segment(position), default: 0] += frameBytes
    }
}
