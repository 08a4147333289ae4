import CollabTestSupport
import Foundation
import XCTest

/// collab-tap watching a room of collab-serve --tls-cert over wss://.
final class TapTLSTests: ProcessTestCase {
    func testTapWatchesARoomOverWSS() throws {
        let certs = try TestCertificates(directory: try temporaryDirectory())
        let server = try startServer(data: try temporaryDirectory(), extra: certs.serveArguments)
        let url = server.url + "/notes"
        let tap = try spawn("collab-tap", [url, "--raw", "--ca-file", certs.caFile], stdin: .null)
        XCTAssertTrue(tap.stdout.wait(timeout: 15) { String(decoding: $0, as: UTF8.self).contains(#""type":"welcome""#) }, tap.stderr.text)

        let writer = try spawn("collab-join", ["--quiet", "--ca-file", certs.caFile, url])
        writer.send(#"{"type":"insert","pos":0,"text":"seen by the tap"}"# + "\n")
        writer.closeInput()
        XCTAssertEqual(writer.waitForExit(timeout: 15), 0, writer.stderr.text)
        XCTAssertTrue(tap.stdout.wait(timeout: 15) { String(decoding: $0, as: UTF8.self).contains(#""op":["seen by the tap"]"#) },
                      "stdout:\n\(tap.stdout.text)\nstderr:\n\(tap.stderr.text)")

        // Without the CA: the reason, status 69, no retrying.
        let untrusted = try spawn("collab-tap", [url], stdin: .null)
        XCTAssertEqual(untrusted.waitForExit(timeout: 15), 69, untrusted.stderr.text)
        XCTAssertTrue(untrusted.stderr.text.contains("certificate verify failed"), untrusted.stderr.text)
        XCTAssertTrue(untrusted.stderr.text.contains("use --ca-file or --insecure"), untrusted.stderr.text)
    }
}
