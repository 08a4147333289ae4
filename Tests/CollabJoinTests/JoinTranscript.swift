import CollabCLI
import CollabProtocol
import Foundation

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Room history from a join's stdout

/// What a `collab-join` printed, read back: the messages, and the document its history leads to.
struct JoinTranscript {
    var messages: [Message] = []

    init(_ data: Data) {
        for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
            if let m = try? Array(line).withUnsafeBufferPointer({ try Message.decode($0) }) { messages.append(m) }
        }
    }

    func count(_ type: MessageType) -> Int { messages.filter { $0.type == type }.count }

    /// The document at the end of the history (nil if a revision is out of order).
    var document: (text: String, rev: Int)? {
        var doc = ""
        var rev = -1
        for m in messages {
            switch m.type {
            case .welcome:
                if let text = m.doc { doc = text; rev = m.rev ?? 0 }
                else if let since = m.since, since != rev { return nil }
            case .op:
                guard let r = m.rev, let op = m.op else { continue }
                if r <= rev { continue }
                guard r == rev + 1, let next = try? op.apply(to: doc) else { return nil }
                doc = next
                rev = r
            default:
                continue
            }
        }
        return rev < 0 ? nil : (doc, rev)
    }
}

/// Runs a join's stdout through `collab-ot-apply apply`'s logic (the library, in-process, with
/// --strict: a revision gap or repeat fails) and returns the document.
func applyThroughOTApply(_ data: Data) throws -> String {
    let dir = FileManager.default.temporaryDirectory
    let inURL = dir.appendingPathComponent("collab-join-test-\(UUID().uuidString).ndjson")
    let outURL = dir.appendingPathComponent("collab-join-test-\(UUID().uuidString).txt")
    defer {
        try? FileManager.default.removeItem(at: inURL)
        try? FileManager.default.removeItem(at: outURL)
    }
    try data.write(to: inURL)
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    let inFD = open(inURL.path, O_RDONLY)
    let outFD = open(outURL.path, O_WRONLY | O_TRUNC)
    defer { close(inFD); close(outFD) }
    var tool = OTApplyTool(diagnostics: Diagnostics(program: "apply-in-test"), output: LineWriter(fd: outFD))
    tool.inputFD = inFD
    tool.strict = true
    try tool.apply(document: "", follow: false)
    tool.output.flush()
    return try String(contentsOf: outURL, encoding: .utf8)
}

extension Data {
    func occurrences(of needle: String) -> Int {
        let n = Data(needle.utf8)
        var count = 0
        var start = startIndex
        while let r = range(of: n, in: start ..< endIndex) {
            count += 1
            start = r.upperBound
        }
        return count
    }
}
