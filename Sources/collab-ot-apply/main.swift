import ArgumentParser
import CollabCLI
import CollabOT
import CollabProtocol

#if canImport(Glibc)
import Glibc
#endif

struct CollabOTApply: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collab-ot-apply",
        abstract: "Operational transformation as a filter: apply, transform, compose, invert, sequence, replay.",
        discussion: """
        Ops are text-unicode JSON arrays: a positive integer keeps that many characters, a string inserts it, {"d":N} deletes N characters. Positions count Unicode scalars (code points). Messages are NDJSON in the collab schema (see collab-protocol(7)).

        Filters (apply, sequence) report bad lines (invalid JSON or UTF-8, unknown types, ops that do not fit, lines longer than --max-line) on stderr with their line number and go on; with --strict they stop with exit status 65. Output is flushed per line when stdout is a pipe or a terminal.

        Exit status: 0 success; 1 a replay did not reach the trace's endContent; 64 usage error; 65 bad input (with --strict, or a bad document or trace); 74 a file could not be read.

        Examples:
          collab-ot-apply transform --side left '[1,"x"]' '[1,"y"]'
          collab-ot-apply compose '[1,"x"]' '[2,{"d":1}]'
          collab-ot-apply invert --text 'hello' '[1,{"d":2}]'
          collab-join ws://localhost:7420/doc | collab-ot-apply apply --follow
          collab-ot-apply replay --ops trace.json.gz | collab-ot-apply apply > doc.txt
        """,
        subcommands: [Apply.self, Transform.self, Compose.self, Invert.self, Sequence.self, Replay.self]
    )
}

/// Options of the subcommands that read NDJSON from stdin.
struct InputOptions: ParsableArguments {
    @Flag(help: "Stop at the first bad input line with exit status 65 (default: report it on stderr and go on).")
    var strict = false

    @Option(name: .customLong("max-line"), help: "Longest accepted input line, in bytes.")
    var maxLine: Int = LineSplitter.defaultMaxLineLength

    func validate() throws {
        guard maxLine > 0 else { throw ValidationError("--max-line must be positive") }
    }
}

/// `--doc FILE | --text TEXT`: the starting document.
struct DocumentOptions: ParsableArguments {
    @Option(name: .customLong("doc"), help: ArgumentHelp("Read the starting document from FILE.", valueName: "FILE"))
    var docFile: String?

    @Option(help: "Use TEXT as the starting document.")
    var text: String?

    func validate() throws {
        if docFile != nil && text != nil { throw ValidationError("give --doc or --text, not both") }
    }

    func load(_ diagnostics: Diagnostics) throws -> String? {
        if let docFile { return try readTextFile(docFile, diagnostics: diagnostics) }
        return text
    }
}

func parseOp(_ text: String, _ name: String) throws -> TextOperation {
    do { return try TextOperation(json: text) } catch {
        throw ValidationError("\(name) is not a valid op (\(error)): \(text)")
    }
}

func makeTool(_ input: InputOptions? = nil) -> OTApplyTool {
    var tool = OTApplyTool(diagnostics: Diagnostics(program: "collab-ot-apply"), output: LineWriter(fd: STDOUT_FILENO))
    if let input {
        tool.strict = input.strict
        tool.maxLineLength = input.maxLine
    }
    return tool
}

/// Runs tool code, turning `ToolExit` into the process's exit status.
func run(_ body: () throws -> Void) throws {
    do { try body() } catch let exit as ToolExit {
        throw ExitCode(exit.status.rawValue)
    }
}

extension CollabOTApply {
    struct Apply: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply the op lines of stdin to a document; write the document at EOF.",
            discussion: """
            Reads NDJSON. {"type":"op"} lines and bare op arrays are applied; a welcome or snapshot line carrying "doc" (re)sets the document and its revision; other lines are skipped. Ops carrying "rev" must follow in revision order: a gap or a repeat is reported and the op skipped. The document is written exactly, with nothing added.
            """
        )
        @OptionGroup var document: DocumentOptions
        @Flag(help: "After every change write {\"type\":\"snapshot\",\"rev\":N,\"doc\":...} instead of the document at EOF.")
        var follow = false
        @OptionGroup var input: InputOptions

        func run() throws {
            let tool = makeTool(input)
            try collab_ot_apply.run { try tool.apply(document: try document.load(tool.diagnostics) ?? "", follow: follow) }
        }
    }

    struct Transform: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print OP rebased onto AGAINST (both made on the same document).",
            discussion: "With --side left, OP's insert goes first when both insert at one position."
        )
        @Option(help: "Which op wins ties between inserts at the same position: left (OP) or right (AGAINST).")
        var side: SideArgument = .left
        @Argument(help: "The op to rebase (JSON array).") var op: String
        @Argument(help: "The concurrent op it is rebased onto.") var against: String

        func run() throws {
            makeTool().transform(try parseOp(op, "OP"), against: try parseOp(against, "AGAINST"), side: side.side)
        }
    }

    struct Compose: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the single op equal to applying A, then B.")
        @Argument(help: "The first op.") var a: String
        @Argument(help: "The op applied after A.") var b: String

        func run() throws {
            makeTool().compose(try parseOp(a, "A"), try parseOp(b, "B"))
        }
    }

    struct Invert: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the op that undoes OP, given the document OP applies to.")
        @OptionGroup var document: DocumentOptions
        @Argument(help: "The op to invert.") var op: String

        func validate() throws {
            if document.docFile == nil && document.text == nil { throw ValidationError("invert needs the document: --doc FILE or --text TEXT") }
        }

        func run() throws {
            let tool = makeTool()
            let parsed = try parseOp(op, "OP")
            try collab_ot_apply.run { try tool.invert(parsed, document: try document.load(tool.diagnostics) ?? "") }
        }
    }

    struct Sequence: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the server's sequencer over op lines: write each committed op with its rev.",
            discussion: """
            Each op message is transformed against everything committed after its "base", committed as the next revision and written with "rev". A (client, seq) seen before is not applied again. Without "base" an op is taken to be made on the latest revision.
            """
        )
        @OptionGroup var document: DocumentOptions
        @Option(help: "Room name to stamp on output ops that carry none.") var room: String?
        @OptionGroup var input: InputOptions

        func run() throws {
            let tool = makeTool(input)
            try collab_ot_apply.run { try tool.sequence(document: try document.load(tool.diagnostics) ?? "", room: room) }
        }
    }

    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replay an editing trace (.json or .json.gz) and write the final document.",
            discussion: """
            Format: josephg/editing-traces. A concurrent trace goes through one OT client per agent and the sequencer. Exits 1, naming the first differing position, if the result is not the trace's endContent.
            """
        )
        @Argument(help: "The trace file.", completion: .file(extensions: ["json", "gz"])) var trace: String
        @Flag(help: "Write the committed ops as NDJSON op messages (with rev) instead of the final document.")
        var ops = false
        @Option(help: "With --ops: room name to put on each op.") var room: String?
        @Flag(inversion: .prefixedNo, help: "Show progress on stderr (default: only when stderr is a terminal).")
        var progress: Bool?

        func run() throws {
            let tool = makeTool()
            try collab_ot_apply.run {
                try tool.replay(path: trace, showProgress: progress ?? Diagnostics.stderrIsTerminal, emitOps: ops, room: room)
            }
        }
    }
}

enum SideArgument: String, ExpressibleByArgument, CaseIterable {
    case left, right
    var side: Side { self == .left ? .left : .right }
}

CollabOTApply.main()
