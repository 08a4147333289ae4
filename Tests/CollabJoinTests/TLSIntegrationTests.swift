import CollabProtocol
import CollabTestSupport
import Foundation
import XCTest

/// collab-serve --tls-cert and collab-join over wss://, with a throwaway CA made by openssl.
final class TLSIntegrationTests: JoinTestCase {
    func startTLSServer(_ certs: TestCertificates, file: StaticString = #filePath, line: UInt = #line) throws -> ServerProcess {
        try startServer(data: try temporaryDirectory(), extra: certs.serveArguments, file: file, line: line)
    }

    func testAnEditRoundTripsOverWSSAndASecondClientSeesIt() throws {
        let certs = try TestCertificates(directory: try temporaryDirectory())
        let server = try startTLSServer(certs)
        XCTAssertTrue(server.url.hasPrefix("wss://127.0.0.1:"), server.url)
        let url = server.url + "/secret-notes"
        let watcher = try join(url, ["--listen", "--user", "ann", "--ca-file", certs.caFile], stdinNull: true)
        XCTAssertTrue(watcher.stdout.wait(timeout: 15) { $0.occurrences(of: #""type":"roster""#) >= 1 }, watcher.stderr.text)

        let writer = try join(url, ["--user", "bob", "--ca-file", certs.caFile])
        writer.send(#"{"type":"insert","pos":0,"text":"sealed ✉"}"# + "\n")
        writer.closeInput()
        XCTAssertEqual(writer.waitForExit(timeout: 15), 0, writer.stderr.text)
        XCTAssertEqual(JoinTranscript(writer.stdout.data).messages.map(\.type), [.welcome, .roster, .op, .ack], writer.stdout.text)
        XCTAssertTrue(writer.stderr.text.contains("connected to \(url)"), writer.stderr.text)
        XCTAssertFalse(writer.stderr.text.contains("warning"), writer.stderr.text)

        waitForDocument(watcher, "the watcher to see bob's edit") { $0 == "sealed ✉" }
        XCTAssertEqual(try snapshot(url + "?x=1", caFile: certs.caFile), "sealed ✉")
    }

    func testAnUntrustedCertificateFailsAtOnceWithStatus69() throws {
        let certs = try TestCertificates(directory: try temporaryDirectory())
        let server = try startTLSServer(certs)
        // No --max-retries: a transient failure would be retried forever, this must not be.
        let c = try join(server.url + "/notes", ["--snapshot"], stdinNull: true)
        XCTAssertEqual(c.waitForExit(timeout: 15), 69, c.stderr.text)
        XCTAssertTrue(c.stderr.text.contains(
            "error: TLS handshake with 127.0.0.1:\(server.port) failed: certificate verify failed (unable to get local issuer certificate); use --ca-file or --insecure"),
            c.stderr.text)
        XCTAssertFalse(c.stderr.text.contains("retrying"), c.stderr.text)
        XCTAssertEqual(c.stdout.text, "")
    }

    func testACertificateForAnotherHostIsRejectedUnlessInsecure() throws {
        let certs = try TestCertificates(directory: try temporaryDirectory(), names: "DNS:collab.example")
        let server = try startTLSServer(certs)
        let url = server.url + "/notes"
        let strict = try join(url, ["--snapshot", "--ca-file", certs.caFile], stdinNull: true)
        XCTAssertEqual(strict.waitForExit(timeout: 15), 69, strict.stderr.text)
        XCTAssertTrue(strict.stderr.text.contains("certificate verify failed (IP address mismatch)"), strict.stderr.text)

        let insecure = try join(url, ["--snapshot", "--insecure"], stdinNull: true)
        XCTAssertEqual(insecure.waitForExit(timeout: 15), 0, insecure.stderr.text)
        XCTAssertTrue(insecure.stderr.text.contains("warning: --insecure: the server's certificate is not checked"), insecure.stderr.text)
        XCTAssertTrue(insecure.stderr.text.contains("joined room notes"), insecure.stderr.text)
    }

    func testAnUnusableCAFileIsStatus66() throws {
        let dir = try temporaryDirectory()
        let missing = dir.appendingPathComponent("missing.pem").path
        let c = try join("wss://127.0.0.1:9/notes", ["--snapshot", "--ca-file", missing], stdinNull: true)
        XCTAssertEqual(c.waitForExit(timeout: 15), 66, c.stderr.text)
        XCTAssertEqual(c.stderr.text, "collab-join: error: CA file \(missing): No such file or directory\n")
    }

    func testServeTLSFlagsGoTogetherAndBadFilesAreStatus66() throws {
        let dir = try temporaryDirectory()
        let certs = try TestCertificates(directory: dir)
        for flags in [["--tls-cert", certs.certificateFile], ["--tls-key", certs.keyFile]] {
            let c = try spawn("collab-serve", ["--port", "0", "--data", dir.path] + flags, stdin: .null)
            XCTAssertEqual(c.waitForExit(timeout: 15), 64, c.stderr.text)
            XCTAssertTrue(c.stderr.text.contains("give --tls-cert and --tls-key together"), c.stderr.text)
        }
        let caKey = dir.appendingPathComponent("ca.key").path
        let c = try spawn("collab-serve", ["--port", "0", "--data", dir.path, "--tls-cert", certs.certificateFile, "--tls-key", caKey],
                          stdin: .null)
        XCTAssertEqual(c.waitForExit(timeout: 15), 66, c.stderr.text)
        XCTAssertEqual(c.stderr.text, "collab-serve: error: TLS key \(caKey) does not belong to the certificate \(certs.certificateFile)\n")
    }

    /// /healthz on the TLS port, through `openssl s_client` (the tests need openssl anyway).
    func testHealthzIsServedOverHTTPS() throws {
        let certs = try TestCertificates(directory: try temporaryDirectory())
        let server = try startTLSServer(certs)
        let client = try ChildProcess(try XCTUnwrap(TestCertificates.findOpenSSL()),
                                      ["s_client", "-connect", "127.0.0.1:\(server.port)", "-CAfile", certs.caFile,
                                       "-verify_return_error", "-verify_ip", "127.0.0.1", "-quiet"])
        addTeardownBlock { client.kill9() }
        client.send("GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        XCTAssertTrue(client.stdout.waitForEOF(timeout: 15), client.stderr.text)
        XCTAssertTrue(client.stdout.text.hasPrefix("HTTP/1.0 200 OK\r\n"), client.stdout.text)
        XCTAssertTrue(client.stdout.text.contains(#"{"status":"ok","#), client.stdout.text)
        XCTAssertNotNil(client.waitForExit(timeout: 5))
    }

    func snapshot(_ url: String, caFile: String) throws -> String {
        let c = try join(url, ["--snapshot", "--quiet", "--ca-file", caFile], stdinNull: true)
        XCTAssertEqual(c.waitForExit(timeout: 15), 0, c.stderr.text)
        return c.stdout.text
    }
}
