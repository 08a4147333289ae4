import CollabTestSupport
import XCTest
@testable import CollabOT

/// `Sequencer` and `OTClient`, alone and together.
final class SequencerTests: XCTestCase {
    func testCommitsInOrderAndTransformsConcurrentOps() throws {
        var s = Sequencer(document: TextRope("abc"))
        guard case .committed(let c1) = try s.submit(client: "A", seq: 1, base: 0, op: .insert("X", at: 0)) else {
            return XCTFail("not committed")
        }
        XCTAssertEqual(c1, CommittedOp(rev: 1, client: "A", seq: 1, op: .insert("X", at: 0)))
        // B made its op on revision 0: it is transformed past A's insert.
        guard case .committed(let c2) = try s.submit(client: "B", seq: 1, base: 0, op: .insert("Y", at: 3)) else {
            return XCTFail("not committed")
        }
        XCTAssertEqual(c2.rev, 2)
        XCTAssertEqual(c2.op, .insert("Y", at: 4))
        XCTAssertEqual(s.document.scalarArray, "XabcY".scalarArray)
        XCTAssertEqual(s.revision, 2)
        XCTAssertEqual(s.committed(after: 0)?.map(\.rev), [1, 2])
        XCTAssertEqual(s.committed(after: 2)?.count, 0)
        XCTAssertNil(s.committed(after: 3))
    }

    func testConcurrentInsertAtSamePositionCommittedOpWins() throws {
        var s = Sequencer(document: TextRope("ab"))
        _ = try s.submit(client: "A", seq: 1, base: 0, op: .insert("X", at: 1))
        _ = try s.submit(client: "B", seq: 1, base: 0, op: .insert("Y", at: 1))
        XCTAssertEqual(s.document.scalarArray, "aXYb".scalarArray)
    }

    func testDuplicateResubmissionReturnsOriginalRevisionAndChangesNothing() throws {
        var s = Sequencer(document: TextRope("héllo"))
        let op = TextOperation.insert("👋🏽 ", at: 0)
        guard case .committed(let first) = try s.submit(client: "A", seq: 1, base: 0, op: op) else {
            return XCTFail("not committed")
        }
        _ = try s.submit(client: "B", seq: 1, base: 1, op: .insert("!", at: 8))
        _ = try s.submit(client: "A", seq: 2, base: 2, op: .delete(0 ..< 1))
        let before = s.document.scalarArray
        let revision = s.revision, history = s.history
        // The latest and an older submission of A, resubmitted with their original base.
        XCTAssertEqual(try s.submit(client: "A", seq: 1, base: 0, op: op), .duplicate(rev: first.rev))
        XCTAssertEqual(try s.submit(client: "A", seq: 2, base: 2, op: .delete(0 ..< 1)), .duplicate(rev: 3))
        XCTAssertEqual(try s.submit(client: "B", seq: 1, base: 1, op: .insert("!", at: 8)), .duplicate(rev: 2))
        XCTAssertEqual(s.document.scalarArray, before)
        XCTAssertEqual(s.revision, revision)
        XCTAssertEqual(s.history, history)
        // A new seq from A is committed normally.
        guard case .committed(let c) = try s.submit(client: "A", seq: 3, base: 3, op: .insert("?", at: 0)) else {
            return XCTFail("not committed")
        }
        XCTAssertEqual(c.rev, 4)
    }

    func testDuplicateOfTrimmedOpIsStale() throws {
        var s = Sequencer(document: TextRope(""))
        for seq in 1 ... 5 { _ = try s.submit(client: "A", seq: seq, base: seq - 1, op: .insert("x", at: 0)) }
        s.trimHistory(keeping: 2)
        XCTAssertEqual(s.oldestBase, 3)
        XCTAssertEqual(try s.submit(client: "A", seq: 5, base: 4, op: .insert("x", at: 0)), .duplicate(rev: 5))
        XCTAssertEqual(try s.submit(client: "A", seq: 4, base: 3, op: .insert("x", at: 0)), .duplicate(rev: 4))
        XCTAssertThrowsError(try s.submit(client: "A", seq: 1, base: 0, op: .insert("x", at: 0))) { error in
            XCTAssertEqual(error as? Sequencer.SubmitError, .staleSequence(client: "A", seq: 1, last: 5))
        }
        XCTAssertThrowsError(try s.submit(client: "B", seq: 1, base: 2, op: .insert("x", at: 0))) { error in
            XCTAssertEqual(error as? Sequencer.SubmitError, .historyUnavailable(base: 2, oldest: 3))
        }
        XCTAssertEqual(s.document.scalarArray, "xxxxx".scalarArray)
    }

