import CollabTestSupport
import Foundation
import XCTest

/// collab-bench through TLS: a short run against collab-serve --tls-cert is as clean as over ws://.
final class BenchTLSTests: ProcessTestCase {
    func testAShortRunOverWSSDeliversEverything() throws {
        let certs = try TestCertificates(directory: try temporaryDirectory())
        let server = try startServer(data: try temporaryDirectory(), extra: certs.serveArguments)
        let c = try spawn("collab-bench", ["--clients", "6", "--active", "3", "--rate", "20", "--duration", "0.5",
                                          "--warmup", "0.2", "--json", "--quiet", "--ca-file", certs.caFile, server.url],
                          stdin: .null)
        let result = try c.finish(timeout: 60)
        XCTAssertEqual(result.status, 0, result.err)
        let json = try XCTUnwrap((try? JSONSerialization.jsonObject(with: result.stdout)) as? [String: Any], result.out)
        let sent = try XCTUnwrap(json["sent"] as? Int, "\(json)")
        XCTAssertGreaterThan(sent, 0)
        XCTAssertEqual(json["acked"] as? Int, sent)
        XCTAssertEqual(json["delivered"] as? Int, sent * 5)
        XCTAssertEqual(json["missing"] as? Int, 0)

        let untrusted = try spawn("collab-bench", ["--clients", "2", "--duration", "0.2", "--quiet", server.url], stdin: .null)
        let refused = try untrusted.finish(timeout: 30)
        XCTAssertEqual(refused.status, 69, refused.err)
        XCTAssertTrue(refused.err.contains("certificate verify failed"), refused.err)
    }
}
