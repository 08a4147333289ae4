import CollabClient
import CollabOT
import CollabProtocol
import XCTest

/// A non-fatal `unavailable` for the op in flight (collab-serve --redis while Redis is down): the
/// session asks the host for a retry and, when asked, resends the op as a reconnect would; every
/// request that has become stale meanwhile sends nothing.
final class SessionResubmitTests: XCTestCase {
    /// A live session at revision `rev` on `doc`, with one insert in flight (seq 1, base `rev`).
    func sessionWithOpInFlight(rev: Int = 3, doc: String = "abc") throws -> (ClientSession, Message) {
        var s = ClientSession(user: "u", clientID: "me")
        var w = Message(.welcome)
        w.room = "r"
        w.rev = rev
        w.doc = doc
        _ = s.received(w)
        let sent = s.input(insert("x", at: 0)).send
        XCTAssertEqual(sent.count, 1)
        return (s, try XCTUnwrap(sent.first))
    }

    func insert(_ text: String, at pos: Int) -> Message {
        var m = Message(.insert)
        m.pos = pos
        m.text = text
        return m
    }

    func unavailable(seq: Int?, fatal: Bool = false) -> Message {
        .error(code: .unavailable, "Redis is unavailable; send the op again later", seq: seq, room: "r", fatal: fatal)
    }

    func ack(seq: Int, rev: Int) -> Message {
        var a = Message(.ack)
        a.room = "r"
        a.seq = seq
        a.rev = rev
        return a
    }

    func testUnavailableAsksForARetryAndTheResubmissionIsTheOriginal() throws {
        var (s, first) = try sessionWithOpInFlight()
        let out = s.received(unavailable(seq: 1))
        XCTAssertEqual(out.retry, 1)
        XCTAssertTrue(out.send.isEmpty)
        XCTAssertNil(out.fatal)
        XCTAssertEqual(out.print.map(\.type), [.error], "the error is room traffic: printed")
        XCTAssertFalse(s.isDrained)

        let again = s.resubmit(seq: 1).send
        XCTAssertEqual(again.map(\.json), [first.json], "same client, seq, base and op")
        XCTAssertTrue(s.resubmit(seq: 1).send.isEmpty, "a second timer for the same refusal sends nothing")

        // Refused again: another retry; then it commits.
        XCTAssertEqual(s.received(unavailable(seq: 1)).retry, 1)
        XCTAssertEqual(s.resubmit(seq: 1).send.map(\.json), [first.json])
        let acked = s.received(ack(seq: 1, rev: 4))
        XCTAssertNil(acked.retry)
        XCTAssertTrue(s.isDrained)
        XCTAssertEqual(s.document.string, "xabc")
        XCTAssertTrue(s.resubmit(seq: 1).send.isEmpty)
    }

    func testAnAckAfterTheRefusalMakesTheRetryStaleAndSendsTheBuffer() throws {
        // Redis failed after committing: the instance reports `unavailable`, then finds the
        // commit in the stream and acknowledges it.
        var (s, _) = try sessionWithOpInFlight()
        _ = s.input(insert("y", at: 0)) // buffered behind seq 1
        XCTAssertEqual(s.received(unavailable(seq: 1)).retry, 1)
        let afterAck = s.received(ack(seq: 1, rev: 4))
        XCTAssertEqual(afterAck.send.map(\.seq), [2])
        XCTAssertEqual(afterAck.send.first?.base, 4)
        XCTAssertTrue(s.resubmit(seq: 1).send.isEmpty)
        XCTAssertTrue(s.resubmit(seq: 2).send.isEmpty, "seq 2 is outstanding, not refused")
    }

