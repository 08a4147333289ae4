import XCTest
@testable import CollabOT

/// Example-based tests of `TextOperation`: construction, normalization, apply, invert, transform,
/// compose and cursor transform on small hand-checked cases.
final class TextOperationTests: XCTestCase {
    func op(_ components: OpComponent...) -> TextOperation {
        do { return try TextOperation(components) } catch { fatalError("\(error)") }
    }

    // MARK: Construction

    func testInitRejectsZeroAndNegativeCountsAndEmptyInserts() {
        let bad: [[OpComponent]] = [
            [.retain(0)], [.retain(-1)], [.delete(0)], [.delete(-3)], [.insert("")],
            [.retain(2), .insert("x"), .delete(0)], [.insert("a"), .retain(-5)], [.retain(1), .insert("")],
            [.retain(Int.min)],
        ]
        for components in bad {
            XCTAssertThrowsError(try TextOperation(components), "\(components)") { error in
                guard case OTError.invalidComponent = error else {
                    return XCTFail("\(components): expected invalidComponent, got \(error)")
                }
            }
        }
    }

    func testInitNormalizes() throws {
        // Adjacent kinds merge, insert after delete is reordered, trailing keeps are dropped.
        let a = try TextOperation([.retain(1), .retain(2), .insert("a"), .insert("b"), .delete(1), .delete(2),
                                   .insert("c"), .retain(4)])
        XCTAssertEqual(a.components, [.retain(3), .insert("abc"), .delete(3)])
        a.checkInvariants()

        let b = try TextOperation([.delete(2), .insert("é"), .delete(1), .insert("e\u{301}")])
        XCTAssertEqual(b.components.count, 2)
        XCTAssertEqual(b.components[0].length, 3)
        XCTAssertEqual(b.components[1], .delete(3))
        b.checkInvariants()

        XCTAssertTrue(try TextOperation([.retain(5)]).isNoop)
        XCTAssertTrue(try TextOperation([]).isNoop)
        XCTAssertEqual(try TextOperation([.retain(5)]), TextOperation())
    }

    func testLengths() {
        let o = op(.retain(2), .insert("👍🏽é"), .delete(3), .retain(1), .insert("中"))
        XCTAssertEqual(o.inputLength, 6)
        XCTAssertEqual(o.lengthChange, 3 + 1 - 3)
        XCTAssertEqual(OpComponent.insert("👨‍👩‍👧").length, 5) // three people, two ZWJ
        XCTAssertEqual(OpComponent.insert("e\u{301}").length, 2)
    }

    func testDescription() {
        XCTAssertEqual(op(.retain(2), .insert("hi"), .delete(3)).description, "[2,\"hi\",{d:3}]")
        XCTAssertEqual(TextOperation().description, "[]")
    }

    func testConvenienceConstructors() {
        XCTAssertEqual(TextOperation.insert("x", at: 0).components, [.insert("x")])
        XCTAssertEqual(TextOperation.insert("x", at: 3).components, [.retain(3), .insert("x")])
        XCTAssertEqual(TextOperation.delete(2 ..< 5).components, [.retain(2), .delete(3)])
        XCTAssertTrue(TextOperation.delete(2 ..< 2).isNoop)
        XCTAssertTrue(TextOperation.insert("", at: 4).isNoop)
    }

    /// Normalized ops compare equal exactly when they are the same edit, so two inserts of
    /// canonically equivalent but different text (different scalars, different lengths) must differ.
    func testEqualityDistinguishesCanonicallyEquivalentInserts() {
        let precomposed = TextOperation.insert("é", at: 0)
        let decomposed = TextOperation.insert("e\u{301}", at: 0)
        XCTAssertNotEqual(precomposed, decomposed)
        XCTAssertNotEqual(OpComponent.insert("é"), OpComponent.insert("e\u{301}"))
        XCTAssertEqual(Set([precomposed, decomposed]).count, 2)
        XCTAssertEqual(TextOperation.insert("é", at: 0), TextOperation.insert("é", at: 0))
    }

    // MARK: Apply

