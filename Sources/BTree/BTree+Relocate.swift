import ScrollbackFormat
import ScrollbackPager

extension BTree {
    /// Copies every page of this tree numbered `limit` or above to a page the transaction
    /// allocates, with the path above it (copy-on-write, as any write does; the pager hands
    /// out its lowest reusable page first), so that once the originals are reusable the page
    /// file's tail can be cut (`StorageEngine.compactPageFile`). Entries, order and counts are
    /// unchanged. Returns the number of pages copied.
    ///
    /// REQUIRES: a write transaction. Cost: reads every branch page and each page of the
    /// tree at or above `limit`; copies those and their ancestors (once each).
    package func relocatePages(atOrAbove limit: PageNumber) throws -> Int {
        let root = self.root
        guard root.rootPage != 0 else { return 0 }
        var copied = 0
        try withPath { frames in
            frames[0] = PathFrame(page: root.rootPage, index: 0)
            try relocate(depth: 0, level: Int(root.height) - 1, frames: frames, limit: limit, copied: &copied)
        }
        return copied
    }

    /// `frames[0...depth]` is the path to the page at `depth` (each parent's index names the
    /// child taken). Copies that page (and its unowned ancestors) if it lies at or above
    /// `limit` and this transaction does not own it yet, then visits its children.
    private func relocate(depth: Int, level: Int, frames: Path, limit: PageNumber, copied: inout Int) throws {
        let page = frames[depth].page
        if page >= limit && !transaction.isOwned(page) {
            let path = Path(rebasing: frames[0...depth])
            let unowned = path.filter { !transaction.isOwned($0.page) }.count
            try makeWritable(path, delta: 0)
            copied += unowned
        }
        guard level > 0 else { return }
        let count = try withPage(frames[depth].page, level: level) { _, count in count }
        for index in 0..<count {
            // Read from the page as it is now: a copy made below re-points this one.
            let child = try withPage(frames[depth].page, level: level) { bytes, _ in childPage(bytes, index) }
            frames[depth].index = index
            frames[depth + 1] = PathFrame(page: child, index: 0)
            try relocate(depth: depth + 1, level: level - 1, frames: frames, limit: limit, copied: &copied)
        }
    }
}
