import CollabOT
import CollabProtocol
import CollabRedis
import CollabRedisRoom
import CollabTestSupport
import CollabTransport
import Foundation
import XCTest

/// RoomCommitter against a real redis-server: two committers on one room behave like two server
/// instances sharing it.
final class RoomCommitterTests: RedisTestCase {
    typealias Outcome = Result<RoomCommitResult, RoomCommitError>

    override func setUpWithError() throws {
        try super.setUpWithError()
        connect("c")
    }

    func fresh(_ room: String) -> RoomKeys {
        let keys = RoomKeys(room: "\(name)-\(room)")
        _ = exec([["DEL", keys.revision, keys.log, keys.clients, keys.snapshot]])
        return keys
    }

    /// A committer named `name` for `keys` on its own connection.
    func committer(_ name: String, _ keys: RoomKeys) {
        if runner.sync({ [runner] _ in runner!.objects["conn-" + name] == nil }) == true { connect("conn-" + name) }
        _ = runner.sync { [runner] _ in
            let c = RoomCommitter(connection: runner!.objects["conn-" + name] as! RedisConnection, room: keys.room)
            runner!.objects["rc-" + name] = c
        }
    }

    /// Submits without waiting; the box fills with the outcome.
    func submit(_ name: String, client: String, seq: Int, base: Int?, op: TextOperation) -> UncheckedSendable<Box<Outcome>> {
        let box = UncheckedSendable(Box<Outcome>())
        _ = runner.sync { [runner] _ in
            let c = runner!.objects["rc-" + name] as! RoomCommitter
            c.submit(client: client, seq: seq, base: base, op: op, user: "u-\(name)") { box.value.value = $0 }
        }
        return box
    }

    func outcome(_ box: UncheckedSendable<Box<Outcome>>) -> Outcome? {
        runner.wait("outcome") { _ in box.value.value != nil }
        return runner.sync { _ in box.value.value } ?? nil
    }

    func submitAndWait(_ name: String, client: String, seq: Int, base: Int?, op: TextOperation) -> Outcome? {
        outcome(submit(name, client: client, seq: seq, base: base, op: op))
    }

    /// The committed messages of the stream, decoded.
    func log(_ keys: RoomKeys) -> [Message] {
        let box = UncheckedSendable(Box<Result<[(rev: Int, message: [UInt8])], RedisError>>())
        _ = runner.sync { [runner] _ in
            RoomLog.read(on: runner!.objects["c"] as! RedisConnection, keys: keys, after: 0, count: 100_000) { box.value.value = $0 }
        }
        runner.wait("read") { _ in box.value.value != nil }
        guard case .success(let entries)?? = runner.sync({ _ in box.value.value }) else {
            XCTFail("read failed")
            return []
        }
        return entries.map { e in
            let m = try! Message.decode(String(decoding: e.message, as: UTF8.self))
            XCTAssertEqual(m.rev, e.rev)
            return m
        }
    }

    func document(_ messages: [Message]) throws -> String {
        var text = ""
        for m in messages { text = try m.op!.apply(to: text) }
        return text
    }

    func counters(_ name: String) -> (conflicts: Int, reads: Int, batches: Int, batchedOps: Int) {
        runner.sync { [runner] _ in
            let c = runner!.objects["rc-" + name] as! RoomCommitter
            return (c.conflicts, c.reads, c.batches, c.batchedOps)
        } ?? (0, 0, 0, 0)
    }

    /// Submits many ops at once on each committer (so they queue and go in batches), from
    /// several clients made on several bases, while the other committer does the same.
    func testQueuedOpsCommitInBatchesLikeTheSequencerWould() throws {
        let keys = fresh("batches")
        committer("a", keys)
        committer("b", keys)
        var rng = SplitMix64(seed: 9)
        var submitted: [String: (base: Int, op: TextOperation)] = [:]
        var boxes: [UncheckedSendable<Box<Outcome>>] = []
        var seqs: [String: Int] = [:]
        for _ in 0 ..< 4 {
            let history = log(keys)
            for _ in 0 ..< 30 {
                let name = rng.next() % 2 == 0 ? "a" : "b"
                let client = "\(name)\(rng.next() % 3)"
                seqs[client, default: 0] += 1
                // Made on the latest revision or a little before it.
                let base = max(0, history.count - Int(rng.next() % 3))
                let op = randomOp(on: try document(Array(history.prefix(base))), &rng)
                submitted["\(client)/\(seqs[client]!)"] = (base, op)
                boxes.append(submit(name, client: client, seq: seqs[client]!, base: base, op: op))
            }
            for box in boxes { _ = outcome(box) }
            boxes = []
        }
        let history = log(keys)
        XCTAssertEqual(history.map(\.rev), Array(1 ... 120))
        var sequencer = Sequencer()
        for m in history {
            let original = try XCTUnwrap(submitted["\(m.client!)/\(m.seq!)"])
            guard case .committed(let c) = try sequencer.submit(client: m.client!, seq: m.seq!, base: original.base, op: original.op) else {
                return XCTFail("sequencer: duplicate")
            }
            XCTAssertEqual(c.op, m.op, "rev \(m.rev!)")
        }
        XCTAssertEqual(sequencer.document.string, try document(history))
        let a = counters("a"), b = counters("b")
        XCTAssertGreaterThan(a.batches + b.batches, 0, "nothing was batched")
        print("batches: a \(a.batches) (\(a.batchedOps) ops), b \(b.batches) (\(b.batchedOps) ops); conflicts \(a.conflicts + b.conflicts)")
    }

