import ArgumentParser
import CollabCLI
import CollabProtocol
import CollabTransport

#if canImport(Glibc)
import Glibc
#endif

struct CollabJoin: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collab-join",
        abstract: "Join a collab room: NDJSON edits on stdin, the room's traffic on stdout.",
        discussion: """
        Connects to a room of collab-serve (ws://HOST:PORT/ROOM; the path names the room) and runs the OT client, so edits never wait for the network and a bot needs no revision numbers. Messages are NDJSON in the collab schema (see collab-protocol(7)).

        Stdin: one message per line. {"type":"op","op":[...]} or a bare op array applies an op to the current copy; the convenience lines are {"type":"insert","pos":N,"text":"..."}, {"type":"delete","pos":N,"len":N}, {"type":"replace","text":"..."} (the whole text; sent as a minimal edit), {"type":"undo"} and {"type":"redo"} (of this client's own edits, transformed past others' edits), {"type":"cursor","anchor":N,"head":N}, {"type":"typing","typing":true}, {"type":"presence","status":"...",...} and {"type":"event",...} (relayed to the room as is). Positions count Unicode scalars. Input is read only once the room's document has arrived.

        Presence: cursor, typing and presence lines are partial updates of this client's presence (a typing line keeps the cursor; fields of the application's own in a presence line are kept too). The cursor follows the local copy as edits apply (past this client's own typing, not past others' text inserted at it); it is sent in the server's coordinates, so it is right even while local edits are unacknowledged, and the whole presence is announced again after a reconnect. The server stamps presence with user, name and colour, keeps everyone's cursors moving with the document, and stops "typing" by itself a few seconds after the last typing line. A bad line is reported on stderr as "line N: ..." and skipped; with --strict input stops there, the edits already accepted are still delivered, and the exit status is 65.

        Stdout: every message from the room, in order: welcome (with the document, or the revision a catch-up starts from), the others' ops, this client's own ops once committed (with their rev, just before their ack), acks, presence, join, leave, roster, error (also the non-fatal "unavailable" answers that are retried, see below: they are messages from the room, and a reader can tell from them that the room could not commit for a while). Own and others' ops together are the room's history in revision order, so `collab-join URL | collab-ot-apply apply` rebuilds the document.

        At end of input, collab-join waits until the server has acknowledged every local edit (at most --drain-timeout), then sends leave, closes and exits 0: piping one line in never loses the edit. With --listen stdin is not read and it stays in the room until interrupted.

        When the connection drops or cannot be made, it retries with exponential backoff (250 ms doubling up to 30 s, full jitter: each wait is random between 0 and that ceiling), catches up with the ops it missed ("since"), and resubmits the edit that was in flight; edits typed meanwhile are kept and sent after reconnecting. Fatal server errors other than refusals reconnect too, as does a close for falling behind (1008, slow consumer). Logs about the connection go to stderr (--quiet silences them); data goes to stdout only.

        Failover: give several URLs of the same room on different collab-serve --redis instances (collab-join ws://a:7420/notes ws://b:7420/notes). It connects to the first; each time a connection is lost or cannot be made, the next attempt goes to the next URL, round robin, with the same backoff, and --max-retries counts failed attempts across all of them. Because the instances share the room's history, the catch-up and the resubmission work across instances, and the server's (client, seq) dedupe makes a resubmitted edit count once. All URLs must name the same room (else exit 64).

        When the server answers the edit in flight with a non-fatal "unavailable" error (collab-serve --redis while Redis is down), the connection stays and the edit stays pending: it is sent again, unchanged, after a backoff of its own (100 ms doubling up to 5 s, full jitter; reset by an ack or a new connection), until it commits. Edits typed meanwhile wait behind it, as they do behind any unacknowledged edit. Stderr says "server unavailable for seq N; retrying in X ms". A non-fatal "rate-limited" for the edit in flight (more messages than the server's --max-rate allows) is handled alike, with "rate-limited by the server for seq N"; dropped event and presence lines are not sent again (the next presence replaces the last).

        SIGINT and SIGTERM: leave politely and exit 128+signal (130, 143); edits not yet acknowledged at that moment are dropped (a warning says so). A second signal exits at once. If stdout is closed by its reader (EPIPE), collab-join leaves and exits 0.

        TLS: wss://HOST:PORT/ROOM connects with TLS (collab-serve --tls-cert). The server's certificate must be trusted by the system's CA store or by --ca-file, and name the URL's host; --insecure accepts any certificate (for tests; a warning says so). A certificate that is not trusted is a configuration error, not an outage: collab-join says why ("TLS handshake with HOST:PORT failed: certificate verify failed (...)") and exits 69 at once instead of retrying.

        Exit status: 0 done; 64 usage error (also URLs naming different rooms), bad URL or room name (the server's message is shown); 65 bad input line with --strict; 66 the --ca-file cannot be read or holds no certificate; 69 server unreachable after --max-retries, its certificate not trusted, or edits not acknowledged within --drain-timeout; 74 stdout could not be written; 77 refused by the server (unauthorized or forbidden); 130/143 interrupted.

        Examples:
          collab-join ws://localhost:7420/notes | collab-ot-apply apply --follow
          echo '{"type":"insert","pos":0,"text":"hello "}' | collab-join ws://localhost:7420/notes
          collab-join --snapshot ws://localhost:7420/notes > notes.txt
          collab-join --listen --quiet ws://localhost:7420/notes | jq -c 'select(.type=="op")'
          printf '%s\\n' '{"type":"replace","text":"v2"}' '{"type":"undo"}' | collab-join URL
          collab-join --max-retries 3 --drain-timeout 5 URL < edits.ndjson
          collab-join ws://a:7420/notes ws://b:7420/notes < edits.ndjson
        """
    )

    @Argument(help: ArgumentHelp("The room to join: ws://HOST:PORT/ROOM (wss:// for TLS); more URLs of the same room on other instances to fail over to.", valueName: "url"))
    var urls: [String]

    @Option(help: "User name sent to the room (default: $USER, else anonymous).")
    var user: String?

    @Option(help: "Display name shown to the others.")
    var name: String?

    @Option(help: "Token for a server that requires one (default: $COLLAB_TOKEN).")
    var token: String?

    @Flag(help: "Print the room's document text exactly (nothing added) and exit.")
    var snapshot = false

    @Flag(help: "Do not read stdin: stay in the room and print its traffic until interrupted.")
    var listen = false

    @Option(name: .customLong("max-retries"), help: ArgumentHelp("Reconnection attempts after a failure (to any of the URLs) before giving up with status 69 (default: unlimited).", valueName: "n"))
    var maxRetries: Int?

    @Option(name: .customLong("drain-timeout"), help: ArgumentHelp("Seconds to wait at end of input for the server to acknowledge every local edit.", valueName: "seconds"))
    var drainTimeout: Double = 10

    @Flag(help: "Stop at the first bad input line: deliver the edits accepted so far, then exit 65.")
    var strict = false

    @Option(name: .customLong("max-line"), help: ArgumentHelp("Longest accepted input line, in bytes.", valueName: "bytes"))
    var maxLine: Int = LineSplitter.defaultMaxLineLength

    @Option(name: .customLong("ca-file"), help: ArgumentHelp("For wss:// URLs: also trust the CA certificates (or the server's own certificate) in this PEM file, besides the system's.", valueName: "file"), completion: .file())
    var caFile: String?

    @Flag(help: "For wss:// URLs: accept any server certificate (self-signed, unknown CA, another host's name). For tests only; a warning says so.")
    var insecure = false

    @Flag(name: .shortAndLong, help: "No connection logs on stderr (problems are still reported).")
    var quiet = false

    func validate() throws {
        if let problem = JoinOptions.problem(with: urls) { throw ValidationError(problem) }
        if let maxRetries, maxRetries < 0 { throw ValidationError("--max-retries must be 0 or more") }
        guard drainTimeout > 0, drainTimeout.isFinite else { throw ValidationError("--drain-timeout must be a positive number of seconds") }
        guard maxLine > 0 else { throw ValidationError("--max-line must be positive") }
        if snapshot && listen { throw ValidationError("give --snapshot or --listen, not both") }
    }

    func run() throws {
        var options = JoinOptions(urls: urls, user: user ?? JoinOptions.defaultUser())
        options.name = name
        options.token = JoinOptions.token(token)
        options.snapshot = snapshot
        options.listen = listen
        options.maxRetries = maxRetries
        options.drainTimeout = .milliseconds(Int64((drainTimeout * 1000).rounded(.up)))
        options.strict = strict
        options.maxLineLength = maxLine
        options.quiet = quiet
        options.tls = ClientTLS(caFile: caFile, insecure: insecure)
        let tool = JoinTool(options: options, diagnostics: Diagnostics(program: "collab-join"),
                            output: LineWriter(fd: STDOUT_FILENO))
        let status = tool.run()
        if status != 0 { throw ExitCode(status) }
    }
}

CollabJoin.main()
