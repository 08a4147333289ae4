import CollabTestSupport
import XCTest
@testable import CollabOT

/// Randomized properties of `TextOperation` on documents full of multi-scalar text. Every case is
/// seeded (see `TestSeed`); a failure names `COLLAB_TEST_SEED` and `COLLAB_TEST_CASE` to replay it.
final class TextOperationPropertyTests: XCTestCase {
    /// At least 10,000 per property, per run.
    static let cases = 10_000

    /// Convergence (TP1), both tie-breaking assignments:
    /// apply(apply(d, a), b′) == apply(apply(d, b), a′) with b′ = b against a on `side` and
    /// a′ = a against b on the opposite side.
    func testConvergenceTP1() {
        forEachCase("TP1", count: Self.cases) { rng, label in
            let d = TextRope(scalars: rng.document(maxScalars: 40))
            let a = rng.operation(documentLength: d.count)
            let b = rng.operation(documentLength: d.count)
            assertNormalized(a, "a", label)
            assertNormalized(b, "b", label)
            guard let da = applied(a, to: d, "a", label), let db = applied(b, to: d, "b", label) else { return }
            for side in Side.allCases {
                let b1 = b.transformed(against: a, side: side)
                let a1 = a.transformed(against: b, side: side.opposite)
                assertNormalized(b1, "b′ (\(side))", label)
                assertNormalized(a1, "a′ (\(side.opposite))", label)
                guard let dab = applied(b1, to: da, "b′ after a", label),
                      let dba = applied(a1, to: db, "a′ after b", label) else { return }
                if dab.bytes != dba.bytes {
                    XCTFail("""
                        \(label): TP1 fails with b on side \(side)
                          d = \(debugScalars(d))
                          a = \(a), b = \(b)
                          a′ = \(a1), b′ = \(b1)
                          a·b′ = \(debugScalars(dab))
                          b·a′ = \(debugScalars(dba))
                        """)
                }
            }
        }
    }

    /// `apply` agrees with an independent model on arrays of scalars, and misfits are rejected
    /// without touching the document.
    func testApplyMatchesReferenceModel() {
        forEachCase("apply", count: Self.cases) { rng, label in
            let d = TextRope(scalars: rng.document(maxScalars: 40))
            let a = rng.operation(documentLength: d.count)
            _ = applied(a, to: d, "a", label, checkReference: true)
            // An op that reaches the end of the document does not fit one a scalar shorter.
            if d.count > 0, a.inputLength == d.count {
                var short = d
                short.remove(d.count - 1 ..< d.count)
                let before = short.bytes
                do {
                    try a.apply(to: &short)
                    XCTFail("\(label): \(a) applied to a document of \(d.count - 1) scalars")
                } catch let error as OTError {
                    XCTAssertEqual(error, .doesNotFit(needs: a.inputLength, documentLength: d.count - 1), "\(label)")
                } catch { XCTFail("\(label): \(error)") }
                XCTAssertEqual(short.bytes, before, "\(label)")
                short.checkInvariants()
            }
        }
    }

    /// TP1, compose and invert on documents that span many rope chunks, with long inserts and
    /// deletes that cross chunk boundaries (the small documents above fit in one chunk).
    func testPropertiesOnMultiChunkDocuments() {
        forEachCase("multi-chunk", count: 120) { rng, label in
            let d = TextRope(scalars: rng.scalars(rng.int(400 ... 4_000)))
            let a = rng.operation(documentLength: d.count, maxInsert: rng.pick([5, 50, 1_500]))
            let b = rng.operation(documentLength: d.count, maxInsert: rng.pick([5, 50, 1_500]))
            guard let da = applied(a, to: d, "a", label, checkReference: true),
                  let db = applied(b, to: d, "b", label, checkReference: true) else { return }
            for side in Side.allCases {
                let b1 = b.transformed(against: a, side: side)
                let a1 = a.transformed(against: b, side: side.opposite)
                assertNormalized(b1, "b′", label)
                assertNormalized(a1, "a′", label)
                guard let dab = applied(b1, to: da, "b′ after a", label, checkReference: true),
                      let dba = applied(a1, to: db, "a′ after b", label, checkReference: true) else { return }
                XCTAssertEqual(dab.bytes, dba.bytes, "\(label): TP1 fails with b on side \(side)")
            }
            let c = rng.operation(documentLength: da.count, maxInsert: rng.pick([5, 50, 1_500]))
            let ac = a.composed(with: c)
            assertNormalized(ac, "a∘c", label)
            if let seq = applied(c, to: da, "c", label, checkReference: true),
               let once = applied(ac, to: d, "a∘c", label, checkReference: true) {
                XCTAssertEqual(seq.bytes, once.bytes, "\(label): compose differs from applying in sequence")
            }
            do {
                let inv = try a.inverted(against: d)
                assertNormalized(inv, "a⁻¹", label)
                if let back = applied(inv, to: da, "a⁻¹", label, checkReference: true) {
                    XCTAssertEqual(back.bytes, d.bytes, "\(label): invert does not restore")
                }
            } catch { XCTFail("\(label): invert threw \(error)") }
        }
    }

