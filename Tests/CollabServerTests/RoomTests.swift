import CollabOT
import CollabProtocol
import CollabServer
import enum CollabTransport.CloseCode
import Foundation
import XCTest

/// The deliveries flattened to (connection, message) pairs, in order.
func pairs(_ deliveries: [Delivery]) -> [(ConnectionID, Message)] {
    deliveries.flatMap { d in d.recipients.map { ($0, d.message) } }
}

/// Client messages for the sans-I/O room tests (RoomTests, RoomPresenceTests).
extension XCTestCase {
    func hello(_ user: String, client: String, name: String? = nil, since: Int? = nil) -> Message {
        var m = Message(.hello)
        m.user = user
        m.name = name
        m.client = client
        m.since = since
        return m
    }

    func op(_ json: String, seq: Int, base: Int) throws -> Message {
        var m = Message(.op)
        m.op = try TextOperation(json: json)
        m.seq = seq
        m.base = base
        return m
    }
}

final class RoomTests: XCTestCase {

    func testJoinGetsWelcomeWithDocumentAndRoster() {
        var room = Room(name: "doc", document: TextRope("hi"), revision: 3)
        let fx1 = room.receive(hello("ann", client: "a"), from: 1, now: 0)
        XCTAssertEqual(pairs(fx1.sends).map(\.1.type), [.welcome, .roster])
        XCTAssertEqual(pairs(fx1.sends)[0].1.doc, "hi")
        XCTAssertEqual(pairs(fx1.sends)[0].1.rev, 3)
        let fx2 = room.receive(hello("bob", client: "b"), from: 2, now: 0)
        XCTAssertTrue(pairs(fx2.sends).contains { $0.0 == 1 && $0.1.type == .join && $0.1.user == "bob" })
        let roster = pairs(fx2.sends).first { $0.0 == 2 && $0.1.type == .roster }?.1
        XCTAssertEqual(roster?.members?.map(\.user), ["ann", "bob"])
    }

