import CollabOT
import CollabPresence
import CollabProtocol
import CollabTestSupport
import XCTest

final class PresenceRosterTests: XCTestCase {
    func join(_ client: String, user: String, color: String? = nil) -> Message {
        var m = Message(.join)
        m.client = client
        m.user = user
        m.color = color
        return m
    }

    func presence(_ client: String, cursor: Int? = nil, rev: Int? = nil, typing: Bool? = nil, status: String? = nil) -> Message {
        var m = Message(.presence)
        m.client = client
        m.cursor = cursor.map { Selection(anchor: $0, head: $0) }
        m.rev = rev
        m.typing = typing
        m.status = status
        return m
    }

    func testJoinPresenceLeaveAndTheRosterMessage() throws {
        var r = PresenceRoster(revision: 0)
        r.join(join("a", user: "ann", color: "#c62828"), now: 1)
        r.join(join("b", user: "bob"), now: 2)
        r.update(presence("a", cursor: 0, rev: 0, typing: true, status: "editing"), now: 3)
        // Partial: a later update without status keeps it.
        r.update(presence("a", typing: false), now: 4)
        XCTAssertEqual(r["a"]?.status, "editing")
        XCTAssertEqual(r["a"]?.typing, false)
        XCTAssertEqual(r["a"]?.lastActive, 4)
        XCTAssertEqual(r.colors(exceptUser: "bob"), ["#c62828"])
        XCTAssertEqual(r.colors(exceptUser: "ann"), [])
        let roster = r.rosterMessage(room: "doc")
        XCTAssertEqual(roster.members?.map(\.client), ["a", "b"])
        XCTAssertEqual(roster.members?.first?.cursor, Selection(anchor: 0, head: 0))
        XCTAssertEqual(roster.members?.first?.rev, 0)
        // Survives the wire and rebuilds the same roster.
        let decoded = try Message.decode(roster.json)
        var copy = PresenceRoster(revision: 0)
        copy.replace(with: decoded.members ?? [])
        XCTAssertEqual(copy["a"]?.cursor, r["a"]?.cursor)
        XCTAssertEqual(copy["a"]?.status, "editing")
        XCTAssertEqual(r.leave(client: "a")?.user, "ann")
        XCTAssertNil(r["a"])
        XCTAssertEqual(r.count, 1)
        // An empty status clears it.
        r.update(presence("b", status: "away"))
        r.update(presence("b", status: ""))
        XCTAssertNil(r["b"]?.status)
    }