    /// Concurrent inserts at one position: the op on side `.left` puts its text first, in both
    /// application orders.
    func testTieBreakPutsLeftInsertFirst() {
        forEachCase("tie-break", count: 2_000) { rng, label in
            let d = rng.document(maxScalars: 20)
            let p = rng.int(0 ... d.count)
            let x = String(scalars: rng.scalars(rng.int(1 ... 4)))
            let y = String(scalars: rng.scalars(rng.int(1 ... 4)))
            let a = TextOperation.insert(x, at: p), b = TextOperation.insert(y, at: p)
            let expected = Array(d[..<p]) + x.scalarArray + y.scalarArray + Array(d[p...])
            let doc = TextRope(scalars: d)
            guard let viaA = applied(b.transformed(against: a, side: .right), to: applied(a, to: doc, "a", label)!,
                                     "b′", label),
                  let viaB = applied(a.transformed(against: b, side: .left), to: applied(b, to: doc, "b", label)!,
                                     "a′", label) else { return }
            XCTAssertEqual(viaA.scalarArray, expected, "\(label)")
            XCTAssertEqual(viaB.scalarArray, expected, "\(label)")
        }
    }

    /// apply(apply(d, a), b) == apply(d, compose(a, b)), and the composition is normalized.
    func testComposeEqualsApplyInSequence() {
        forEachCase("compose", count: Self.cases) { rng, label in
            let d = TextRope(scalars: rng.document(maxScalars: 40))
            let a = rng.operation(documentLength: d.count)
            guard let da = applied(a, to: d, "a", label) else { return }
            let b = rng.operation(documentLength: da.count)
            let ab = a.composed(with: b)
            assertNormalized(ab, "a∘b", label)
            guard let dab = applied(b, to: da, "b", label), let dc = applied(ab, to: d, "a∘b", label) else { return }
            if dab.bytes != dc.bytes {
                XCTFail("""
                    \(label): compose differs from applying in sequence
                      d = \(debugScalars(d))
                      a = \(a), b = \(b), a∘b = \(ab)
                      b(a(d)) = \(debugScalars(dab))
                      (a∘b)(d) = \(debugScalars(dc))
                    """)
            }
            XCTAssertEqual(ab.lengthChange, a.lengthChange + b.lengthChange, "\(label)")
        }
    }

    /// Composition is associative as an edit: (a∘b)∘c and a∘(b∘c) produce the same document.
    func testComposeIsAssociative() {
        forEachCase("compose-assoc", count: 2_000) { rng, label in
            let d = TextRope(scalars: rng.document(maxScalars: 30))
            let a = rng.operation(documentLength: d.count)
            guard let da = applied(a, to: d, "a", label) else { return }
            let b = rng.operation(documentLength: da.count)
            guard let db = applied(b, to: da, "b", label) else { return }
            let c = rng.operation(documentLength: db.count)
            let left = a.composed(with: b).composed(with: c)
            let right = a.composed(with: b.composed(with: c))
            guard let l = applied(left, to: d, "(a∘b)∘c", label), let r = applied(right, to: d, "a∘(b∘c)", label),
                  let seq = applied(c, to: db, "c", label) else { return }
            XCTAssertEqual(l.bytes, seq.bytes, "\(label)")
            XCTAssertEqual(r.bytes, seq.bytes, "\(label)")
        }
    }

