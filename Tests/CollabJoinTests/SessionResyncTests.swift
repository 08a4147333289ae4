import CollabClient
import CollabOT
import CollabProtocol
import XCTest

/// The session fix made for collab-join: an ack that skips a revision asks for a resync
/// (reconnect with since) instead of leaving the op in flight forever.
final class SessionResyncTests: XCTestCase {
    func testAnAckThatSkipsARevisionResyncsAndTheCatchUpAcknowledges() throws {
        var s = ClientSession(user: "u", clientID: "me")
        var w = Message(.welcome)
        w.room = "r"
        w.rev = 0
        w.doc = ""
        _ = s.received(w)
        var insert = Message(.insert)
        insert.pos = 0
        insert.text = "x"
        let sent = s.input(insert).send
        XCTAssertEqual(sent.first?.seq, 1)

        var ack = Message(.ack)
        ack.seq = 1
        ack.rev = 2 // revision 1 never arrived
        let out = s.received(ack)
        XCTAssertEqual(out.fatal?.code, ErrorCode.internalError.rawValue)
        XCTAssertFalse(s.isDrained)

        s.disconnected()
        XCTAssertEqual(s.connected().since, 0)
        var catchUp = Message(.welcome)
        catchUp.rev = 2
        catchUp.since = 0
        XCTAssertTrue(s.received(catchUp).send.isEmpty)
        var other = Message(.op)
        other.rev = 1
        other.client = "other"
        other.seq = 1
        other.op = .insert("y", at: 0)
        _ = s.received(other)
        var own = Message(.op)
        own.rev = 2
        own.client = "me"
        own.seq = 1
        own.op = .insert("x", at: 1)
        let last = s.received(own)
        XCTAssertTrue(last.send.isEmpty, "the committed op must not be resubmitted")
        XCTAssertTrue(s.isDrained)
        XCTAssertTrue(s.isLive)
        XCTAssertEqual(s.document.string, "yx")
    }
}
