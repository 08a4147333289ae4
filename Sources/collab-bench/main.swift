import ArgumentParser
import CollabCLI
import CollabProtocol
import CollabTransport

#if canImport(Glibc)
import Glibc
#endif

struct CollabBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collab-bench",
        abstract: "Load generator for collab-serve: many clients, an open-loop schedule of edits, latency percentiles.",
        discussion: """
        Opens --clients WebSocket connections to the server (one process, one event loop), spread over --rooms rooms of its own (PREFIX-0, PREFIX-1, ...: client i joins room i mod ROOMS through URL i mod the number of URLs), and makes the first --active of them writers. Connections are opened --connecting at a time: each says hello and waits for its welcome before another is opened, so the server's accept queue is never flooded. The open-file limit is raised to its hard limit first (10,000 connections need 10,000 descriptors).

        Once every client has joined, it waits until no message has arrived for 250 ms (every join is announced to the room and every newcomer gets the roster: a room of 1,000 takes half a million messages to settle, and ops sent earlier would measure that backlog). Then each writer sends single-character inserts at --rate ops/s, at a random position of the document as it knows it, for the --warmup and the measured --duration. The schedule is open loop: ops fall due on a fixed schedule whatever the server does (writer w's k-th op at (k + w/ACTIVE) / RATE seconds, so the writers' phases are spread over a period). The protocol allows one op in flight per client, so an op that falls due while the previous one is unacknowledged waits and is sent right after that ack, and its latency counts from its due time, not from its late send: a slow server then shows as latency instead of as fewer measurements (no coordinated omission). "late" counts such ops.

        Every client measures, on the monotonic clock, the time from an op's reference time (its send, or its due time when it was late) to its own receipt of that op (matched by the sender's client id and seq): the delivery latency, over all receivers; and each writer the time to its ack. Percentiles come from HdrHistograms (1 microsecond to 60 s, 3 significant digits). Only ops due in the measured window count for latency; deliveries/s counts deliveries received in the window. Per op it also takes the latency of its first receiver ("first recv") and the time from its first receiver to its last ("fan-out": how long one op takes to reach a whole room through the server's sends and the receivers' reads). "send lag" is how late ops left: the timer's lateness, or the wait for the previous ack.

        After the window no more ops fall due; the run drains until every op sent is acknowledged and delivered (at most --drain-timeout), then checks exactly-once delivery: in each room, every member must have received every op the room committed (one per ack) except its own, in increasing revision order. missing = expected - received (summed over clients), duplicates the excess.

        With --server-pid PID (repeatable: several instances, or redis-server too) it reads /proc/PID/stat and /proc/PID/status at the start of the window and at its end: the server's CPU time per delivery (CPU time in the window divided by the deliveries in the window), its share of a CPU, and its resident set (VmRSS at the end, VmHWM peak, and VmRSS before the clients connected, hence KiB per connection). The generator reports the same about itself, and how busy the whole machine was during the window (from /proc/stat's idle time), because on a shared machine other processes decide the tail.

        Several URLs (instances of one collab-serve --redis cluster) split the clients between them round robin, so a room's writers and readers are on different instances.

        Output: a table on stdout, or with --json one JSON object: sent, acked, late, expected, delivered, missing, duplicates, out_of_order, deliveries_per_s, ops_per_s, latency_ms, ack_ms, first_delivery_ms, fanout_ms and send_lag_ms (each {p50, p90, p99, p999, max, count}), server {cpu_us_per_delivery, cpu_percent, rss_mib, peak_rss_mib, rss_start_mib, rss_per_connection_kib, processes} with --server-pid, generator {...}, machine {cpus, load_avg, busy_percent, others_percent}, ok. Progress and problems go to stderr (--quiet: problems only).

        --active 0 holds idle connections for the duration: with --server-pid that measures what an idle connection costs the server.

        SIGINT or SIGTERM during the run ends the window early; the run still drains and reports, and exits 128+signal. While connecting, it exits at once without a report. A second signal exits at once.

        TLS: wss://HOST:PORT measures through TLS (collab-serve --tls-cert); the server's certificate must be trusted by the system's CA store or by --ca-file, and name the URL's host; --insecure accepts any certificate (for tests; a warning says so).

        Exit status: 0 the run was clean; 1 deliveries were missing, duplicated or out of order, ops were never acknowledged, the server sent errors, or connections were lost during the run (the report says which); 64 usage error; 66 the --ca-file cannot be read or holds no certificate; 69 a client could not connect or join (server unreachable, refused, its certificate not trusted, or no progress for --connect-timeout): nothing was measured; 77 refused as unauthorized; 130/143 interrupted.

        Examples:
          collab-bench ws://127.0.0.1:7420
          collab-bench --clients 1000 --active 10 --rate 5 --duration 20 --server-pid $(pgrep -n collab-serve) ws://127.0.0.1:7420
          collab-bench --clients 10000 --rooms 100 --active 0 --duration 5 --server-pid PID ws://127.0.0.1:7420
          collab-bench --json --clients 200 ws://127.0.0.1:7421 ws://127.0.0.1:7422 | jq .latency_ms
        """
    )

    @Argument(help: ArgumentHelp("The server: ws://HOST:PORT (wss:// for TLS); more URLs of other instances (collab-serve --redis) to split the clients between.", valueName: "url"))
    var urls: [String]

    @Option(help: ArgumentHelp("Rooms to spread the clients over (client i joins room i mod N).", valueName: "n"))
    var rooms: Int = 1

    @Option(help: ArgumentHelp("Connections to open and hold.", valueName: "n"))
    var clients: Int = 100

    @Option(help: ArgumentHelp("How many of the clients send ops (the first N; the rest only receive; default 10, or all clients when fewer).", valueName: "n"))
    var active: Int?

    @Option(help: ArgumentHelp("Ops per second per active client (open loop).", valueName: "ops"))
    var rate: Double = 5

    @Option(help: ArgumentHelp("Seconds measured.", valueName: "seconds"))
    var duration: Double = 10

    @Option(help: ArgumentHelp("Seconds of load before the measured window (not measured).", valueName: "seconds"))
    var warmup: Double = 1

    @Option(name: .customLong("drain-timeout"), help: ArgumentHelp("Seconds to wait after the window for every op to be acknowledged and delivered.", valueName: "seconds"))
    var drainTimeout: Double = 10

    @Option(name: .customLong("connect-timeout"), help: ArgumentHelp("Give up (status 69) when no client joins for this many seconds while connecting.", valueName: "seconds"))
    var connectTimeout: Double = 30

    @Option(help: ArgumentHelp("Connections being opened at once (each waits for its welcome).", valueName: "n"))
    var connecting: Int = 200

    @Option(name: .customLong("room-prefix"), help: ArgumentHelp("Rooms are PREFIX-0, PREFIX-1, ...; client ids PREFIX-c0, ... (default: bench- and 6 random hex digits, fresh rooms each run).", valueName: "prefix"))
    var roomPrefix: String?

    @Option(name: .customLong("server-pid"), help: ArgumentHelp("A server process to measure (CPU per delivery, RSS) from /proc; repeat for several.", valueName: "pid"))
    var serverPIDs: [Int32] = []

    @Option(help: "Token for a server that requires one (default: $COLLAB_TOKEN).")
    var token: String?

    @Option(help: ArgumentHelp("Seed of the random insert positions.", valueName: "n"))
    var seed: UInt64 = 1

    @Option(name: .customLong("ops-csv"), help: ArgumentHelp("Also write one CSV line per measured op that reached its whole room: writer, seq, rev, and its reference time, ack, first and last receipt in microseconds of CLOCK_MONOTONIC (to see how slow ops cluster, and line them up with perf record -k mono).", valueName: "file"), completion: .file())
    var opsCSV: String?

    @Option(name: .customLong("ca-file"), help: ArgumentHelp("For wss:// URLs: also trust the CA certificates (or the server's own certificate) in this PEM file, besides the system's.", valueName: "file"), completion: .file())
    var caFile: String?

    @Flag(help: "For wss:// URLs: accept any server certificate (self-signed, unknown CA, another host's name). For tests only; a warning says so.")
    var insecure = false

    @Flag(help: "Write one JSON object instead of the table.")
    var json = false

    @Flag(name: .shortAndLong, help: "No progress lines on stderr (problems are still reported).")
    var quiet = false

    func validate() throws {
        if let problem = BenchOptions.problem(with: urls) { throw ValidationError(problem) }
        guard rooms >= 1 else { throw ValidationError("--rooms must be at least 1") }
        guard clients >= 1 else { throw ValidationError("--clients must be at least 1") }
        if let active, !(0 ... clients).contains(active) { throw ValidationError("--active must be between 0 and --clients") }
        guard rate > 0, rate.isFinite, rate <= 100_000 else { throw ValidationError("--rate must be a positive number of ops per second (at most 100000)") }
        for (name, v, least) in [("--duration", duration, 0.001), ("--warmup", warmup, 0), ("--drain-timeout", drainTimeout, 0.001), ("--connect-timeout", connectTimeout, 0.001)] {
            guard v.isFinite, v >= least, v <= 86_400 else { throw ValidationError("\(name) must be \(least > 0 ? "a positive" : "a") number of seconds") }
        }
        guard connecting >= 1 else { throw ValidationError("--connecting must be at least 1") }
        if let roomPrefix, let problem = BenchOptions.problem(withPrefix: roomPrefix) { throw ValidationError(problem) }
        for pid in serverPIDs where pid <= 0 { throw ValidationError("--server-pid must be a process id") }
    }

    static func duration(_ seconds: Double) -> Duration {
        .nanoseconds(Int64((seconds * 1e9).rounded()))
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        var options = BenchOptions(urls: urls, roomPrefix: roomPrefix ?? BenchOptions.randomPrefix())
        options.rooms = rooms
        options.clients = clients
        options.active = active ?? min(10, clients)
        options.rate = rate
        options.duration = Self.duration(duration)
        options.warmup = Self.duration(warmup)
        options.drainTimeout = Self.duration(drainTimeout)
        options.connectTimeout = Self.duration(connectTimeout)
        options.connecting = connecting
        options.serverPIDs = serverPIDs
        options.json = json
        options.quiet = quiet
        options.tls = ClientTLS(caFile: caFile, insecure: insecure)
        options.seed = seed
        options.opsCSV = opsCSV
        if let token {
            options.token = token
        } else if let t = getenv("COLLAB_TOKEN"), t.pointee != 0 {
            options.token = String(cString: t)
        }
        let tool = BenchTool(options: options, diagnostics: Diagnostics(program: "collab-bench"),
                             output: LineWriter(fd: STDOUT_FILENO))
        let status = tool.run()
        if status != 0 { throw ExitCode(status) }
    }
}

CollabBench.main()