    /// apply(apply(d, a), invert(a, d)) == d, and inverting twice gives back an op with a's effect.
    func testInvertRestores() {
        forEachCase("invert", count: Self.cases) { rng, label in
            let d = TextRope(scalars: rng.document(maxScalars: 40))
            let a = rng.operation(documentLength: d.count)
            guard let da = applied(a, to: d, "a", label) else { return }
            let inv: TextOperation
            do { inv = try a.inverted(against: d) } catch {
                return XCTFail("\(label): invert threw \(error)")
            }
            assertNormalized(inv, "a⁻¹", label)
            guard let back = applied(inv, to: da, "a⁻¹", label) else { return }
            if back.bytes != d.bytes {
                XCTFail("""
                    \(label): invert does not restore
                      d = \(debugScalars(d))
                      a = \(a), a⁻¹ = \(inv)
                      got \(debugScalars(back))
                    """)
            }
            XCTAssertEqual(inv.lengthChange, -a.lengthChange, "\(label)")
            // a∘a⁻¹ is the identity on d.
            guard let id = applied(a.composed(with: inv), to: d, "a∘a⁻¹", label) else { return }
            XCTAssertEqual(id.bytes, d.bytes, "\(label)")
            // Inverting the inverse (against the document it applies to) redoes a.
            if let redo = try? inv.inverted(against: da), let again = applied(redo, to: d, "(a⁻¹)⁻¹", label) {
                XCTAssertEqual(again.bytes, da.bytes, "\(label)")
            } else {
                XCTFail("\(label): inverting the inverse failed")
            }
        }
    }

    /// Cursor transform: lands within 0...newLength, agrees with an independent model, keeps the
    /// caret's neighbours, and one's own insert at the caret pushes it past the inserted text.
    func testCursorTransform() {
        forEachCase("cursor", count: Self.cases) { rng, label in
            let d = TextRope(scalars: rng.document(maxScalars: 40))
            let a = rng.operation(documentLength: d.count)
            guard let da = applied(a, to: d, "a", label) else { return }
            let cursor = rng.int(0 ... d.count)
            for own in [false, true] {
                let moved = a.transform(position: cursor, isOwnOp: own)
                XCTAssertTrue((0 ... da.count).contains(moved),
                              "\(label): cursor \(cursor) → \(moved) outside 0...\(da.count) for \(a) (own: \(own))")
                let expected = referenceTransform(position: cursor, by: a, isOwnOp: own)
                XCTAssertEqual(moved, expected, "\(label): cursor \(cursor) by \(a) (own: \(own))")
            }
            // A single insert at the caret: own text pushes it, others' text does not.
            let text = String(scalars: rng.scalars(rng.int(1 ... 5)))
            let ins = TextOperation.insert(text, at: cursor)
            XCTAssertEqual(ins.transform(position: cursor, isOwnOp: true), cursor + text.unicodeScalars.count, "\(label)")
            XCTAssertEqual(ins.transform(position: cursor, isOwnOp: false), cursor, "\(label)")
            // Both ends of a selection stay in range.
            let sel = Selection(anchor: cursor, head: rng.int(0 ... d.count)).transformed(by: a)
            XCTAssertTrue((0 ... da.count).contains(sel.anchor) && (0 ... da.count).contains(sel.head), "\(label)")
        }
    }

    /// Cursor transform keeps the order of two cursors (selections never turn inside out).
    func testCursorTransformIsMonotonic() {
        forEachCase("cursor-monotonic", count: 3_000) { rng, label in
            let d = TextRope(scalars: rng.document(maxScalars: 30))
            let a = rng.operation(documentLength: d.count)
            guard let da = applied(a, to: d, "a", label) else { return }
            let p = rng.int(0 ... d.count), q = rng.int(0 ... d.count)
            let (lo, hi) = (min(p, q), max(p, q))
            for own in [false, true] {
                let tlo = a.transform(position: lo, isOwnOp: own), thi = a.transform(position: hi, isOwnOp: own)
                XCTAssertLessThanOrEqual(tlo, thi, "\(label): order of cursors \(lo), \(hi) not kept by \(a)")
                XCTAssertLessThanOrEqual(thi, da.count, "\(label)")
            }
        }
    }

    /// The random generator itself: it produces every component kind and non-trivial documents, so
    /// the properties above are not vacuous.
    func testGeneratorCoverage() {
        var inserts = 0, deletes = 0, retains = 0, multiByte = 0, empty = 0
        forEachCase("generator", count: 2_000) { rng, _ in
            let d = rng.document(maxScalars: 40)
            if d.isEmpty { empty += 1 }
            if d.contains(where: { $0.value > 0x7F }) { multiByte += 1 }
            for c in rng.operation(documentLength: d.count).components {
                switch c {
                case .insert: inserts += 1
                case .delete: deletes += 1
                case .retain: retains += 1
                }
            }
        }
        if TestSeed.onlyCase == nil {
            XCTAssertGreaterThan(inserts, 1_000)
            XCTAssertGreaterThan(deletes, 1_000)
            XCTAssertGreaterThan(retains, 1_000)
            XCTAssertGreaterThan(multiByte, 1_500)
            XCTAssertGreaterThan(empty, 10)
        }
    }
}
