import CollabTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Base class: starts servers and joins (see `ProcessTestCase`, which stops them on teardown).
class JoinTestCase: ProcessTestCase {
    func spawn(_ name: String, _ arguments: [String], stdinNull: Bool = false) throws -> ChildProcess {
        try spawn(name, arguments, stdin: stdinNull ? .null : .pipe)
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
