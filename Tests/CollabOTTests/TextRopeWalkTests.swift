import CollabOT
import CollabTestSupport
import XCTest

final class TextRopeWalkTests: XCTestCase {
    func testChunksFromAnOffsetAreTheTextFromThere() {
        var rng = SplitMix64(seed: 11)
        let alphabet: [Unicode.Scalar] = ["a", "\n", "é", "😀", "漢"]
        for _ in 0 ..< 50 {
            // Built by random inserts, so chunks come in every size.
            var rope = TextRope()
            var reference: [Unicode.Scalar] = []
            for _ in 0 ..< rng.int(0 ... 40) {
                let piece = (0 ..< rng.int(1 ... 200)).map { _ in rng.pick(alphabet) }
                let at = rng.int(0 ... reference.count)
                rope.insert(String(String.UnicodeScalarView(piece)), at: at)
                reference.insert(contentsOf: piece, at: at)
            }
            for offset in [0, reference.count / 3, reference.count - 1, reference.count] where offset >= 0 {
                var bytes: [UInt8] = []
                rope.forEachUTF8Chunk(from: offset) { bytes.append(contentsOf: $0) }
                XCTAssertEqual(bytes, Array(String(String.UnicodeScalarView(reference[offset...])).utf8), "offset \(offset)")
            }
        }
    }
}
