import ScrollbackFormat

/// A run of consecutive free pages: `start ..< start + length`.
struct FreeRange: Equatable, Sendable {
    var start: PageNumber
    var length: UInt64
}

/// Encoding and decoding of free-list pages (spec/page-file.md, "Free-list pages").
///
/// The durable free list is a chain of pages; each holds sorted runs of free pages. The
/// common header's user word holds the next page of the chain (0 = last page).
enum FreeListPage {
    /// Collapses sorted, distinct page numbers into runs. Complexity: O(n).
    static func ranges(ofSorted pages: [PageNumber]) -> [FreeRange] {
        var result: [FreeRange] = []
        for page in pages {
            if let last = result.last, last.start + last.length == page {
                result[result.count - 1].length += 1
            } else {
                result.append(FreeRange(start: page, length: 1))
            }
        }
        return result
    }

    /// Number of free-list pages needed to hold `rangeCount` runs.
    static func pagesNeeded(rangeCount: Int, pageSize: Int) -> Int {
        let capacity = FreeListPageLayout.capacity(pageSize: pageSize)
        return (rangeCount + capacity - 1) / capacity
    }

    /// Writes a free-list page's user bytes and page number into `page` (pageSize bytes,
    /// zeroed first). The pager fills in the checksum and the write sequence when it writes it.
    static func encode(
        into page: UnsafeMutableRawBufferPointer, pageNumber: PageNumber, next: PageNumber,
        ranges: ArraySlice<FreeRange>
    ) {
        assert(ranges.count <= FreeListPageLayout.capacity(pageSize: page.count))
        page.initializeMemory(as: UInt8.self, repeating: 0)
        page.storeLE(PageType.freeList.rawValue, at: PageHeader.pageType)
        page.storeLE(UInt16(ranges.count), at: PageHeader.entryCount)
        page.storeLE(pageNumber, at: PageHeader.pageNumber)
        page.storeLE(next, at: PageHeader.userWord)
        var offset = FreeListPageLayout.firstEntry
        for range in ranges {
            page.storeLE(range.start, at: offset + FreeListPageLayout.entryStart)
            page.storeLE(range.length, at: offset + FreeListPageLayout.entryLength)
            offset += FreeListPageLayout.entrySize
        }
    }

    /// Decodes the user part of a free-list page whose checksum and page number were already
    /// verified. Returns the runs and the next page of the chain. Checks the page type, the
    /// entry count, that every run is non-empty and inside 2..<pageCount, and that the next
    /// pointer is 0 or inside 2..<pageCount.
    static func decode(
        _ page: UnsafeRawBufferPointer, pageCount: UInt64, file: String, fileOffset: UInt64
    ) throws -> (ranges: [FreeRange], next: PageNumber) {
        func corrupted(_ at: Int, _ reason: String) -> StorageError {
            .corrupted(file: file, offset: fileOffset + UInt64(at), reason: reason)
        }
        let type = page.loadLE(UInt8.self, at: PageHeader.pageType)
        guard type == PageType.freeList.rawValue else {
            throw corrupted(PageHeader.pageType, "expected a free-list page (type 3), found type \(type)")
        }
        let count = Int(page.loadLE(UInt16.self, at: PageHeader.entryCount))
        guard count <= FreeListPageLayout.capacity(pageSize: page.count) else {
            throw corrupted(PageHeader.entryCount, "free-list entry count \(count) exceeds the page capacity")
        }
        let next = page.loadLE(UInt64.self, at: PageHeader.userWord)
        guard next == 0 || (next >= PageFileLayout.metaPageCount && next < pageCount) else {
            throw corrupted(PageHeader.userWord, "free-list next page \(next) out of range")
        }
        var ranges: [FreeRange] = []
        ranges.reserveCapacity(count)
        for i in 0..<count {
            let offset = FreeListPageLayout.firstEntry + i * FreeListPageLayout.entrySize
            let start = page.loadLE(UInt64.self, at: offset + FreeListPageLayout.entryStart)
            let length = page.loadLE(UInt64.self, at: offset + FreeListPageLayout.entryLength)
            guard length >= 1, start >= PageFileLayout.metaPageCount, start < pageCount, length <= pageCount - start else {
                throw corrupted(offset, "free run \(start) + \(length) outside the page space 2..<\(pageCount)")
            }
            ranges.append(FreeRange(start: start, length: length))
        }
        return (ranges, next)
    }
}
