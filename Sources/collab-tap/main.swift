import ArgumentParser
import CollabCLI
import CollabProtocol
import CollabTransport

#if canImport(Glibc)
import Glibc
#endif

struct CollabTap: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collab-tap",
        abstract: "Inspect the traffic of collab rooms: a line per message, the NDJSON itself, or live statistics.",
        discussion: """
        Sources: ws://HOST:PORT/ROOM joins a room of collab-serve as an observer: it gets the room's traffic (welcome, roster, ops, acks of nobody's, presence, join, leave, events), edits nothing and is listed in no roster, so nobody sees it; more URLs of the same room on other instances are tried in turn when one is lost (as with collab-join). After a reconnect it asks for the ops committed meanwhile ("since"), so none is missed. redis://HOST:PORT follows the rooms' channels on the Redis that collab-serve --redis instances share: --room ROOM (repeatable; a glob becomes a pattern subscription) or --all (every room); what was published while Redis was unreachable is missed (stderr says when). Nothing, or -, reads NDJSON on stdin (a pipe, or a capture file redirected in); a path reads that capture file.

        Human view (the default, also on a pipe): one line per message: time (the message's "ts", else its arrival; HH:MM:SS.mmm local time), room, type, user (in the member's colour on a terminal: the message's "color", else the palette's colour for that user), and a summary. An op shows each component where it acts, once the ones before it have: +3 "abc" @17 inserts, -2 @5 deletes (text cut at 24 characters with …, newlines and other control characters escaped), then its rev. Presence: cursor 12 or sel 3-9, typing, status "...". join and leave: joined/left (display name). ack: seq S → rev R. error: code: message. welcome: the revision and the document's length. Colours only on a terminal, never with NO_COLOR set.

        --raw writes each message's NDJSON line unchanged (collab-tap URL --raw > capture.ndjson records a session; the capture includes the welcome with the document).

        Filters: --type, --user and --room, each repeatable, take shell globs (fnmatch: *, ?, [...]); a message passes when it matches one pattern of each filter given. A message without the field (an ack has no user) is matched as an empty string, so only a pattern like * keeps it. A --type pattern that matches no message type is a usage error.

        --stats shows, every second (--interval), per room: messages/s by type, ops/s, bytes/s (of the messages' JSON), active users (distinct users of the room's messages in that second), and the delay from each op's "ts" to its arrival here (p50, p99, in ms; both clocks are wall clocks, so across machines it includes their disagreement; a negative delay counts as 0). On a terminal it is a table redrawn in place; on a pipe, one JSON line per room with traffic in that second: {"type":"stats","room":R,"ts":T,"seconds":S,"messages":N,"messages_per_s":X,"by_type":{"op":X,...},"ops_per_s":X,"bytes_per_s":X,"users":N,"delay_p50_ms":X,"delay_p99_ms":X} (ts: end of the interval, ms since 1970; seconds: its length; rates per second; delays null without ops carrying ts). At the end of the input (or on SIGINT/SIGTERM) comes one more line per room with "final":true over the whole run: rates over the time the room's messages span by their ts (at least 1 s), so a capture gives the rates it was recorded at; delays from a histogram (within 2 %). A capture file has no arrival times: its delays are null.

        --replay FILE writes the capture's lines unchanged to stdout, each at its original offset from the first line's "ts" divided by --speed (2: twice as fast; 0 or inf: as fast as possible); lines without ts follow the previous line at once. The filters apply to the replay too, and the timing is that of the lines kept. collab-join takes op lines (their op is applied to its copy of the document), presence and event lines as its own input, and rejects the rest (welcome, ack, join, leave, roster, error) with a "line N" message; so to re-enact a session's edits: collab-tap --replay capture.ndjson --type op | collab-join ws://HOST:PORT/ROOM. The ops apply only to the document they were made on: replay into a room holding the text the capture started from (an empty room if it starts at revision 0).

        Bad input lines are reported on stderr as "line N: ..." and skipped; with --strict the tap stops there with status 65. Logs go to stderr (--quiet silences notes), data to stdout only. If stdout's reader goes away (EPIPE) it exits 0.

        TLS: wss://HOST:PORT/ROOM connects with TLS (collab-serve --tls-cert); the server's certificate must be trusted by the system's CA store or by --ca-file, and name the URL's host; --insecure accepts any certificate (for tests; a warning says so). A certificate that is not trusted ends the tap at once with status 69 (no retries).

        Exit status: 0 done (end of input or of the replay); 64 usage error; 65 bad input line with --strict; 66 the --ca-file cannot be read or holds no certificate; 69 source unreachable after --max-retries, or its certificate not trusted; 74 stdout or the input file failed; 77 refused by the server (unauthorized); 130/143 on SIGINT/SIGTERM (after the --stats totals and a flush).

        Examples:
          collab-tap ws://localhost:7420/notes
          collab-tap ws://localhost:7420/notes --raw > capture.ndjson
          collab-tap redis://127.0.0.1:6379 --all --type op --stats
          collab-tap redis://127.0.0.1:6379 --room 'team-*' --user alice
          collab-join --listen ws://localhost:7420/notes | collab-tap --type presence
          collab-tap --stats < capture.ndjson
          collab-tap --replay capture.ndjson --speed 4 --type op | collab-join ws://localhost:7420/rehearsal
        """
    )

    @Argument(help: ArgumentHelp("Where to read traffic: ws://HOST:PORT/ROOM or wss:// [more URLs of that room], redis://HOST:PORT, a capture file, or nothing (or -) for stdin.", valueName: "source"))
    var source: [String] = []

    @Option(help: ArgumentHelp("Only rooms matching this glob (repeatable); with redis://, the rooms followed.", valueName: "room"))
    var room: [String] = []

    @Option(help: ArgumentHelp("Only messages of types matching this glob (repeatable): op, presence, join, ...", valueName: "type"))
    var type: [String] = []

    @Option(help: ArgumentHelp("Only messages of users matching this glob (repeatable).", valueName: "user"))
    var user: [String] = []

    @Flag(help: "With redis://: follow every room.")
    var all = false

    @Flag(help: "Write each message's NDJSON line unchanged (for capture files).")
    var raw = false

    @Flag(help: "Show per-room rates, users and op delays every second instead of the messages.")
    var stats = false

    @Option(help: ArgumentHelp("Seconds between two --stats reports.", valueName: "seconds"))
    var interval: Double = 1

    @Option(help: ArgumentHelp("Write this capture to stdout with its original timing (see --speed), then exit.", valueName: "file"))
    var replay: String?

    @Option(help: ArgumentHelp("With --replay: how many times faster than recorded (0 or inf: as fast as possible).", valueName: "x"))
    var speed: Double = 1

    @Option(help: "Token for a server that requires one (default: $COLLAB_TOKEN).")
    var token: String?

    @Option(name: .customLong("max-retries"), help: ArgumentHelp("Failed connection attempts in a row before giving up with status 69 (default: unlimited).", valueName: "n"))
    var maxRetries: Int?

    @Flag(help: "Stop at the first bad input line with status 65.")
    var strict = false

    @Option(name: .customLong("max-line"), help: ArgumentHelp("Longest accepted input line, in bytes.", valueName: "bytes"))
    var maxLine: Int = LineSplitter.defaultMaxLineLength

    @Option(name: .customLong("ca-file"), help: ArgumentHelp("For wss:// URLs: also trust the CA certificates (or the server's own certificate) in this PEM file, besides the system's.", valueName: "file"), completion: .file())
    var caFile: String?

    @Flag(help: "For wss:// URLs: accept any server certificate (self-signed, unknown CA, another host's name). For tests only; a warning says so.")
    var insecure = false

    @Flag(name: .shortAndLong, help: "No connection notes on stderr (problems are still reported).")
    var quiet = false

    func makeOptions() throws -> TapOptions {
        var o = TapOptions()
        o.tls = ClientTLS(caFile: caFile, insecure: insecure)
        switch TapSource.parse(source) {
        case .success(let s): o.source = s
        case .failure(let e): throw ValidationError(e.description)
        }
        o.rooms = room
        o.types = type
        o.users = user
        o.all = all
        o.raw = raw
        o.stats = stats
        o.interval = interval
        o.replay = replay
        o.speed = speed
        o.token = JoinOptions.token(token)
        o.maxRetries = maxRetries
        o.strict = strict
        o.maxLineLength = maxLine
        o.quiet = quiet
        o.terminal = isatty(STDOUT_FILENO) == 1
        o.color = Diagnostics.colorAllowed(fd: STDOUT_FILENO)
        return o
    }

    func validate() throws {
        if let problem = try makeOptions().problem { throw ValidationError(problem) }
    }

    func run() throws {
        let tool = TapTool(options: try makeOptions(), diagnostics: Diagnostics(program: "collab-tap"),
                           output: LineWriter(fd: STDOUT_FILENO))
        let status = tool.run()
        if status != 0 { throw ExitCode(status) }
    }
}

CollabTap.main()
