import CollabRedis
import XCTest

final class RedisURLTests: XCTestCase {
    func testForms() throws {
        XCTAssertEqual(try RedisURL(parsing: "redis://127.0.0.1:6380/2"),
                       RedisURL(host: "127.0.0.1", port: 6380, database: 2))
        XCTAssertEqual(try RedisURL(parsing: "redis://localhost"), RedisURL(host: "localhost"))
        XCTAssertEqual(try RedisURL(parsing: "redis://:s3cret@h"), RedisURL(host: "h", password: "s3cret"))
        XCTAssertEqual(try RedisURL(parsing: "redis://ann:p%40ss@h:7000/1"),
                       RedisURL(host: "h", port: 7000, user: "ann", password: "p@ss", database: 1))
        XCTAssertEqual(try RedisURL(parsing: "redis://[::1]:6390"), RedisURL(host: "::1", port: 6390))
        XCTAssertEqual(try RedisURL(parsing: "REDIS://h:1/"), RedisURL(host: "h", port: 1))
        XCTAssertEqual(RedisURL(host: "h", user: "u", password: "x", database: 3).description, "redis://u:***@h:6379/3")
    }

    func testErrors() {
        for bad in ["http://h", "redis://", "redis://h:0", "redis://h:99999", "redis://h:x", "redis://h/x",
                    "redis://h/-1", "redis://[::1", "redis://:%zz@h"] {
            XCTAssertThrowsError(try RedisURL(parsing: bad), bad) { e in
                XCTAssertTrue("\(e)".hasPrefix("invalid Redis URL"), "\(e)")
            }
        }
    }

    func testBackoff() {
        var o = RedisOptions()
        o.backoffInitial = .milliseconds(100)
        o.backoffCap = .seconds(5)
        XCTAssertEqual(o.backoffCeiling(attempt: 1), .milliseconds(100))
        XCTAssertEqual(o.backoffCeiling(attempt: 2), .milliseconds(200))
        XCTAssertEqual(o.backoffCeiling(attempt: 6), .milliseconds(3200))
        XCTAssertEqual(o.backoffCeiling(attempt: 7), .seconds(5))
        XCTAssertEqual(o.backoffCeiling(attempt: 100), .seconds(5))
        for _ in 0..<100 {
            let d = o.backoffDelay(attempt: 3)
            XCTAssertTrue(d >= .milliseconds(200) && d <= .milliseconds(400), "\(d)")
        }
    }
}
