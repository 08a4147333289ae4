import CollabClient
import CollabCLI
import XCTest

final class BackoffTests: XCTestCase {
    func testCeilingsDoubleFromTheStartUpToTheCap() {
        let b = Backoff()
        XCTAssertEqual(b.ceiling(attempt: 1), .milliseconds(250))
        XCTAssertEqual(b.ceiling(attempt: 2), .milliseconds(500))
        XCTAssertEqual(b.ceiling(attempt: 3), .seconds(1))
        XCTAssertEqual(b.ceiling(attempt: 8), .seconds(30))   // 32 s capped
        XCTAssertEqual(b.ceiling(attempt: 1000), .seconds(30)) // no overflow
    }

    func testDelaysAreFullJitterWithinTheCeiling() {
        let b = Backoff()
        var rng = SystemRandomNumberGenerator()
        var seen = Set<Duration>()
        for _ in 0 ..< 500 {
            let d = b.delay(attempt: 3, using: &rng)
            XCTAssertGreaterThanOrEqual(d, .zero)
            XCTAssertLessThanOrEqual(d, .seconds(1))
            seen.insert(d)
        }
        XCTAssertGreaterThan(seen.count, 100, "delays should spread over [0, ceiling]")
        XCTAssertLessThan(seen.min()!, .milliseconds(200))
        XCTAssertGreaterThan(seen.max()!, .milliseconds(800))
    }

    func testURLChecks() {
        XCTAssertNil(JoinOptions.problem(with: "ws://127.0.0.1:7420/doc"))
        XCTAssertNil(JoinOptions.problem(with: "ws://localhost:7420/docs/a"))
        XCTAssertNotNil(JoinOptions.problem(with: "ws://127.0.0.1:7420/"))
        XCTAssertNotNil(JoinOptions.problem(with: "ws://127.0.0.1:7420"))
        XCTAssertNotNil(JoinOptions.problem(with: "http://127.0.0.1:7420/doc"))
        XCTAssertNil(JoinOptions.problem(with: "wss://127.0.0.1:7420/doc"))
        XCTAssertNotNil(JoinOptions.problem(with: "wss://127.0.0.1:7420/"))
    }

    func testFailoverURLsMustNameOneRoom() {
        XCTAssertNil(JoinOptions.problem(with: ["ws://127.0.0.1:7420/doc"]))
        XCTAssertNil(JoinOptions.problem(with: ["ws://127.0.0.1:7420/docs/a", "ws://127.0.0.1:7421/docs/a?token=t"]))
        XCTAssertNotNil(JoinOptions.problem(with: [String]()))
        XCTAssertEqual(JoinOptions.problem(with: ["ws://a:1/doc", "ws://b:1/other"]),
                       "every URL must name the same room: ws://a:1/doc names doc, ws://b:1/other names other")
        XCTAssertNotNil(JoinOptions.problem(with: ["ws://a:1/doc", "ws://b:1/doc/"]))
        XCTAssertNotNil(JoinOptions.problem(with: ["ws://a:1/doc", "ws://b:1/"]))
        XCTAssertNotNil(JoinOptions.problem(with: ["ws://a:1/doc", "http://b:1/doc"]))
    }

    func testClientIDsAreRandomHex() {
        let a = JoinOptions.randomClientID(), b = JoinOptions.randomClientID()
        XCTAssertEqual(a.count, 16)
        XCTAssertNotEqual(a, b)
        XCTAssertTrue(a.allSatisfy { $0.isHexDigit })
    }
}
