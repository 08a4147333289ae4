import CollabOT
import CollabProtocol
import CollabTestSupport
import CollabTransport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A scripted WebSocket server in the test process (its own event loop on a background thread),
/// for what the real server does not do on demand: refuse, drop a slow consumer, never
/// acknowledge, commit an op and lose the connection before the ack.
final class FakeServer: @unchecked Sendable {
    /// Runs on the server's loop thread for each message: the connection number (1, 2, … in
    /// order of opening) and the message.
    typealias Script = @Sendable (_ connection: WebSocketConnection, _ number: Int, _ message: Message) -> Void

    private let lock = NSLock()
    private var _received: [(Int, Message)] = []
    private var _opened = 0
    private var handle: LoopHandle?
    private let finished = DispatchSemaphore(value: 0)
    private(set) var port = 0

    init(_ script: @escaping Script) throws {
        let ready = DispatchSemaphore(value: 0)
        Thread.detachNewThread { [self] in
            guard let loop = try? EventLoop(), let server = try? loop.listen(.init(host: "127.0.0.1", port: 0)) else {
                ready.signal()
                finished.signal()
                return
            }
            var numbers: [ObjectIdentifier: Int] = [:]
            server.handlers.onOpen = { [self] c in
                lock.lock()
                _opened += 1
                numbers[ObjectIdentifier(c)] = _opened
                lock.unlock()
            }
            server.handlers.onText = { [self] c, bytes in
                guard let m = try? bytes.withUnsafeBufferPointer({ try Message.decode($0) }) else { return }
                lock.lock()
                let n = numbers[ObjectIdentifier(c)] ?? 0
                _received.append((n, m))
                lock.unlock()
                script(c, n, m)
            }
            port = server.port
            handle = loop.handle
            ready.signal()
            loop.run()
            finished.signal()
        }
        ready.wait()
        if port == 0 { throw XCTSkip("fake server could not listen") }
    }

    var url: String { "ws://127.0.0.1:\(port)/fake" }

    var received: [(connection: Int, message: Message)] {
        lock.lock(); defer { lock.unlock() }
        return _received.map { (connection: $0.0, message: $0.1) }
    }

    var connectionsOpened: Int {
        lock.lock(); defer { lock.unlock() }
        return _opened
    }

    func stop() {
        handle?.stop()
        _ = finished.wait(timeout: .now() + 5)
    }

    deinit { stop() }

    static func welcome(rev: Int, doc: String? = nil, since: Int? = nil) -> String {
        var w = Message(.welcome)
        w.room = "fake"
        // No client: a welcome's client is the id the client must use from then on (see
        // ClientSession.welcome), and this fake does not keep one per connection.
        w.rev = rev
        w.doc = doc
        w.since = since
        return w.json
    }

    static func op(rev: Int, client: String, seq: Int, _ op: TextOperation) -> String {
        var m = Message(.op)
        m.room = "fake"
        m.user = "someone"
        m.client = client
        m.seq = seq
        m.rev = rev
        m.op = op
        return m.json
    }

    static func ack(seq: Int, rev: Int) -> String {
        var a = Message(.ack)
        a.room = "fake"
        a.seq = seq
        a.rev = rev
        return a.json
    }
}

/// A count shared with a fake server's script (which runs on the server's thread).
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    /// Adds one; returns the new value.
    func increment() -> Int {
        lock.lock(); defer { lock.unlock() }
        value += 1
        return value
    }
}

final class FakeServerTests: JoinTestCase {
    func fake(_ script: @escaping FakeServer.Script) throws -> FakeServer {
        let s = try FakeServer(script)
        addTeardownBlock { s.stop() }
        return s
    }

    func testRefusalExits77WithoutRetrying() throws {
        for code in [ErrorCode.unauthorized, .forbidden] {
            let server = try fake { c, _, m in
                guard m.type == .hello else { return }
                c.send(text: Message.error(code: code, "no entry for token \(m.token ?? "none")", fatal: true).json)
                c.close(code: CloseCode.policyViolation, reason: code.rawValue)
            }
            let c = try join(server.url, ["--token", "s3cret", "--max-retries", "5"], stdinNull: true)
            XCTAssertEqual(c.waitForExit(timeout: 10), 77, c.stderr.text)
            XCTAssertTrue(c.stderr.text.contains("refused by the server: no entry for token s3cret"), c.stderr.text)
            XCTAssertFalse(c.stderr.text.contains("retrying"), c.stderr.text)
            XCTAssertEqual(server.connectionsOpened, 1)
            XCTAssertEqual(server.received.first?.message.token, "s3cret")
            // The error is room traffic too: it is on stdout.
            XCTAssertEqual(JoinTranscript(c.stdout.data).messages.first?.code, code.rawValue)
        }
    }

