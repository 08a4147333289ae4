import ArgumentParser
import CollabCLI
import CollabProtocol

#if canImport(Glibc)
import Glibc
#endif

struct CollabPresenceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collab-presence",
        abstract: "Who is in a room and what they are doing, from any collab message stream.",
        discussion: """
        A filter over a message stream: the output of collab-join or collab-bridge, or a capture of either. Messages are NDJSON in the collab schema (see collab-protocol(7)). It keeps each room's roster from welcome, roster, join, leave and presence lines, and moves every cursor through the op lines that follow, as the server does, so a cursor always refers to the latest revision seen.

        Default output, one line per change: join when a member appears (by join, by a roster line, or by a first presence in a stream picked up midway), with its whole state; leave when it goes (by leave, or a roster line that no longer lists it); presence when its state changes, whole, with the cursor at the latest revision seen (a presence made on an older revision is brought forward through the ops since; one older than the last 256 ops loses its cursor); and {"type":"typing","user":...,"client":...,"typing":true|false} at each start and stop of typing, including a stop because the flag ran out here. Joining while typing is a start and leaving while typing a stop, so the typing lines alone say who is typing. A roster line (collab-join prints one after each welcome, also after a reconnect) writes only the differences. A line that changes nothing writes nothing; ops move cursors but write no line. Lines carry "room" when the input does, and "ts" from the message that caused them.

        --table on a terminal: a table redrawn in place (at most every 50 ms, and every second for the idle times): each member's initials and name in its colour, user, status, cursor, typing and idle time. The cursor is line:column (both from 1; columns count Unicode scalars) when the stream carries the text (a welcome or snapshot line with "doc", and every op since), else the offset as @N. When the input ends the last table stays on the screen. Colour only on a terminal, never with NO_COLOR set or TERM=dumb. --table elsewhere (a pipe, a file): one roster snapshot line per change of what the table shows: {"type":"roster","room":...,"rev":R,"members":[...],"ts":T}, each member with its presence and, when known, "line" and "column" of its caret and "idle" (milliseconds since its last join or presence, at ts).

        --once: nothing until the input ends, then the roster of each room as such a snapshot line, or the table once with --table (without colour unless stdout is a terminal).

        Several rooms (collab-bridge --all): one roster per room, in the order they appeared; --room ROOM keeps only that one. A line without "room" belongs to the room the last line that had one named.

        Time: typing runs out --typing-timeout seconds after the last update saying so (the server expires it too, but a capture or a server that died will not say so). The clock is the wall clock when a line arrives when reading a pipe, socket or terminal (live input: typing runs out on time even if nothing arrives), and the stream's own time, the latest "ts" seen, when reading a file (a capture is read far faster than it was written); --clock says otherwise. Use a timeout no shorter than the server's, or typing flickers off and on.

        A bad line (invalid JSON or UTF-8, an unknown type, a field of the wrong type, a line longer than --max-line) is reported on stderr as "line N: ..." and skipped; with --strict the run stops there with status 65. An op that does not follow (a revision gap) is a warning: the cursors it would have moved are dropped and line:column is unknown until the next text arrives. The output of collab-presence is valid input to it.

        Exit status: 0 done (also when stdout's reader went away); 64 usage error; 65 bad input line with --strict; 66 FILE cannot be opened; 74 input or output failed; 128+N on signal N (130, 143); on a signal --once still prints what it has.

        Examples:
          collab-join --listen ws://127.0.0.1:7420/notes | collab-presence --table
          collab-join --listen ws://127.0.0.1:7420/notes | collab-presence | jq -c 'select(.type=="typing")'
          collab-bridge redis://127.0.0.1:6379 --all --follow < /dev/null | collab-presence --room notes
          collab-presence --once capture.ndjson
          collab-presence --once --table capture.ndjson
        """
    )

    @Argument(help: ArgumentHelp("A message stream to read instead of stdin ('-': stdin).", valueName: "file"),
              completion: .file(extensions: ["ndjson", "jsonl", "json"]))
    var file: String?

    @Flag(help: "A live table on a terminal; one roster snapshot line per change elsewhere.")
    var table = false

    @Flag(help: "Write nothing until the input ends, then the roster of each room (the table with --table).")
    var once = false

    @Option(help: ArgumentHelp("Only this room (default: every room in the stream, each with its roster).", valueName: "room"))
    var room: String?

    @Option(name: .customLong("typing-timeout"), help: ArgumentHelp("Seconds typing lasts without an update saying so again.", valueName: "seconds"))
    var typingTimeout: Double = 5

    @Option(help: ArgumentHelp("Time for typing expiry and idle times: arrival (wall clock when a line is read) or stream (the latest ts in the input). Default: stream for a file, arrival otherwise.", valueName: "clock"))
    var clock: ClockArgument?

    @Flag(help: "Stop at the first bad input line with exit status 65 (default: report it on stderr and go on).")
    var strict = false

    @Option(name: .customLong("max-line"), help: ArgumentHelp("Longest accepted input line, in bytes.", valueName: "bytes"))
    var maxLine: Int = LineSplitter.defaultMaxLineLength

    func makeOptions() -> PresenceOptions {
        var o = PresenceOptions()
        o.table = table
        o.once = once
        o.room = room
        o.typingTimeout = typingTimeout
        o.clock = clock?.clock
        o.strict = strict
        o.maxLineLength = maxLine
        o.file = file
        return o
    }

    func validate() throws {
        if let problem = makeOptions().problem { throw ValidationError(problem) }
    }

    func run() throws {
        let tool = PresenceTool(options: makeOptions(), diagnostics: Diagnostics(program: "collab-presence"),
                                output: LineWriter(fd: STDOUT_FILENO))
        let status = tool.run()
        if status != 0 { throw ExitCode(status) }
    }
}

enum ClockArgument: String, ExpressibleByArgument, CaseIterable {
    case arrival, stream
    var clock: PresenceOptions.Clock { self == .arrival ? .arrival : .stream }
}

CollabPresenceCommand.main()