    func testAReconnectResubmitsAndMakesTheRetryStale() throws {
        var (s, first) = try sessionWithOpInFlight()
        XCTAssertEqual(s.received(unavailable(seq: 1)).retry, 1)
        s.disconnected()
        XCTAssertTrue(s.resubmit(seq: 1).send.isEmpty, "not live")
        XCTAssertEqual(s.connected().since, 3)
        var w = Message(.welcome)
        w.rev = 3
        w.since = 3
        XCTAssertEqual(s.received(w).send.map(\.json), [first.json], "the catch-up resubmits")
        XCTAssertTrue(s.resubmit(seq: 1).send.isEmpty, "the old timer must not send it twice")
    }

    func testOpsCommittedMeanwhileAreIntegratedAndTheResubmissionKeepsItsBase() throws {
        var (s, first) = try sessionWithOpInFlight()
        XCTAssertEqual(s.received(unavailable(seq: 1)).retry, 1)
        var other = Message(.op)
        other.room = "r"
        other.client = "other"
        other.seq = 1
        other.rev = 4
        other.op = .insert("!", at: 3)
        _ = s.received(other)
        XCTAssertEqual(s.document.string, "xabc!")
        // Like a reconnect's: the server transforms it against revision 4 itself.
        XCTAssertEqual(s.resubmit(seq: 1).send.map(\.json), [first.json])
        _ = s.received(ack(seq: 1, rev: 5))
        XCTAssertTrue(s.isDrained)
        XCTAssertEqual(s.revision, 5)
    }

    func testOtherErrorsAskForNoRetry() throws {
        var (s, _) = try sessionWithOpInFlight()
        XCTAssertNil(s.received(unavailable(seq: 7)).retry, "not the op in flight")
        XCTAssertNil(s.received(unavailable(seq: nil)).retry)
        XCTAssertNil(s.received(.error(code: .conflict, "still conflicting", seq: 1, room: "r")).retry,
                     "would be refused again")
        let fatal = s.received(unavailable(seq: 1, fatal: true))
        XCTAssertNil(fatal.retry, "a fatal error closes the connection; the reconnect resubmits")
        XCTAssertEqual(fatal.fatal?.code, "unavailable")
        XCTAssertTrue(s.resubmit(seq: 1).send.isEmpty, "still outstanding on this connection")
    }
}

/// `rate-limited` for the op in flight (collab-serve --max-rate) is the same kind of refusal:
/// nothing was committed, the connection stays, the op is kept and sent again later.
extension SessionResubmitTests {
    func rateLimited(seq: Int?, fatal: Bool = false) -> Message {
        .error(code: .rateLimited, "more than 5 messages a second", seq: seq, room: "r", fatal: fatal)
    }

    func testRateLimitedOpIsKeptAndResubmitted() throws {
        var (s, first) = try sessionWithOpInFlight()
        let out = s.received(rateLimited(seq: 1))
        XCTAssertEqual(out.retry, 1)
        XCTAssertEqual(out.retryCode, "rate-limited")
        XCTAssertNil(out.fatal)
        XCTAssertFalse(s.isDrained)
        // Edits made meanwhile wait behind it, composed.
        XCTAssertTrue(s.input(insert("y", at: 0)).send.isEmpty)
        XCTAssertEqual(s.resubmit(seq: 1).send.map(\.json), [first.json])
        let acked = s.received(ack(seq: 1, rev: 4))
        XCTAssertEqual(acked.send.count, 1, "the buffered edit follows the ack")
        XCTAssertEqual(acked.send.first?.seq, 2)
    }

    func testRateLimitedWithoutSeqOrForAnotherOpAsksForNothing() throws {
        var (s, _) = try sessionWithOpInFlight()
        XCTAssertNil(s.received(rateLimited(seq: nil)).retry, "a dropped presence or event: nothing to resend")
        XCTAssertNil(s.received(rateLimited(seq: 9)).retry, "not the op in flight")
        let fatal = s.received(rateLimited(seq: nil, fatal: true))
        XCTAssertNotNil(fatal.fatal, "a close for sustained abuse: reconnect (and resubmit then)")
    }
}
