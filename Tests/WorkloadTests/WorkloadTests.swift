import Scrollback
import ScrollbackJSON
import Testing

@testable import ScrollbackWorkload

/// Generator determinism, the validator's rules, and the JSONL files.
@Suite struct GeneratorTests {
    static let small = DatasetConfiguration.scaled(messages: 20_000, seed: 7)

    @Test func sameSeedSameStream() throws {
        let a = Array(try DatasetGenerator(Self.small))
        let b = Array(try DatasetGenerator(Self.small))
        #expect(a.count == Self.small.messages)
        #expect(a == b)
    }

    @Test func differentSeedDifferentStream() throws {
        var other = Self.small
        other.seed = 8
        let a = Array(try DatasetGenerator(Self.small).prefix(200))
        let b = Array(try DatasetGenerator(other).prefix(200))
        #expect(a != b)
    }

    @Test func streamIsOrderedAndWellFormed() throws {
        let g = try DatasetGenerator(Self.small)
        var previous = Int64.min
        var index = 0
        var ids = Set<String>()
        for m in g {
            #expect(m.createdAt > previous, "timestamps strictly increase")
            previous = m.createdAt
            #expect(m.id == "synmsg\(index + 1)")
            #expect(m.createdAt >= Self.small.startMillis && m.createdAt < Self.small.endMillis)
            #expect(!m.edited)
            if let r = m.replyTo { #expect(ids.contains(r), "replies point at an earlier message") }
            ids.insert(m.id)
            index += 1
        }
        #expect(index == Self.small.messages)
    }

    @Test func batchesMatchTheIteratorAndReportProgress() throws {
        let g = try DatasetGenerator(Self.small)
        var batched: [Message] = []
        var progress: [Int] = []
        g.forEachBatch(size: 3_000, progress: { done, total in
            #expect(total == Self.small.messages)
            progress.append(done)
        }) { batched.append(contentsOf: $0) }
        #expect(batched == Array(g))
        #expect(progress.last == Self.small.messages)
        #expect(progress == progress.sorted())
        #expect(progress.count == (Self.small.messages + 2_999) / 3_000)
    }

    @Test func catalogMembersAreValidAndDirectMessagesHaveTwoPeople() throws {
        let catalog = DatasetCatalog(Self.small)
        for c in 0..<catalog.conversationCount {
            let n = Int(catalog.memberCounts[c])
            for k in 0..<n {
                let u = catalog.member(k, of: c)
                #expect(u >= 0 && u < catalog.userCount)
            }
            if catalog.types[c] == .directMessage {
                #expect(n == 2)
                #expect(catalog.member(0, of: c) != catalog.member(1, of: c))
            }
        }
    }

    @Test func bandsAndScaling() {
        #expect(DatasetConfiguration.band(.reference) == .reference)
        let dev = DatasetConfiguration.band(.dev)
        #expect(dev.messages == 5_000_000 && dev.users == 5_000)
        #expect(DatasetConfiguration.band(.staging).messages == 100_000_000)
        #expect(DatasetConfiguration.band(.perf).messages == 300_000_000)
        #expect(DatasetConfiguration.scaled(messages: 977_561).conversations == 24_000)
    }

    @Test func badConfigurationsAreRejected() {
        #expect(throws: WorkloadError.self) { try DatasetGenerator(DatasetConfiguration(users: 1)) }
        #expect(throws: WorkloadError.self) { try DatasetGenerator(DatasetConfiguration(conversations: 10, messages: 5)) }
        #expect(throws: WorkloadError.self) { try DatasetGenerator(DatasetConfiguration(days: 0)) }
    }

    @Test func indexParsing() {
        #expect(DatasetCatalog.index(of: "synuser1", prefix: "synuser", limit: 10) == 0)
        #expect(DatasetCatalog.index(of: "synuser10", prefix: "synuser", limit: 10) == 9)
        #expect(DatasetCatalog.index(of: "synuser11", prefix: "synuser", limit: 10) == nil)
        #expect(DatasetCatalog.index(of: "synuser0", prefix: "synuser", limit: 10) == nil)
        #expect(DatasetCatalog.index(of: "synuser01", prefix: "synuser", limit: 10) == nil)
        #expect(DatasetCatalog.index(of: "synuser", prefix: "synuser", limit: 10) == nil)
        #expect(DatasetCatalog.index(of: "user1", prefix: "synuser", limit: 10) == nil)
    }
}

@Suite struct ValidatorTests {
    /// The reference dataset meets every rule (the full 977,561 messages: ~2 s in release).
    @Test func referenceDatasetPasses() throws {
        let g = try DatasetGenerator(.reference)
        var v = DatasetValidator(catalog: g.catalog)
        for m in g { v.observe(m) }
        let report = v.report()
        #expect(report.passed, "\(report.render())")
        #expect(report.figures.count == 14)
        let largest = report.figures.first { $0.name == "largest conversation" }?.number ?? 0
        #expect(largest >= 10_000)
    }

    @Test func smallDatasetFailsOnlyTheSizeRule() throws {
        let config = DatasetConfiguration.scaled(messages: 20_000, seed: 3)
        let g = try DatasetGenerator(config)
        var v = DatasetValidator(catalog: g.catalog)
        for m in g { v.observe(m) }
        let report = v.report()
        #expect(report.failures.map(\.name) == ["largest conversation"], "\(report.render())")
        #expect(report.render().contains("FAIL largest conversation"))
    }

    @Test func orphansDuplicatesAndBadContentFail() throws {
        let config = DatasetConfiguration.scaled(messages: 20_000, seed: 3)
        let g = try DatasetGenerator(config)
        var v = DatasetValidator(catalog: g.catalog)
        var first: Message?
        for m in g {
            if first == nil { first = m }
            v.observe(m)
        }
        var bad = try #require(first)
        v.observe(bad)  // duplicate id
        bad.id = "synmsg999999999"
        bad.sender = "someone"  // orphan sender
        bad.body = "hello world"  // foreign word, too short
        v.observe(bad)
        bad.id = "x1"
        bad.sender = "synuser1"
        bad.conversation = "nowhere"  // orphan conversation
        v.observe(bad)
        let failed = Set(v.report().failures.map(\.name))
        #expect(failed.isSuperset(of: ["ids", "integrity", "content", "messages", "users"]))
    }
}

/// The workload's JSON-lines files (the codec itself is tested in JSONTests).
@Suite struct JSONLTests {
    @Test func roundTripOfGeneratedMessages() throws {
        for m in try DatasetGenerator(.scaled(messages: 2_000, seed: 5)) {
            let line = MessageJSON.encode(m)
            #expect(!line.contains("\n"))
            #expect(try MessageJSON.decode(line: Array(line.utf8), .file).message == m)
        }
    }

    @Test func fileWriterAndReaderRoundTrip() throws {
        let path = "/tmp/scrollback-workload-test-\(UInt64.random(in: 0...UInt64.max)).jsonl"
        defer { _ = path.withCString { unlink($0) } }
        let g = try DatasetGenerator(.scaled(messages: 3_000, seed: 9))
        let written = try JSONLWriter.write(g, to: path)
        #expect(written == 3_000)
        let reader = try JSONLReader(path: path)
        var read: [Message] = []
        while let m = try reader.read() { read.append(m) }
        #expect(read == Array(g))
        #expect(reader.lineNumber == 3_000)
    }
}

#if canImport(Glibc)
import Glibc
#endif
