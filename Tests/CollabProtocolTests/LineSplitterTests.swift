import CollabTestSupport
import XCTest
@testable import CollabProtocol

final class LineSplitterTests: XCTestCase {

    enum Event: Equatable, CustomStringConvertible {
        case line(Int, String)
        case error(Int)
        var description: String {
            switch self {
            case let .line(n, s): return "line \(n): \(s.debugDescription)"
            case let .error(n): return "overlong \(n)"
            }
        }
    }

    /// Feeds `input` in chunks of the given sizes (the rest in one chunk), then finishes. Checks
    /// after every chunk that no more than `maxLineLength` bytes are held.
    func split(_ input: [UInt8], chunks sizes: [Int], maxLineLength: Int = 1 << 20,
               file: StaticString = #filePath, line: UInt = #line) -> [Event] {
        var splitter = LineSplitter(maxLineLength: maxLineLength)
        var events: [Event] = []
        var start = 0
        var sizes = sizes[...]
        while start < input.count {
            let n = min(sizes.popFirst() ?? input.count, input.count - start)
            input.withUnsafeBufferPointer { buf in
                splitter.feed(UnsafeBufferPointer(rebasing: buf[start ..< start + n]),
                              line: { events.append(.line($0, String(decoding: $1, as: UTF8.self))) },
                              error: { events.append(.error($0.line)) })
            }
            XCTAssertLessThanOrEqual(splitter.pending.count, maxLineLength, "pending grew past the limit", file: file, line: line)
            start += n
        }
        splitter.finish(line: { events.append(.line($0, String(decoding: $1, as: UTF8.self))) },
                        error: { events.append(.error($0.line)) })
        return events
    }

    func testBasicLines() {
        let input = Array("{\"a\":1}\nsecond\r\n\n   \n\t\r\n\r\nlast é😀".utf8)
        let expected: [Event] = [.line(1, "{\"a\":1}"), .line(2, "second"), .line(7, "last é😀")]
        XCTAssertEqual(split(input, chunks: []), expected)
    }

    func testCRLFAndLoneCR() {
        // Only a \r right before the newline is dropped; one inside a line is data.
        XCTAssertEqual(split(Array("a\rb\r\nc\r\r\n".utf8), chunks: []), [.line(1, "a\rb"), .line(2, "c\r")])
        // The \r and the \n in different chunks.
        XCTAssertEqual(split(Array("ab\r\ncd\r\n".utf8), chunks: [3, 1, 3]), [.line(1, "ab"), .line(2, "cd")])
    }

    func testLastLineWithoutNewline() {
        XCTAssertEqual(split(Array("x\ny".utf8), chunks: []), [.line(1, "x"), .line(2, "y")])
        XCTAssertEqual(split(Array("x\ny\r".utf8), chunks: [1, 1, 1]), [.line(1, "x"), .line(2, "y")])
        XCTAssertEqual(split(Array("x\n  ".utf8), chunks: []), [.line(1, "x")])
        XCTAssertEqual(split([], chunks: []), [])
        XCTAssertEqual(split(Array("\n\n".utf8), chunks: []), [])
    }

    func testRandomChunkingsGiveTheSameLines() {
        var rng = SplitMix64(seed: 0x5EED_0004)
        var text = ""
        for k in 0 ..< 200 {
            switch rng.int(0 ..< 6) {
            case 0: text += "\n"
            case 1: text += "  \r\n"
            default:
                text += "{\"n\":\(k),\"s\":\"" + String(repeating: "é😀x", count: rng.int(0 ... 30)) + "\"}"
                text += rng.chance(0.3) ? "\r\n" : "\n"
            }
        }
        text += "{\"tail\":true}"
        let input = Array(text.utf8)
        let reference = split(input, chunks: [])
        XCTAssertEqual(reference.count, reference.filter { if case .line = $0 { return true } else { return false } }.count)
        XCTAssertGreaterThan(reference.count, 100)
        for i in 0 ..< 300 {
            var sizes: [Int] = []
            var total = 0
            let maxChunk = rng.pick([1, 2, 3, 7, 64, 500, 5000])
            while total < input.count {
                let n = rng.int(1 ... maxChunk)
                sizes.append(n); total += n
            }
            XCTAssertEqual(split(input, chunks: sizes), reference, "chunking \(i) (max \(maxChunk))")
        }
    }

    func testOverlongLineIsReportedAndSkipped() {
        let limit = 16
        let long = String(repeating: "x", count: 100)
        let input = Array("ok1\n\(long)\nok3\n\(String(repeating: "y", count: 17))\n\(String(repeating: "z", count: 16))\nok6".utf8)
        let expected: [Event] = [.line(1, "ok1"), .error(2), .line(3, "ok3"), .error(4), .line(5, String(repeating: "z", count: 16)), .line(6, "ok6")]
        // In one chunk, byte by byte, and in random chunkings: same events, bounded memory.
        XCTAssertEqual(split(input, chunks: [], maxLineLength: limit), expected)
        XCTAssertEqual(split(input, chunks: Array(repeating: 1, count: input.count), maxLineLength: limit), expected)
        var rng = SplitMix64(seed: 0x5EED_0005)
        for i in 0 ..< 200 {
            let sizes = (0 ..< input.count).map { _ in rng.int(1 ... 20) }
            XCTAssertEqual(split(input, chunks: sizes, maxLineLength: limit), expected, "chunking \(i)")
        }
    }

    func testOverlongLastLineAndHugeLineInSmallChunks() {
        XCTAssertEqual(split(Array("a\n\(String(repeating: "q", count: 50))".utf8), chunks: [3, 3, 3], maxLineLength: 10),
                       [.line(1, "a"), .error(2)])
        // A 10 MB line in 4 KB chunks with a 64 KB limit: one error, the next line arrives, and
        // the splitter never holds more than the limit (checked in `split`).
        var input = [UInt8](repeating: UInt8(ascii: "w"), count: 10 << 20)
        input.append(0x0A)
        input.append(contentsOf: Array("after\n".utf8))
        let events = split(input, chunks: Array(repeating: 4096, count: input.count / 4096 + 1), maxLineLength: 64 << 10)
        XCTAssertEqual(events, [.error(1), .line(2, "after")])
    }

    func testLineErrorDescription() {
        XCTAssertEqual(LineError(line: 3, reason: "bad").description, "line 3: bad")
    }

    func testLineReaderOnAPipe() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let payload = Array("one\r\n\ntwo\n\(String(repeating: "v", count: 300))\nthree".utf8)
        XCTAssertEqual(payload.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }, payload.count)
        close(fds[1])
        var reader = LineReader(fd: fds[0], maxLineLength: 100)
        var events: [Event] = []
        try reader.forEachLine({ events.append(.line($0, String(decoding: $1, as: UTF8.self))) },
                               error: { events.append(.error($0.line)) })
        close(fds[0])
        XCTAssertEqual(events, [.line(1, "one"), .line(3, "two"), .error(4), .line(5, "three")])
    }
}
