import CollabClient
import CollabOT
import CollabProtocol
import XCTest

/// The client's presence: its own cursor follows the local copy and reaches the server in the
/// server's coordinates; others' cursors follow the ops this client applies.
final class SessionPresenceTests: XCTestCase {
    func live(doc: String = "hello", rev: Int = 3) -> ClientSession {
        var s = ClientSession(user: "ann", clientID: "me")
        var w = Message(.welcome)
        w.room = "r"
        w.rev = rev
        w.doc = doc
        _ = s.received(w)
        return s
    }

    func line(_ json: String) throws -> Message { try Message.decode(json) }

    func remote(_ op: String, rev: Int, client: String = "other") throws -> Message {
        var m = Message(.op)
        m.op = try TextOperation(json: op)
        m.rev = rev
        m.client = client
        m.seq = 1
        return m
    }

    func testCursorIsSentAtTheServersRevisionMappedBackThroughPendingEdits() throws {
        var s = live()
        // Typed "abc" at the end (in flight), caret after it.
        XCTAssertEqual(s.input(try line(#"{"type":"insert","pos":5,"text":"abc"}"#)).send.map(\.type), [.op])
        let sent = s.input(try line(#"{"type":"cursor","anchor":8}"#)).send
        let p = try XCTUnwrap(sent.first)
        XCTAssertEqual(p.type, .presence)
        XCTAssertEqual(p.rev, 3)
        // The server does not have "abc" yet: the caret is where it was typed; committing the
        // op (the caret owner's own) moves it after the text again on the server.
        XCTAssertEqual(p.cursor, Selection(anchor: 5, head: 5))
        var serverView = try XCTUnwrap(p.cursor)
        serverView = serverView.transformed(by: try TextOperation(json: #"[5,"abc"]"#), isOwnOp: true)
        XCTAssertEqual(serverView, Selection(anchor: 8, head: 8))
    }

    func testOwnCursorFollowsEditsAndTypingKeepsIt() throws {
        var s = live()
        _ = s.input(try line(#"{"type":"cursor","anchor":2,"head":4}"#))
        // Someone inserts at the start: the selection moves with the text.
        _ = s.received(try remote(#"["XY"]"#, rev: 4))
        let typing = try XCTUnwrap(s.input(try line(#"{"type":"typing"}"#)).send.first)
        XCTAssertEqual(typing.cursor, Selection(anchor: 4, head: 6))
        XCTAssertEqual(typing.typing, true)
        XCTAssertEqual(typing.rev, 4)
        // Out-of-range cursors are refused locally.
        let bad = s.input(try line(#"{"type":"cursor","anchor":99}"#))
        XCTAssertTrue(bad.send.isEmpty)
        XCTAssertEqual(bad.problems.count, 1)
    }

    func testPresenceIsSentAgainAfterAReconnect() throws {
        var s = live()
        _ = s.input(try line(#"{"type":"presence","status":"reviewing"}"#))
        s.disconnected()
        _ = s.connected()
        var w = Message(.welcome)
        w.rev = 3
        w.since = 3
        let out = s.received(w)
        XCTAssertEqual(out.send.first?.type, .presence)
        XCTAssertEqual(out.send.first?.status, "reviewing")
    }

    func testOthersCursorsFollowTheOpsThisClientApplies() throws {
        var s = live(doc: "hello world", rev: 3)
        var roster = Message(.roster)
        var bob = Message(.join)
        bob.client = "b"
        bob.user = "bob"
        bob.cursor = Selection(anchor: 6, head: 6)
        bob.rev = 3
        roster.members = [bob]
        _ = s.received(roster)
        XCTAssertEqual(s.cursorInLocalDocument(of: "b"), Selection(anchor: 6, head: 6))
        // A remote insert before bob's cursor.
        _ = s.received(try remote(#"["> "]"#, rev: 4, client: "c"))
        XCTAssertEqual(s.roster["b"]?.cursor, Selection(anchor: 8, head: 8))
        XCTAssertEqual(s.roster["b"]?.rev, 4)
        // A local edit before it, not acknowledged yet: in the local copy it is further on.
        _ = s.input(try line(#"{"type":"insert","pos":0,"text":"!!!"}"#))
        XCTAssertEqual(s.cursorInLocalDocument(of: "b"), Selection(anchor: 11, head: 11))
        var ack = Message(.ack)
        ack.seq = 1
        ack.rev = 5
        _ = s.received(ack)
        XCTAssertEqual(s.roster["b"]?.cursor, Selection(anchor: 11, head: 11))
        XCTAssertEqual(s.cursorInLocalDocument(of: "b"), Selection(anchor: 11, head: 11))
        // bob leaves.
        var leave = Message(.leave)
        leave.client = "b"
        _ = s.received(leave)
        XCTAssertNil(s.roster["b"])
    }

    func testACaretInsideUnacknowledgedOwnTextWaitsForTheAck() throws {
        var s = live(doc: "", rev: 0)
        _ = s.input(try line(#"{"type":"insert","pos":0,"text":"hello"}"#))
        // Between "he" and "llo": revision 0 has no such place.
        XCTAssertTrue(s.input(try line(#"{"type":"cursor","anchor":2}"#)).send.isEmpty)
        var ack = Message(.ack)
        ack.seq = 1
        ack.rev = 1
        let out = s.received(ack)
        let p = try XCTUnwrap(out.send.first { $0.type == .presence })
        XCTAssertEqual(p.rev, 1)
        XCTAssertEqual(p.cursor, Selection(anchor: 2, head: 2))
        // At the end of unacknowledged text it is sent at once: the server's own-op transform
        // puts it back after the text.
        _ = s.input(try line(#"{"type":"insert","pos":5,"text":"!"}"#))
        let atEnd = try XCTUnwrap(s.input(try line(#"{"type":"cursor","anchor":6}"#)).send.first)
        XCTAssertEqual(atEnd.rev, 1)
        XCTAssertEqual(atEnd.cursor, Selection(anchor: 5, head: 5))
    }
}
