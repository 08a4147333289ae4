import XCTest
import CollabOT
@testable import CollabProtocol

/// One test per bug the fuzzers found (Tests/Fuzz/corpus keeps each crashing input as well).
final class FuzzRegressionTests: XCTestCase {
    /// `{"x":1.0}` passed through a tool came out as `{"x":1}`: a double turned into an integer.
    func testIntegralDoubleKeepsItsTypeThroughReencoding() throws {
        let line = #"{"type":"event","x":1.0,"y":-0.0,"z":1e2,"n":[2.0,3]}"#
        let m = try Message.decode(line)
        XCTAssertEqual(m.json, #"{"type":"event","x":1.0,"y":0.0,"z":100.0,"n":[2.0,3]}"#)
        XCTAssertEqual(try Message.decode(m.json), m)
    }

    /// `[9223372036854775807,1]` trapped while decoding (merging the two keeps overflowed).
    func testOpCountsThatOverflowAreRejectedNotTrapped() {
        for json in ["[9223372036854775807,1]", #"[{"d":9223372036854775807},{"d":1}]"#,
                     #"[9223372036854775807,"x",9223372036854775807]"#, "[9007199254740992]"] {
            XCTAssertThrowsError(try TextOperation(json: json), json) { error in
                XCTAssert(error is OperationSyntaxError, "\(json): \(error)")
            }
        }
        XCTAssertEqual(try TextOperation(json: #"[9007199254740990,"x",{"d":1}]"#).inputLength, 9_007_199_254_740_991)
        let line = #"{"type":"op","op":[9223372036854775807,"x",9223372036854775807]}"#
        XCTAssertThrowsError(try Message.decode(line)) { error in
            guard case .badField("op", _)? = error as? MessageError else { return XCTFail("\(error)") }
        }
    }

    /// `"op":[[]]` is valid JSON, but was reported as invalid JSON ("expected a number"), so the
    /// header decoder (which only checks JSON) and the full decoder disagreed on what was wrong.
    func testNonNumericOpComponentIsABadOpNotInvalidJSON() {
        for op in ["[[]]", "[true]", "[null]", #"[{"d":true}]"#, #"[{"d":[1]}]"#] {
            XCTAssertThrowsError(try Message.decode(#"{"type":"op","op":\#(op)}"#)) { error in
                guard case .badField("op", _)? = error as? MessageError else { return XCTFail("\(op): \(error)") }
            }
        }
    }

    /// A roster member with a bad field was reported as that field of the roster itself.
    func testRosterMemberErrorIsReportedAsTheMembersField() {
        XCTAssertThrowsError(try Message.decode(#"{"type":"roster","members":[{"type":5}]}"#)) { error in
            guard case .badField("members", let why)? = error as? MessageError else { return XCTFail("\(error)") }
            XCTAssert(why.contains("type"), why)
        }
        XCTAssertThrowsError(try Message.decode(#"{"type":"roster","members":[{"type":"zzz"}]}"#)) { error in
            guard case .badField("members", _)? = error as? MessageError else { return XCTFail("\(error)") }
        }
    }

    /// Many one-character inserts (`["a","b",…]`) are merged into one; each merge used to copy
    /// the text so far, so a 1 MiB line took minutes.
    func testManyShortInsertsDecodeInLinearTime() throws {
        let count = 200_000
        let json = "[" + Array(repeating: #""ab""#, count: count).joined(separator: ",") + "]"
        let start = ContinuousClock.now
        let op = try TextOperation(json: json)
        let elapsed = ContinuousClock.now - start
        XCTAssertEqual(op.components.count, 1)
        XCTAssertEqual(op.lengthChange, 2 * count)
        // Linear: well under a second even in a debug build; the quadratic merge took minutes.
        XCTAssertLessThan(elapsed, .seconds(10))
    }

    /// Each unknown field copied the ones before it: a line of many short unknown fields
    /// (`{"type":"op","a":0,"a":0,…}`) decoded in quadratic time.
    func testManyUnknownFieldsDecodeInLinearTime() throws {
        let count = 100_000
        let line = #"{"type":"event""# + String(repeating: #","a":0"#, count: count) + "}"
        let start = ContinuousClock.now
        let m = try Message.decode(line)
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(10))
        XCTAssertEqual(m.extra?.fields.count, count)
    }
}
