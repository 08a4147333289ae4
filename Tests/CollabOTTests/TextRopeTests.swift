import CollabTestSupport
import XCTest
@testable import CollabOT

/// `TextRope` against a plain `[Unicode.Scalar]` reference.
final class TextRopeTests: XCTestCase {
    func testEmpty() {
        let r = TextRope()
        XCTAssertEqual(r.count, 0)
        XCTAssertEqual(r.utf8Count, 0)
        XCTAssertTrue(r.isEmpty)
        XCTAssertEqual(r.scalarArray, "".scalarArray)
        XCTAssertEqual(r.substring(0 ..< 0), "")
        r.checkInvariants()
        XCTAssertEqual(r, TextRope(""))
    }

    func testCountsScalarsAndBytes() {
        let text = "e\u{301}👨‍👩‍👧 中\r\n🇫🇷"
        let r = TextRope(text)
        XCTAssertEqual(r.count, text.unicodeScalars.count)
        XCTAssertEqual(r.count, 2 + 5 + 1 + 1 + 2 + 2)
        XCTAssertEqual(r.utf8Count, text.utf8.count)
        XCTAssertEqual(r.scalarArray, text.scalarArray)
        XCTAssertEqual(r.description, text)
        // Positions fall between a letter and its mark, and inside a ZWJ sequence.
        XCTAssertEqual(r.substring(1 ..< 3).scalarArray, ["\u{301}", "👨"])
        var s = r
        s.insert("X", at: 1)
        XCTAssertEqual(s.scalarArray, "eX\u{301}👨‍👩‍👧 中\r\n🇫🇷".scalarArray)
        s.remove(3 ..< 6)
        XCTAssertEqual(s.scalarArray, "eX\u{301}\u{200D}👧 中\r\n🇫🇷".scalarArray) // half a ZWJ sequence
        s.checkInvariants()
    }

    /// Ropes are equal when their scalars are, not when their texts are canonically equivalent:
    /// positions count scalars, so "e\u{301}\u{323}" and "e\u{323}\u{301}" are different documents.
    func testEqualityIsByScalarsNotCanonicalEquivalence() {
        XCTAssertNotEqual(TextRope("e\u{301}\u{323}"), TextRope("e\u{323}\u{301}"))
        XCTAssertNotEqual(TextRope("Å"), TextRope("A\u{30A}")) // different counts anyway
        XCTAssertEqual(TextRope("e\u{301}\u{323}"), TextRope("e\u{301}\u{323}"))
        // Equal documents built through different chunkings.
        var built = TextRope()
        let text = String(repeating: "中文👍🏽e\u{301}", count: 500)
        for (i, ch) in text.unicodeScalars.enumerated() { built.insert(String(ch), at: i) }
        XCTAssertEqual(built, TextRope(text))
    }

    func testLargeInsertsSplitIntoChunksOnScalarBoundaries() {
        // 4-byte scalars so that a naive byte split would cut one.
        let text = String(repeating: "😀a𝄞é中", count: 2_000)
        let r = TextRope(text)
        r.checkInvariants()
        XCTAssertEqual(r.scalarArray, text.scalarArray)
        var chunks = 0
        var bytes: [UInt8] = []
        r.forEachUTF8Chunk { chunk in
            chunks += 1
            XCTAssertNotEqual(chunk.first.map { $0 & 0xC0 }, 0x80, "chunk starts inside a scalar")
            bytes.append(contentsOf: chunk)
        }
        XCTAssertGreaterThan(chunks, 1)
        XCTAssertEqual(bytes, Array(text.utf8))
    }

    func testRemoveEverythingAndRefill() {
        var r = TextRope(String(repeating: "ab中😀", count: 3_000))
        r.remove(0 ..< r.count)
        r.checkInvariants()
        XCTAssertTrue(r.isEmpty)
        r.insert("x", at: 0)
        r.insert("👍🏽", at: 0)
        XCTAssertEqual(r.string.scalarArray, "👍🏽x".scalarArray)
        r.checkInvariants()
    }

