import CollabTestSupport
import CollabTransport
import Foundation
import XCTest

/// wss:// URLs, the checks of certificate files, and TLS between a server and clients of one loop.
final class TLSTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        LogLevel.apply(.none)
    }

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("collab-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testSecureURLParsing() throws {
        let a = try WebSocketURL(parsing: "wss://example.org/room?token=1")
        XCTAssertTrue(a.isSecure)
        XCTAssertEqual(a.host, "example.org")
        XCTAssertEqual(a.port, 443)
        XCTAssertEqual(a.pathAndQuery, "/room?token=1")
        let b = try WebSocketURL(parsing: "WSS://[::1]:8443")
        XCTAssertTrue(b.isSecure)
        XCTAssertEqual(b.host, "::1")
        XCTAssertEqual(b.port, 8443)
        XCTAssertEqual(b.pathAndQuery, "/")
        let c = try WebSocketURL(parsing: "ws://example.org/x")
        XCTAssertFalse(c.isSecure)
        XCTAssertEqual(c.port, 80)
        XCTAssertThrowsError(try WebSocketURL(parsing: "wss:/example.org/x"))
        XCTAssertThrowsError(try WebSocketURL(parsing: "wss://:443/x"))
        XCTAssertThrowsError(try WebSocketURL(parsing: "https://example.org/x"))
        XCTAssertThrowsError(try WebSocketURL(parsing: "wss://example.org:0/x"))
    }

    func testCertificateFilesAreCheckedWithAReasonNamingTheFile() throws {
        let dir = try temporaryDirectory()
        let certs = try TestCertificates(directory: dir)
        XCTAssertNoThrow(try ServerTLS(certificateFile: certs.certificateFile, privateKeyFile: certs.keyFile).check())
        XCTAssertNoThrow(try ClientTLS(caFile: certs.caFile).check())
        XCTAssertNoThrow(try ClientTLS().check())

        func message(_ body: () throws -> Void) -> String {
            do { try body() } catch { return "\(error)" }
            return "no error"
        }
        let missing = dir.appendingPathComponent("missing.pem").path
        XCTAssertEqual(message { try ServerTLS(certificateFile: missing, privateKeyFile: certs.keyFile).check() },
                       "TLS certificate \(missing): No such file or directory")
        XCTAssertEqual(message { try ServerTLS(certificateFile: certs.certificateFile, privateKeyFile: missing).check() },
                       "TLS key \(missing): No such file or directory")
        let text = dir.appendingPathComponent("ext.cnf").path
        // The reason in parentheses is OpenSSL's and varies between its versions.
        XCTAssertTrue(message { try ServerTLS(certificateFile: text, privateKeyFile: certs.keyFile).check() }
            .hasPrefix("TLS certificate \(text): not a PEM certificate ("))
        XCTAssertTrue(message { try ServerTLS(certificateFile: certs.certificateFile, privateKeyFile: certs.certificateFile).check() }
            .hasPrefix("TLS key \(certs.certificateFile): not a PEM private key ("))
        // The CA's key is a fine key, but not the certificate's.
        let caKey = dir.appendingPathComponent("ca.key").path
        XCTAssertEqual(message { try ServerTLS(certificateFile: certs.certificateFile, privateKeyFile: caKey).check() },
                       "TLS key \(caKey) does not belong to the certificate \(certs.certificateFile)")
        XCTAssertEqual(message { try ClientTLS(caFile: missing).check() }, "CA file \(missing): No such file or directory")
        XCTAssertTrue(message { try ClientTLS(caFile: text).check() }.hasPrefix("CA file \(text): no PEM certificate in it"))

        // A listener checks before it binds anything.
        let loop = try EventLoop()
        defer { loop.shutdown() }
        var options = WebSocketServer.Options()
        options.tls = ServerTLS(certificateFile: certs.certificateFile, privateKeyFile: caKey)
        XCTAssertThrowsError(try loop.listen(options)) { XCTAssertTrue($0 is TLSSetupError, "\($0)") }
    }

    /// One loop, one TLS listener; a client that trusts the CA echoes, one that trusts only the
    /// system store is turned away as a certificate failure, and an insecure one gets through.
    func testTrustedInsecureAndUntrustedClients() throws {
        let certs = try TestCertificates(directory: try temporaryDirectory())
        var loopOptions = EventLoop.Options()
        loopOptions.logLevel = .none
        let loop = try EventLoop(options: loopOptions)
        var options = WebSocketServer.Options()
        options.tls = ServerTLS(certificateFile: certs.certificateFile, privateKeyFile: certs.keyFile)
        let server = try loop.listen(options)
        server.handlers.onText = { c, bytes in c.send(text: bytes) }
        let url = "wss://127.0.0.1:\(server.port)/room"

        var echoes: [String: String] = [:]
        var failures: [String: (String, Bool)] = [:]
        func handlers(_ name: String) -> WebSocketHandlers {
            var h = WebSocketHandlers()
            h.onOpen = { c in c.send(text: "hello from \(name)") }
            h.onText = { c, bytes in
                echoes[name] = String(decoding: bytes, as: UTF8.self)
                c.close()
            }
            h.onConnectFailure = { c, message in failures[name] = (message, c.certificateRejected) }
            return h
        }
        var trusted = ClientOptions()
        trusted.tls = ClientTLS(caFile: certs.caFile)
        var insecure = ClientOptions()
        insecure.tls = ClientTLS(insecure: true)
        let plain = try loop.listen()
        let all = [try loop.connect(to: url, options: trusted, handlers: handlers("trusted")),
                   try loop.connect(to: url, options: insecure, handlers: handlers("insecure")),
                   try loop.connect(to: url, handlers: handlers("untrusted")),
                   try loop.connect(to: "wss://127.0.0.1:\(plain.port)/room", options: trusted, handlers: handlers("plain"))]
        let poll = loop.schedule(every: .milliseconds(10)) {
            if all.allSatisfy({ $0.state == .closed }) { loop.stop() }
        }
        runLoop(loop)
        poll.cancel()
        XCTAssertEqual(echoes, ["trusted": "hello from trusted", "insecure": "hello from insecure"])
        let untrusted = try XCTUnwrap(failures["untrusted"])
        XCTAssertTrue(untrusted.1, "a certificate failure should say so: \(untrusted.0)")
        XCTAssertEqual(untrusted.0, "TLS handshake with 127.0.0.1:\(server.port) failed: certificate verify failed (unable to get local issuer certificate)")
        // A server without TLS is not a certificate problem (it may be restarting with TLS).
        let toPlain = try XCTUnwrap(failures["plain"])
        XCTAssertFalse(toPlain.1)
        XCTAssertTrue(toPlain.0.hasPrefix("TLS handshake with 127.0.0.1:\(plain.port) failed ("), toPlain.0)
        XCTAssertTrue(toPlain.0.hasSuffix("a server without TLS needs ws://"), toPlain.0)
        XCTAssertEqual(failures.count, 2, "\(failures)")
    }
}