    func testCursorsFollowCommittedOps() throws {
        var r = PresenceRoster(revision: 0)
        r.join(join("a", user: "ann"))
        r.join(join("b", user: "bob"))
        r.update(presence("a", cursor: 5, rev: 0))
        r.update(presence("b", cursor: 5, rev: 0))
        // Someone inserts before both cursors.
        r.integrate(rev: 1, op: try TextOperation(json: #"["abc"]"#), client: "c")
        XCTAssertEqual(r["a"]?.cursor?.head, 8)
        XCTAssertEqual(r["a"]?.rev, 1)
        // Insert exactly at the cursors, by a: a's caret moves past its own text, b's does not.
        r.integrate(rev: 2, op: try TextOperation(json: #"[8,"xy"]"#), client: "a")
        XCTAssertEqual(r["a"]?.cursor?.head, 10)
        XCTAssertEqual(r["b"]?.cursor?.head, 8)
        // A delete around the cursor pulls it to the start of the deletion.
        r.integrate(rev: 3, op: try TextOperation(json: #"[6,{"d":5}]"#), client: "c")
        XCTAssertEqual(r["a"]?.cursor?.head, 6)
        XCTAssertEqual(r["b"]?.cursor?.head, 6)
        // Replayed or old revisions change nothing.
        r.integrate(rev: 3, op: try TextOperation(json: #"["zzz"]"#), client: "c")
        XCTAssertEqual(r["a"]?.cursor?.head, 6)
    }

    func testLateCursorIsBroughtForwardAndTooLateOneIsDropped() throws {
        var r = PresenceRoster(revision: 0, historyLimit: 2)
        r.join(join("a", user: "ann"))
        for rev in 1 ... 3 { r.integrate(rev: rev, op: try TextOperation(json: #"["x"]"#), client: "c") }
        // Made at revision 2: the op at 3 (remembered) moves it.
        r.update(presence("a", cursor: 1, rev: 2))
        XCTAssertEqual(r["a"]?.cursor?.head, 2)
        XCTAssertEqual(r["a"]?.rev, 3)
        // Made at revision 0: ops 1...3 are not all remembered, so it cannot be placed.
        r.update(presence("a", cursor: 0, rev: 0, status: "here"))
        XCTAssertNil(r["a"]?.cursor)
        XCTAssertEqual(r["a"]?.status, "here")
    }

    func testCursorAheadOfTheRosterWaitsForItsRevision() throws {
        var r = PresenceRoster(revision: 1)
        r.join(join("a", user: "ann"))
        r.update(presence("a", cursor: 4, rev: 3))
        r.integrate(rev: 2, op: try TextOperation(json: #"["ab"]"#), client: "c")
        r.integrate(rev: 3, op: try TextOperation(json: #"["ab"]"#), client: "c")
        XCTAssertEqual(r["a"]?.cursor?.head, 4, "ops the cursor already accounts for must not move it")
        r.integrate(rev: 4, op: try TextOperation(json: #"["q"]"#), client: "c")
        XCTAssertEqual(r["a"]?.cursor?.head, 5)
        XCTAssertEqual(r["a"]?.rev, 4)
    }

    func testAGapOrANewDocumentDropsCursorsThatCannotBePlaced() throws {
        var r = PresenceRoster(revision: 0)
        r.join(join("a", user: "ann"))
        r.join(join("b", user: "bob"))
        r.update(presence("a", cursor: 1, rev: 0))
        r.update(presence("b", cursor: 1, rev: 5))
        r.integrate(rev: 3, op: try TextOperation(json: #"["x"]"#), client: "c")
        XCTAssertNil(r["a"]?.cursor)
        XCTAssertEqual(r["b"]?.cursor?.head, 1)
        r.reset(revision: 9)
        XCTAssertNil(r["b"]?.cursor)
        XCTAssertEqual(r.revision, 9)
    }

    func testTypingExpiresByItself() {
        var r = PresenceRoster(revision: 0, typingTimeout: 3000)
        r.join(join("a", user: "ann"))
        r.join(join("b", user: "bob"))
        r.update(presence("a", typing: true), now: 1000)
        r.update(presence("b", typing: true), now: 2000)
        XCTAssertEqual(r.nextTypingExpiry, 4000)
        XCTAssertEqual(r.expireTyping(now: 3999).count, 0)
        // A keystroke renews it.
        r.update(presence("a", typing: true), now: 3500)
        XCTAssertEqual(r.expireTyping(now: 5000).map(\.client), ["b"])
        XCTAssertEqual(r["b"]?.typing, false)
        XCTAssertEqual(r.nextTypingExpiry, 6500)
        XCTAssertEqual(r.expireTyping(now: 7000).map(\.client), ["a"])
        XCTAssertNil(r.nextTypingExpiry)
    }

    /// A cursor sent at revision r and ops r+1...r+k: brought forward on arrival (late) or moved
    /// op by op (on time), the result is the same, and it stays inside the document.
    func testLateAndOnTimeCursorsAgree() throws {
        for index in 0 ..< 300 {
            var rng = TestSeed.rng("presence-late-cursor", case: index)
            let label = TestSeed.describe("presence-late-cursor", case: index)
            var doc = String((0 ..< rng.int(0 ... 20)).map { _ in rng.pick(Array("abcdef")) })
            let anchor = rng.int(0 ... doc.unicodeScalars.count), head = rng.int(0 ... doc.unicodeScalars.count)
            var onTime = PresenceRoster(revision: 0, historyLimit: 64)
            var late = PresenceRoster(revision: 0, historyLimit: 64)
            onTime.join(join("a", user: "ann"))
            late.join(join("a", user: "ann"))
            var cursor = Message(.presence)
            cursor.client = "a"
            cursor.rev = 0
            cursor.cursor = Selection(anchor: anchor, head: head)
            onTime.update(cursor)
            for rev in 1 ... rng.int(1 ... 10) {
                let op = randomOp(on: doc, &rng)
                doc = try op.apply(to: doc)
                let author = rng.chance(0.3) ? "a" : "z"
                onTime.integrate(rev: rev, op: op, client: author)
                late.integrate(rev: rev, op: op, client: author)
            }
            late.update(cursor)
            XCTAssertEqual(late["a"]?.cursor, onTime["a"]?.cursor, label)
            XCTAssertEqual(late["a"]?.rev, onTime["a"]?.rev, label)
            let c = try XCTUnwrap(onTime["a"]?.cursor, label)
            XCTAssertTrue((0 ... doc.unicodeScalars.count).contains(c.anchor) && (0 ... doc.unicodeScalars.count).contains(c.head), label)
        }
    }

    func testReconcileSaysWhatARosterChangedAndKeepsTheTimesOfTheUnchanged() throws {
        var r = PresenceRoster(revision: 0, typingTimeout: 1_000)
        r.join(join("a", user: "ann", color: "#c62828"), now: 10)
        r.join(join("b", user: "bob"), now: 20)
        r.update(presence("b", cursor: 2, rev: 0, typing: true), now: 30)
        // The same roster again (a reconnect): no news, times kept.
        var same = r.rosterMessage().members ?? []
        var difference = r.reconcile(with: same, now: 500)
        XCTAssertTrue(difference.left.isEmpty)
        XCTAssertTrue(difference.changed.isEmpty)
        XCTAssertEqual(r["a"]?.lastActive, 10)
        XCTAssertEqual(r["b"]?.typingUntil, 1_030)
        // a left, c is new, b stopped typing.
        same = r.rosterMessage().members ?? []
        same.removeFirst()
        same[0].typing = false
        var carol = join("c", user: "carol")
        carol.status = "reading"
        same.append(carol)
        difference = r.reconcile(with: same, now: 600)
        XCTAssertEqual(difference.left.map(\.client), ["a"])
        XCTAssertEqual(difference.changed.map(\.after.client), ["b", "c"])
        XCTAssertEqual(difference.changed[0].before?.typing, true)
        XCTAssertEqual(difference.changed[0].after.typing, false)
        XCTAssertNil(difference.changed[1].before)
        XCTAssertEqual(r["b"]?.lastActive, 600)
        XCTAssertEqual(r["b"]?.cursor?.head, 2)
        XCTAssertEqual(r.members.keys.elements, ["b", "c"])
    }

    func randomOp(on doc: String, _ rng: inout SplitMix64) -> TextOperation {
        let length = doc.unicodeScalars.count
        var op = TextOperation()
        var pos = 0
        while pos < length || rng.chance(0.3) {
            switch rng.int(0 ..< 3) {
            case 0 where pos < length:
                let n = rng.int(1 ... length - pos)
                op.retain(n)
                pos += n
            case 1 where pos < length:
                let n = rng.int(1 ... min(3, length - pos))
                op.delete(n)
                pos += n
            default:
                op.insert(String((0 ..< rng.int(1 ... 3)).map { _ in rng.pick(Array("xyz🙂")) }))
            }
            if pos >= length && rng.chance(0.5) { break }
        }
        if pos < length { op.retain(length - pos) }
        op.trimTrailingRetain()
        return op
    }
}
