import Scrollback

/// Streams the messages of a dataset in a deterministic order: ascending `createdAt`
/// (timestamps are unique across the dataset, one millisecond apart at least), message ids
/// `synmsg1`, `synmsg2`, … in that order.
///
/// Streaming: the dataset is produced one hour of simulated time at a time. Memory is
/// O(conversations + users + messages in one hour), never O(messages), so the 100M and
/// 300M bands generate in bounded memory.
///
/// How a message is made: every conversation gets one message at a random time (so none is
/// empty); the other messages pick their hour by the diurnal curve (`hourWeights`, peaks at
/// 9–11 and 18–20 h UTC, weekends at 85%), a uniform millisecond in it, and their
/// conversation by the catalog's expected sizes (an alias table). Senders are members of
/// the conversation; kinds are TEXT 85%, IMAGE 10%, FILE 2%, AUDIO 1.5%, VIDEO 1.5%; bodies
/// are 20…200 characters of dictionary words; 5% of messages reply to the previous message
/// of their conversation.
///
/// Thread-safety: a value; iterate it from one thread at a time (each iterator is independent).
package struct DatasetGenerator: Sequence, Sendable {
    package let catalog: DatasetCatalog
    package var configuration: DatasetConfiguration { catalog.configuration }

    /// The 11-word dictionary of `workload.md`.
    package static let dictionary = ["hello", "test", "message", "chat", "hey", "ok", "thanks", "sure", "great", "yes", "no"]

    /// Relative message rate per hour of day (UTC), 0…23.
    package static let hourWeights: [Double] = [
        0.25, 0.18, 0.14, 0.12, 0.12, 0.16, 0.30, 0.55, 0.80, 1.00, 1.00, 0.95,
        0.80, 0.75, 0.75, 0.72, 0.72, 0.80, 0.98, 1.00, 0.95, 0.75, 0.55, 0.38,
    ]
    package static let weekendFactor = 0.85

    /// Throws `WorkloadError` for an invalid configuration.
    package init(_ configuration: DatasetConfiguration = .reference) throws {
        try configuration.validate()
        self.catalog = DatasetCatalog(configuration)
    }

    package init(catalog: DatasetCatalog) {
        self.catalog = catalog
    }

    package func makeIterator() -> Iterator { Iterator(catalog: catalog) }

    /// Hands the whole dataset to `body` in batches of at most `batchSize` messages (in
    /// stream order), calling `progress(messagesSoFar, totalMessages)` after each batch.
    package func forEachBatch(
        size batchSize: Int = 10_000,
        progress: ((Int, Int) -> Void)? = nil,
        _ body: ([Message]) throws -> Void
    ) rethrows {
        var iterator = makeIterator()
        var batch: [Message] = []
        batch.reserveCapacity(Swift.max(1, batchSize))
        var done = 0
        let total = configuration.messages
        while let message = iterator.next() {
            batch.append(message)
            if batch.count >= batchSize {
                try body(batch)
                done += batch.count
                batch.removeAll(keepingCapacity: true)
                progress?(done, total)
            }
        }
        if !batch.isEmpty {
            try body(batch)
            done += batch.count
            progress?(done, total)
        }
    }

    /// The message stream.
    package struct Iterator: IteratorProtocol {
        private let catalog: DatasetCatalog
        private let conversationAlias: AliasTable?
        private let sliceDraws: [Int]
        private let sliceCount: Int
        private let start: Int64
        private var creations: [Entry]
        private var creationPosition = 0
        private var slice = 0
        private var buffer: [Entry] = []
        private var bufferPosition = 0
        private var placementRandom: WorkloadRandom
        private var contentRandom: WorkloadRandom
        private var lastMessageOf: [Int32]
        private var previousTime: Int64 = Int64.min
        /// Messages produced so far.
        package private(set) var produced = 0
        private var wordBytes: [[UInt8]]

        private struct Entry: Comparable {
            var time: Int64
            var conversation: Int32
            static func < (a: Entry, b: Entry) -> Bool {
                a.time != b.time ? a.time < b.time : a.conversation < b.conversation
            }
        }

        static let hourMillis: Int64 = 3_600_000

        init(catalog: DatasetCatalog) {
            self.catalog = catalog
            let configuration = catalog.configuration
            start = configuration.startMillis
            sliceCount = configuration.days * 24
            let n = catalog.conversationCount
            let draws = configuration.messages - n

            // Hour weights, absolute hour of day and weekday from the epoch.
            var sliceWeights = [Double](repeating: 0, count: sliceCount)
            for s in 0..<sliceCount {
                let absoluteHour = Int((start / Iterator.hourMillis)) + s
                let hourOfDay = ((absoluteHour % 24) + 24) % 24
                let weekday = ((absoluteHour / 24 + 4) % 7 + 7) % 7  // 0 = Sunday (1970-01-01 was a Thursday)
                let factor = (weekday == 0 || weekday == 6) ? DatasetGenerator.weekendFactor : 1
                sliceWeights[s] = DatasetGenerator.hourWeights[hourOfDay] * factor
            }
            // Exact counts per slice by largest remainder.
            let weightSum = sliceWeights.reduce(0, +)
            var counts = [Int](repeating: 0, count: sliceCount)
            var remainders: [(Double, Int)] = []
            remainders.reserveCapacity(sliceCount)
            var assigned = 0
            for s in 0..<sliceCount {
                let exact = Double(draws) * sliceWeights[s] / weightSum
                counts[s] = Int(exact)
                assigned += counts[s]
                remainders.append((exact - Double(counts[s]), s))
            }
            remainders.sort { $0.0 != $1.0 ? $0.0 > $1.0 : $0.1 < $1.1 }
            var k = 0
            while assigned < draws {
                counts[remainders[k % sliceCount].1] += 1
                assigned += 1
                k += 1
            }
            sliceDraws = counts

            var weights = catalog.expectedMessages.map { Swift.max(0, $0 - 1) }
            if weights.reduce(0, +) <= 0 { weights = [Double](repeating: 1, count: n) }
            conversationAlias = draws > 0 ? AliasTable(weights: weights) : nil

            // One message per conversation at a random time on the same curve.
            let sliceAlias = AliasTable(weights: sliceWeights)
            var creationRandom = WorkloadRandom(seed: configuration.seed, stream: 2)
            var creations = [Entry]()
            creations.reserveCapacity(n)
            for c in 0..<n {
                let s = sliceAlias.sample(&creationRandom)
                let t = start + Int64(s) * Iterator.hourMillis + Int64(creationRandom.below(Int(Iterator.hourMillis)))
                creations.append(Entry(time: t, conversation: Int32(c)))
            }
            creations.sort()
            self.creations = creations
            placementRandom = WorkloadRandom(seed: configuration.seed, stream: 3)
            contentRandom = WorkloadRandom(seed: configuration.seed, stream: 4)
            lastMessageOf = [Int32](repeating: -1, count: n)
            wordBytes = DatasetGenerator.dictionary.map { Array($0.utf8) }
        }

        private mutating func fillSlice() -> Bool {
            while slice < sliceCount {
                let sliceStart = start + Int64(slice) * Iterator.hourMillis
                let sliceEnd = sliceStart + Iterator.hourMillis
                buffer.removeAll(keepingCapacity: true)
                bufferPosition = 0
                while creationPosition < creations.count, creations[creationPosition].time < sliceEnd {
                    buffer.append(creations[creationPosition])
                    creationPosition += 1
                }
                if let alias = conversationAlias {
                    for _ in 0..<sliceDraws[slice] {
                        let t = sliceStart + Int64(placementRandom.below(Int(Iterator.hourMillis)))
                        let c = alias.sample(&placementRandom)
                        buffer.append(Entry(time: t, conversation: Int32(c)))
                    }
                }
                slice += 1
                if !buffer.isEmpty {
                    buffer.sort()
                    return true
                }
            }
            return false
        }

        package mutating func next() -> Message? {
            if bufferPosition >= buffer.count {
                guard fillSlice() else { return nil }
            }
            let entry = buffer[bufferPosition]
            bufferPosition += 1
            let index = produced
            produced += 1
            // Unique, strictly increasing timestamps across the stream.
            let time = Swift.max(entry.time, previousTime &+ 1)
            previousTime = time
            let c = Int(entry.conversation)

            let memberCount = Int(catalog.memberCounts[c])
            let sender = catalog.member(contentRandom.below(memberCount), of: c)
            let roll = contentRandom.below(1000)
            let kind: MessageKind
            switch roll {
            case ..<850: kind = .text
            case ..<950: kind = .image
            case ..<970: kind = .file
            case ..<985: kind = .audio
            default: kind = .video
            }
            let target = 20 + contentRandom.below(173)  // 20…192; the last word overshoots by ≤ 8
            var bytes = [UInt8]()
            bytes.reserveCapacity(208)
            while bytes.count < target {
                if !bytes.isEmpty { bytes.append(UInt8(ascii: " ")) }
                bytes.append(contentsOf: wordBytes[contentRandom.below(wordBytes.count)])
            }
            var replyTo: String? = nil
            let previous = lastMessageOf[c]
            if previous >= 0, contentRandom.below(100) < 5 {
                replyTo = DatasetCatalog.messageID(Int(previous))
            }
            lastMessageOf[c] = Int32(truncatingIfNeeded: index)
            return Message(
                id: DatasetCatalog.messageID(index),
                conversation: DatasetCatalog.conversationName(c),
                sender: DatasetCatalog.userName(sender),
                createdAt: time,
                kind: kind,
                body: String(decoding: bytes, as: UTF8.self),
                replyTo: replyTo,
                edited: false)
        }
    }
}