    func testBaseInFutureIsRejected() throws {
        var s = Sequencer(document: TextRope("abc"))
        _ = try s.submit(client: "A", seq: 1, base: 0, op: .insert("x", at: 0))
        XCTAssertThrowsError(try s.submit(client: "B", seq: 1, base: 2, op: .insert("y", at: 0))) { error in
            XCTAssertEqual(error as? Sequencer.SubmitError, .baseInFuture(base: 2, head: 1))
            XCTAssertFalse("\(error)".isEmpty)
        }
        XCTAssertEqual(s.document.scalarArray, "xabc".scalarArray)
        XCTAssertEqual(s.revision, 1)
        // The rejected submission did not count for dedupe: B may send seq 1 properly.
        guard case .committed = try s.submit(client: "B", seq: 1, base: 1, op: .insert("y", at: 0)) else {
            return XCTFail("not committed")
        }
    }

    func testOpThatDoesNotFitIsRejectedWithoutChange() throws {
        var s = Sequencer(document: TextRope("abc"))
        XCTAssertThrowsError(try s.submit(client: "A", seq: 1, base: 0, op: .delete(0 ..< 4))) { error in
            XCTAssertEqual(error as? Sequencer.SubmitError, .doesNotFit(.doesNotFit(needs: 4, documentLength: 3)))
        }
        _ = try s.submit(client: "B", seq: 1, base: 0, op: .insert("中文", at: 0))
        // Still too long after being transformed past B's insert.
        XCTAssertThrowsError(try s.submit(client: "A", seq: 1, base: 0, op: .delete(0 ..< 4)))
        XCTAssertEqual(s.document.scalarArray, "中文abc".scalarArray)
        XCTAssertEqual(s.revision, 1)
    }

    /// After a restart from a snapshot (no history), the restored dedupe table still recognises
    /// resubmissions; an older entry never overwrites a newer one.
    func testRestoredDedupeTableRecognisesResubmissions() throws {
        var s = Sequencer(document: TextRope("snapshot"), revision: 40)
        s.restoreLastCommitted(["A": (seq: 7, rev: 39), "B": (seq: 2, rev: 12)])
        s.restoreLastCommitted(["A": (seq: 5, rev: 30)])
        XCTAssertEqual(try s.submit(client: "A", seq: 7, base: 38, op: .insert("x", at: 0)), .duplicate(rev: 39))
        XCTAssertThrowsError(try s.submit(client: "A", seq: 6, base: 38, op: .insert("x", at: 0))) { error in
            XCTAssertEqual(error as? Sequencer.SubmitError, .staleSequence(client: "A", seq: 6, last: 7))
        }
        XCTAssertEqual(try s.submit(client: "B", seq: 2, base: 11, op: .insert("x", at: 0)), .duplicate(rev: 12))
        XCTAssertEqual(s.document.string, "snapshot")
        XCTAssertEqual(s.revision, 40)
        guard case .committed(let c) = try s.submit(client: "A", seq: 8, base: 40, op: .insert("!", at: 8)) else {
            return XCTFail("not committed")
        }
        XCTAssertEqual(c.rev, 41)
    }

    func testIntegrateAndStartAtRevision() throws {
        var s = Sequencer(document: TextRope("ab"), revision: 10)
        XCTAssertEqual(s.oldestBase, 10)
        try s.integrate(CommittedOp(rev: 11, client: "X", seq: 7, op: .insert("!", at: 2)))
        XCTAssertEqual(s.document.scalarArray, "ab!".scalarArray)
        XCTAssertEqual(try s.submit(client: "X", seq: 7, base: 10, op: .insert("!", at: 2)), .duplicate(rev: 11))
        guard case .committed(let c) = try s.submit(client: "Y", seq: 1, base: 10, op: .insert("?", at: 0)) else {
            return XCTFail("not committed")
        }
        XCTAssertEqual(c.rev, 12)
        XCTAssertEqual(s.document.scalarArray, "?ab!".scalarArray)
    }
}

