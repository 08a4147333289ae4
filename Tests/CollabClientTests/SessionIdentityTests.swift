import CollabClient
import CollabOT
import CollabProtocol
import XCTest

/// A server that checks tokens decides who a client is: the welcome's `user` and `client` win,
/// and the session speaks as them from then on.
final class SessionIdentityTests: XCTestCase {
    func welcome(client: String?, user: String?) -> Message {
        var w = Message(.welcome)
        w.room = "r"
        w.rev = 0
        w.doc = ""
        w.client = client
        w.user = user
        return w
    }

    func testTheWelcomesIdentityIsKeptForReconnectsAndOwnOps() throws {
        var s = ClientSession(user: "asked", clientID: "tab")
        XCTAssertEqual(s.connected().client, "tab")
        _ = s.received(welcome(client: "ann/tab", user: "ann"))
        XCTAssertEqual(s.clientID, "ann/tab")
        XCTAssertEqual(s.user, "ann")

        var insert = Message(.insert)
        insert.pos = 0
        insert.text = "x"
        XCTAssertEqual(s.input(insert).send.first?.client, "ann/tab")

        // The op comes back on a reconnect's catch-up as the server's: recognised as our own.
        s.disconnected()
        let hello = s.connected()
        XCTAssertEqual(hello.client, "ann/tab")
        XCTAssertEqual(hello.user, "ann")
        var w = welcome(client: "ann/tab", user: "ann")
        w.doc = nil
        w.since = 0
        w.rev = 1
        _ = s.received(w)
        var op = Message(.op)
        op.client = "ann/tab"
        op.seq = 1
        op.rev = 1
        op.op = try TextOperation(json: #"["x"]"#)
        _ = s.received(op)
        XCTAssertTrue(s.isDrained, "the catch-up op was taken as the ack of our own")
        XCTAssertEqual(s.document.string, "x")
    }

    func testAWelcomeWithoutIdentityChangesNothing() {
        var s = ClientSession(user: "u", clientID: "c")
        _ = s.received(welcome(client: nil, user: nil))
        XCTAssertEqual(s.clientID, "c")
        XCTAssertEqual(s.user, "u")
    }

    func testAForbiddenEditStopsTheSession() throws {
        var s = ClientSession(user: "u", clientID: "c")
        _ = s.received(welcome(client: "u/c", user: "u"))
        var insert = Message(.insert)
        insert.pos = 0
        insert.text = "x"
        let sent = try XCTUnwrap(s.input(insert).send.first)
        let out = s.received(.error(code: .forbidden, "read-only access", seq: sent.seq, room: "r"))
        XCTAssertEqual(out.fatal?.code, ErrorCode.forbidden.rawValue)
        // A forbidden presence (an observer's) is not about an edit: nothing fatal.
        var t = ClientSession(user: "u", clientID: "c")
        _ = t.received(welcome(client: "u/c", user: "u"))
        XCTAssertNil(t.received(.error(code: .forbidden, "observers send nothing")).fatal)
    }
}