    func testABatchThatMeetsTheDedupeTableIsCommittedOneByOne() throws {
        let keys = fresh("batch-dedupe")
        committer("a", keys)
        XCTAssertEqual(try submitAndWait("a", client: "x", seq: 1, base: 0, op: .insert("x", at: 0))?.get().rev, 1)
        // Queued together: a resubmission in the middle of new ops.
        let y = submit("a", client: "y", seq: 1, base: 1, op: .insert("y", at: 1))
        let x = submit("a", client: "x", seq: 1, base: 0, op: .insert("x", at: 0))
        let z = submit("a", client: "z", seq: 1, base: 1, op: .insert("z", at: 0))
        let x0 = submit("a", client: "x", seq: 0, base: 0, op: .insert("?", at: 0))
        XCTAssertEqual(try outcome(y)?.get().rev, 2)
        XCTAssertEqual(try outcome(x)?.get(), .duplicate(rev: 1))
        XCTAssertEqual(try outcome(z)?.get().rev, 3)
        guard case .failure(.stale(seq: 0, lastSeq: 1))? = outcome(x0) else { return XCTFail("old seq accepted") }
        XCTAssertEqual(try document(log(keys)), "zxy")
    }

    func testConcurrentCommittersConvergeToOneHistory() throws {
        let keys = fresh("converge")
        committer("a", keys)
        committer("b", keys)
        var rng = SplitMix64(seed: 4)
        var seqs = ["a": 0, "b": 0]
        var submitted: [String: (base: Int, op: TextOperation)] = [:]
        // Each round both "instances" submit ops made on the same revision, so one of them conflicts.
        for _ in 0 ..< 12 {
            let history = log(keys)
            let base = history.count
            let doc = try document(history)
            var boxes: [(String, Int, TextOperation, UncheckedSendable<Box<Outcome>>)] = []
            for name in ["a", "b"] {
                for _ in 0 ..< 2 {
                    let op = randomOp(on: doc, &rng)
                    seqs[name]! += 1
                    submitted["\(name)/\(seqs[name]!)"] = (base, op)
                    boxes.append((name, seqs[name]!, op, submit(name, client: name, seq: seqs[name]!, base: base, op: op)))
                }
            }
            for (name, seq, _, box) in boxes {
                guard case .success(.committed(let m))? = outcome(box) else { return XCTFail("\(name) \(seq) not committed") }
                XCTAssertEqual(m.client, name)
                XCTAssertEqual(m.seq, seq)
            }
        }
        let history = log(keys)
        XCTAssertEqual(history.map(\.rev), Array(1 ... 48))
        // The same submissions through the in-memory Sequencer, in commit order, commit the same ops.
        var sequencer = Sequencer()
        for m in history {
            let original = submitted["\(m.client!)/\(m.seq!)"]!
            guard case .committed(let c) = try sequencer.submit(client: m.client!, seq: m.seq!, base: original.base, op: original.op) else {
                return XCTFail("sequencer: duplicate")
            }
            XCTAssertEqual(c.rev, m.rev)
            XCTAssertEqual(c.op, m.op, "rev \(m.rev!)")
        }
        let doc = try document(history)
        XCTAssertEqual(sequencer.document.string, doc)
        XCTAssertGreaterThan(counters("a").conflicts + counters("b").conflicts, 0)
        // Each side's view: its cache applied from where it starts equals the stream.
        for name in ["a", "b"] {
            let resubmit = submitAndWait(name, client: name, seq: seqs[name]!, base: 0, op: TextOperation())
            guard case .success(.duplicate(let rev))? = resubmit else { return XCTFail("resubmission: \(String(describing: resubmit))") }
            XCTAssertEqual(history[rev - 1].client, name)
        }
        // A final op from each side on the latest revision lands on the same document.
        let a = submitAndWait("a", client: "a", seq: 1000, base: nil, op: .insert("<", at: 0))
        let b = submitAndWait("b", client: "b", seq: 1000, base: nil, op: .insert(">", at: doc.unicodeScalars.count + 1))
        XCTAssertEqual(a.flatMap { try? $0.get().rev }, 49)
        XCTAssertEqual(b.flatMap { try? $0.get().rev }, 50)
        XCTAssertEqual(try document(log(keys)), "<" + doc + ">")
    }