final class OTClientTests: XCTestCase {
    func testStateMachine() throws {
        var c = OTClient(revision: 5)
        XCTAssertEqual(c.state, .synchronized)
        XCTAssertNil(c.inFlight)
        XCTAssertNil(c.applyLocal(TextOperation()), "a no-op is not sent")

        let first = try XCTUnwrap(c.applyLocal(.insert("a", at: 0)))
        XCTAssertEqual(first, OTClient.Submission(seq: 1, base: 5, op: .insert("a", at: 0)))
        XCTAssertEqual(c.state, .awaitingAck(outstanding: .insert("a", at: 0)))
        XCTAssertNil(c.applyLocal(.insert("b", at: 1)))
        XCTAssertNil(c.applyLocal(.insert("c", at: 2)))
        XCTAssertEqual(c.state, .awaitingAckWithBuffer(outstanding: .insert("a", at: 0), buffer: .insert("bc", at: 1)))
        XCTAssertEqual(c.pending, .insert("abc", at: 0))

        let next = try c.acknowledge(seq: 1, rev: 6)
        XCTAssertEqual(next, OTClient.Submission(seq: 2, base: 6, op: .insert("bc", at: 1)))
        XCTAssertEqual(c.revision, 6)
        XCTAssertNil(try c.acknowledge(seq: 2, rev: 7))
        XCTAssertEqual(c.state, .synchronized)
        XCTAssertFalse(c.hasPendingChanges)
        XCTAssertEqual(c.nextSeq, 3)
    }

    func testErrors() throws {
        var c = OTClient(revision: 0)
        XCTAssertThrowsError(try c.acknowledge(seq: 1, rev: 1)) {
            XCTAssertEqual($0 as? OTClient.ClientError, .unexpectedAck(seq: 1))
        }
        _ = c.applyLocal(.insert("a", at: 0))
        XCTAssertThrowsError(try c.acknowledge(seq: 2, rev: 1)) {
            XCTAssertEqual($0 as? OTClient.ClientError, .unexpectedAck(seq: 2))
        }
        XCTAssertThrowsError(try c.acknowledge(seq: 1, rev: 3)) {
            XCTAssertEqual($0 as? OTClient.ClientError, .revisionGap(expected: 1, got: 3))
        }
        XCTAssertThrowsError(try c.applyRemote(.insert("x", at: 0), rev: 2)) {
            XCTAssertEqual($0 as? OTClient.ClientError, .revisionGap(expected: 1, got: 2))
        }
        XCTAssertEqual(c.revision, 0, "a rejected message changes nothing")
        XCTAssertEqual(c.state, .awaitingAck(outstanding: .insert("a", at: 0)))
    }

    /// After remote ops, the pending op is rebased locally, but a resubmission after a reconnect
    /// must be the op exactly as sent, with its original base: the server transforms it itself.
    func testResubmissionReturnsOriginalOpAndBase() throws {
        var server = Sequencer(document: TextRope("hello"))
        var doc = TextRope("hello")
        var c = OTClient(revision: 0)
        let mine = TextOperation.insert(" wörld", at: 5)
        try mine.apply(to: &doc)
        let sent = try XCTUnwrap(c.applyLocal(mine))
        _ = c.applyLocal(.insert("!", at: 11)) // buffered
        try TextOperation.insert("!", at: 11).apply(to: &doc)

        // Someone else's op is committed first; ours is lost in transit.
        guard case .committed(let other) = try server.submit(client: "B", seq: 1, base: 0, op: .insert("¡", at: 0))
        else { return XCTFail("not committed") }
        try c.applyRemote(other.op, rev: other.rev).apply(to: &doc)
        XCTAssertEqual(doc.scalarArray, "¡hello wörld!".scalarArray)
        guard case .awaitingAckWithBuffer(let outstanding, _) = c.state else { return XCTFail("\(c.state)") }
        XCTAssertEqual(outstanding, .insert(" wörld", at: 6), "rebased locally")

        let again = try XCTUnwrap(c.inFlight)
        XCTAssertEqual(again, sent)
        XCTAssertEqual(again, OTClient.Submission(seq: 1, base: 0, op: mine))
        XCTAssertEqual(c.outstandingBase, 0)
        XCTAssertEqual(c.outstandingAsSent, mine)

        // Resubmitting it is committed once; resubmitting again is a duplicate.
        guard case .committed(let commit) = try server.submit(client: "A", seq: again.seq, base: again.base, op: again.op)
        else { return XCTFail("not committed") }
        XCTAssertEqual(try server.submit(client: "A", seq: again.seq, base: again.base, op: again.op),
                       .duplicate(rev: commit.rev))
        let buffered = try XCTUnwrap(try c.acknowledge(seq: again.seq, rev: commit.rev))
        XCTAssertEqual(buffered.base, 2)
        XCTAssertEqual(c.inFlight, buffered)
        guard case .committed(let c2) = try server.submit(client: "A", seq: buffered.seq, base: buffered.base,
                                                          op: buffered.op) else { return XCTFail("not committed") }
        XCTAssertNil(try c.acknowledge(seq: buffered.seq, rev: c2.rev))
        XCTAssertEqual(server.document.scalarArray, doc.scalarArray)
        XCTAssertEqual(doc.scalarArray, "¡hello wörld!".scalarArray)
    }
}

