import CollabTestSupport
import XCTest
@testable import CollabOT

/// OT bugs the fuzzers found (see Tests/Fuzz and CollabProtocolTests/FuzzRegressionTests).
final class OTFuzzRegressionTests: XCTestCase {
    /// A presence cursor near Int.max (from the wire) moved by an insert overflowed and trapped.
    func testCursorNearIntMaxDoesNotTrapWhenTransformed() throws {
        let op = try TextOperation([.retain(2), .insert("xyz")])
        XCTAssertEqual(op.transform(position: .max), .max)
        XCTAssertEqual(op.transform(position: .max - 1, isOwnOp: true), .max)
        XCTAssertEqual(Selection(caret: .max).transformed(by: op), Selection(caret: .max))
        XCTAssertEqual(op.transform(position: 5), 8)
    }

    /// `TextOperation.init` merged adjacent counts near Int.max and trapped; it throws instead.
    func testComponentsThatOverflowThrowInsteadOfTrapping() {
        XCTAssertThrowsError(try TextOperation([.retain(.max), .retain(1)]))
        XCTAssertThrowsError(try TextOperation([.delete(.max), .insert("x"), .delete(.max)]))
        XCTAssertThrowsError(try TextOperation([.retain(TextOperation.maxInputLength + 1)]))
        XCTAssertNoThrow(try TextOperation([.retain(TextOperation.maxInputLength - 1), .delete(1)]))
    }

    /// The sequencer transforms before it checks the fit: an op with the largest allowed keep,
    /// based on an older revision, must come back as "does not fit", not a trap.
    func testSequencerRejectsAHugeKeepOnAnOldBase() throws {
        var s = Sequencer(document: TextRope("abc"))
        _ = try s.submit(client: "a", seq: 1, base: 0, op: .insert("y", at: 0))
        let huge = try TextOperation([.retain(TextOperation.maxInputLength), .insert("x")])
        XCTAssertThrowsError(try s.submit(client: "b", seq: 1, base: 0, op: huge)) { error in
            guard case .doesNotFit? = error as? Sequencer.SubmitError else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(s.document.string, "yabc")
    }

    /// Composing a long insert with an op of many small components split the insert from its
    /// start each time (quadratic: minutes for a 1 MiB op line).
    func testComposingALongInsertWithManySmallComponentsIsLinear() throws {
        let n = 100_000
        let a = TextOperation.insert(String(repeating: "é", count: 2 * n), at: 0)
        var b = TextOperation()
        for _ in 0 ..< n { b.retain(1); b.delete(1) }
        let start = ContinuousClock.now
        let c = a.composed(with: b)
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(10))
        XCTAssertEqual(try c.apply(to: ""), String(repeating: "é", count: n))
        XCTAssertEqual(c.components.count, 1)
    }
}
