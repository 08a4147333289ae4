// collab-serve --redis: several in-process hosts sharing rooms through one redis-server
// (COLLAB_TEST_REDIS_URL's, or one started on a free loopback port).
@testable import CollabServer
import CollabOT
import CollabProtocol
import CollabRedis
import CollabTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

extension RedisServer {
    var url: RedisURL { RedisURL(host: "127.0.0.1", port: port) }
}

final class RedisServeTests: HostTestCase {
    var redis: RedisServer?
    var redisURL: RedisURL!

    override func setUpWithError() throws {
        try super.setUpWithError()
        if let env = ProcessInfo.processInfo.environment["COLLAB_TEST_REDIS_URL"], !env.isEmpty {
            redisURL = try RedisURL(parsing: env)
        } else {
            let r = try RedisServer()
            redis = r
            redisURL = r.url
        }
    }

    override func tearDownWithError() throws {
        try super.tearDownWithError()
        redis = nil
    }

    /// A room name no other test (or earlier run against a shared Redis) has used.
    func freshRoom() -> String { "redis-test-\(UUID().uuidString.prefix(8).lowercased())" }

    func redisServer() throws -> ServerThread {
        var c = configuration()
        c.redis = redisURL
        return try startServer(c)
    }

    /// The revision /healthz reports for `room`.
    func healthRevision(_ server: ServerThread, room: String) throws -> Int? {
        let body = try httpGet(port: server.port, path: "/healthz").body
        guard let r = body.range(of: "\"\(room)\":") else { return nil }
        return Int(body[r.upperBound...].prefix { $0.isNumber })
    }

    /// Checks that what a client received from the room (ops and acks) has consecutive revisions.
    func assertRevisionOrder(_ client: TestClient, from start: Int, to end: Int, file: StaticString = #filePath, line: UInt = #line) {
        let revs = client.messages.filter { $0.type == .op || $0.type == .ack }.compactMap(\.rev)
        XCTAssertEqual(revs, Array((start + 1) ..< (end + 1)), "\(client.url): revisions out of order", file: file, line: line)
    }

    func testTwoInstancesConvergeOnConcurrentOps() throws {
        let room = freshRoom()
        let serverA = try redisServer()
        let serverB = try redisServer()
        let ca = try connect(serverA, room: room)
        let cb = try connect(serverB, room: room)
        var a = Editor(ca, welcome: try ca.join("ann", client: "a"))
        var b = Editor(cb, welcome: try cb.join("bob", client: "b"))
        XCTAssertEqual(a.ot.revision, 0)
        XCTAssertEqual(b.ot.revision, 0)
        for (i, ch) in ["H", "e", "l", "l", "o"].enumerated() {
            try a.edit(.insert(ch, at: i))
            try b.edit(.insert(ch.lowercased() == "h" ? "W" : ["o", "r", "l", "d"][i - 1], at: b.doc.unicodeScalars.count))
        }
        var editors = [a, b]
        try Editor.settle(&editors, at: 4)
        a = editors[0]
        b = editors[1]
        XCTAssertEqual(a.doc, b.doc)
        XCTAssertEqual(a.doc.count, 10)
        XCTAssertTrue(isSubsequence("Hello", of: a.doc) && isSubsequence("World", of: a.doc), a.doc)
        assertRevisionOrder(ca, from: 0, to: 4)
        assertRevisionOrder(cb, from: 0, to: 4)

        // Both hosts hold the same document at the same revision.
        for server in [serverA, serverB] {
            XCTAssertEqual(try healthRevision(server, room: room), 4)
            let late = try connect(server, room: room)
            let welcome = try late.join("cat", client: "c-\(server.port)")
            XCTAssertEqual(welcome.doc, a.doc)
            XCTAssertEqual(welcome.rev, 4)
        }
    }

    func testLateJoinerOnAnotherInstanceSeesTheEdits() throws {
        let room = freshRoom()
        let serverA = try redisServer()
        let serverB = try redisServer()
        let ca = try connect(serverA, room: room)
        var a = Editor(ca, welcome: try ca.join("ann", client: "a"))
        try a.edit(.insert("one ", at: 0))
        try a.settle(at: 1)
        try a.edit(.insert("two", at: 4))
        try a.settle(at: 2)
        XCTAssertEqual(a.doc, "one two")

        // B has not loaded the room yet: it reads it from Redis.
        let cb = try connect(serverB, room: room)
        var b = Editor(cb, welcome: try cb.join("bob", client: "b"))
        XCTAssertEqual(b.doc, "one two")
        XCTAssertEqual(b.ot.revision, 2)

        // Now loaded on both: edits travel both ways through the channel.
        try b.edit(.insert("!", at: 7))
        try b.settle(at: 3)
        try a.settle(at: 3)
        XCTAssertEqual(a.doc, "one two!")

        // A joiner on B with `since` gets the ops it missed from B's history.
        let cc = try connect(serverB, room: room)
        let welcome = try cc.join("cat", client: "c", since: 1)
        XCTAssertEqual(welcome.since, 1)
        XCTAssertEqual(try cc.expect(type: .op).rev, 2)
        XCTAssertEqual(try cc.expect(type: .op).rev, 3)
    }