    func testOpIsAckedAndBroadcastOnlyAfterDurability() throws {
        var room = Room(name: "doc")
        _ = room.receive(hello("ann", client: "a"), from: 1, now: 0)
        _ = room.receive(hello("bob", client: "b"), from: 2, now: 0)
        let fx = room.receive(try op(#"["hey"]"#, seq: 1, base: 0), from: 1, now: 42)
        XCTAssertTrue(pairs(fx.sends).isEmpty, "nothing may be sent before the journal write is durable")
        XCTAssertEqual(fx.records.count, 1)
        XCTAssertEqual(fx.records[0].rev, 1)
        XCTAssertEqual(fx.records[0].ts, 42)
        XCTAssertEqual(pairs(fx.durableSends).first { $0.0 == 1 }?.1.type, .ack)
        let relayed = pairs(fx.durableSends).first { $0.0 == 2 }?.1
        XCTAssertEqual(relayed?.type, .op)
        XCTAssertEqual(relayed?.user, "ann")
        XCTAssertEqual(relayed?.client, "a")
        XCTAssertEqual(room.sequencer.document.string, "hey")
    }

    func testConcurrentOpsAreTransformedAndDuplicatesAckedOnce() throws {
        var room = Room(name: "doc", document: TextRope("ab"))
        _ = room.receive(hello("ann", client: "a"), from: 1, now: 0)
        _ = room.receive(hello("bob", client: "b"), from: 2, now: 0)
        _ = room.receive(try op(#"[1,"X"]"#, seq: 1, base: 0), from: 1, now: 0)
        let fx = room.receive(try op(#"[2,"Y"]"#, seq: 1, base: 0), from: 2, now: 0)
        XCTAssertEqual(fx.records.first?.op, try TextOperation(json: #"[3,"Y"]"#))
        XCTAssertEqual(room.sequencer.document.string, "aXbY")
        let dup = room.receive(try op(#"[2,"Y"]"#, seq: 1, base: 0), from: 2, now: 0)
        XCTAssertTrue(dup.records.isEmpty)
        XCTAssertEqual(pairs(dup.durableSends).map(\.1.type), [.ack])
        XCTAssertEqual(pairs(dup.durableSends).first?.1.rev, 2)
        XCTAssertEqual(room.sequencer.document.string, "aXbY")
    }

    func testBadOpsGetErrorsAndTheConnectionStays() throws {
        var room = Room(name: "doc", document: TextRope("ab"))
        _ = room.receive(hello("ann", client: "a"), from: 1, now: 0)
        let future = room.receive(try op(#"["x"]"#, seq: 1, base: 7), from: 1, now: 0)
        XCTAssertEqual(pairs(future.sends).first?.1.code, "bad-op")
        XCTAssertEqual(pairs(future.sends).first?.1.seq, 1)
        XCTAssertTrue(future.closes.isEmpty)
        let tooLong = room.receive(try op(#"[5,"x"]"#, seq: 2, base: 0), from: 1, now: 0)
        XCTAssertEqual(pairs(tooLong.sends).first?.1.code, "bad-op")
        var missing = Message(.op)
        missing.op = try TextOperation(json: #"["x"]"#)
        XCTAssertEqual(pairs(room.receive(missing, from: 1, now: 0).sends).first?.1.code, "bad-message")
        XCTAssertEqual(room.sequencer.document.string, "ab")
        XCTAssertEqual(room.revision, 0)
    }

    func testMessagesBeforeHelloCloseTheConnection() throws {
        var room = Room(name: "doc")
        let fx = room.receive(try op(#"["x"]"#, seq: 1, base: 0), from: 9, now: 0)
        XCTAssertEqual(pairs(fx.sends).first?.1.fatal, true)
        XCTAssertEqual(fx.closes.first?.code, CloseCode.policyViolation)
    }

    func testSinceCatchUpSendsTheMissedOps() throws {
        var room = Room(name: "doc")
        _ = room.receive(hello("ann", client: "a"), from: 1, now: 0)
        for i in 1 ... 5 { _ = room.receive(try op(#"["\#(i)"]"#, seq: i, base: i - 1), from: 1, now: 0) }
        let fx = room.receive(hello("bob", client: "b", since: 3), from: 2, now: 0)
        let mine = pairs(fx.sends).filter { $0.0 == 2 }.map(\.1)
        XCTAssertEqual(mine.first?.type, .welcome)
        XCTAssertEqual(mine.first?.since, 3)
        XCTAssertNil(mine.first?.doc)
        XCTAssertEqual(mine.filter { $0.type == .op }.map(\.rev), [4, 5])
        // A late joiner applying the catch-up ops to its copy at revision 3 gets the same text.
        var late = TextRope("321")
        for m in mine where m.type == .op { try m.op!.apply(to: &late) }
        XCTAssertEqual(late.string, room.sequencer.document.string)
    }

    func testSinceOlderThanHistoryGetsTheWholeDocument() throws {
        var room = Room(name: "doc", historyLimit: 2)
        _ = room.receive(hello("ann", client: "a"), from: 1, now: 0)
        for i in 1 ... 5 { _ = room.receive(try op(#"["x"]"#, seq: i, base: i - 1), from: 1, now: 0) }
        let fx = room.receive(hello("bob", client: "b", since: 1), from: 2, now: 0)
        XCTAssertEqual(pairs(fx.sends).first?.1.doc, "xxxxx")
    }

    func testLeaveIsBroadcast() {
        var room = Room(name: "doc")
        _ = room.receive(hello("ann", client: "a"), from: 1, now: 0)
        _ = room.receive(hello("bob", client: "b"), from: 2, now: 0)
        let fx = room.close(1)
        XCTAssertEqual(pairs(fx.sends).map(\.0), [2])
        XCTAssertEqual(pairs(fx.sends).first?.1.type, .leave)
        XCTAssertEqual(pairs(fx.sends).first?.1.user, "ann")
        XCTAssertEqual(room.members.count, 1)
    }

    func testRoomNames() {
        XCTAssertEqual(try RoomName.validate(path: "/docs/a-1_b.c~d").get(), "docs/a-1_b.c~d")
        for bad in ["/", "", "/a//b", "/a/", "/../etc", "/a/./b", "/a b", "/ü", "/" + String(repeating: "x", count: 129)] {
            XCTAssertThrowsError(try RoomName.validate(path: bad).get(), bad)
        }
        XCTAssertEqual(RoomName.fileName("docs/a"), "docs%2Fa")
        XCTAssertEqual(RoomName.roomName(fileName: "docs%2Fa"), "docs/a")
    }
}

final class JournalStoreTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "collab-journal-\(UUID().uuidString)"
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func commit(_ room: inout Room, _ store: JournalStore, count: Int, from start: Int = 1) throws {
        if room.members.isEmpty {
            var h = Message(.hello)
            h.client = "w"
            _ = room.receive(h, from: 1, now: 0)
        }
        for i in start ..< start + count {
            var m = Message(.op)
            m.op = .insert("\(i % 10)", at: room.sequencer.document.count)
            m.seq = i
            m.base = room.revision
            let fx = room.receive(m, from: 1, now: 0)
            try store.append(room: room.name, records: fx.records)
        }
        try store.sync()
    }

    func testReloadReproducesTheRoom() throws {
        let store = try JournalStore(directory: directory)
        var room = try store.load(room: "docs/a", warn: { XCTFail($0) })
        try commit(&room, store, count: 25)
        store.close(room: "docs/a")
        let again = try JournalStore(directory: directory).load(room: "docs/a", warn: { XCTFail($0) })
        XCTAssertEqual(again.revision, 25)
        XCTAssertEqual(again.sequencer.document.string, room.sequencer.document.string)
        XCTAssertEqual(try JournalStore(directory: directory).storedRooms(), ["docs/a"])
        // A resubmission after the restart is still recognised as a duplicate.
        XCTAssertEqual(again.sequencer.lastCommitted["w"]?.seq, 25)
    }

    func testTornLastLineIsDroppedWithAWarning() throws {
        let store = try JournalStore(directory: directory)
        var room = try store.load(room: "r", warn: { XCTFail($0) })
        try commit(&room, store, count: 3)
        store.close(room: "r")
        let path = directory + "/r/journal.ndjson"
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(#"{"type":"op","room":"r","rev":4,"op":[3,"#.utf8))
        handle.closeFile()
        var warnings: [String] = []
        let again = try JournalStore(directory: directory).load(room: "r", warn: { warnings.append($0) })
        XCTAssertEqual(again.revision, 3)
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].contains("torn"), warnings[0])
        // The torn bytes are cut off, so later appends start on a clean line.
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(text.hasSuffix("}\n"))
        XCTAssertEqual(text.split(separator: "\n").count, 3)
    }

    func testDamageBeforeTheEndRefusesToLoad() throws {
        let store = try JournalStore(directory: directory)
        var room = try store.load(room: "r", warn: { XCTFail($0) })
        try commit(&room, store, count: 3)
        store.close(room: "r")
        let path = directory + "/r/journal.ndjson"
        var lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        lines[1] = "garbage"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try JournalStore(directory: directory).load(room: "r", warn: { _ in }))
    }

    func testSnapshotEmptiesTheJournalAndKeepsEverything() throws {
        let store = try JournalStore(directory: directory)
        var room = try store.load(room: "r", warn: { XCTFail($0) })
        try commit(&room, store, count: 10)
        try store.writeSnapshot(room)
        XCTAssertEqual(try String(contentsOfFile: directory + "/r/journal.ndjson", encoding: .utf8), "")
        try commit(&room, store, count: 5, from: 11)
        store.close(room: "r")
        let again = try JournalStore(directory: directory).load(room: "r", warn: { XCTFail($0) })
        XCTAssertEqual(again.revision, 15)
        XCTAssertEqual(again.sequencer.document.string, room.sequencer.document.string)
        XCTAssertEqual(again.sequencer.lastCommitted["w"]?.seq, 15)
    }
}