    func testApplyCountsScalars() throws {
        let doc = "a👍🏽e\u{301}中"
        // scalars: a, 👍, 🏽, e, ◌́, 中
        XCTAssertEqual(try (TextOperation.insert("X", at: 2).apply(to: doc)).scalarArray, "a👍X🏽e\u{301}中".scalarArray)
        XCTAssertEqual(try (TextOperation.delete(4 ..< 5).apply(to: doc)).scalarArray, "a👍🏽e中".scalarArray)
        XCTAssertEqual(try TextOperation.insert("!", at: 6).apply(to: doc).scalarArray, (doc + "!").scalarArray)
        XCTAssertEqual(try (op(.retain(1), .delete(2), .insert("🇫🇷")).apply(to: doc)).scalarArray, "a🇫🇷e\u{301}中".scalarArray)
    }

    func testApplyRejectsOpsThatDoNotFitAndLeavesDocumentUnchanged() {
        let text = "héllo 👋🏿 中文"
        let length = text.unicodeScalars.count
        let misfits = [
            op(.retain(length + 1)), // a trailing keep is dropped: fits anything
            op(.retain(length + 1), .insert("x")),
            op(.delete(length + 1)),
            op(.retain(length), .delete(1)),
            op(.insert("abc"), .retain(3), .delete(length)),
            op(.retain(2), .insert("z"), .delete(2), .retain(length - 3), .insert("q")),
        ]
        XCTAssertNoThrow(try misfits[0].apply(to: text))
        for o in misfits.dropFirst() {
            var doc = TextRope(text)
            XCTAssertThrowsError(try o.apply(to: &doc), "\(o)") { error in
                XCTAssertEqual(error as? OTError, .doesNotFit(needs: o.inputLength, documentLength: length))
            }
            XCTAssertEqual(doc.scalarArray, text.scalarArray, "\(o) changed the document")
            doc.checkInvariants()
            XCTAssertThrowsError(try o.inverted(against: TextRope(text)))
        }
        XCTAssertThrowsError(try op(.delete(1)).apply(to: ""))
        XCTAssertEqual(try (op(.insert("x")).apply(to: "")).scalarArray, "x".scalarArray)
    }

    // MARK: Invert

    func testInvert() throws {
        let doc = TextRope("abc👍🏽def")
        let o = op(.retain(1), .insert("XY"), .delete(2), .retain(1), .delete(2), .insert("é"))
        let after = try o.apply(to: doc.string)
        XCTAssertEqual(after.scalarArray, "aXY👍éef".scalarArray)
        let inverse = try o.inverted(against: doc)
        inverse.checkInvariants()
        XCTAssertEqual(try inverse.apply(to: after).scalarArray, doc.scalarArray)
    }

    // MARK: Transform

    func testTransformConcurrentInsertsAtSamePosition() throws {
        let doc = "ab"
        let a = TextOperation.insert("X", at: 1)
        let b = TextOperation.insert("Y", at: 1)
        // a on the left: X before Y, whichever is applied first.
        let a1 = a.transformed(against: b, side: .left)
        let b1 = b.transformed(against: a, side: .right)
        XCTAssertEqual(try (a1.apply(to: b.apply(to: doc))).scalarArray, "aXYb".scalarArray)
        XCTAssertEqual(try (b1.apply(to: a.apply(to: doc))).scalarArray, "aXYb".scalarArray)
        // a on the right: Y before X.
        let a2 = a.transformed(against: b, side: .right)
        let b2 = b.transformed(against: a, side: .left)
        XCTAssertEqual(try (a2.apply(to: b.apply(to: doc))).scalarArray, "aYXb".scalarArray)
        XCTAssertEqual(try (b2.apply(to: a.apply(to: doc))).scalarArray, "aYXb".scalarArray)
    }