/// N replicas and one sequencer, with random local edits and random delivery interleaving.
final class SimulationTests: XCTestCase {
    enum ToClient { case op(CommittedOp), ack(seq: Int, rev: Int) }

    struct Replica {
        var id: String
        var client: OTClient
        var doc: TextRope
        var inbox: [ToClient] = []  // from the server, delivered in order
        var outbox: [OTClient.Submission] = [] // to the server, delivered in order
    }

    /// Each step is one of: a local edit at a random replica; the server taking the next
    /// submission of a random replica; a random replica receiving its next message from the
    /// server; a network duplicate of an old submission reaching the server; a replica losing its
    /// connection (messages in both directions lost, perhaps after the server got its op) and
    /// reconnecting: it catches up from its revision, recognises its own committed op as the ack,
    /// and resubmits what is still in flight exactly as first sent. At the end everything is
    /// delivered and all replicas must equal the server's document.
    func testRandomCollaborationConverges() {
        var caughtUpAcks = 0, resubmissions = 0, duplicates = 0
        forEachCase("simulation", count: 300) { rng, label in
            let start = rng.document(maxScalars: 30)
            var server = Sequencer(document: TextRope(scalars: start))
            var replicas = (0 ..< rng.int(2 ... 5)).map {
                Replica(id: "c\($0)", client: OTClient(revision: 0), doc: TextRope(scalars: start))
            }
            // Documents at every revision, to check each replica against the server's history.
            var docAt: [[Unicode.Scalar]] = [start]
            var processed: [(String, OTClient.Submission)] = []
            let steps = rng.int(20 ... 120)
            var step = 0
            func fail(_ message: String) { XCTFail("\(label) step \(step): \(message)") }

            /// The server takes replica i's next submission and answers everyone.
            func serverTakes(_ i: Int) {
                let sub = replicas[i].outbox.removeFirst()
                do {
                    switch try server.submit(client: replicas[i].id, seq: sub.seq, base: sub.base, op: sub.op) {
                    case .committed(let commit):
                        docAt.append(server.document.scalarArray)
                        processed.append((replicas[i].id, sub))
                        for j in replicas.indices {
                            replicas[j].inbox.append(j == i ? .ack(seq: sub.seq, rev: commit.rev) : .op(commit))
                        }
                    case .duplicate:
                        fail("fresh submission \(sub) treated as duplicate")
                    }
                } catch { fail("submit: \(error)") }
            }

            /// Replica i receives one message from the server.
            func receive(_ i: Int, _ message: ToClient) {
                do {
                    switch message {
                    case .op(let commit):
                        let local = try replicas[i].client.applyRemote(commit.op, rev: commit.rev)
                        assertNormalized(local, "transformed remote op", label)
                        try local.apply(to: &replicas[i].doc)
                        replicas[i].doc.checkInvariants()
                    case .ack(let seq, let rev):
                        if let sub = try replicas[i].client.acknowledge(seq: seq, rev: rev) {
                            replicas[i].outbox.append(sub)
                        }
                    }
                } catch { fail("client \(replicas[i].id): \(error)") }
            }

            /// The replica is the server's document at its revision plus its pending ops.
            func check(_ i: Int) {
                let r = replicas[i]
                var expected = docAt[r.client.revision]
                if let pending = r.client.pending {
                    assertNormalized(pending, "pending", label)
                    guard let e = referenceApply(pending, to: expected) else {
                        return fail("pending op \(pending) does not fit revision \(r.client.revision)")
                    }
                    expected = e
                }
                if r.doc.scalarArray != expected {
                    fail("replica \(r.id) at rev \(r.client.revision) is not server doc + pending")
                }
            }

            // One random event; returns false when nothing could be done.
            func event(allowEdits: Bool) -> Bool {
                var choices: [Int] = []
                if allowEdits { choices += [0, 0, 0, 0, 0, 0, 4] }
                if replicas.contains(where: { !$0.outbox.isEmpty }) { choices += [1, 1, 1, 1] }
                if replicas.contains(where: { !$0.inbox.isEmpty }) { choices += [2, 2, 2, 2] }
                if !processed.isEmpty, allowEdits { choices.append(3) }
                guard !choices.isEmpty else { return false }
                switch rng.pick(choices) {
                case 0: // a local edit
                    let i = rng.int(0 ..< replicas.count)
                    let op = rng.operation(documentLength: replicas[i].doc.count, maxInsert: 4)
                    do { try op.apply(to: &replicas[i].doc) } catch { fail("local edit: \(error)") }
                    if let sub = replicas[i].client.applyLocal(op) { replicas[i].outbox.append(sub) }
                case 1: // the server takes the next submission of some client
                    serverTakes(rng.pick(replicas.indices.filter { !replicas[$0].outbox.isEmpty }))
                case 2: // a client receives the next message from the server
                    let i = rng.pick(replicas.indices.filter { !replicas[$0].inbox.isEmpty })
                    receive(i, replicas[i].inbox.removeFirst())
                    check(i)
                case 3: // a network duplicate of an already committed submission reaches the server
                    let (id, sub) = rng.pick(processed)
                    let before = server.document.scalarArray, rev = server.revision
                    do {
                        let outcome = try server.submit(client: id, seq: sub.seq, base: sub.base, op: sub.op)
                        guard case .duplicate(let original) = outcome else {
                            fail("duplicate \(sub) of \(id) committed again")
                            return true
                        }
                        XCTAssertLessThanOrEqual(original, rev)
                        duplicates += 1
                    } catch { fail("duplicate submit threw \(error)") }
                    if server.document.scalarArray != before || server.revision != rev {
                        fail("a duplicate changed the server")
                    }
                case 4: // a connection drops and comes back
                    let i = rng.int(0 ..< replicas.count)
                    // Maybe the server got the in-flight op before the drop; its ack is lost.
                    if !replicas[i].outbox.isEmpty, rng.chance(0.5) { serverTakes(i) }
                    replicas[i].outbox.removeAll()
                    replicas[i].inbox.removeAll()
                    // Catch up from the replica's revision. Its own op among them is the ack.
                    guard let missed = server.committed(after: replicas[i].client.revision) else {
                        fail("history unavailable")
                        return true
                    }
                    for commit in missed {
                        if commit.client == replicas[i].id {
                            XCTAssertEqual(commit.seq, replicas[i].client.outstandingSeq, "\(label)")
                            receive(i, .ack(seq: commit.seq, rev: commit.rev))
                            caughtUpAcks += 1
                        } else {
                            receive(i, .op(commit))
                        }
                        check(i)
                    }
                    // Whatever is in flight now (the old op, or the buffer just sent) goes again,
                    // exactly as first sent, with its original base.
                    replicas[i].outbox = replicas[i].client.inFlight.map { [$0] } ?? []
                    resubmissions += replicas[i].outbox.count
                default: break
                }
                return true
            }

            while step < steps { _ = event(allowEdits: true); step += 1 }
            // Quiesce: deliver everything in random order until nothing is left.
            while event(allowEdits: false) { step += 1 }

            let final = server.document.scalarArray
            for r in replicas {
                XCTAssertEqual(r.client.state, .synchronized, "\(label): \(r.id) still has pending changes")
                XCTAssertEqual(r.client.revision, server.revision, "\(label): \(r.id) revision")
                if r.doc.scalarArray != final {
                    XCTFail("\(label): \(r.id) diverged: \(debugScalars(r.doc)) vs server \(debugScalars(final))")
                }
            }
        }
        if TestSeed.onlyCase == nil {
            // The interesting paths were taken often enough to mean something.
            XCTAssertGreaterThan(caughtUpAcks, 50)
            XCTAssertGreaterThan(resubmissions, 100)
            XCTAssertGreaterThan(duplicates, 100)
            print("simulation: \(caughtUpAcks) acks found in catch-up, \(resubmissions) resubmissions, \(duplicates) duplicates")
        }
    }
}