    func testSlowConsumerCloseReconnectsAndCatchesUpWithSince() throws {
        let server = try fake { c, n, m in
            guard m.type == .hello else { return }
            if n == 1 {
                c.send(text: FakeServer.welcome(rev: 3, doc: "abc"))
                c.close(code: CloseCode.policyViolation, reason: "slow consumer: more than 8 MiB queued; reconnect with since")
            } else {
                c.send(text: FakeServer.welcome(rev: 4, since: m.since))
                c.send(text: FakeServer.op(rev: 4, client: "other", seq: 9, try! TextOperation([.retain(3), .insert("d")])))
            }
        }
        let c = try join(server.url, ["--listen"])
        waitForDocument(c, "the catch-up op") { $0 == "abcd" }
        let hellos = server.received.filter { $0.message.type == .hello }.map(\.message)
        XCTAssertEqual(hellos.count, 2)
        XCTAssertNil(hellos[0].since)
        XCTAssertEqual(hellos[1].since, 3)
        XCTAssertEqual(hellos[0].client, hellos[1].client)
        XCTAssertTrue(c.stderr.text.contains("slow consumer"), c.stderr.text)
        c.signal(SIGTERM)
        XCTAssertEqual(c.waitForExit(timeout: 10), 143, c.stderr.text)
        XCTAssertEqual(server.received.last?.message.type, .leave)
    }

