import CollabAuth
import CollabOT
import CollabProtocol
import CollabServer
import CollabTestSupport
import CollabTransport
import Foundation
import XCTest

/// collab-serve with tokens, in process: who gets in, as whom, and what they may do.
final class AuthTests: HostTestCase {
    static let secret = Array("test secret: thirty-two bytes at least, and then some".utf8)
    var authority: TokenAuthority!

    override func setUpWithError() throws {
        try super.setUpWithError()
        authority = try TokenAuthority(secret: Self.secret, clockSkew: 0)
    }

    func token(_ user: String = "ann", name: String? = nil, rooms: [String] = ["docs/*"], permission: Permission = .write,
               ttl: TimeInterval = 3600, secret: [UInt8]? = nil) throws -> String {
        let signer = try secret.map { try TokenAuthority(secret: $0) } ?? authority!
        return try mint(AccessClaims(user: user, name: name, rooms: rooms, permission: permission,
                                     expires: Date().addingTimeInterval(ttl)), with: signer)
    }

    func startAuthServer(_ adjust: (inout ServerConfiguration) -> Void = { _ in }) throws -> ServerThread {
        var c = configuration()
        c.tokens = authority
        adjust(&c)
        return try startServer(c)
    }

    func connect(_ server: ServerThread, room: String, token: String?, bearer: Bool = false, origin: String? = nil) throws -> TestClient {
        var options = ClientOptions()
        var url = server.url + "/" + room
        if let token {
            if bearer { options.headers.append(("Authorization", "Bearer \(token)")) } else { url += "?token=" + token }
        }
        options.origin = origin
        return try clients.connect(url, options: options)
    }

    /// The error a refused connection gets, and its close.
    func expectRefusal(_ c: TestClient, code: ErrorCode, file: StaticString = #filePath, line: UInt = #line) throws -> Message {
        let e = try c.expect(type: .error)
        XCTAssertEqual(e.code, code.rawValue, e.message ?? "", file: file, line: line)
        XCTAssertEqual(e.fatal, true, file: file, line: line)
        XCTAssertEqual(try c.waitClosed().code, CloseCode.policyViolation, file: file, line: line)
        return e
    }

