import CollabTestSupport
import XCTest
@testable import CollabOT

/// `OTUndoManager`: selective undo of one user's edits among remote ones.
final class UndoManagerTests: XCTestCase {
    /// A document with one user's undo history, driven the way an editor would.
    struct Editor {
        var doc: TextRope
        var undo = OTUndoManager()

        init(_ text: String) { doc = TextRope(text) }

        mutating func local(_ op: TextOperation) throws {
            let inverse = try op.inverted(against: doc)
            try op.apply(to: &doc)
            undo.recordLocal(inverse: inverse)
        }

        mutating func remote(_ op: TextOperation) throws {
            try op.apply(to: &doc)
            undo.transform(against: op)
        }

        @discardableResult
        mutating func performUndo() throws -> TextOperation? {
            guard let op = undo.popUndo() else { return nil }
            let inverse = try op.inverted(against: doc)
            try op.apply(to: &doc)
            undo.recordUndone(inverse: inverse)
            return op
        }

        @discardableResult
        mutating func performRedo() throws -> TextOperation? {
            guard let op = undo.popRedo() else { return nil }
            let inverse = try op.inverted(against: doc)
            try op.apply(to: &doc)
            undo.recordRedone(inverse: inverse)
            return op
        }
    }

    func testUndoAfterRemoteEditRemovesExactlyOwnText() throws {
        var e = Editor("world")
        try e.local(.insert("héllo ", at: 0))
        XCTAssertEqual(e.doc.scalarArray, "héllo world".scalarArray)
        // Someone else types before, inside and after our text.
        try e.remote(try TextOperation([.insert("中"), .retain(3), .insert("👋🏽"), .retain(8), .insert("!")]))
        XCTAssertEqual(e.doc.scalarArray, "中hél👋🏽lo world!".scalarArray)
        XCTAssertTrue(e.undo.canUndo)
        try e.performUndo()
        XCTAssertEqual(e.doc.scalarArray, "中👋🏽world!".scalarArray)
        XCTAssertFalse(e.undo.canUndo)
        XCTAssertTrue(e.undo.canRedo)
    }

    func testUndoOfDeleteRestoresTextAmongRemoteEdits() throws {
        var e = Editor("keep THIS text")
        try e.local(.delete(5 ..< 10))
        XCTAssertEqual(e.doc.scalarArray, "keep text".scalarArray)
        try e.remote(.insert(">>", at: 0))
        try e.remote(.insert("ü", at: 11))
        XCTAssertEqual(e.doc.scalarArray, ">>keep textü".scalarArray)
        try e.performUndo()
        XCTAssertEqual(e.doc.scalarArray, ">>keep THIS textü".scalarArray)
    }

    func testUndoThenRedoRestores() throws {
        var e = Editor("abc")
        try e.local(.insert("X", at: 1))
        try e.local(.delete(2 ..< 4))
        XCTAssertEqual(e.doc.scalarArray, "aX".scalarArray)
        try e.remote(.insert("😀", at: 0))
        let edited = e.doc.scalarArray
        try e.performUndo()
        XCTAssertEqual(e.doc.scalarArray, "😀aXbc".scalarArray)
        try e.performUndo()
        XCTAssertEqual(e.doc.scalarArray, "😀abc".scalarArray)
        XCTAssertNil(try e.performUndo())
        try e.performRedo()
        XCTAssertEqual(e.doc.scalarArray, "😀aXbc".scalarArray)
        try e.remote(.insert("中", at: 5))
        try e.performRedo()
        XCTAssertEqual(e.doc.scalarArray, "😀aX中".scalarArray)
        XCTAssertNil(try e.performRedo())
        XCTAssertEqual(e.doc.scalarArray, edited + ["中"])
        // A new local edit ends the redo history.
        try e.performUndo()
        XCTAssertTrue(e.undo.canRedo)
        try e.local(.insert("!", at: 0))
        XCTAssertFalse(e.undo.canRedo)
    }

