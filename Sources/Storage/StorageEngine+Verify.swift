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
    package func verify() -> [String] {
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
}