    func testTokenForAGlobOpensMatchingRoomsAsItsUser() throws {
        let server = try startAuthServer()
        let t = try token("ann", name: "Ann Lee")
        let c = try connect(server, room: "docs/a", token: t)
        c.hello("mallory", client: "tab1")
        let welcome = try c.expect(type: .welcome)
        XCTAssertEqual(welcome.user, "ann", "the token's sub, not the hello's user")
        XCTAssertEqual(welcome.client, "ann/tab1", "client ids are qualified by the user")
        let roster = try c.expect(type: .roster)
        XCTAssertEqual(roster.members?.first?.name, "Ann Lee")

        try c.op(#"["hi"]"#, seq: 1, base: 0)
        XCTAssertEqual(try c.expect(type: .ack).rev, 1)

        let other = try connect(server, room: "other", token: t)
        let e = try expectRefusal(other, code: .forbidden)
        XCTAssertTrue(e.message?.contains("other") == true, e.message ?? "")
        let nested = try connect(server, room: "docs/a/b", token: t)
        _ = try expectRefusal(nested, code: .forbidden)
        XCTAssertFalse(server.logs.contains("room other loaded"), "a refused connection must not load its room")
    }

    func testBearerHeaderAndHelloTokenWorkToo() throws {
        let server = try startAuthServer()
        let t = try token("bob", rooms: ["notes"])
        let viaHeader = try connect(server, room: "notes", token: t, bearer: true)
        XCTAssertEqual(try viaHeader.join("x", client: "h").user, "bob")

        let viaHello = try connect(server, room: "notes", token: nil)
        var hello = Message(.hello)
        hello.client = "k"
        hello.token = t
        viaHello.send(hello)
        let welcome = try viaHello.expect(type: .welcome)
        XCTAssertEqual(welcome.user, "bob")
        XCTAssertEqual(welcome.client, "bob/k")
    }

    func testBadTokensAreUnauthorized() throws {
        let server = try startAuthServer()
        let cases: [(String, String)] = [
            ("wrong secret", try token(secret: Array("another secret of thirty-two bytes or more".utf8))),
            ("expired", try token(ttl: -5)),
            ("malformed", "not.a.jwt"),
            ("garbage", String(repeating: "A", count: 1000)),
            ("unsigned", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJtYWxsb3J5Iiwicm9vbXMiOlsiKioiXSwicGVybSI6IndyaXRlIiwiZXhwIjo5OTk5OTk5OTk5fQ."),
        ]
        for (what, t) in cases {
            let c = try connect(server, room: "docs/a", token: t)
            let e = try expectRefusal(c, code: .unauthorized)
            XCTAssertFalse(e.message?.contains(t) == true, "\(what): the error must not echo the token")
        }
        let noToken = try connect(server, room: "docs/a", token: nil)
        noToken.hello("ann", client: "x")
        let e = try expectRefusal(noToken, code: .unauthorized)
        XCTAssertTrue(e.message?.contains("token") == true, e.message ?? "")
        XCTAssertTrue(server.logs.contains("refused (unauthorized)"))
    }

    func testMessagesSentBeforeTheVerdictAreHeldInOrder() throws {
        let server = try startAuthServer()
        let c = try connect(server, room: "docs/a", token: try token())
        // All at once, before the token can have been checked.
        c.hello("ann", client: "c")
        try c.op(#"["a"]"#, seq: 1, base: 0)
        try c.op(#"[1,"b"]"#, seq: 2, base: 1)
        _ = try c.expect(type: .welcome)
        XCTAssertEqual(try c.expect("ack 1") { $0.type == .ack && $0.seq == 1 }.rev, 1)
        XCTAssertEqual(try c.expect("ack 2") { $0.type == .ack && $0.seq == 2 }.rev, 2)
    }

    func testReadOnlyMemberReceivesButCannotEdit() throws {
        let server = try startAuthServer()
        let writer = try connect(server, room: "docs/a", token: try token("ann"))
        try writer.join("ann", client: "w")
        let reader = try connect(server, room: "docs/a", token: try token("rita", permission: .read))
        try reader.join("rita", client: "r")

        try reader.op(#"["vandal"]"#, seq: 1, base: 0)
        let e = try reader.expect(type: .error)
        XCTAssertEqual(e.code, ErrorCode.forbidden.rawValue)
        XCTAssertEqual(e.seq, 1)
        XCTAssertNotEqual(e.fatal, true, "the reader stays connected")

        // Its cursor is still relayed; the writer's edits reach it.
        var p = Message(.presence)
        p.typing = false
        reader.send(p)
        _ = try writer.expect("rita's presence") { $0.type == .presence && $0.user == "rita" }
        try writer.op(#"["hello"]"#, seq: 1, base: 0)
        XCTAssertEqual(try writer.expect(type: .ack).rev, 1, "the reader's op was not committed")
        XCTAssertEqual(try reader.expect(type: .op).op, try TextOperation(json: #"["hello"]"#))

        let late = try connect(server, room: "docs/a", token: try token("ann"))
        XCTAssertEqual(try late.join("ann", client: "late").doc, "hello")
    }

    func testAClientCannotTakeOverAnotherUsersClientID() throws {
        let server = try startAuthServer()
        let ann = try connect(server, room: "docs/a", token: try token("ann"))
        let annWelcome = try ann.join("ann", client: "tab1")
        try ann.op(#"["a"]"#, seq: 1, base: 0)
        _ = try ann.expect(type: .ack)

        // Bob names Ann's qualified id: he gets his own, Ann keeps her connection and her seqs.
        let bob = try connect(server, room: "docs/a", token: try token("bob"))
        let bobWelcome = try bob.join("bob", client: annWelcome.client!)
        XCTAssertNotEqual(bobWelcome.client, annWelcome.client)
        try bob.op(#"[1,"b"]"#, seq: 2, base: 1)
        _ = try bob.expect(type: .ack)
        try ann.op(#"[2,"c"]"#, seq: 2, base: 2)
        XCTAssertEqual(try ann.expect("ann's ack 2") { $0.type == .ack && $0.seq == 2 }.rev, 3,
                       "Ann's seq 2 is hers, not a duplicate of Bob's")
        ann.waitForMore(timeout: 0.2)
        XCTAssertNil(ann.snapshot.closeStatus, "Ann was not replaced")
    }

    func testConnectionWithoutATokenIsDroppedAfterTheTimeout() throws {
        let server = try startAuthServer { $0.authTimeout = .milliseconds(300) }
        let idle = try connect(server, room: "docs/a", token: nil)
        let e = try expectRefusal(idle, code: .unauthorized)
        XCTAssertTrue(e.message?.contains("no valid token") == true, e.message ?? "")
    }

    func testMemberIsClosedWhenItsTokenExpires() throws {
        let server = try startAuthServer()
        let c = try connect(server, room: "docs/a", token: try token(ttl: 1.5))
        try c.join("ann", client: "x")
        let e = try c.expect("expiry", timeout: 5) { $0.type == .error }
        XCTAssertEqual(e.code, ErrorCode.unauthorized.rawValue)
        XCTAssertTrue(e.message?.contains("expired") == true, e.message ?? "")
        XCTAssertEqual(try c.waitClosed().code, CloseCode.policyViolation)
    }

    func testTooManyMessagesBeforeAuthenticationIsRefused() throws {
        let server = try startAuthServer()
        let c = try connect(server, room: "docs/a", token: nil)
        var hello = Message(.hello)
        hello.token = "x.y.z"  // verification fails, but the flood comes first
        c.send(hello)
        for i in 0..<500 { c.send(#"{"type":"presence","n":\#(i)}"#) }
        _ = try expectRefusal(c, code: .unauthorized)
    }

    func testAllowedOrigins() throws {
        let server = try startAuthServer { $0.allowedOrigins = OriginPolicy(["https://app.example.com"]) }
        let t = try token()
        XCTAssertThrowsError(try connect(server, room: "docs/a", token: t, origin: "https://evil.example")) { error in
            // libwebsockets' client reports only that the upgrade got no 101 (the server answers 403).
            XCTAssertTrue("\(error)".contains("not 101"), "\(error)")
        }
        XCTAssertEqual(try connect(server, room: "docs/a", token: t, origin: "https://app.example.com").join("a", client: "o").user, "ann")
        XCTAssertEqual(try connect(server, room: "docs/a", token: t).join("a", client: "p").user, "ann", "no Origin: not a browser")
    }

    func testOpenServerStillTakesTheHellosWord() throws {
        let server = try startServer(configuration())
        let c = try connect(server, room: "docs/a")
        let w = try c.join("whoever", client: "c1")
        XCTAssertEqual(w.user, "whoever")
        XCTAssertEqual(w.client, "c1")
    }
}

/// A token from `authority`, waited for: minting is async (jwt-kit), the tests are not.
func mint(_ claims: AccessClaims, with authority: TokenAuthority) throws -> String {
    let result = Locked<Result<String, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        let r: Result<String, any Error>
        do { r = .success(try await authority.mint(claims)) } catch { r = .failure(error) }
        result.withLock { $0 = r }
        done.signal()
    }
    guard done.wait(timeout: .now() + 10) == .success else { throw WaitTimeout(description: "minting a token took over 10 s") }
    return try result.withLock { $0! }.get()
}