    func randomOp(on doc: String, _ rng: inout SplitMix64) -> TextOperation {
        let n = doc.unicodeScalars.count
        if n > 4 && rng.next() % 3 == 0 {
            let at = Int(rng.next() % UInt64(n - 1))
            let len = 1 + Int(rng.next() % UInt64(min(3, n - at)))
            return .delete(at ..< at + len)
        }
        let at = Int(rng.next() % UInt64(n + 1))
        return .insert(["x", "yé", "z\n", "🙂"][Int(rng.next() % 4)], at: at)
    }

    func testConflictIsTransformedAndRetried() throws {
        let keys = fresh("conflict")
        committer("a", keys)
        XCTAssertEqual(try submitAndWait("a", client: "a", seq: 1, base: 0, op: .insert("hello", at: 0))?.get().rev, 1)
        // Another instance commits rev 2 behind a's back.
        committer("b", keys)
        XCTAssertEqual(try submitAndWait("b", client: "b", seq: 1, base: 1, op: .insert("!", at: 5))?.get().rev, 2)
        let readsBefore = counters("a").reads
        // a believes the room is at 1: its optimistic commit conflicts, it reads rev 2, transforms, retries.
        let r = submitAndWait("a", client: "a", seq: 2, base: 1, op: .insert(",", at: 5))
        guard case .success(.committed(let m))? = r else { return XCTFail("\(String(describing: r))") }
        XCTAssertEqual(m.rev, 3)
        XCTAssertEqual(counters("a").conflicts, 1)
        XCTAssertEqual(counters("a").reads, readsBefore + 1)
        // Both inserted at 5: the op committed first goes first.
        XCTAssertEqual(try document(log(keys)), "hello!,")
        // An op made on revision 0 is transformed against all three; each tie goes to the committed op.
        XCTAssertEqual(try submitAndWait("b", client: "b", seq: 2, base: 0, op: .insert("¡", at: 0))?.get().rev, 4)
        XCTAssertEqual(try document(log(keys)), "hello!,¡")
        let future = submitAndWait("b", client: "b", seq: 3, base: 9, op: .insert("?", at: 0))
        XCTAssertEqual(future.flatMap { r -> RoomCommitError? in if case .failure(let e) = r { return e } else { return nil } },
                       .baseInFuture(base: 9, head: 4))
    }

    func testDuplicateAndStaleResubmissions() throws {
        let keys = fresh("dedupe")
        committer("a", keys)
        committer("b", keys)
        XCTAssertEqual(try submitAndWait("a", client: "x", seq: 5, base: 0, op: .insert("one", at: 0))?.get().rev, 1)
        XCTAssertEqual(try submitAndWait("b", client: "y", seq: 1, base: 1, op: .insert("two", at: 3))?.get().rev, 2)
        // The same (client, seq) through another instance, as after a reconnect: the original rev.
        XCTAssertEqual(try submitAndWait("b", client: "x", seq: 5, base: 0, op: .insert("one", at: 0))?.get(), .duplicate(rev: 1))
        let stale = submitAndWait("b", client: "x", seq: 4, base: 0, op: .insert("zero", at: 0))
        guard case .failure(.stale(seq: 4, lastSeq: 5))? = stale else { return XCTFail("\(String(describing: stale))") }
        XCTAssertEqual(try document(log(keys)), "onetwo")
    }

    func testTrimmedHistoryIsReported() throws {
        let keys = fresh("trim")
        committer("a", keys)
        // Queue 200 submissions at once: they commit one after the other, in order.
        let boxes = (1 ... 200).map { i in submit("a", client: "a", seq: i, base: nil, op: .insert("\(i % 10)", at: 0)) }
        XCTAssertEqual(outcome(boxes.last!).flatMap { try? $0.get().rev }, 200)
        XCTAssertEqual(counters("a").conflicts, 0)
        guard case .stored? = try writeSnapshot(keys, revision: 200, message: "{}", keep: 20)?.get() else {
            return XCTFail("snapshot not stored")
        }
        let kept = log(keys)
        XCTAssertLessThan(kept.count, 200)
        committer("b", keys)
        let old = submitAndWait("b", client: "b", seq: 1, base: 3, op: .insert("?", at: 0))
        guard case .failure(let e)? = old, case .historyUnavailable(base: 3, _) = e else { return XCTFail("\(String(describing: old))") }
        XCTAssertEqual(e.code, .historyUnavailable)
        XCTAssertTrue(e.description.hasPrefix("history-unavailable"))
        // An op on a revision the stream still holds commits.
        XCTAssertEqual(try submitAndWait("b", client: "b", seq: 2, base: 199, op: .insert("?", at: 0))?.get().rev, 201)
    }
}
