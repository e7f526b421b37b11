import Foundation
import Testing
import TestSupport
@testable import Scrollback
import ScrollbackIO

/// The crash sweep of `upgrade` (the format-1 fixture of `UpgradeTests`): a power loss after
/// every I/O step of the upgrade — the bulk load into `<path>.upgrading`, its close, the
/// directory sync, the two directory renames and the parent's sync — in every crash mode and
/// every namespace crash mode, then what a user does next: open the store; when that is
/// refused with `unsupportedVersion` (the old store is still in place, or the swap was
/// interrupted between the renames), run `upgrade` again and open. Every path must end with
/// the fixture's content, and the old store's files, wherever they are, unchanged.
@Suite struct UpgradeCrashSweepTests {
    static let path = "/data/store"

    static func options() -> StoreOptions {
        var options = StoreOptions()
        options.cacheBytes = 1 << 20
        return options
    }

    /// The fixture's files, by name.
    static func fixtureFiles() throws -> [String: [UInt8]] {
        try UpgradeTests.files(in: UpgradeTests.fixtures.appendingPathComponent("v1-store").path).mapValues { Array($0) }
    }

    static func freshFileSystem(seed: UInt64, _ files: [String: [UInt8]]) throws -> CrashSimulatingFileSystem {
        let fs = CrashSimulatingFileSystem(seed: seed)
        try fs.createDirectory(path)
        for (name, bytes) in files { fs.setContents(of: path + "/" + name, to: bytes) }
        return fs
    }

    /// Opens the store after a crash, upgrading first when the open says so (at most twice).
    static func openAfterCrash(_ fs: CrashSimulatingFileSystem) throws -> MessageStore {
        for _ in 0..<2 {
            do {
                return try MessageStore(path: path, options: options(), fileSystem: fs)
            } catch ScrollbackError.unsupportedVersion(let refused, let found, _) where refused == path && found == 1 {
                try MessageStore.upgrade(path: path, options: options(), fileSystem: fs)
            }
        }
        return try MessageStore(path: path, options: options(), fileSystem: fs)
    }

    @Test func aPowerLossAtEveryStepOfAnUpgrade() throws {
        let files = try Self.fixtureFiles()
        let expected = try UpgradeTests.expected()

        // The number of steps of an uninterrupted upgrade.
        let clean = try Self.freshFileSystem(seed: 1, files)
        let before = clean.stepCount
        try MessageStore.upgrade(path: Self.path, options: Self.options(), fileSystem: clean)
        let steps = clean.stepCount - before
        #expect(steps > 10)

        let namespaces = NamespaceCrashMode.allCases
        var outcomes: [String: Int] = [:]
        for point in 0...steps {
            for (index, namespace) in namespaces.enumerated() {
                let mode = CrashMode.allCases[(point + index) % CrashMode.allCases.count]
                let seed = UInt64(point * namespaces.count + index + 1)
                let context = "power lost after step \(point) of \(steps), \(mode), namespace \(namespace) (seed \(seed))"
                let fs = try Self.freshFileSystem(seed: seed, files)
                fs.scheduleCrash(afterSteps: point)
                var completed = false
                do {
                    try MessageStore.upgrade(path: Self.path, options: Self.options(), fileSystem: fs)
                    completed = true
                } catch {
                    #expect(fs.isPoweredOff, "\(context): the upgrade failed without a power loss: \(error)")
                }
                fs.crash(mode: mode, namespace: namespace)
                let kept = Self.path + ".format1"
                outcomes["\(completed ? "completed" : "interrupted"), \(fs.fileExists(Self.path) ? "store" : "no store")"
                         + "\(fs.fileExists(kept) ? " + kept" : "")", default: 0] += 1
                do {
                    let store = try Self.openAfterCrash(fs)
                    try UpgradeTests.check(store, against: expected)
                    try store.close()
                } catch {
                    Issue.record("\(context): \(error)")
                    continue
                }
                // The old store survives unchanged beside the new one.
                for (name, bytes) in files {
                    #expect(fs.contents(of: kept + "/" + name) == bytes, "\(context): \(kept)/\(name)")
                }
                #expect(!fs.fileExists(Self.path + ".upgrading") || fs.fileExists(Self.path), "\(context)")
            }
        }
        print("upgrade crash sweep: \(steps) steps × \(namespaces.count) namespace modes; states after the crash: \(outcomes.sorted { $0.key < $1.key })")
        // The sweep reached the interesting states: old store in place, the swap half done, done.
        #expect(outcomes.keys.contains { $0.hasPrefix("interrupted, store") && !$0.contains("kept") })
        #expect(outcomes.keys.contains("interrupted, no store + kept"))
        #expect(outcomes.keys.contains { $0.hasPrefix("completed, store + kept") })
    }

    /// Opening the path of an upgrade interrupted between its renames is refused (it would
    /// create an empty store there); `upgrade` finishes the swap.
    @Test func openingAnInterruptedSwapNamesTheUpgrade() throws {
        let fs = try Self.freshFileSystem(seed: 9, try Self.fixtureFiles())
        try MessageStore.upgrade(path: Self.path, options: Self.options(), fileSystem: fs)
        try fs.rename(Self.path, to: Self.path + ".upgrading")
        try fs.syncDirectory("/data")
        #expect(throws: ScrollbackError.unsupportedVersion(path: Self.path, found: 1, supported: 2)) {
            _ = try MessageStore(path: Self.path, options: Self.options(), fileSystem: fs)
        }
        #expect(!fs.fileExists(Self.path), "the refused open created nothing")
        #expect(throws: ScrollbackError.unsupportedVersion(path: Self.path, found: 1, supported: 2)) {
            _ = try MessageStore(path: Self.path, options: Self.options(), fileSystem: fs, readOnly: true)
        }
        try MessageStore.upgrade(path: Self.path, options: Self.options(), fileSystem: fs)
        let store = try MessageStore(path: Self.path, options: Self.options(), fileSystem: fs)
        try UpgradeTests.check(store, against: try UpgradeTests.expected())
        try store.close()
    }
}
