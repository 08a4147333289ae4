import Foundation
import XCTest

/// A throwaway certificate authority and a server certificate it signed (by default for
/// 127.0.0.1 and localhost), made with the openssl command (EC P-256: quick to generate) in `directory`.
/// Every run gets fresh ones, so no key is ever checked in.
public struct TestCertificates {
    public let directory: URL
    /// The CA's certificate: what clients trust with --ca-file.
    public var caFile: String { directory.appendingPathComponent("ca.pem").path }
    /// The server's certificate and key: collab-serve --tls-cert, --tls-key.
    public var certificateFile: String { directory.appendingPathComponent("cert.pem").path }
    public var keyFile: String { directory.appendingPathComponent("key.pem").path }

    /// collab-serve's arguments for these.
    public var serveArguments: [String] { ["--tls-cert", certificateFile, "--tls-key", keyFile] }

    /// Makes them, or skips the test when there is no openssl command. `names` is the server
    /// certificate's subjectAltName.
    public init(directory: URL, names: String = "DNS:localhost,IP:127.0.0.1",
                file: StaticString = #filePath, line: UInt = #line) throws {
        self.directory = directory
        guard let openssl = Self.findOpenSSL() else {
            throw XCTSkip("no openssl command (apt-get install openssl)")
        }
        let d = directory.path
        try "subjectAltName=\(names)\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: d + "/ext.cnf", atomically: true, encoding: .utf8)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        try Self.run(openssl, ["req", "-x509"] + ec + ["-days", "2", "-subj", "/CN=collab test CA",
                                                         "-keyout", d + "/ca.key", "-out", d + "/ca.pem"], file: file, line: line)
        try Self.run(openssl, ["req"] + ec + ["-subj", "/CN=localhost", "-keyout", d + "/key.pem", "-out", d + "/req.csr"],
                     file: file, line: line)
        try Self.run(openssl, ["x509", "-req", "-in", d + "/req.csr", "-CA", d + "/ca.pem", "-CAkey", d + "/ca.key",
                               "-CAcreateserial", "-days", "2", "-extfile", d + "/ext.cnf", "-out", d + "/cert.pem"],
                     file: file, line: line)
    }

    public static func findOpenSSL() -> URL? {
        for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
            let url = URL(fileURLWithPath: dir + "/openssl")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return nil
    }

    static func run(_ tool: URL, _ arguments: [String], file: StaticString, line: UInt) throws {
        let p = Process()
        p.executableURL = tool
        p.arguments = arguments
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        p.standardError = errors
        try p.run()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        if p.terminationStatus != 0 {
            XCTFail("openssl \(arguments.joined(separator: " ")) failed: \(String(decoding: message, as: UTF8.self))",
                    file: file, line: line)
            throw XCTSkip("no test certificates")
        }
    }
}
