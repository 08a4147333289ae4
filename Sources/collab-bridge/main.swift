import ArgumentParser
import CollabCLI
import CollabProtocol

#if canImport(Glibc)
import Glibc
#endif

struct CollabBridge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collab-bridge",
        abstract: "NDJSON to and from the Redis channels and streams of collab rooms.",
        discussion: """
        Connects to the Redis that collab-serve --redis instances share and bridges rooms to pipes. Messages are NDJSON in the collab schema (see collab-protocol(7)); a room ROOM uses the keys collab:{ROOM}:* (channel collab:{ROOM}:ch, committed ops in the stream collab:{ROOM}:log).

        Stdout: every message published on the channel of each --room, one line each, exactly as published (committed ops, presence, events, this bridge's own lines too). --all follows every room with a pattern subscription on collab:{*}:ch (for inspection). With --history, the room's committed ops after --since (default 0) are first read from the stream, then the live channel follows without gap or duplicate: live ops are held until the read catches up, ops already written are dropped, and a gap (a missed message, a Redis reconnect) is filled from the stream, so `collab-bridge ... --history | collab-ot-apply apply` rebuilds the document. If the stream was trimmed past --since (collab-serve --redis keeps --history ops behind each snapshot), the room's latest snapshot is written first as a {"type":"snapshot","rev":R,"doc":...} line (collab-ot-apply apply starts from it) and the ops after it follow; without a recent enough snapshot an error says which ops are missing and the feed continues from the oldest op kept.

        Stdin: one message per line. Lines that are not ops (presence, event, join, leave, ...) are checked, stamped with "room" (and "user" from --user when they have none) and published on the room's channel, where collab-serve instances relay them to their clients. With several --room or with --all a line must carry "room". An op line ({"type":"op","op":[...]} or a bare op array) is rejected unless --commit: then it is committed through the same Lua script as collab-serve, with its "client" (default bridge-PID, or --client), "seq" (default: counting up) and "base" (the revision it was made on; default: the room's latest revision when its turn comes, so the op applies to the current document). An op made on an older base is transformed against the ops committed since, as the server does; a conflict with another committer is resolved by reading, transforming and retrying. Each outcome is an ack line {"type":"ack","room":...,"seq":N,"rev":R} on stdout (also for a duplicate resubmission, with the original rev); failures go to stderr. insert/delete/replace/undo/redo/cursor lines need a document copy and are rejected (use collab-join). A bad line is reported as "line N: ..." and skipped; with --strict input stops there and the exit status is 65.

        End: at end of stdin, collab-bridge waits until every publish and commit has been answered (and the --history read is written), then exits. With --follow it keeps following the rooms after end of input until SIGINT or SIGTERM. Use --follow with `< /dev/null` for a pure follower.

        Redis: both connections (commands and subscriptions) reconnect with backoff; after a reconnect, --history reads the stream from the last op written, so nothing is lost. --max-retries N gives up with status 69 after N failed attempts in a row. Logs go to stderr (--quiet silences notes); data goes to stdout only.

        Exit status: 0 done; 1 some line could not be published or committed; 64 usage error; 65 bad input line with --strict; 69 Redis unreachable after --max-retries; 74 stdout could not be written; 128+N on signal N (130, 143).

        Examples:
          collab-bridge redis://127.0.0.1:6379 --room notes --history --follow < /dev/null | collab-ot-apply apply --follow
          collab-bridge redis://127.0.0.1:6379 --room notes --history --since 120 < /dev/null > ops.ndjson
          echo '{"type":"event","name":"build","text":"passed"}' | collab-bridge redis://127.0.0.1:6379 --room notes --user ci
          echo '{"type":"op","op":["hello\\n"]}' | collab-bridge redis://127.0.0.1:6379 --room notes --commit --user bot
          collab-bridge redis://127.0.0.1:6379 --all --follow --quiet < /dev/null | jq -c 'select(.type=="presence")'
          collab-ot-apply replay --ops trace.json.gz | jq -c '. + {base: (.rev - 1)}' | collab-bridge redis://127.0.0.1:6379 --room bench --commit
        """
    )

    @Argument(help: ArgumentHelp("Redis to connect to: redis://[user:pass@]host:port[/db].", valueName: "url"))
    var url: String

    @Option(help: ArgumentHelp("A room to follow and publish to (repeatable).", valueName: "room"))
    var room: [String] = []

    @Flag(help: "Follow every room (pattern subscription); lines on stdin must carry \"room\".")
    var all = false

    @Flag(help: "First write the room's committed ops from the stream, then follow live without gap or duplicate.")
    var history = false

    @Option(help: ArgumentHelp("With --history: start after this revision.", valueName: "rev"))
    var since: Int = 0

    @Flag(help: "Commit op lines from stdin (otherwise they are rejected); print an ack line for each.")
    var commit = false

    @Flag(help: "Keep following after end of input, until a signal.")
    var follow = false

    @Option(help: "User stamped on published lines and committed ops that have none.")
    var user: String?

    @Option(help: ArgumentHelp("Client id of committed ops whose line has none (default: bridge-PID).", valueName: "id"))
    var client: String?

    @Option(name: .customLong("max-retries"), help: ArgumentHelp("Failed connection attempts in a row before giving up with status 69 (default: unlimited).", valueName: "n"))
    var maxRetries: Int?

    @Flag(help: "Stop at the first bad input line and exit 65 once the lines before it are answered.")
    var strict = false

    @Option(name: .customLong("max-line"), help: ArgumentHelp("Longest accepted input line, in bytes.", valueName: "bytes"))
    var maxLine: Int = LineSplitter.defaultMaxLineLength

    @Flag(name: .shortAndLong, help: "No connection notes on stderr (problems are still reported).")
    var quiet = false

    func makeOptions() -> BridgeOptions {
        var o = BridgeOptions(url: url)
        o.rooms = room
        o.all = all
        o.history = history
        o.since = since
        o.commit = commit
        o.follow = follow
        o.user = user
        if let client { o.client = client }
        o.maxRetries = maxRetries
        o.strict = strict
        o.maxLineLength = maxLine
        o.quiet = quiet
        return o
    }

    func validate() throws {
        if let problem = makeOptions().problem { throw ValidationError(problem) }
    }

    func run() throws {
        let tool = BridgeTool(options: makeOptions(), diagnostics: Diagnostics(program: "collab-bridge"),
                              output: LineWriter(fd: STDOUT_FILENO))
        let status = tool.run()
        if status != 0 { throw ExitCode(status) }
    }
}

CollabBridge.main()
