import CollabProtocol
import CollabServer
import XCTest

final class MessageBudgetTests: XCTestCase {
    func testCapsByType() throws {
        let budget = MessageBudget()
        var hello = Message(.hello)
        hello.user = String(repeating: "u", count: 256)
        XCTAssertNil(budget.violation(hello, size: 300))
        hello.name = String(repeating: "é", count: 129)  // 258 bytes
        XCTAssertEqual(budget.violation(hello, size: 600)?.contains("\"name\""), true)
        let presence = Message(.presence)
        XCTAssertNil(budget.violation(presence, size: 8 << 10))
        XCTAssertNotNil(budget.violation(presence, size: (8 << 10) + 1))
        XCTAssertNotNil(budget.violation(Message(.event), size: (64 << 10) + 1))
        XCTAssertNil(budget.violation(Message(.op), size: 1 << 20), "ops are bounded by --max-message only")
    }
}