    func testManyConcurrentEditorsOnTwoInstancesKeepOneHistory() throws {
        let room = freshRoom()
        let serverA = try redisServer()
        let serverB = try redisServer()
        var editors: [Editor] = []
        var connections: [TestClient] = []
        for (i, server) in [serverA, serverA, serverB, serverB].enumerated() {
            let c = try connect(server, room: room)
            connections.append(c)
            editors.append(Editor(c, welcome: try c.join("user\(i)", client: "e\(i)")))
        }
        var rng = SplitMix64(seed: 42)
        for _ in 0 ..< 30 {
            for i in editors.indices {
                let len = editors[i].doc.unicodeScalars.count
                let pos = Int(rng.next() % UInt64(len + 1))
                try editors[i].edit(.insert(String(i), at: pos))
                // Let some acks and remote ops in, without waiting for them.
                while let m = editors[i].client.poll(Editor.relevant) { try editors[i].process(m) }
            }
        }
        // Every editor ends at the same revision: keep going until they agree on the head.
        var head = 0
        for _ in 0 ..< 100 {
            head = max(head, try healthRevision(serverA, room: room) ?? 0, try healthRevision(serverB, room: room) ?? 0)
            do {
                try Editor.settle(&editors, at: head, timeout: 0.5)
            } catch is WaitTimeout {
                continue
            }
            let a = try healthRevision(serverA, room: room) ?? 0
            let b = try healthRevision(serverB, room: room) ?? 0
            if a == head && b == head && editors.allSatisfy({ $0.ot.revision == head && !$0.ot.hasPendingChanges }) { break }
        }
        XCTAssertTrue(editors.allSatisfy { !$0.ot.hasPendingChanges })
        XCTAssertEqual(Set(editors.map(\.ot.revision)), [head])
        XCTAssertEqual(Set(editors.map(\.doc)).count, 1, "\(editors.map(\.doc))")
        XCTAssertEqual(editors[0].doc.count, 4 * 30)
        for c in connections { assertRevisionOrder(c, from: 0, to: head) }
        XCTAssertEqual(try healthRevision(serverA, room: room), head)
        XCTAssertEqual(try healthRevision(serverB, room: room), head)
    }

    /// Runs redis-cli against the test's Redis and returns its output.
    @discardableResult
    func redisCLI(_ args: [String]) throws -> String {
        let exe = URL(fileURLWithPath: "/usr/bin/redis-cli")
        guard FileManager.default.isExecutableFile(atPath: exe.path) else { throw XCTSkip("no redis-cli") }
        let p = try ChildProcess(exe, ["-h", redisURL.host, "-p", String(redisURL.port), "-n", String(redisURL.database)] + args,
                                 stdin: .null)
        let r = try p.finish(timeout: 10)
        XCTAssertEqual(r.status, 0, r.err)
        return r.out
    }