    func testAnOpCommittedBeforeTheConnectionDroppedIsNotSentTwice() throws {
        // The first connection takes the op and drops without an ack; on reconnect the catch-up
        // holds the op itself (same client and seq), which acknowledges it.
        let server = try fake { c, n, m in
            switch (n, m.type) {
            case (1, .hello): c.send(text: FakeServer.welcome(rev: 0, doc: ""))
            case (1, .op): c.close(code: CloseCode.goingAway, reason: "restarting")
            case (2, .hello):
                c.send(text: FakeServer.welcome(rev: 1, since: m.since))
                c.send(text: FakeServer.op(rev: 1, client: m.client ?? "?", seq: 1, try! TextOperation([.insert("x")])))
            default: break
            }
        }
        let c = try join(server.url)
        c.send(#"{"type":"insert","pos":0,"text":"x"}"# + "\n")
        c.closeInput()
        XCTAssertEqual(c.waitForExit(timeout: 10), 0, c.stderr.text)
        let ops = server.received.filter { $0.message.type == .op }
        XCTAssertEqual(ops.count, 1, "\(ops)")
        XCTAssertEqual(server.received.last?.message.type, .leave)
        XCTAssertEqual(try applyThroughOTApply(c.stdout.data), "x")
    }

    func testTheInFlightOpIsResubmittedWithItsOriginalIdentity() throws {
        let server = try fake { c, n, m in
            switch (n, m.type) {
            case (1, .hello): c.send(text: FakeServer.welcome(rev: 5, doc: "hello"))
            case (1, .op): c.close(code: CloseCode.goingAway, reason: "restarting")
            case (2, .hello):
                // Someone else committed meanwhile; the pending edit is rebased locally, but the
                // resubmission is the original op on its original base (the server transforms).
                c.send(text: FakeServer.welcome(rev: 6, since: m.since))
                c.send(text: FakeServer.op(rev: 6, client: "other", seq: 1, try! TextOperation([.insert(">")])))
            case (2, .op):
                c.send(text: FakeServer.ack(seq: m.seq ?? 0, rev: 6 + (m.seq ?? 0)))
            default: break
            }
        }
        let c = try join(server.url)
        c.send(#"{"type":"insert","pos":5,"text":"!"}"# + "\n")
        XCTAssertTrue(c.stderr.wait(timeout: 10) { String(decoding: $0, as: UTF8.self).contains("retrying in") })
        c.send(#"{"type":"insert","pos":0,"text":"¡"}"# + "\n") // typed while disconnected
        c.closeInput()
        XCTAssertEqual(c.waitForExit(timeout: 10), 0, c.stderr.text)
        let ops = server.received.filter { $0.message.type == .op }.map(\.message)
        XCTAssertEqual(ops.count, 3, "\(ops.map(\.json))")
        XCTAssertEqual(ops[0].seq, 1)
        XCTAssertEqual(ops[0].base, 5)
        XCTAssertEqual(ops[1].seq, 1)
        XCTAssertEqual(ops[1].base, 5)
        XCTAssertEqual(ops[1].op, ops[0].op)
        XCTAssertEqual(ops[1].client, ops[0].client)
        // Then the edit typed while disconnected, on the revision after the ack.
        XCTAssertEqual(ops[2].seq, 2)
        XCTAssertEqual(ops[2].base, 7)
        let doc = try applyThroughOTApply(c.stdout.data)
        XCTAssertTrue(doc.hasSuffix(">hello!") || doc.hasSuffix("¡hello!"), doc)
        XCTAssertEqual(doc.unicodeScalars.count, 8, doc)
        XCTAssertEqual(try ops[2].op?.apply(to: ">hello!"), doc)
    }

    func testUnavailableIsSentAgainOnTheSameConnectionUntilItCommits() throws {
        // Two refusals (as while Redis is down), then the commit; the connection stays up.
        let opsSeen = Counter()
        let server = try fake { c, _, m in
            switch m.type {
            case .hello: c.send(text: FakeServer.welcome(rev: 2, doc: "ab"))
            case .op:
                if opsSeen.increment() <= 2 {
                    c.send(text: Message.error(code: .unavailable, "Redis is unavailable; send the op again later",
                                               seq: m.seq, room: "fake").json)
                } else {
                    c.send(text: FakeServer.ack(seq: m.seq ?? 0, rev: 3))
                }
            default: break
            }
        }
        let c = try join(server.url)
        c.send(#"{"type":"insert","pos":2,"text":"c"}"# + "\n")
        c.closeInput()
        XCTAssertEqual(c.waitForExit(timeout: 15), 0, c.stderr.text)
        XCTAssertEqual(server.connectionsOpened, 1)
        let ops = server.received.filter { $0.message.type == .op }.map(\.message)
        XCTAssertEqual(ops.count, 3, "\(ops.map(\.json))")
        XCTAssertEqual(Set(ops.map(\.json)).count, 1, "every resubmission is the original: \(ops.map(\.json))")
        let err = c.stderr.text
        XCTAssertEqual(err.components(separatedBy: "server unavailable for seq 1; retrying in ").count - 1, 2, err)
        XCTAssertFalse(err.contains("disconnected"), err)
        // The refusals are room traffic: on stdout, before the committed op and its ack.
        let types = JoinTranscript(c.stdout.data).messages.map(\.type)
        XCTAssertEqual(types, [.welcome, .error, .error, .op, .ack], c.stdout.text)
        XCTAssertEqual(try applyThroughOTApply(c.stdout.data), "abc")
    }

    func testEachLostConnectionFailsOverToTheNextURL() throws {
        // A takes the op and drops without an ack, as a killed instance would; B (same room,
        // shared history) has it committed and says so in the catch-up, then goes away too, and
        // the round comes back to A.
        let a = try fake { c, n, m in
            switch (n, m.type) {
            case (1, .hello): c.send(text: FakeServer.welcome(rev: 0, doc: ""))
            case (1, .op): c.close(code: CloseCode.goingAway, reason: "instance going away")
            case (_, .hello): c.send(text: FakeServer.welcome(rev: 1, doc: "x"))
            default: break
            }
        }
        let b = try fake { c, _, m in
            guard m.type == .hello else { return }
            c.send(text: FakeServer.welcome(rev: 1, since: m.since))
            c.send(text: FakeServer.op(rev: 1, client: m.client ?? "?", seq: 1, try! TextOperation([.insert("x")])))
            c.close(code: CloseCode.goingAway, reason: "B going away too")
        }
        let c = try spawn("collab-join", [a.url, b.url])
        c.send(#"{"type":"insert","pos":0,"text":"x"}"# + "\n")
        waitUntil("the client back on A after B; stderr:\n\(c.stderr.text)") {
            c.stderr.text.contains("reconnected to \(a.url)")
        }
        c.signal(SIGTERM)
        XCTAssertEqual(c.waitForExit(timeout: 10), 128 + SIGTERM, c.stderr.text)
        XCTAssertEqual(a.connectionsOpened, 2)
        XCTAssertEqual(b.connectionsOpened, 1)
        let hello = try XCTUnwrap(b.received.first?.message)
        XCTAssertEqual(hello.since, 0)
        XCTAssertEqual(hello.client, a.received.first?.message.client, "one client identity across instances")
        XCTAssertEqual(b.received.filter { $0.message.type == .op }.count, 0, "committed: not sent again")
        let err = c.stderr.text
        XCTAssertTrue(err.contains("to \(b.url))"), err)
        XCTAssertTrue(err.contains("reconnected to \(b.url)"), err)
    }

    func testDrainTimeoutExits69() throws {
        let server = try fake { c, _, m in
            if m.type == .hello { c.send(text: FakeServer.welcome(rev: 0, doc: "")) } // and never an ack
        }
        let start = Date()
        let c = try join(server.url, ["--drain-timeout", "0.5"])
        c.send(#"{"type":"insert","pos":0,"text":"x"}"# + "\n")
        c.closeInput()
        XCTAssertEqual(c.waitForExit(timeout: 10), 69, c.stderr.text)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        XCTAssertTrue(c.stderr.text.contains("not acknowledged within 0.5 s"), c.stderr.text)
    }

    func testOtherFatalErrorsReconnect() throws {
        let server = try fake { c, n, m in
            guard m.type == .hello else { return }
            if n == 1 {
                c.send(text: Message.error(code: .unavailable, "room cannot be loaded", fatal: true).json)
                c.close(code: CloseCode.internalError, reason: "unavailable")
            } else {
                c.send(text: FakeServer.welcome(rev: 2, doc: "back"))
            }
        }
        let c = try join(server.url, ["--snapshot"], stdinNull: true)
        XCTAssertEqual(c.waitForExit(timeout: 10), 0, c.stderr.text)
        XCTAssertEqual(c.stdout.text, "back")
        XCTAssertTrue(c.stderr.text.contains("room cannot be loaded"), c.stderr.text)
        XCTAssertEqual(server.connectionsOpened, 2)
    }
}
