import Foundation
import XCTest

/// A running `collab-serve` child.
public final class ServerProcess {
    public let child: ChildProcess
    public let port: Int
    /// Started with --tls-cert: clients use wss://.
    public let secure: Bool
    public var url: String { "\(secure ? "wss" : "ws")://127.0.0.1:\(port)" }

    public init(child: ChildProcess, port: Int, secure: Bool = false) {
        self.child = child
        self.port = port
        self.secure = secure
    }

    /// Starts `collab-serve` through `spawn` (which keeps the child for the test's teardown) on
    /// `port` (0: a free one) with `data`, and waits until it listens. Restarting on a fixed port
    /// retries briefly while the old socket is still being released.
    public static func start(data: URL?, port: Int = 0, extra: [String] = [],
                             spawn: (_ name: String, _ arguments: [String]) throws -> ChildProcess,
                             file: StaticString = #filePath, line: UInt = #line) throws -> ServerProcess {
        let deadline = Date(timeIntervalSinceNow: 10)
        while true {
            let child = try spawn("collab-serve", ["--port", "\(port)"] + (data.map { ["--data", $0.path] } ?? []) + ["--log-level", "info"] + extra)
            var found: Int?
            let secure = extra.contains("--tls-cert")
            let announced = "listening on \(secure ? "wss" : "ws")://127.0.0.1:"
            child.stderr.wait(timeout: 10) { data in
                let text = String(decoding: data, as: UTF8.self)
                guard let r = text.range(of: announced) else { return false }
                let digits = text[r.upperBound...].prefix { $0.isNumber }
                guard let p = Int(digits), text[r.upperBound...].dropFirst(digits.count).first?.isNewline == true else { return false }
                found = p
                return true
            }
            if let found { return ServerProcess(child: child, port: found, secure: secure) }
            let status = child.waitForExit(timeout: 5)
            if Date() < deadline && status == 69 { continue } // address still in use: try again
            XCTFail("collab-serve did not start (status \(status.map(String.init) ?? "?")): \(child.stderr.text)", file: file, line: line)
            throw XCTSkip("no server")
        }
    }
}
