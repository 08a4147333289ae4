import CollabOT
import CollabPresence
import CollabProtocol
import CollabServer
import Foundation
import XCTest

/// Presence in the sans-I/O room: colours, stamping, cursors that follow ops, coalescing,
/// typing expiry, members of other instances.
final class RoomPresenceTests: XCTestCase {
    func presence(cursor: Int? = nil, rev: Int? = nil, typing: Bool? = nil, status: String? = nil) -> Message {
        var m = Message(.presence)
        m.cursor = cursor.map { Selection(anchor: $0, head: $0) }
        m.rev = rev
        m.typing = typing
        m.status = status
        return m
    }

    /// Messages of `type` that `connection` gets from `fx` (sends and durable sends).
    func received(_ fx: RoomEffects, by connection: ConnectionID, _ type: MessageType) -> [Message] {
        pairs(fx.sends + fx.durableSends).filter { $0.0 == connection && $0.1.type == type }.map(\.1)
    }

    func testMembersGetDistinctStableColoursAndInitials() {
        var room = Room(name: "doc")
        // ann and bob prefer the same palette entry.
        XCTAssertEqual(Palette.preferredIndex(for: "ann"), Palette.preferredIndex(for: "bob"))
        let a = room.receive(hello("ann", client: "a", name: "Ann Lee"), from: 1, now: 0)
        let welcome = received(a, by: 1, .welcome).first
        XCTAssertEqual(welcome?.color, Palette.color(for: "ann"))
        XCTAssertEqual(welcome?.initials, "AL")
        let b = room.receive(hello("bob", client: "b"), from: 2, now: 0)
        let bobJoin = received(b, by: 1, .join).first
        XCTAssertEqual(bobJoin?.user, "bob")
        XCTAssertNotNil(bobJoin?.color)
        XCTAssertNotEqual(bobJoin?.color, welcome?.color)
        XCTAssertEqual(bobJoin?.initials, "B")
        XCTAssertEqual(b.relays.map(\.type), [.join])
        // ann's second tab: the same colour.
        let a2 = room.receive(hello("ann", client: "a2"), from: 3, now: 0)
        XCTAssertEqual(received(a2, by: 3, .welcome).first?.color, welcome?.color)
        // The newcomer's roster lists everyone with colours, itself included.
        let roster = received(a2, by: 3, .roster).first
        XCTAssertEqual(roster?.members?.map(\.client), ["a", "b", "a2"])
        XCTAssertEqual(roster?.members?.map(\.color), [welcome?.color, bobJoin?.color, welcome?.color])
    }

