import CollabTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A running `collab-serve`.
final class ServerProcess {
    let child: ChildProcess
    let port: Int
    var url: String { "ws://127.0.0.1:\(port)" }

    init(child: ChildProcess, port: Int) {
        self.child = child
        self.port = port
    }
}

/// Base class: finds the binaries, starts servers and joins, and stops every process it started
/// on teardown.
class JoinTestCase: XCTestCase {
    private var children: [ChildProcess] = []

    override class func setUp() {
        super.setUp()
        signal(SIGPIPE, SIG_IGN)
    }

    override func tearDown() {
        for c in children { c.kill9() }
        children = []
        super.tearDown()
    }

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("collab-join-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func spawn(_ name: String, _ arguments: [String], stdinNull: Bool = false) throws -> ChildProcess {
        // A developer's COLLAB_TOKEN would make every join authenticate.
        let c = try ChildProcess(try BinaryLocator.require(name), arguments, stdin: stdinNull ? .null : .pipe, unsetting: ["COLLAB_TOKEN"])
        children.append(c)
        return c
    }

    /// Starts `collab-serve` on `port` (0: a free one) with `data`, and waits until it listens.
    /// Restarting on a fixed port retries briefly while the old socket is still being released.
    func startServer(data: URL?, port: Int = 0, extra: [String] = [],
                     file: StaticString = #filePath, line: UInt = #line) throws -> ServerProcess {
        let deadline = Date(timeIntervalSinceNow: 10)
        while true {
            let child = try spawn("collab-serve", ["--port", "\(port)"] + (data.map { ["--data", $0.path] } ?? []) + ["--log-level", "info"] + extra,
                                  stdinNull: true)
            var found: Int?
            child.stderr.wait(timeout: 10) { data in
                let text = String(decoding: data, as: UTF8.self)
                guard let r = text.range(of: "listening on ws://127.0.0.1:") else { return false }
                let digits = text[r.upperBound...].prefix { $0.isNumber }
                guard let p = Int(digits), text[r.upperBound...].dropFirst(digits.count).first?.isNewline == true else { return false }
                found = p
                return true
            }
            if let found { return ServerProcess(child: child, port: found) }
            let status = child.waitForExit(timeout: 5)
            if Date() < deadline && status == 69 { continue } // address still in use: try again
            XCTFail("collab-serve did not start (status \(status.map(String.init) ?? "?")): \(child.stderr.text)", file: file, line: line)
            throw XCTSkip("no server")
        }
    }

    /// Starts `collab-join ARGS URL`.
    func join(_ url: String, _ arguments: [String] = [], stdinNull: Bool = false) throws -> ChildProcess {
        try spawn("collab-join", arguments + [url], stdinNull: stdinNull)
    }

    /// Runs `collab-join --snapshot URL` and returns the text.
    func snapshot(_ url: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let c = try join(url, ["--snapshot", "--quiet", "--max-retries", "5"], stdinNull: true)
        let status = c.waitForExit(timeout: 15)
        XCTAssertEqual(status, 0, "snapshot failed: \(c.stderr.text)", file: file, line: line)
        return c.stdout.text
    }

    /// Waits until a join's stdout history leads to a document satisfying `predicate`.
    func waitForDocument(_ c: ChildProcess, _ what: String, timeout: Double = 15, file: StaticString = #filePath, line: UInt = #line,
                         _ predicate: (String) -> Bool) {
        waitUntil("\(what); stdout so far:\n\(c.stdout.text.suffix(2000))\nstderr:\n\(c.stderr.text.suffix(2000))",
                  timeout: timeout, file: file, line: line) {
            guard let doc = JoinTranscript(c.stdout.data).document else { return false }
            return predicate(doc.text)
        }
    }
}

/// Insert lines for a bot: each at a random position the bot knows exists (the document holds
/// at least its own earlier inserts; nobody deletes), with text that names the bot.
func botLines(bot: Int, count: Int, seed: UInt64) -> (lines: [String], characters: Int) {
    var rng = SplitMix64(seed: seed)
    var own = 0
    var lines: [String] = []
    let alphabet = Array("abcdefghijklmnopqrstuvwxyzé😀")
    for i in 0 ..< count {
        let pos = Int.random(in: 0 ... own, using: &rng)
        let length = Int.random(in: 1 ... 3, using: &rng)
        var text = "\(bot)"
        for _ in 1 ..< length { text.append(alphabet[Int.random(in: 0 ..< alphabet.count, using: &rng)]) }
        if i % 17 == 0 { text += "\\n" } // a JSON-escaped newline now and then
        own += text.replacingOccurrences(of: "\\n", with: "\n").unicodeScalars.count
        lines.append(#"{"type":"insert","pos":\#(pos),"text":"\#(text)"}"#)
    }
    return (lines, own)
}
