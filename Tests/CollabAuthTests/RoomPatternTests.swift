import CollabAuth
import XCTest

final class RoomPatternTests: XCTestCase {
    func testLiteralsMatchOnlyThemselves() {
        XCTAssertTrue(RoomPattern("notes").matches("notes"))
        XCTAssertFalse(RoomPattern("notes").matches("notes2"))
        XCTAssertFalse(RoomPattern("notes").matches("note"))
        XCTAssertFalse(RoomPattern("").matches("a"))
    }

    func testStarStaysInOneSegment() {
        let p = RoomPattern("docs/*")
        XCTAssertTrue(p.matches("docs/a"))
        XCTAssertTrue(p.matches("docs/"))
        XCTAssertFalse(p.matches("docs/a/b"))
        XCTAssertFalse(p.matches("other"))
        XCTAssertFalse(p.matches("docs2/a"))
        XCTAssertFalse(p.matches("docs"))
        XCTAssertTrue(RoomPattern("*").matches("anything"))
        XCTAssertFalse(RoomPattern("*").matches("a/b"))
        XCTAssertTrue(RoomPattern("team-*-notes").matches("team-red-notes"))
        XCTAssertFalse(RoomPattern("team-*-notes").matches("team-red/x-notes"))
    }

    func testDoubleStarCrossesSegments() {
        XCTAssertTrue(RoomPattern("**").matches("a/b/c"))
        XCTAssertTrue(RoomPattern("docs/**").matches("docs/a/b"))
        XCTAssertFalse(RoomPattern("docs/**").matches("doc/a"))
        XCTAssertTrue(RoomPattern("**/readme").matches("x/y/readme"))
        XCTAssertTrue(RoomPattern("a/***").matches("a/b/c"))
    }

    func testQuestionMarkIsOneCharacterOtherThanSlash() {
        XCTAssertTrue(RoomPattern("room-?").matches("room-1"))
        XCTAssertFalse(RoomPattern("room-?").matches("room-12"))
        XCTAssertFalse(RoomPattern("a?b").matches("a/b"))
    }

    func testPathologicalPatternsStayFast() {
        let p = RoomPattern(String(repeating: "*a", count: 60) + "b")
        let name = String(repeating: "a", count: 128)
        let start = ContinuousClock.now
        XCTAssertFalse(p.matches(name))
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(1))
    }

    /// The matcher against a slow, obviously right reference on random short inputs.
    func testAgreesWithReferenceMatcher() {
        var state: UInt64 = 0x5eed
        func next(_ n: Int) -> Int {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(n))
        }
        let patternAlphabet: [Character] = ["a", "b", "/", "*", "?"]
        let nameAlphabet: [Character] = ["a", "b", "/"]
        for _ in 0..<20_000 {
            let pattern = String((0..<next(7)).map { _ in patternAlphabet[next(patternAlphabet.count)] })
            let name = String((0..<next(7)).map { _ in nameAlphabet[next(nameAlphabet.count)] })
            XCTAssertEqual(RoomPattern(pattern).matches(name), reference(Array(pattern), Array(name)),
                           "pattern \(pattern) name \(name)")
        }
    }

    private func reference(_ p: [Character], _ s: [Character]) -> Bool {
        guard let c = p.first else { return s.isEmpty }
        if c == "*" {
            let double = p.count > 1 && p[1] == "*"
            var rest = Array(p.dropFirst())
            while rest.first == "*" { rest.removeFirst() }
            for i in 0...s.count {
                if !double && s[..<i].contains("/") { break }
                if reference(rest, Array(s[i...])) { return true }
            }
            return false
        }
        guard let h = s.first else { return false }
        if c == "?" { return h != "/" && reference(Array(p.dropFirst()), Array(s.dropFirst())) }
        return c == h && reference(Array(p.dropFirst()), Array(s.dropFirst()))
    }
}