    func testPresenceIsStampedAndCursorsFollowCommits() throws {
        var room = Room(name: "doc", document: TextRope("hello world"), revision: 4)
        _ = room.receive(hello("ann", client: "a", name: "Ann"), from: 1, now: 0)
        _ = room.receive(hello("bob", client: "b"), from: 2, now: 0)
        var p = presence(cursor: 6, rev: 4, typing: true, status: "editing")
        p.user = "mallory"  // not trusted: the server stamps who sent it
        let fx = room.receive(p, from: 1, now: 1000)
        let relayed = try XCTUnwrap(received(fx, by: 2, .presence).first)
        XCTAssertEqual(relayed.user, "ann")
        XCTAssertEqual(relayed.name, "Ann")
        XCTAssertEqual(relayed.client, "a")
        XCTAssertEqual(relayed.color, room.members[1]?.color)
        XCTAssertEqual(relayed.cursor, Selection(anchor: 6, head: 6))
        XCTAssertEqual(relayed.rev, 4)
        XCTAssertEqual(relayed.typing, true)
        XCTAssertEqual(relayed.status, "editing")
        XCTAssertEqual(relayed.ts, 1000)
        XCTAssertTrue(received(fx, by: 1, .presence).isEmpty, "no echo to the sender")
        XCTAssertEqual(fx.relays.map(\.type), [.presence])

        // bob inserts before ann's cursor: a newcomer sees it where it is now.
        _ = room.receive(try op(#"["Oh, "]"#, seq: 1, base: 4), from: 2, now: 1100)
        let c = room.receive(hello("cat", client: "c"), from: 3, now: 1200)
        let ann = try XCTUnwrap(received(c, by: 3, .roster).first?.members?.first { $0.client == "a" })
        XCTAssertEqual(ann.cursor, Selection(anchor: 10, head: 10))
        XCTAssertEqual(ann.rev, 5)
        XCTAssertEqual(ann.typing, true)
        // A cursor made before bob's op (rev 4) is brought forward on arrival.
        let late = room.receive(presence(cursor: 0, rev: 4), from: 1, now: 2000)
        XCTAssertEqual(received(late, by: 3, .presence).first?.cursor, Selection(anchor: 0, head: 0))
        let late2 = room.receive(presence(cursor: 5, rev: 4), from: 1, now: 3000)
        XCTAssertEqual(received(late2, by: 3, .presence).first?.cursor, Selection(anchor: 9, head: 9))
        XCTAssertEqual(received(late2, by: 3, .presence).first?.rev, 5)
    }

    func testBadPresenceGetsAnErrorAndChangesNothing() {
        var room = Room(name: "doc", document: TextRope("abc"), revision: 2)
        _ = room.receive(hello("ann", client: "a"), from: 1, now: 0)
        _ = room.receive(hello("bob", client: "b"), from: 2, now: 0)
        for bad in [presence(cursor: 4, rev: 2), presence(cursor: -1, rev: 2), presence(cursor: 1, rev: 3)] {
            let fx = room.receive(bad, from: 1, now: 100)
            XCTAssertEqual(received(fx, by: 1, .error).first?.code, "bad-message", bad.json)
            XCTAssertTrue(received(fx, by: 2, .presence).isEmpty)
        }
        XCTAssertNil(room.presence["a"]?.cursor)
    }

    func testBurstsAreCoalescedAndTheLastOneWins() {
        var room = Room(name: "doc", document: TextRope(String(repeating: "x", count: 100)))
        _ = room.receive(hello("ann", client: "a"), from: 1, now: 0)
        _ = room.receive(hello("bob", client: "b"), from: 2, now: 0)
        var relayed: [Int] = []
        func collect(_ fx: RoomEffects) {
            relayed += received(fx, by: 2, .presence).compactMap(\.cursor?.head)
        }
        collect(room.receive(presence(cursor: 1, rev: 0), from: 1, now: 1000))
        for (i, t) in [1010, 1020, 1030, 1049].enumerated() {
            collect(room.receive(presence(cursor: 2 + i, rev: 0), from: 1, now: t))
        }
        XCTAssertEqual(relayed, [1])
        XCTAssertEqual(room.nextWakeup, 1050)
        collect(room.tick(now: 1049))
        XCTAssertEqual(relayed, [1])
        collect(room.tick(now: 1050))
        XCTAssertEqual(relayed, [1, 5], "the held update is the last one")
        XCTAssertNil(room.nextWakeup)
        // After a quiet interval, the next one goes at once.
        collect(room.receive(presence(cursor: 9, rev: 0), from: 1, now: 1200))
        XCTAssertEqual(relayed, [1, 5, 9])
    }

    func testTypingStopsByItselfAndEveryoneIsTold() {
        var room = Room(name: "doc", presencePolicy: PresencePolicy(typingTimeout: 3000, minInterval: 50))
        _ = room.receive(hello("ann", client: "a"), from: 1, now: 0)
        _ = room.receive(hello("bob", client: "b"), from: 2, now: 0)
        _ = room.receive(presence(typing: true), from: 1, now: 1000)
        XCTAssertEqual(room.nextWakeup, 4000)
        XCTAssertTrue(room.tick(now: 3999).sends.isEmpty)
        let fx = room.tick(now: 4000)
        XCTAssertEqual(received(fx, by: 2, .presence).first?.typing, false)
        XCTAssertEqual(received(fx, by: 1, .presence).first?.typing, false, "the typist is told too")
        XCTAssertEqual(fx.relays.first?.typing, false)
        XCTAssertNil(room.nextWakeup)
    }

    func testLeaveAndTakeoverByTheSameClient() {
        var room = Room(name: "doc")
        _ = room.receive(hello("ann", client: "a"), from: 1, now: 0)
        _ = room.receive(hello("bob", client: "b"), from: 2, now: 0)
        // ann reconnects before her old connection timed out: the old one is closed, quietly.
        let again = room.receive(hello("ann", client: "a"), from: 3, now: 10)
        XCTAssertEqual(again.closes.map(\.0), [1])
        XCTAssertEqual(received(again, by: 2, .join).count, 1)
        XCTAssertTrue(room.close(1).sends.isEmpty, "the replaced connection leaves no trace")
        XCTAssertEqual(room.presence.count, 2)
        let gone = room.close(3)
        XCTAssertEqual(received(gone, by: 2, .leave).first?.client, "a")
        XCTAssertEqual(gone.relays.map(\.type), [.leave])
        XCTAssertNil(room.presence["a"])
    }

    func testMembersOfOtherInstances() {
        var room = Room(name: "doc")
        _ = room.receive(hello("ann", client: "a"), from: 1, now: 0)
        var join = Message(.join)
        join.user = "zed"
        join.client = "z"
        join.color = "#3f51b5"
        let fx = room.remote(join, now: 5)
        XCTAssertEqual(received(fx, by: 1, .join).first?.client, "z")
        XCTAssertTrue(fx.relays.isEmpty, "not published again")
        var p = Message(.presence)
        p.client = "z"
        p.typing = true
        _ = room.remote(p, now: 6)
        XCTAssertNil(room.nextWakeup, "its own instance expires its typing")
        // A newcomer's roster has it, and a local colour choice avoids it.
        let b = room.receive(hello("bob", client: "b"), from: 2, now: 7)
        XCTAssertEqual(received(b, by: 2, .roster).first?.members?.map(\.client), ["a", "z", "b"])
        // A stale leave for a client now connected here is ignored.
        var leave = Message(.leave)
        leave.client = "a"
        XCTAssertTrue(room.remote(leave, now: 8).sends.isEmpty)
        XCTAssertNotNil(room.presence["a"])
        leave.client = "z"
        XCTAssertEqual(received(room.remote(leave, now: 9), by: 1, .leave).first?.client, "z")
    }

    func testAnObserverSeesEverythingSendsNothingAndIsInNoRoster() throws {
        var room = Room(name: "doc")
        _ = room.receive(hello("ann", client: "a"), from: 1, now: 0)
        var watch = hello("tap", client: "t")
        watch.observer = true
        let joined = room.receive(watch, from: 2, now: 0)
        XCTAssertEqual(received(joined, by: 2, .roster).first?.members?.map(\.client), ["a"])
        XCTAssertTrue(received(joined, by: 1, .join).isEmpty, "nobody is told")
        XCTAssertTrue(joined.relays.isEmpty)
        // It gets the room's traffic...
        let edit = room.receive(try op(#"["x"]"#, seq: 1, base: 0), from: 1, now: 1)
        XCTAssertEqual(received(edit, by: 2, .op).count, 1)
        // ...and sends nothing to it.
        for m in [try op(#"["y"]"#, seq: 1, base: 1), presence(cursor: 0, rev: 1), Message(.event)] {
            let fx = room.receive(m, from: 2, now: 2)
            XCTAssertEqual(received(fx, by: 2, .error).first?.code, "forbidden", m.json)
            XCTAssertTrue(received(fx, by: 1, m.type).isEmpty)
        }
        XCTAssertEqual(room.revision, 1)
        // Someone arriving later does not see it; its going is silent.
        let b = room.receive(hello("bob", client: "b"), from: 3, now: 3)
        XCTAssertEqual(received(b, by: 3, .roster).first?.members?.map(\.client), ["a", "b"])
        XCTAssertTrue(room.close(2).sends.isEmpty)
        // An observer with a member's client id does not replace the member.
        var sneaky = hello("tap", client: "a")
        sneaky.observer = true
        XCTAssertTrue(room.receive(sneaky, from: 4, now: 4).closes.isEmpty)
    }
}