    func testTransformOverlappingDeletes() throws {
        let doc = "0123456789"
        let a = TextOperation.delete(2 ..< 6)
        let b = TextOperation.delete(4 ..< 8)
        let a1 = a.transformed(against: b, side: .left)
        let b1 = b.transformed(against: a, side: .right)
        XCTAssertEqual(a1, TextOperation.delete(2 ..< 4))
        XCTAssertEqual(b1, TextOperation.delete(2 ..< 4))
        XCTAssertEqual(try (a1.apply(to: b.apply(to: doc))).scalarArray, "0189".scalarArray)
        XCTAssertEqual(try (b1.apply(to: a.apply(to: doc))).scalarArray, "0189".scalarArray)
    }

    func testTransformInsertInsideConcurrentlyDeletedRangeSurvives() throws {
        let doc = "abcdef"
        let ins = TextOperation.insert("中", at: 3)
        let del = TextOperation.delete(1 ..< 5)
        XCTAssertEqual(try (ins.transformed(against: del, side: .left).apply(to: del.apply(to: doc))).scalarArray, "a中f".scalarArray)
        XCTAssertEqual(try (del.transformed(against: ins, side: .right).apply(to: ins.apply(to: doc))).scalarArray, "a中f".scalarArray)
    }

    func testTransformAgainstNoopIsIdentity() {
        let o = op(.retain(3), .insert("x"), .delete(2))
        for side in Side.allCases {
            XCTAssertEqual(o.transformed(against: TextOperation(), side: side), o)
            XCTAssertEqual(TextOperation().transformed(against: o, side: side), TextOperation())
        }
        XCTAssertEqual(Side.left.opposite, .right)
        XCTAssertEqual(Side.right.opposite, .left)
    }

    // MARK: Compose

    func testCompose() throws {
        let doc = "hello world"
        let a = op(.retain(5), .insert(","), .retain(1), .delete(5), .insert("世界"))
        let b = op(.retain(7), .insert("👋🏽"), .delete(1), .insert("!"))
        let ab = a.composed(with: b)
        ab.checkInvariants()
        XCTAssertEqual(try (b.apply(to: a.apply(to: doc))).scalarArray, "hello, 👋🏽!界".scalarArray)
        XCTAssertEqual(try (ab.apply(to: doc)).scalarArray, "hello, 👋🏽!界".scalarArray)
        // Inserted and deleted again: nothing left of it.
        let c = TextOperation.insert("tmp", at: 2).composed(with: .delete(2 ..< 5))
        XCTAssertTrue(c.isNoop, "\(c)")
    }

    // MARK: Cursor

    func testCursorTransform() {
        let o = op(.retain(2), .insert("XY"), .delete(3))
        // Before the edit: unchanged.
        XCTAssertEqual(o.transform(position: 0), 0)
        XCTAssertEqual(o.transform(position: 1), 1)
        // At the insert: someone else's text does not push the caret; one's own does.
        XCTAssertEqual(o.transform(position: 2), 2)
        XCTAssertEqual(o.transform(position: 2, isOwnOp: true), 4)
        // Inside the deleted range: collapses to the edit point.
        XCTAssertEqual(o.transform(position: 3), 4)
        XCTAssertEqual(o.transform(position: 5), 4)
        // After it: shifted by the net change.
        XCTAssertEqual(o.transform(position: 6), 5)
        XCTAssertEqual(o.transform(position: 9), 8)

        let sel = Selection(anchor: 1, head: 6).transformed(by: o)
        XCTAssertEqual(sel, Selection(anchor: 1, head: 5))
        XCTAssertEqual(Selection(caret: 2).transformed(by: o, isOwnOp: true), Selection(caret: 4))
        XCTAssertEqual(Selection(caret: 3), Selection(anchor: 3, head: 3))
    }

    func testCursorAtEndOfDocumentAndInsertAtEnd() {
        let o = TextOperation.insert("abc", at: 5)
        XCTAssertEqual(o.transform(position: 5), 5)
        XCTAssertEqual(o.transform(position: 5, isOwnOp: true), 8)
        let front = TextOperation.insert("😀", at: 0)
        XCTAssertEqual(front.transform(position: 0), 0)
        XCTAssertEqual(front.transform(position: 0, isOwnOp: true), 1)
        XCTAssertEqual(front.transform(position: 3), 4)
    }
}