    /// Many tiny edits at one place: the fast paths, chunk overflow and merging of small chunks.
    func testTypingAndBackspacing() {
        var r = TextRope()
        var ref: [Unicode.Scalar] = []
        var rng = TestSeed.rng("typing", case: 0)
        let label = CaseLabel(name: "typing", index: 0)
        var caret = 0
        for step in 0 ..< 20_000 {
            if rng.chance(0.02) { caret = rng.int(0 ... ref.count) }
            if !ref.isEmpty, caret > 0, rng.chance(0.3) {
                r.remove(caret - 1 ..< caret)
                ref.remove(at: caret - 1)
                caret -= 1
            } else {
                let s = rng.scalars(1)
                r.insert(String(scalars: s), at: caret)
                ref.insert(contentsOf: s, at: caret)
                caret += 1
            }
            if step % 500 == 0 {
                r.checkInvariants()
                XCTAssertEqual(r.scalarArray, ref, "\(label) step \(step)")
            }
        }
        r.checkInvariants()
        XCTAssertEqual(r.scalarArray, ref, "\(label)")
        assertChunksNotFragmented(r, label)
    }

    /// Edits must not leave the rope as a long list of tiny chunks (correct, but slow): small
    /// chunks are merged into their neighbours, so on average a chunk holds a good part of
    /// `Chunk.maxUTF8` bytes.
    func assertChunksNotFragmented(_ rope: TextRope, _ label: any CustomStringConvertible, file: StaticString = #filePath,
                                   line: UInt = #line) {
        var chunks = 0
        rope.forEachUTF8Chunk { _ in chunks += 1 }
        let minimumAverage = TextRope.Chunk.minUTF8 / 2
        XCTAssertLessThanOrEqual(chunks, rope.utf8Count / minimumAverage + 2,
                                 "\(label): \(chunks) chunks for \(rope.utf8Count) bytes", file: file, line: line)
    }

    /// Random inserts and deletes of 1...3000 scalars of multi-byte text, invariants after every
    /// edit, and random substrings checked against the reference.
    func testRandomizedAgainstScalarArray() {
        let runs = 5, steps = 400
        forEachCase("rope", count: runs) { rng, label in
            var rope = TextRope()
            var ref: [Unicode.Scalar] = []
            if rng.chance(0.5) {
                ref = rng.scalars(rng.int(0 ... 5_000))
                rope = TextRope(scalars: ref)
            }
            for step in 0 ..< steps {
                let size = rng.pick([1, 2, 3, rng.int(1 ... 40), rng.int(1 ... 300), rng.int(1 ... 3_000)])
                // Keep the document between a few thousand and about 20,000 scalars.
                let deleting = !ref.isEmpty && rng.chance(ref.count > 20_000 ? 0.7 : 0.45)
                if deleting {
                    let n = min(size, ref.count)
                    let at = rng.int(0 ... ref.count - n)
                    rope.remove(at ..< at + n)
                    ref.removeSubrange(at ..< at + n)
                } else {
                    let text = rng.scalars(size)
                    let at = rng.pick([0, ref.count, rng.int(0 ... ref.count)])
                    rope.insert(String(scalars: text), at: at)
                    ref.insert(contentsOf: text, at: at)
                }
                rope.checkInvariants()
                guard rope.count == ref.count else {
                    return XCTFail("\(label) step \(step): count \(rope.count), expected \(ref.count)")
                }
                let utf8 = ref.reduce(0) { $0 + UTF8.width($1) }
                guard rope.utf8Count == utf8 else {
                    return XCTFail("\(label) step \(step): utf8Count \(rope.utf8Count), expected \(utf8)")
                }
                for _ in 0 ..< 2 {
                    let lo = rng.int(0 ... ref.count)
                    let hi = rng.int(lo ... min(ref.count, lo + rng.pick([0, 1, 5, 100, 2_000])))
                    guard rope.substring(lo ..< hi).scalarArray == Array(ref[lo ..< hi]) else {
                        return XCTFail("\(label) step \(step): substring(\(lo)..<\(hi)) differs")
                    }
                }
                if step % 50 == 0 || step == steps - 1 {
                    guard rope.scalarArray == ref else { return XCTFail("\(label) step \(step): text differs") }
                }
            }
            assertChunksNotFragmented(rope, label)
        }
    }

    /// Copies are values: editing one leaves the other alone.
    func testValueSemantics() {
        let original = TextRope(String(repeating: "héllo wörld ", count: 400))
        var copy = original
        copy.insert("中", at: 10)
        copy.remove(100 ..< 2_000)
        XCTAssertEqual(original.scalarArray, String(repeating: "héllo wörld ", count: 400).scalarArray)
        XCTAssertNotEqual(original, copy)
        original.checkInvariants()
        copy.checkInvariants()
    }
}