    /// Several entries, remote edits in between: each undo still reverses the right edit.
    func testUndoStackIsTransformed() throws {
        var e = Editor("0123456789")
        try e.local(.insert("a", at: 2))    // 01a23456789
        try e.remote(.insert("R", at: 0))   // R01a23456789
        try e.local(.delete(6 ..< 8))       // R01a236789 (own delete of "45")
        try e.remote(.delete(1 ..< 3))      // Ra236789
        try e.local(.insert("b", at: 6))    // Ra2367b89
        try e.remote(.insert("S", at: 7))   // Ra2367bS89
        XCTAssertEqual(e.doc.scalarArray, "Ra2367bS89".scalarArray)
        XCTAssertEqual(e.undo.undoStack.count, 3)
        try e.performUndo()
        XCTAssertEqual(e.doc.scalarArray, "Ra2367S89".scalarArray)
        try e.performUndo()
        XCTAssertEqual(e.doc.scalarArray, "Ra234567S89".scalarArray)
        try e.performUndo()
        XCTAssertEqual(e.doc.scalarArray, "R234567S89".scalarArray)
        XCTAssertEqual(e.undo.redoStack.count, 3)
        while try e.performRedo() != nil {}
        XCTAssertEqual(e.doc.scalarArray, "Ra2367bS89".scalarArray)
    }

    /// An entry whose text a remote user deleted entirely becomes a no-op and is dropped.
    func testEntryDeletedRemotelyIsDropped() throws {
        var e = Editor("ab")
        try e.local(.insert("xyz", at: 1))
        try e.remote(.delete(0 ..< 5))
        XCTAssertEqual(e.doc.scalarArray, "".scalarArray)
        XCTAssertFalse(e.undo.canUndo)
    }

    func testLimitDropsOldestEntries() throws {
        var e = Editor("")
        e.undo = OTUndoManager(limit: 3)
        for i in 0 ..< 5 { try e.local(.insert("\(i)", at: i)) }
        XCTAssertEqual(e.undo.undoStack.count, 3)
        while try e.performUndo() != nil {}
        XCTAssertEqual(e.doc.scalarArray, "01".scalarArray)
        XCTAssertEqual(e.undo.redoStack.count, 3)
    }

    func testNoopsAreNotRecorded() {
        var u = OTUndoManager()
        u.recordLocal(inverse: TextOperation())
        XCTAssertFalse(u.canUndo)
        u.recordUndone(inverse: TextOperation())
        XCTAssertFalse(u.canRedo)
    }

    /// Random own edits (own text from a marked alphabet, deletes of anything) interleaved with
    /// remote inserts: undoing all own edits restores the original text, removes every own scalar
    /// and keeps every remote one; redoing all then gives back the document as it was before undo.
    func testRandomUndoAllRestoresOthersWork() throws {
        let own: [Unicode.Scalar] = ["α", "β", "γ", "👍", "🏽", "\u{301}"]
        let remoteAlphabet: [Unicode.Scalar] = ["R", "中", "😀", "\u{200D}", "ß"]
        let original: [Unicode.Scalar] = Array("0123456789abcdefghij".unicodeScalars)
        try forEachCase("undo-all", count: 1_500) { rng, label in
            var e = Editor(String(scalars: original))
            var remoteInserted = 0
            for _ in 0 ..< rng.int(1 ... 12) {
                if rng.chance(0.5) {
                    // Own edit: insert own text and/or delete something.
                    var op = TextOperation()
                    let at = rng.int(0 ... e.doc.count)
                    op.retain(at)
                    if rng.chance(0.7) {
                        op.insert(String(scalars: (0 ..< rng.int(1 ... 4)).map { _ in rng.pick(own) }))
                    }
                    if at < e.doc.count, rng.chance(0.5) { op.delete(rng.int(1 ... min(4, e.doc.count - at))) }
                    op.trimTrailingRetain()
                    try e.local(op)
                } else {
                    let text = (0 ..< rng.int(1 ... 3)).map { _ in rng.pick(remoteAlphabet) }
                    remoteInserted += text.count
                    try e.remote(.insert(String(scalars: text), at: rng.int(0 ... e.doc.count)))
                }
                e.doc.checkInvariants()
            }
            let beforeUndo = e.doc.scalarArray
            var undone = 0
            while let op = try e.performUndo() {
                assertNormalized(op, "undo op", label)
                undone += 1
            }
            let after = e.doc.scalarArray
            XCTAssertEqual(after.filter { original.contains($0) }, original, "\(label): original text not restored")
            XCTAssertFalse(after.contains { own.contains($0) }, "\(label): own text left: \(debugScalars(after))")
            XCTAssertEqual(after.filter { remoteAlphabet.contains($0) }.count, remoteInserted,
                           "\(label): remote text lost or duplicated: \(debugScalars(after))")
            XCTAssertEqual(after.count, original.count + remoteInserted, "\(label)")
            // Redo everything: back to where we were.
            var redone = 0
            while try e.performRedo() != nil { redone += 1 }
            XCTAssertEqual(redone, undone, "\(label)")
            XCTAssertEqual(e.doc.scalarArray, beforeUndo, "\(label): redo all did not restore")
        }
    }
}
