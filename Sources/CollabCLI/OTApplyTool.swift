import CollabOT
import CollabProtocol
import CollabTraces

#if canImport(Glibc)
import Glibc
#endif

/// The logic of `collab-ot-apply`: the OT engine as Unix filters.
public struct OTApplyTool {
    public let diagnostics: Diagnostics
    public let output: LineWriter
    /// Stop at the first bad line with status 65 instead of reporting it and going on.
    public var strict = false
    public var maxLineLength = LineSplitter.defaultMaxLineLength
    public var inputFD: Int32 = STDIN_FILENO

    public init(diagnostics: Diagnostics, output: LineWriter) {
        self.diagnostics = diagnostics
        self.output = output
    }

    /// Reports a bad line; under `--strict` ends the tool with status 65.
    func reject(_ problem: LineError) throws {
        diagnostics.error(problem.description)
        if strict { throw ToolExit(.dataError) }
    }

    func forEachMessage(_ body: (Int, Message, UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        var reader = LineReader(fd: inputFD, maxLineLength: maxLineLength)
        try reader.forEachLine({ number, bytes in
            switch decodeInputLine(number, bytes) {
            case .success(let message): try body(number, message, bytes)
            case .failure(let problem): try reject(problem)
            }
        }, error: { try reject($0) })
    }

    // MARK: apply

    /// Applies the op lines of the input to `document`; writes the result at EOF, or a snapshot
    /// line after every change with `follow`.
    public func apply(document initial: String, follow: Bool) throws {
        // The state lives in one value that the per-line closure mutates directly: loose
        // variables shared with a local function were boxed, and their dynamic exclusivity checks
        // cost about 5% of the instructions per line.
        var follower = DocumentFollower(document: TextRope(initial))
        var reader = LineReader(fd: inputFD, maxLineLength: maxLineLength)
        try reader.forEachLine({ number, bytes in
            let message: DocumentEvent
            do throws(MessageError) { message = try DocumentEvent.decode(bytes) } catch {
                try reject(LineError(line: number, reason: error.description))
                return
            }
            switch follower.handle(message) {
            case .changed: if follow { output.write(follower.snapshot) }
            case .ignored: break
            case .refused(let reason): try reject(LineError(line: number, reason: reason))
            }
        }, error: { try reject($0) })
        if !follow { writeDocument(follower.document) }
        output.flush()
    }

    func writeDocument(_ doc: TextRope) {
        doc.forEachUTF8Chunk { output.writeRaw($0) }
    }

    // MARK: transform, compose, invert

    public func transform(_ op: TextOperation, against other: TextOperation, side: Side) {
        output.writeLine(op.transformed(against: other, side: side).json)
        output.flush()
    }

    public func compose(_ a: TextOperation, _ b: TextOperation) {
        output.writeLine(a.composed(with: b).json)
        output.flush()
    }

    public func invert(_ op: TextOperation, document: String) throws {
        do {
            output.writeLine(try op.inverted(against: TextRope(document)).json)
        } catch {
            diagnostics.error("\(error)")
            throw ToolExit(.dataError)
        }
        output.flush()
    }

    // MARK: sequence

    /// The server's sequencer as a filter: op messages in, committed ops (with `rev`) out.
    public func sequence(document initial: String, room: String?) throws {
        var sequencer = Sequencer(document: TextRope(initial))
        var anonymous = 0
        try forEachMessage { number, message, _ in
            guard message.type == .op else { return }
            guard let op = message.op else {
                try reject(LineError(line: number, reason: "op message without \"op\""))
                return
            }
            // Without both client and seq there is nothing to deduplicate on: the op gets an
            // identity of its own (never the named client's, whose own seqs it would collide
            // with). Without base, the op was made on the latest revision.
            let client = message.client ?? "line"
            let seq: Int
            if let s = message.seq { seq = s } else { anonymous += 1; seq = anonymous }
            let base = message.base ?? sequencer.revision
            let identity = message.client == nil || message.seq == nil ? "\u{0}\(client)-\(number)" : client
            do {
                switch try sequencer.submit(client: identity, seq: seq, base: base, op: op) {
                case .duplicate(let rev):
                    diagnostics.note("line \(number): duplicate of revision \(rev) (client \(client), seq \(seq)); not applied again")
                case .committed(let commit):
                    var out = Message(.op)
                    out.room = message.room ?? room
                    out.user = message.user
                    out.client = message.client
                    out.seq = message.seq
                    out.rev = commit.rev
                    out.op = commit.op
                    out.ts = message.ts
                    output.write(out)
                }
            } catch {
                try reject(LineError(line: number, reason: "\(error)"))
            }
        }
        output.flush()
    }

    // MARK: replay

    /// Replays a trace file; writes the final document. Throws status 1 if it is not the trace's
    /// `endContent`.
    public func replay(path: String, showProgress: Bool, emitOps: Bool = false, room: String? = nil) throws {
        // A trace that cannot be opened (missing, unreadable, a directory) is an I/O error
        // (status 74), not bad input (65).
        if let problem = fileOpenProblem(path) {
            diagnostics.error("\(path): \(problem)")
            throw ToolExit(.ioError)
        }
        let trace: Trace
        do { trace = try Trace.load(path: path) } catch {
            diagnostics.error("\(path): \(error)")
            throw ToolExit(.dataError)
        }
        let progress: ((Int, Int) -> Void)? = showProgress
            ? { done, total in diagnostics.progress("replaying \(done)/\(total) transactions") } : nil
        let onCommit: ((CommittedOp) -> Void)? = emitOps ? { commit in
            var m = Message(.op)
            m.room = room
            m.client = commit.client
            m.seq = commit.seq
            m.rev = commit.rev
            m.op = commit.op
            output.write(m)
        } : nil
        let doc: TextRope
        do {
            if trace.isConcurrent {
                doc = try TraceReplay.replayConcurrent(trace, progress: progress, onCommit: onCommit).document
            } else {
                doc = try TraceReplay.replaySequential(trace, progress: progress, onCommit: onCommit)
            }
        } catch {
            if showProgress { diagnostics.clearProgress() }
            diagnostics.error("\(path): \(error)")
            throw ToolExit(.failure)
        }
        if showProgress { diagnostics.clearProgress() }
        if !emitOps { writeDocument(doc) }
        output.flush()
        let result = doc.string
        if result != trace.endContent {
            let at = TraceReplay.firstDifference(result, trace.endContent) ?? 0
            diagnostics.error("\(path): result differs from endContent at position \(at) (got \(doc.count) characters, expected \(trace.endContent.unicodeScalars.count))")
            throw ToolExit(.failure)
        }
    }
}

/// Why `path` cannot be read as a file (strerror text), or nil if it can be opened.
func fileOpenProblem(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return String(cString: strerror(errno)) }
    defer { close(fd) }
    var st = stat()
    if fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFDIR { return String(cString: strerror(EISDIR)) }
    return nil
}

/// Reads a whole file as UTF-8 text (for `--doc FILE`).
public func readTextFile(_ path: String, diagnostics: Diagnostics) throws -> String {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else {
        diagnostics.error("\(path): \(String(cString: strerror(errno)))")
        throw ToolExit(.ioError)
    }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            diagnostics.error("\(path): \(String(cString: strerror(errno)))")
            throw ToolExit(.ioError)
        }
        if n == 0 { break }
        bytes.append(contentsOf: chunk[..<n])
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
        diagnostics.error("\(path): not valid UTF-8")
        throw ToolExit(.dataError)
    }
    return text
}
