import CollabRedis
import CollabTestSupport
import CollabTransport
import Foundation
import XCTest

/// The commit script against a real redis-server: the rules that let several server instances
/// share one room's history (expected revision, (client, seq) dedupe, append, publish).
final class RoomLogTests: RedisTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        connect()
    }

    /// Commits on connection "c" and waits for the outcome.
    func commit(_ keys: RoomKeys, expected: Int, client: String, seq: Int, message: String)
        -> Result<CommitOutcome, RedisError>? {
        let rec = UncheckedSendable(Box<Result<CommitOutcome, RedisError>>())
        _ = runner.sync { [runner] _ in
            let c = runner!.objects["c"] as! RedisConnection
            let script = (runner!.objects["commit"] as? RedisScript) ?? RedisScript(source: RoomLog.commitSource)
            runner!.objects["commit"] = script
            RoomLog.commit(on: c, script: script, keys: keys, expectedRevision: expected, client: client, seq: seq,
                           message: Array(message.utf8)) { rec.value.value = $0 }
        }
        runner.wait("commit outcome") { _ in rec.value.value != nil }
        return runner.sync { _ in rec.value.value } ?? nil
    }

    func read(_ keys: RoomKeys, after: Int, count: Int = 1000) -> [(rev: Int, message: String)] {
        let rec = UncheckedSendable(Box<Result<[(rev: Int, message: [UInt8])], RedisError>>())
        _ = runner.sync { [runner] _ in
            RoomLog.read(on: runner!.objects["c"] as! RedisConnection, keys: keys, after: after, count: count) {
                rec.value.value = $0
            }
        }
        runner.wait("read") { _ in rec.value.value != nil }
        let result = runner.sync { _ in rec.value.value } ?? nil
        guard case .success(let entries)? = result else {
            XCTFail("read failed: \(String(describing: result))")
            return []
        }
        return entries.map { ($0.rev, String(decoding: $0.message, as: UTF8.self)) }
    }

    func fresh(_ room: String) -> RoomKeys {
        let keys = RoomKeys(room: "\(name)-\(room)")
        _ = exec([["DEL", keys.revision, keys.log, keys.clients, keys.snapshot]])
        return keys
    }

    func testKeysShareOneClusterSlot() {
        let k = RoomKeys(room: "docs/a")
        for key in [k.revision, k.log, k.clients, k.snapshot, k.channel] {
            XCTAssertTrue(key.hasPrefix("collab:{docs/a}:"), key)
        }
    }

    func testCommitsInOrderAndConflictsWhenBehind() throws {
        let keys = fresh("order")
        XCTAssertEqual(try commit(keys, expected: 0, client: "a", seq: 1, message: "m1")?.get(), .committed(rev: 1))
        // Another instance still at revision 0 must read and transform before it may commit.
        XCTAssertEqual(try commit(keys, expected: 0, client: "b", seq: 1, message: "x")?.get(), .conflict(head: 1))
        XCTAssertEqual(try commit(keys, expected: 1, client: "b", seq: 1, message: "m2")?.get(), .committed(rev: 2))
        XCTAssertEqual(try commit(keys, expected: 2, client: "a", seq: 2, message: "m3")?.get(), .committed(rev: 3))
        XCTAssertEqual(read(keys, after: 0).map(\.rev), [1, 2, 3])
        XCTAssertEqual(read(keys, after: 1).map(\.message), ["m2", "m3"])
        XCTAssertEqual(read(keys, after: 3).count, 0)
        XCTAssertEqual(read(keys, after: 0, count: 2).map(\.rev), [1, 2])
    }

    func testResubmissionIsRecognisedWhateverTheRevision() throws {
        let keys = fresh("dedupe")
        XCTAssertEqual(try commit(keys, expected: 0, client: "a", seq: 7, message: "m1")?.get(), .committed(rev: 1))
        XCTAssertEqual(try commit(keys, expected: 1, client: "b", seq: 1, message: "m2")?.get(), .committed(rev: 2))
        // The resubmission comes with a stale expected revision: still a duplicate, not a conflict.
        XCTAssertEqual(try commit(keys, expected: 0, client: "a", seq: 7, message: "m1")?.get(), .duplicate(rev: 1))
        XCTAssertEqual(try commit(keys, expected: 2, client: "a", seq: 6, message: "old")?.get(), .stale(lastSeq: 7))
        XCTAssertEqual(read(keys, after: 0).map(\.message), ["m1", "m2"])
    }

    func testCommitPublishesOnTheRoomChannel() throws {
        let keys = fresh("publish")
        let got = UncheckedSendable(Box<[String]>())
        got.value.value = []
        _ = runner.sync { [runner] loop in
            let s = RedisSubscriber(loop: loop, url: self.url)
            runner!.objects["sub"] = s
            s.onMessage = { _, bytes in got.value.value!.append(String(decoding: bytes, as: UTF8.self)) }
            s.subscribe([keys.channel])
            s.start()
        }
        runner.wait("subscribed") { [runner] _ in (runner!.objects["sub"] as! RedisSubscriber).activeChannels.contains(keys.channel) }
        XCTAssertEqual(try commit(keys, expected: 0, client: "a", seq: 1, message: #"{"type":"op","rev":1}"#)?.get(), .committed(rev: 1))
        _ = try commit(keys, expected: 0, client: "b", seq: 1, message: "conflicting: not published")?.get()
        XCTAssertEqual(try commit(keys, expected: 1, client: "b", seq: 1, message: #"{"type":"op","rev":2}"#)?.get(), .committed(rev: 2))
        runner.wait("two messages") { _ in got.value.value!.count == 2 }
        XCTAssertEqual(runner.sync { _ in got.value.value }, [#"{"type":"op","rev":1}"#, #"{"type":"op","rev":2}"#])
    }

    func readSnapshot(_ keys: RoomKeys) -> Result<(rev: Int, message: [UInt8])?, RedisError>? {
        let rec = UncheckedSendable(Box<Result<(rev: Int, message: [UInt8])?, RedisError>>())
        _ = runner.sync { [runner] _ in
            RoomLog.readSnapshot(on: runner!.objects["c"] as! RedisConnection, keys: keys) { rec.value.value = $0 }
        }
        runner.wait("snapshot read") { _ in rec.value.value != nil }
        return runner.sync { _ in rec.value.value } ?? nil
    }

    func testSnapshotTrimsTheStreamBehindItAndRevisionsKeepCounting() throws {
        let keys = fresh("trim")
        XCTAssertNil(try readSnapshot(keys)?.get())
        for rev in 1 ... 300 {
            XCTAssertEqual(try commit(keys, expected: rev - 1, client: "a", seq: rev, message: "m\(rev)")?.get(), .committed(rev: rev))
        }
        // Commits alone never trim: the snapshot is what makes older entries unnecessary.
        XCTAssertEqual(read(keys, after: 0).count, 300)
        guard case .stored(let trimmed)? = try writeSnapshot(keys, revision: 280, message: "s280", keep: 50)?.get() else {
            return XCTFail("snapshot not stored")
        }
        let kept = read(keys, after: 0)
        XCTAssertEqual(kept.count, 300 - trimmed)
        // MINID ~ trims whole stream nodes: everything after 280 - 50 stays, and far less than 300.
        XCTAssertLessThanOrEqual(kept.first?.rev ?? 0, 231)
        XCTAssertGreaterThan(trimmed, 0)
        XCTAssertEqual(kept.map(\.rev), Array((300 - kept.count + 1) ... 300))
        // An older or equal snapshot (a slower instance) changes nothing.
        XCTAssertEqual(try writeSnapshot(keys, revision: 250, message: "s250", keep: 0)?.get(), .superseded(revision: 280))
        XCTAssertEqual(try writeSnapshot(keys, revision: 280, message: "again", keep: 0)?.get(), .superseded(revision: 280))
        let snap = try readSnapshot(keys)?.get()
        XCTAssertEqual(snap?.rev, 280)
        XCTAssertEqual(snap.map { String(decoding: $0.message, as: UTF8.self) }, "s280")
        XCTAssertEqual(try commit(keys, expected: 300, client: "a", seq: 301, message: "m301")?.get(), .committed(rev: 301))
    }

    func testMalformedSnapshotHashIsAnError() {
        let keys = fresh("bad-snap")
        _ = exec([["HSET", keys.snapshot, "rev", "twelve", "m", "{}"]])
        guard case .failure? = readSnapshot(keys) else { return XCTFail("a malformed snapshot was accepted") }
    }
}

final class Box<T> {
    var value: T?
}
