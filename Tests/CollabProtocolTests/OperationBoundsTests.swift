import CollabOT
import CollabProtocol
import XCTest

/// Ops whose counts add up past what any document holds are refused as they are read: one op of
/// two keeps of Int.max used to trap collab-serve (merging adjacent keeps, summing its input
/// length). Found by Tests/CollabServerTests/HostileInputTests.
final class OperationBoundsTests: XCTestCase {
    let max = TextOperation.maxInputLength

    func testCountsUpTo2To53Minus1InAllAreRead() throws {
        XCTAssertEqual(max, 9_007_199_254_740_991)
        XCTAssertEqual(try TextOperation(json: "[\(max),\"x\"]").inputLength, max)
        XCTAssertEqual(try TextOperation(json: "[{\"d\":\(max)}]").inputLength, max)
        XCTAssertEqual(try TextOperation(json: "[\(max - 1),\"x\",{\"d\":1}]").inputLength, max)
        XCTAssertEqual(try TextOperation(json: "[\(max - 1),1,\"x\"]").inputLength, max, "adjacent keeps merge")
    }

    func testMoreIsRefusedWithoutOverflowing() {
        for json in [
            "[\(max + 1),\"x\"]",
            "[\(max),\"x\",1,\"y\"]",
            "[9223372036854775807,1,\"x\"]",
            "[9223372036854775807,\"x\",9223372036854775807,\"y\"]",
            "[{\"d\":9223372036854775807},{\"d\":9223372036854775807}]",
            "[1,{\"d\":9223372036854775807},\"x\",{\"d\":9223372036854775807}]",
        ] {
            XCTAssertThrowsError(try TextOperation(json: json), json) { error in
                XCTAssertTrue("\(error)".contains("keeps and deletes more than"), "\(json): \(error)")
            }
        }
    }

    func testMovingACursorPastIntMaxSaturates() throws {
        let op = try TextOperation(json: #"["abc"]"#)
        XCTAssertEqual(op.transform(position: Int.max - 1), Int.max)
        XCTAssertEqual(op.transform(position: 5), 8)
    }
}
