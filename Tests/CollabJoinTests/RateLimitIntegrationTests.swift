import CollabProtocol
import CollabTestSupport
import Foundation
import XCTest

/// collab-join against a collab-serve whose --max-rate it exceeds: the server drops what is over
/// the limit, and collab-join keeps every edit and sends it again, so none is lost.
final class RateLimitIntegrationTests: JoinTestCase {
    func testEditsRefusedAsRateLimitedAreResentAndNoneIsLost() throws {
        let server = try startServer(data: try temporaryDirectory(), extra: ["--max-rate", "10", "--max-burst", "5"])
        let url = server.url + "/limited"
        let bot = try join(url, ["--user", "bot"])
        // Events (fire and forget) use up the burst, so the edits between them are refused.
        var input = ""
        for i in 0..<5 {
            for j in 0..<8 { input += #"{"type":"event","name":"noise","n":\#(i * 8 + j)}"# + "\n" }
            input += #"{"type":"insert","pos":0,"text":"\#(i)"}"# + "\n"
        }
        bot.send(input)
        bot.closeInput()
        XCTAssertEqual(bot.waitForExit(timeout: 30), 0, bot.stderr.text)
        XCTAssertTrue(bot.stderr.text.contains("rate-limited by the server for seq 1; retrying in "), bot.stderr.text)
        let errors = JoinTranscript(bot.stdout.data).messages.filter { $0.type == .error }
        XCTAssertFalse(errors.isEmpty)
        XCTAssertTrue(errors.allSatisfy { $0.code == "rate-limited" && $0.fatal == false }, errors.map(\.json).joined(separator: "\n"))
        XCTAssertLessThanOrEqual(errors.count, 4, "at most one error a second")
        XCTAssertEqual(try snapshot(url), "43210")
        XCTAssertTrue(server.child.stderr.text.contains("over the rate limit"), server.child.stderr.text)
    }
}