    func testAnOpCommittedWithoutPublishIsReadFromTheStream() throws {
        let room = freshRoom()
        let server = try redisServer()
        let c = try connect(server, room: room)
        var e = Editor(c, welcome: try c.join("ann", client: "a"))
        // Another committer's op that never reached the channel (as if published while this
        // instance was not subscribed): in the stream only.
        let keys = RoomKeys(room: room)
        var m = Message(.op)
        m.room = room
        m.client = "ext"
        m.seq = 1
        m.rev = 1
        m.op = try TextOperation(json: #"["abc"]"#)
        try redisCLI(["XADD", keys.log, "1-0", "m", m.json])
        try redisCLI(["SET", keys.revision, "1"])
        try redisCLI(["HSET", keys.clients, "ext", "1:1"])
        // Our op conflicts, is transformed and committed as 2; the host reads 1 from the stream
        // before it delivers 2, so the client gets op 1, then its ack for 2.
        try e.edit(.insert("x", at: 0))
        try e.settle(at: 2)
        XCTAssertEqual(e.doc.count, 4)
        XCTAssertTrue(e.doc.contains("abc"), e.doc)
        assertRevisionOrder(c, from: 0, to: 2)
        XCTAssertEqual(try healthRevision(server, room: room), 2)
        let late = try connect(server, room: room)
        XCTAssertEqual(try late.join("bob", client: "b").doc, e.doc)
    }

    func testInstancesCarryOnAfterARedisRestart() throws {
        // Always a redis-server of its own (with AOF), even when COLLAB_TEST_REDIS_URL names a
        // shared one: this test kills it.
        let fixture = try RedisServer(appendOnly: true)
        redis = fixture
        redisURL = fixture.url
        let room = freshRoom()
        let serverA = try redisServer()
        let serverB = try redisServer()
        let ca = try connect(serverA, room: room)
        let cb = try connect(serverB, room: room)
        var a = Editor(ca, welcome: try ca.join("ann", client: "a"))
        var b = Editor(cb, welcome: try cb.join("bob", client: "b"))
        try a.edit(.insert("a", at: 0))
        try a.settle(at: 1)
        try b.settle(at: 1)
        XCTAssertEqual(b.doc, "a")

        fixture.kill9()
        try fixture.start()

        // Once the hosts are reconnected the op commits (before that: `unavailable`, resent).
        let deadline = Date(timeIntervalSinceNow: 15)
        var acked: Message?
        while acked == nil {
            try ca.op(#"[1,"b"]"#, seq: 2, base: 1)
            let reply = try ca.expect("ack or error") { $0.type == .ack || $0.type == .error }
            if reply.type == .ack {
                acked = reply
            } else {
                XCTAssertEqual(reply.code, "unavailable", reply.json)
                guard Date() < deadline else { throw WaitTimeout(description: "no ack after the Redis restart") }
                ca.waitForMore(timeout: 0.05)
            }
        }
        XCTAssertEqual(acked?.rev, 2)
        let op = try cb.expect("op 2 on B") { $0.type == .op }
        XCTAssertEqual(op.rev, 2)
        try b.process(op)
        XCTAssertEqual(b.doc, "ab")
        for server in [serverA, serverB] {
            let late = try connect(server, room: room)
            let welcome = try late.join("cat", client: "c-\(server.port)")
            XCTAssertEqual(welcome.doc, "ab")
            XCTAssertEqual(welcome.rev, 2)
        }
        _ = a
    }

    func testPresenceIsRelayedAcrossInstancesWithoutEcho() throws {
        let room = freshRoom()
        let serverA = try redisServer()
        let serverB = try redisServer()
        let ca = try connect(serverA, room: room)
        let ca2 = try connect(serverA, room: room)
        let cb = try connect(serverB, room: room)
        try ca.join("ann", client: "a")
        try ca2.join("al", client: "a2")
        try cb.join("bob", client: "b")
        var p = Message(.presence)
        p.status = "typing-here"
        ca.send(p)
        let onB = try cb.expect("presence from ann") { $0.type == .presence }
        XCTAssertEqual(onB.user, "ann")
        XCTAssertEqual(onB.status, "typing-here")
        XCTAssertNil(onB.extra?["instance"])
        let onA2 = try ca2.expect("presence from ann") { $0.type == .presence }
        XCTAssertEqual(onA2.user, "ann")
        // A second presence from B marks the end: ca2 must not have got ann's twice (no echo).
        var q = Message(.presence)
        q.status = "here"
        cb.send(q)
        try ca2.expect("presence from bob") { $0.type == .presence && $0.user == "bob" }
        XCTAssertEqual(ca2.messages.filter { $0.type == .presence && $0.user == "ann" }.count, 1)
        try ca.expect("presence from bob") { $0.type == .presence && $0.user == "bob" }
        XCTAssertEqual(ca.messages.filter { $0.type == .presence && $0.user == "ann" }.count, 0)
    }

    func testRedisDownGivesUnavailableAndTheConnectionStays() throws {
        if redis == nil {
            // COLLAB_TEST_REDIS_URL's server is shared: this test kills its own instead.
            let fixture = try RedisServer()
            redis = fixture
            redisURL = fixture.url
        }
        let room = freshRoom()
        let server = try redisServer()
        let c = try connect(server, room: room)
        var e = Editor(c, welcome: try c.join("ann", client: "a"))
        try e.edit(.insert("x", at: 0))
        try e.settle(at: 1)
        redis = nil  // kills redis-server
        try c.op(#"[1,"y"]"#, seq: 2, base: 1)
        let error = try c.expect("an error") { $0.type == .error }
        XCTAssertEqual(error.code, "unavailable")
        XCTAssertEqual(error.seq, 2)
        XCTAssertNotEqual(error.fatal, true)
        XCTAssertNil(c.snapshot.closeStatus)
    }
}
