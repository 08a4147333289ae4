import CollabTestSupport
import Foundation
import XCTest

/// The real binaries with tokens: collab-serve --auth-secret-file, tokens from
/// `collab-serve token`, collab-join and collab-tap presenting them.
final class AuthIntegrationTests: JoinTestCase {
    var secretFile: URL!

    override func setUpWithError() throws {
        try super.setUpWithError()
        secretFile = try temporaryDirectory().appendingPathComponent("secret")
        try "an operator's secret that is long enough to sign with\n".write(to: secretFile, atomically: true, encoding: .utf8)
    }

    /// `collab-serve token ARGS` → the token.
    func mint(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let r = try spawn("collab-serve", ["token", "--auth-secret-file", secretFile.path] + arguments, stdinNull: true).finish(timeout: 15)
        XCTAssertEqual(r.status, 0, r.err, file: file, line: line)
        let token = r.out.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(token.split(separator: ".").count, 3, "a JWT: \(token)", file: file, line: line)
        return token
    }

    func startAuthServer(_ extra: [String] = []) throws -> ServerProcess {
        try startServer(data: try temporaryDirectory(), extra: ["--auth-secret-file", secretFile.path] + extra)
    }

    func testEditsRoundTripWithTokensAndRefusalsExit77() throws {
        let server = try startAuthServer()
        XCTAssertTrue(server.child.stderr.text.contains("connections need an access token"), server.child.stderr.text)
        let ann = try mint(["--user", "ann", "--name", "Ann", "--room", "docs/*", "--ttl", "10m"])

        let writer = try join(server.url + "/docs/a", ["--token", ann, "--user", "mallory", "--quiet"])
        writer.send(#"{"type":"insert","pos":0,"text":"signed"}"# + "\n")
        writer.closeInput()
        XCTAssertEqual(writer.waitForExit(timeout: 15), 0, writer.stderr.text)
        let ack = writer.stdout.text.split(separator: "\n").first { $0.contains(#""type":"op""#) }
        XCTAssertTrue(ack?.contains(#""user":"ann""#) == true, "the op is Ann's, whatever --user says: \(writer.stdout.text)")

        let reader = try join(server.url + "/docs/a", ["--snapshot", "--quiet", "--token", ann], stdinNull: true)
        XCTAssertEqual(reader.waitForExit(timeout: 15), 0, reader.stderr.text)
        XCTAssertEqual(reader.stdout.text, "signed")

        // Another room, no token, a token signed with another secret: 77 at once, no retries.
        let cases: [([String], String, String)] = [
            (["--token", ann], "/other", "does not open room other"),
            ([], "/docs/a", "authentication required"),
            (["--token", ann + "x"], "/docs/a", "signature"),
        ]
        for (args, path, message) in cases {
            let c = try join(server.url + path, args + ["--max-retries", "5"], stdinNull: true)
            XCTAssertEqual(c.waitForExit(timeout: 15), 77, "\(path) \(args): \(c.stderr.text)")
            XCTAssertTrue(c.stderr.text.contains(message), "\(message): \(c.stderr.text)")
        }
    }

    func testReadOnlyTokenWatchesButCannotEdit() throws {
        let server = try startAuthServer()
        let viewer = try mint(["--user", "vic", "--room", "notes", "--read-only"])
        let editor = try mint(["--user", "eve", "--room", "notes"])

        let watch = try join(server.url + "/notes", ["--listen", "--token", viewer], stdinNull: true)
        let edit = try join(server.url + "/notes", ["--token", editor, "--quiet"])
        edit.send(#"{"type":"insert","pos":0,"text":"by eve"}"# + "\n")
        edit.closeInput()
        XCTAssertEqual(edit.waitForExit(timeout: 15), 0, edit.stderr.text)
        waitForDocument(watch, "the viewer sees eve's edit") { $0 == "by eve" }

        let vandal = try join(server.url + "/notes", ["--token", viewer])
        vandal.send(#"{"type":"insert","pos":0,"text":"vandal"}"# + "\n")
        vandal.closeInput()
        XCTAssertEqual(vandal.waitForExit(timeout: 15), 77, vandal.stderr.text)
        XCTAssertTrue(vandal.stderr.text.contains("read-only"), vandal.stderr.text)
        XCTAssertEqual(try snapshot(server.url + "/notes?token=" + editor), "by eve")
    }

    func testTapNeedsATokenToo() throws {
        let server = try startAuthServer()
        let t = try mint(["--user", "ops", "--room", "**", "--read-only"])
        let tap = try spawn("collab-tap", ["--raw", "--token", t, server.url + "/team/notes"], stdinNull: true)
        let editor = try mint(["--user", "eve", "--room", "team/*"])
        let edit = try join(server.url + "/team/notes", ["--token", editor, "--quiet"])
        edit.send(#"{"type":"insert","pos":0,"text":"x"}"# + "\n")
        edit.closeInput()
        XCTAssertEqual(edit.waitForExit(timeout: 15), 0, edit.stderr.text)
        waitUntil("tap shows eve's op: \(tap.stdout.text)", timeout: 15) {
            tap.stdout.text.contains(#""type":"op""#) && tap.stdout.text.contains(#""user":"eve""#)
        }
        let refused = try spawn("collab-tap", ["--raw", server.url + "/team/notes"], stdinNull: true)
        XCTAssertNotEqual(refused.waitForExit(timeout: 15), 0, refused.stderr.text)
        XCTAssertTrue(refused.stderr.text.contains("authentication required") || refused.stdout.text.contains("unauthorized"),
                      refused.stderr.text + refused.stdout.text)
    }

    func testRequireAuthAndBadSecrets() throws {
        let dir = try temporaryDirectory()
        let noSecret = try spawn("collab-serve", ["--port", "0", "--data", dir.path, "--require-auth"], stdinNull: true).finish(timeout: 15)
        XCTAssertEqual(noSecret.status, 78, noSecret.err)
        XCTAssertTrue(noSecret.err.contains("--require-auth"), noSecret.err)

        let short = dir.appendingPathComponent("short")
        try "tiny".write(to: short, atomically: true, encoding: .utf8)
        let tiny = try spawn("collab-serve", ["--port", "0", "--data", dir.path, "--auth-secret-file", short.path], stdinNull: true).finish(timeout: 15)
        XCTAssertEqual(tiny.status, 78, tiny.err)
        XCTAssertTrue(tiny.err.contains("at least 32"), tiny.err)

        let missing = try spawn("collab-serve", ["--port", "0", "--data", dir.path, "--auth-secret-file", dir.appendingPathComponent("nope").path],
                                stdinNull: true).finish(timeout: 15)
        XCTAssertEqual(missing.status, 66, missing.err)

        let open = try startServer(data: dir)
        XCTAssertTrue(open.child.stderr.text.contains("no auth secret"), "an open server says so: \(open.child.stderr.text)")

        let noRoom = try spawn("collab-serve", ["token", "--auth-secret-file", secretFile.path, "--user", "a"], stdinNull: true).finish(timeout: 15)
        XCTAssertEqual(noRoom.status, 64, noRoom.err)
    }

    /// Tokens and TLS together, as in production: the token travels inside wss://.
    func testTokenOverWSS() throws {
        let certs = try TestCertificates(directory: try temporaryDirectory())
        let server = try startServer(data: try temporaryDirectory(),
                                     extra: certs.serveArguments + ["--auth-secret-file", secretFile.path, "--require-auth"])
        XCTAssertTrue(server.url.hasPrefix("wss://"), server.url)
        let t = try mint(["--user", "sam", "--room", "secure/*"])
        let c = try join(server.url + "/secure/doc", ["--token", t, "--ca-file", certs.caFile, "--quiet"])
        c.send(#"{"type":"insert","pos":0,"text":"tls+jwt"}"# + "\n")
        c.closeInput()
        XCTAssertEqual(c.waitForExit(timeout: 15), 0, c.stderr.text)
        XCTAssertTrue(c.stdout.text.contains(#""user":"sam""#), c.stdout.text)
        let refused = try join(server.url + "/secure/doc", ["--ca-file", certs.caFile], stdinNull: true)
        XCTAssertEqual(refused.waitForExit(timeout: 15), 77, refused.stderr.text)
    }
}
