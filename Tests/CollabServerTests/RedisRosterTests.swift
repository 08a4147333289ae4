// With --redis the roster of a room spans instances: members of other instances appear with their
// colours and presence, and an instance that dies takes its members out of every roster within
// --presence-ttl. Each test runs its own redis-server (one test kills an instance).
@testable import CollabServer
import CollabOT
import CollabPresence
import CollabProtocol
import CollabRedis
import CollabTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class RedisRosterTests: HostTestCase {
    var redis: RedisServer!
    var processes: [ServeProcess] = []

    override func setUpWithError() throws {
        try super.setUpWithError()
        redis = try RedisServer()
    }

    override func tearDownWithError() throws {
        for p in processes { p.terminate() }
        processes = []
        try super.tearDownWithError()
        redis = nil
    }

    var redisURL: String { "redis://127.0.0.1:\(redis.port)" }

    func instance(ttl: Duration = .seconds(2)) throws -> ServerThread {
        var c = configuration()
        c.redis = RedisURL(host: "127.0.0.1", port: redis.port)
        c.presenceTTL = ttl
        return try startServer(c)
    }

    /// Waits until `client` is listed in the room's shared roster in Redis.
    func waitForAnnouncement(room: String, client: String) throws {
        let exe = URL(fileURLWithPath: "/usr/bin/redis-cli")
        guard FileManager.default.isExecutableFile(atPath: exe.path) else { throw XCTSkip("no redis-cli") }
        let key = RoomKeys(room: room).members
        waitUntil("\(client) in \(key)", timeout: 10) {
            let r = try? ChildProcess(exe, ["-p", String(redis.port), "HEXISTS", key, client], stdin: .null).finish(timeout: 10)
            return r?.out.trimmingCharacters(in: .whitespacesAndNewlines) == "1"
        }
    }

    func testTheRosterSpansInstancesWithColoursAndPresence() throws {
        let room = "roster-\(UUID().uuidString.prefix(8))"
        let a = try instance(), b = try instance()
        let ca = try connect(a, room: room)
        let annWelcome = try ca.join("ann", client: "a")
        // A announces ann in the shared roster right after her welcome; B reads it when bob's
        // join loads the room. (Had bob come first, he would see her join instead.)
        try waitForAnnouncement(room: room, client: "a")
        let cb = try connect(b, room: room)
        _ = try cb.join("bob", client: "b")
        // bob's roster (on B) has ann (on A), with the colour A gave her.
        let roster = try cb.expect(type: .roster)
        XCTAssertEqual(roster.members?.map(\.client), ["a", "b"])
        XCTAssertEqual(roster.members?.first?.color, annWelcome.color)
        // ann and bob prefer the same colour; B knew ann's, so bob got another.
        XCTAssertEqual(Palette.preferredIndex(for: "ann"), Palette.preferredIndex(for: "bob"))
        XCTAssertNotEqual(roster.members?.last?.color, annWelcome.color)
        let bobJoin = try ca.expect("bob's join on A") { $0.type == .join && $0.client == "b" }
        XCTAssertEqual(bobJoin.color, roster.members?.last?.color)
        XCTAssertNil(bobJoin.extra?["instance"], "the instance tag stays between instances")

        // A cursor on A, then an insert before it on B: a newcomer on B sees it shifted.
        var e = Editor(ca, welcome: annWelcome)
        try e.edit(.insert("world", at: 0))
        try e.settle(at: 1)
        _ = try cb.expect("op 1") { $0.type == .op && $0.rev == 1 }
        var p = Message(.presence)
        p.cursor = Selection(anchor: 5, head: 5)
        p.rev = 1
        p.typing = true
        ca.send(p)
        let seen = try cb.expect("ann's presence on B") { $0.type == .presence && $0.client == "a" }
        XCTAssertEqual(seen.cursor, Selection(anchor: 5, head: 5))
        XCTAssertEqual(seen.color, annWelcome.color)
        cb.send(#"{"type":"op","op":["hello "],"seq":1,"base":1}"#)
        _ = try cb.expect("ack") { $0.type == .ack && $0.rev == 2 }
        try e.settle(at: 2)
        let cc = try connect(a, room: room)
        _ = try cc.join("cat", client: "c")
        let annNow = try cc.expect(type: .roster).members?.first { $0.client == "a" }
        XCTAssertEqual(annNow?.cursor, Selection(anchor: 11, head: 11))
        XCTAssertEqual(annNow?.rev, 2)

        // ann leaves: B's members are told.
        ca.close()
        let left = try cb.expect("ann leaves") { $0.type == .leave && $0.client == "a" }
        XCTAssertEqual(left.user, "ann")
    }

    func testAKilledInstancesMembersLeaveWithinTheTTLAndStayGone() throws {
        let room = "ttl-\(UUID().uuidString.prefix(8))"
        let ttl = 2.0
        let binary = try BinaryLocator.require("collab-serve")
        let serveArguments = ["--port", "0", "--redis", redisURL, "--presence-ttl", String(ttl)]
        let a = try ServeProcess(binary, serveArguments)
        processes.append(a)
        let b = try instance(ttl: .seconds(ttl))
        let ca = try clients.connect("ws://127.0.0.1:\(a.port)/\(room)")
        _ = try ca.join("ann", client: "a")
        try waitForAnnouncement(room: room, client: "a")
        let cb = try connect(b, room: room)
        _ = try cb.join("bob", client: "b")
        XCTAssertEqual(try cb.expect(type: .roster).members?.map(\.client), ["a", "b"])

        a.signal(SIGKILL)
        let killed = Date()
        _ = try a.waitForExit()
        let left = try cb.expect("ann leaves B's roster", timeout: ttl + 5) { $0.type == .leave && $0.client == "a" }
        let after = Date().timeIntervalSince(killed)
        XCTAssertEqual(left.user, "ann")
        XCTAssertLessThanOrEqual(after, ttl + 0.5, "left after \(after) s")

        // A restarted instance does not bring her back, on either side.
        let again = try ServeProcess(binary, serveArguments)
        processes.append(again)
        let cc = try clients.connect("ws://127.0.0.1:\(again.port)/\(room)")
        _ = try cc.join("cat", client: "c")
        XCTAssertEqual(try cc.expect(type: .roster).members?.map(\.client), ["b", "c"])
        // B hears of cat on the channel; once bob has, a newcomer on B finds her in the roster.
        _ = try cb.expect("cat's join on B") { $0.type == .join && $0.client == "c" }
        let cd = try connect(b, room: room)
        _ = try cd.join("dan", client: "d")
        XCTAssertEqual(try cd.expect(type: .roster).members?.compactMap(\.client).sorted(), ["b", "c", "d"])
    }

    func testAClientThatMovesToAnotherInstanceReplacesItsGhost() throws {
        let room = "move-\(UUID().uuidString.prefix(8))"
        let a = try instance(), b = try instance()
        let watcher = try connect(a, room: room)
        _ = try watcher.join("wes", client: "w")
        let first = try connect(a, room: room)
        _ = try first.join("ann", client: "a")
        try waitForAnnouncement(room: room, client: "w")
        // The same client through B while its connection on A is still open (as after a
        // network change that A has not noticed yet): A closes its ghost, nobody sees a leave.
        let second = try connect(b, room: room)
        _ = try second.join("ann", client: "a")
        let closed = try first.waitClosed()
        XCTAssertEqual(closed.reason, "replaced by a new connection of the same client")
        watcher.waitForMore(timeout: 0.3)
        XCTAssertNil(watcher.poll { $0.type == .leave }, "a move is not a leave")
        let newcomer = try connect(b, room: room)
        _ = try newcomer.join("cat", client: "c")
        XCTAssertEqual(try newcomer.expect(type: .roster).members?.compactMap(\.client).sorted(), ["a", "c", "w"])
    }
}
