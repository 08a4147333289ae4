import CollabTestSupport
import XCTest
@testable import CollabProtocol
import CollabOT

/// Parses bytes (not necessarily valid UTF-8) as one JSON text.
func parseJSON(_ bytes: [UInt8]) throws -> JSONValue {
    try bytes.withUnsafeBufferPointer { try JSONScanner.parse($0) }
}

func parseJSON(_ text: String) throws -> JSONValue { try parseJSON(Array(text.utf8)) }

func decodeMessage(_ bytes: [UInt8]) throws(MessageError) -> Message {
    let r: Result<Message, MessageError> = bytes.withUnsafeBufferPointer { buf in
        do throws(MessageError) { return .success(try Message.decode(buf)) } catch { return .failure(error) }
    }
    return try r.get()
}

func decodeEvent(_ bytes: [UInt8]) throws(MessageError) -> DocumentEvent {
    let r: Result<DocumentEvent, MessageError> = bytes.withUnsafeBufferPointer { buf in
        do throws(MessageError) { return .success(try DocumentEvent.decode(buf)) } catch { return .failure(error) }
    }
    return try r.get()
}

func decodeEvent(_ text: String) throws(MessageError) -> DocumentEvent { try decodeEvent(Array(text.utf8)) }

/// Random text from a pool that covers the escaping cases: ASCII, every control character,
/// quotes, backslashes, slashes, DEL, U+2028, BMP letters, and astral emoji.
func randomText(_ rng: inout SplitMix64, maxLength: Int = 12) -> String {
    var s = String.UnicodeScalarView()
    let n = rng.int(0 ... maxLength)
    for _ in 0 ..< n {
        let v: UInt32
        switch rng.int(0 ..< 9) {
        case 0: v = UInt32(rng.int(0 ... 0x1F))
        case 1: v = rng.pick([0x22, 0x5C, 0x2F, 0x7F, 0x2028, 0x2029, 0xFEFF])
        case 2: v = UInt32(rng.int(0x80 ... 0x7FF))
        case 3: v = UInt32(rng.pick([0x800 ... 0xD7FF, 0xE000 ... 0xFFFD]).randomElement(using: &rng)!)
        case 4: v = UInt32(rng.int(0x1F300 ... 0x1FAFF))
        case 5: v = UInt32(rng.int(0x10000 ... 0x10FFFF))
        default: v = UInt32(rng.int(0x20 ... 0x7E))
        }
        s.append(Unicode.Scalar(v)!)
    }
    return String(s)
}

/// A random normalized op that fits a document of `length` scalars.
func randomOp(_ rng: inout SplitMix64, length: Int) -> TextOperation {
    var op = TextOperation()
    var left = length
    while left > 0 || rng.chance(0.3) {
        switch rng.int(0 ..< 3) {
        case 0 where left > 0:
            let n = rng.int(1 ... left)
            op.retain(n); left -= n
        case 1 where left > 0:
            let n = rng.int(1 ... left)
            op.delete(n); left -= n
        default:
            var t = randomText(&rng, maxLength: 5)
            if t.isEmpty { t = "x" }
            op.insert(t)
        }
        if rng.chance(0.25) { break }
    }
    op.trimTrailingRetain()
    return op
}

extension XCTestCase {
    /// Asserts that `body` throws a `JSONSyntaxError` whose reason contains `reason`.
    func assertSyntaxError(_ bytes: [UInt8], _ reason: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let v = try parseJSON(bytes)
            XCTFail("accepted \(String(decoding: bytes, as: UTF8.self).debugDescription) as \(v)", file: file, line: line)
        } catch let e as JSONSyntaxError {
            XCTAssert(e.reason.contains(reason), "\(String(decoding: bytes, as: UTF8.self).debugDescription): got \"\(e)\", wanted \"\(reason)\"", file: file, line: line)
            XCTAssert(e.offset >= 0 && e.offset <= bytes.count, "offset \(e.offset) out of range", file: file, line: line)
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: line)
        }
    }

    func assertSyntaxError(_ text: String, _ reason: String, file: StaticString = #filePath, line: UInt = #line) {
        assertSyntaxError(Array(text.utf8), reason, file: file, line: line)
    }
}
