// collab-serve --redis: several in-process hosts sharing rooms through one redis-server
// (COLLAB_TEST_REDIS_URL's, or one started on a free loopback port).
@testable import CollabServer
import CollabAuth
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

    func redisServer(_ configure: (inout ServerConfiguration) -> Void = { _ in }) throws -> ServerThread {
        var c = configuration()
        c.redis = redisURL
        configure(&c)
        return try startServer(c)
    }

    /// An op message as the commit script stores it.
    func committedOp(room: String, rev: Int, client: String = "ext", seq: Int, op: String) throws -> Message {
        var m = Message(.op)
        m.room = room
        m.client = client
        m.seq = seq
        m.rev = rev
        m.op = try TextOperation(json: op)
        return m
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
        try concurrentEditors(instances: 2, editorsEach: 2, rounds: 30)
    }

    func testThreeInstancesWithEditorsOnEachConverge() throws {
        try concurrentEditors(instances: 3, editorsEach: 2, rounds: 20)
    }

    /// Editors on every instance insert at random places without waiting for each other; in
    /// the end every editor and every instance has the same text at the same revision, and each
    /// client saw every revision once, in order.
    func concurrentEditors(instances: Int, editorsEach: Int, rounds: Int) throws {
        let room = freshRoom()
        let servers = try (0 ..< instances).map { _ in try redisServer() }
        var editors: [Editor] = []
        var connections: [TestClient] = []
        for (i, server) in servers.flatMap({ Array(repeating: $0, count: editorsEach) }).enumerated() {
            let c = try connect(server, room: room)
            connections.append(c)
            editors.append(Editor(c, welcome: try c.join("user\(i)", client: "e\(i)")))
        }
        var rng = SplitMix64(seed: 42 &+ UInt64(instances))
        for _ in 0 ..< rounds {
            for i in editors.indices {
                let len = editors[i].doc.unicodeScalars.count
                let pos = Int(rng.next() % UInt64(len + 1))
                try editors[i].edit(.insert(String(i % 10), at: pos))
                // Let some acks and remote ops in, without waiting for them.
                while let m = editors[i].client.poll(Editor.relevant) { try editors[i].process(m) }
            }
        }
        // Every editor ends at the same revision: keep going until they agree on the head.
        var head = 0
        for _ in 0 ..< 100 {
            head = try servers.map { try healthRevision($0, room: room) ?? 0 }.max() ?? 0
            do {
                try Editor.settle(&editors, at: head, timeout: 0.5)
            } catch is WaitTimeout {
                continue
            }
            let heads = try servers.map { try healthRevision($0, room: room) ?? 0 }
            if heads.allSatisfy({ $0 == head }) && editors.allSatisfy({ $0.ot.revision == head && !$0.ot.hasPendingChanges }) { break }
        }
        XCTAssertTrue(editors.allSatisfy { !$0.ot.hasPendingChanges })
        XCTAssertEqual(Set(editors.map(\.ot.revision)), [head])
        XCTAssertEqual(Set(editors.map(\.doc)).count, 1, "\(editors.map(\.doc))")
        XCTAssertEqual(editors[0].doc.count, instances * editorsEach * rounds)
        for c in connections { assertRevisionOrder(c, from: 0, to: head) }
        for server in servers { XCTAssertEqual(try healthRevision(server, room: room), head) }
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

    func testAnInstanceNeedsNoDataDirectoryButPlainServersDo() throws {
        let room = freshRoom()
        let server = try redisServer { $0.dataDirectory = nil }
        let c = try connect(server, room: room)
        var e = Editor(c, welcome: try c.join("ann", client: "a"))
        try e.edit(.insert("no disk", at: 0))
        try e.settle(at: 1)
        var plain = configuration()
        plain.dataDirectory = nil
        XCTAssertThrowsError(try ServerHost(configuration: plain, log: ServerLog(level: .error))) { error in
            XCTAssertTrue("\(error)".contains("--data"), "\(error)")
        }
    }

    func testAnInstanceSubscribesToTheRoomsItServesOnly() throws {
        let room = freshRoom(), other = freshRoom()
        let channel = RoomKeys(room: room).channel
        func subscribers(_ channel: String) throws -> Int? {
            Int(try redisCLI(["PUBSUB", "NUMSUB", channel]).split(separator: "\n").last ?? "")
        }
        let server = try redisServer()
        let a = try connect(server, room: room)
        _ = try a.join("ann", client: "a")
        let b = try connect(server, room: room)
        _ = try b.join("bob", client: "b")
        XCTAssertEqual(try subscribers(channel), 1)
        XCTAssertEqual(try subscribers(RoomKeys(room: other).channel), 0)
        a.close()
        _ = try a.waitClosed()
        XCTAssertEqual(try subscribers(channel), 1)
        // The last one leaves: the room is unloaded and its channel dropped.
        b.close()
        _ = try b.waitClosed()
        _ = try server.logs.wait(for: "room \(room) unloaded")
        waitUntil("channel unsubscribed", timeout: 10) { (try? subscribers(channel)) == 0 }
        // And a new member brings it back.
        let c = try connect(server, room: room)
        _ = try c.join("cat", client: "c")
        XCTAssertEqual(try subscribers(channel), 1)
    }

    func testANewInstanceLoadsFromTheSnapshotAndKeepsHistoryBehindIt() throws {
        let room = freshRoom()
        let keys = RoomKeys(room: room)
        let serverA = try redisServer { $0.snapshotEvery = 10 }
        let ca = try connect(serverA, room: room)
        var a = Editor(ca, welcome: try ca.join("ann", client: "a"))
        for i in 1 ... 25 {
            try a.edit(.insert(String(i % 10), at: i - 1))
            try a.settle(at: i)
        }
        _ = try serverA.logs.wait(for: "snapshot at rev 20 in Redis")
        XCTAssertTrue(serverA.logs.contains("snapshot at rev 10 in Redis"))
        XCTAssertEqual(try redisCLI(["HGET", keys.snapshot, "rev"]).trimmingCharacters(in: .whitespacesAndNewlines), "20")
        // Take ops 1...17 away: a new instance can only load the room through the snapshot.
        _ = try redisCLI(["XTRIM", keys.log, "MINID", "18-0"])

        let serverB = try redisServer()
        let cb = try connect(serverB, room: room)
        let welcome = try cb.join("bob", client: "b")
        XCTAssertEqual(welcome.doc, a.doc)
        XCTAssertEqual(welcome.rev, 25)
        XCTAssertTrue(serverB.logs.contains("loaded from Redis at rev 25"), serverB.logs.lines.joined(separator: "\n"))

        // The ops before the snapshot that the stream still has are history for catch-ups.
        let recent = try connect(serverB, room: room)
        XCTAssertEqual(try recent.join("cat", client: "c", since: 18).since, 18)
        for rev in 19 ... 25 { XCTAssertEqual(try recent.expect(type: .op).rev, rev) }
        // Older than that: the whole document.
        let old = try connect(serverB, room: room)
        let full = try old.join("dan", client: "d", since: 10)
        XCTAssertEqual(full.doc, a.doc)
        XCTAssertEqual(full.rev, 25)

        // B keeps committing on top of the snapshot, and A follows.
        var b = Editor(cb, welcome: welcome)
        try b.edit(.insert("!", at: 25))
        try b.settle(at: 26)
        try a.settle(at: 26)
        XCTAssertEqual(a.doc, b.doc)
    }

    func testAnInstanceThatFellBehindTheTrimmedStreamReloadsTheRoom() throws {
        let room = freshRoom()
        let keys = RoomKeys(room: room)
        let server = try redisServer()
        let c = try connect(server, room: room)
        var e = Editor(c, welcome: try c.join("ann", client: "a"))
        try e.edit(.insert("x", at: 0))
        try e.settle(at: 1)
        // Ops 2...5 committed elsewhere while this instance heard nothing, then a snapshot at 5
        // that trimmed the stream past revision 2.
        for rev in 2 ... 5 {
            let m = try committedOp(room: room, rev: rev, seq: rev, op: "[\(rev - 1),\"\(rev)\"]")
            _ = try redisCLI(["XADD", keys.log, "\(rev)-0", "m", m.json])
        }
        var snap = Message(.snapshot)
        snap.room = room
        snap.rev = 5
        snap.doc = "x2345"
        _ = try redisCLI(["HSET", keys.snapshot, "rev", "5", "m", snap.json])
        _ = try redisCLI(["XTRIM", keys.log, "MINID", "4-0"])
        // Op 6 arrives on the channel: the gap cannot be read any more.
        let six = try committedOp(room: room, rev: 6, seq: 6, op: #"[5,"6"]"#)
        _ = try redisCLI(["XADD", keys.log, "6-0", "m", six.json])
        _ = try redisCLI(["SET", keys.revision, "6"])
        _ = try redisCLI(["PUBLISH", keys.channel, six.json])

        let closed = try c.waitClosed()
        XCTAssertEqual(closed.code, 1011)
        XCTAssertEqual(closed.reason, "room reloading")
        _ = try server.logs.wait(for: "reloading it")
        // Reconnecting with the revision it had: the reloaded room has no history that old.
        let again = try connect(server, room: room)
        let welcome = try again.join("ann", client: "a", since: 1)
        XCTAssertEqual(welcome.doc, "x23456")
        XCTAssertEqual(welcome.rev, 6)
    }
}

/// Tokens on instances that share rooms through Redis: the rewrite of the hello and the read-only
/// check happen before the Redis commit path, so they hold across instances.
extension RedisServeTests {
    func testTokensHoldAcrossInstances() throws {
        let base = self
        let authority = try TokenAuthority(secret: Array("a shared secret for both instances, 32+ bytes".utf8))
        let a = try base.redisServer { $0.tokens = authority }
        let b = try base.redisServer { $0.tokens = authority }
        let room = base.freshRoom()
        func token(_ user: String, _ permission: Permission) throws -> String {
            try mint(AccessClaims(user: user, rooms: [room], permission: permission, expires: Date().addingTimeInterval(600)),
                     with: authority)
        }
        let ann = try base.clients.connect(a.url + "/" + room + "?token=" + token("ann", .write))
        let annWelcome = try ann.join("x", client: "tab")
        XCTAssertEqual(annWelcome.client, "ann/tab")
        try ann.op(#"["a"]"#, seq: 1, base: 0)
        XCTAssertEqual(try ann.expect(type: .ack).rev, 1)

        // On the other instance: Bob claims Ann's id and gets his own; a reader cannot edit.
        let bob = try base.clients.connect(b.url + "/" + room + "?token=" + token("bob", .write))
        XCTAssertEqual(try bob.join("ann", client: "ann/tab").client, "bob/ann/tab")
        try bob.op(#"[1,"b"]"#, seq: 2, base: 1)
        XCTAssertEqual(try bob.expect(type: .ack).rev, 2)
        let reader = try base.clients.connect(b.url + "/" + room + "?token=" + token("rita", .read))
        try reader.join("rita", client: "r")
        try reader.op(#"["x"]"#, seq: 1, base: 2)
        XCTAssertEqual(try reader.expect(type: .error).code, ErrorCode.forbidden.rawValue)

        try ann.op(#"[2,"c"]"#, seq: 2, base: 2)
        XCTAssertEqual(try ann.expect("ann's seq 2") { $0.type == .ack && $0.seq == 2 }.rev, 3,
                       "Ann's seq 2 is not a duplicate of Bob's")
        let late = try base.clients.connect(a.url + "/" + room + "?token=" + token("ann", .write))
        XCTAssertEqual(try late.join("ann", client: "late").doc, "abc")
    }
}

extension RedisServeTests {
    /// `--redis redis://:PASSWORD@host:port` authenticates; a wrong password is reported, and
    /// clients are told the room is unavailable instead of hanging.
    func testRedisPasswordFromTheURL() throws {
        let locked = try RedisServer(["--requirepass", "s3cr3t-pass"])
        let good = try redisServer { $0.redis = RedisURL(host: "127.0.0.1", port: locked.port, password: "s3cr3t-pass") }
        let room = freshRoom()
        let c = try clients.connect(good.url + "/" + room)
        try c.join("ann", client: "c")
        try c.op(#"["ok"]"#, seq: 1, base: 0)
        XCTAssertEqual(try c.expect(type: .ack).rev, 1)

        let bad = try redisServer { $0.redis = RedisURL(host: "127.0.0.1", port: locked.port, password: "wrong") }
        _ = try bad.logs.wait(for: "WRONGPASS")
    }
}
