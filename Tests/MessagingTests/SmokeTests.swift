@testable import Scrollback
import ScrollbackIO
import Testing
import TestSupport

@Suite struct SmokeTests {
    @Test func appendAndRead() throws {
        let store = try Fixture.open()
        #expect(try store.append(Fixture.message("m1", at: 10)) == .appended)
        #expect(try store.append(Fixture.message("m2", at: 20)) == .appended)
        #expect(try store.append(Fixture.message("m1", at: 30)) == .duplicate)
        #expect(try store.latest(in: "c1", limit: 10).map(\.id) == ["m2", "m1"])
        #expect(try store.message(id: "m1")?.body == "body of m1")
        #expect(try store.verify() == [])
        try store.close()
    }
}
