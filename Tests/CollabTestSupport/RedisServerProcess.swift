import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A redis-server child on a loopback port (a free one unless given), in a temporary directory,
/// killed with the object. `kill9()` and `start()` again on the same port simulate a crash and a
/// restart; with `appendOnly` (AOF, fsync per write) the restart keeps every write.
public final class RedisServer {
    public let port: Int
    public let dir: URL
    let arguments: [String]
    public private(set) var process: ChildProcess?

    public init(port: Int? = nil, appendOnly: Bool = false, _ extraArgs: [String] = []) throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/redis-server") else { throw XCTSkip("no redis-server") }
        self.port = try port ?? freePort()
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("collab-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        arguments = ["--port", String(self.port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", appendOnly ? "yes" : "no", "--appendfsync", "always",
                     "--dir", dir.path, "--daemonize", "no", "--loglevel", "warning"] + extraArgs
        try start()
    }

    public func start() throws {
        process = try ChildProcess(URL(fileURLWithPath: "/usr/bin/redis-server"), arguments, stdin: .null, stdout: .null)
        let port = self.port
        waitUntil("redis-server listening on \(port)") {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            return connectLoopback(fd, port: port)
        }
    }

    public func kill9() {
        process?.kill9()
        process = nil
    }

    deinit {
        kill9()
        try? FileManager.default.removeItem(at: dir)
    }
}
