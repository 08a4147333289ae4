import ArgumentParser
import CollabAuth
import CollabRedis
import CollabServer
import CollabTransport

#if canImport(Glibc)
import Glibc
#endif

struct CollabServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collab-serve",
        abstract: "WebSocket server for real-time collaborative editing: rooms, durable history, heartbeats.",
        // `collab-serve token` mints access tokens; anything else is the server's own options.
        discussion: """
        Clients connect to ws://HOST:PORT/ROOM; the URL path names the room (letters, digits, . _ ~ - and /, at most 128 bytes). Every message is one JSON object per text frame, in the collab schema (see collab-protocol(7)). A client says hello and gets a welcome with the whole document, or, with "since", the ops it missed. Each op is transformed against what was committed after its base, committed as the next revision, written to the room's journal and made durable (fdatasync; the syncs of one loop iteration are grouped) before it is acknowledged and broadcast. A resubmitted op (same client and seq) is acknowledged with its original revision.

        Rooms live in DIR/ROOM/ (a / in a room name is %2F there): journal.ndjson (committed op messages, one per line) and snapshot.json (the document at a revision). A room is loaded on its first join, snapshotted every --snapshot-every ops and when it is unloaded (--idle-unload seconds after its last client left) or the server stops. After a crash (SIGKILL, power loss) a torn last journal line is dropped with a warning: it was never acknowledged.

        With --redis URL the rooms live in Redis instead (no data directory), so any number of instances serve one room with one history. A room's committed ops are a Redis stream (collab:{ROOM}:log); an op is committed by one Lua script that checks the expected revision and the (client, seq) dedupe table, appends, and publishes on the room's channel (collab:{ROOM}:ch); an instance that lost the race reads what it missed, transforms and retries. Each instance subscribes only to the channels of the rooms it serves: a room whose last client left is unloaded and unsubscribed at once (--idle-unload is for journals). A room loads from its snapshot (collab:{ROOM}:snap, written by the instance that commits every --snapshot-every-th op) plus the stream after it; the stream keeps --history ops behind the snapshot for catch-ups. Presence and event messages cross instances on the channel. While Redis is unreachable, ops get a non-fatal "unavailable" error (the client sends them again; collab-join does, with backoff); the instance reconnects, resubscribes and reads the streams from where it was, so nothing is missed. No acknowledged op is lost if redis-server runs with appendonly yes and appendfsync always.

        Presence: on hello every member gets a join (user, name, client, colour, initials) and the newcomer a roster of everyone with their presence; on leave, close or heartbeat timeout the others get leave. Colours come from a fixed palette of 12 readable colours, chosen from the user id (FNV-1a) so every instance and client agrees, avoiding colours already worn in the room while the palette has room; one user's connections share a colour. presence messages (cursor {anchor, head} at revision rev, typing, status, and fields of the application's own) are partial updates, merged into the member's state, stamped with user, name, colour and client, and relayed as the whole state at most once per --presence-interval per client (updates in between are coalesced, the last one wins). Every committed op moves the stored cursors, so a newcomer sees them where they are now; typing turns off by itself --typing-timeout seconds after the last update that set it. Presence is never journaled. A second connection with the same client id replaces the first (closed with 1008, no leave). With --redis the roster spans instances: each member is listed in collab:{ROOM}:members with a deadline in collab:{ROOM}:alive that its instance renews; any instance sweeps expired members and publishes their leave, so the members of a crashed instance leave every roster within --presence-ttl.

        Bad input gets an error message and the connection stays: invalid JSON or UTF-8, numbers out of range, nesting deeper than the reader allows, unknown message types and binary frames get "bad-message"; an op that does not fit the document (or keeps and deletes more than 2^53 - 1 characters in all) gets "bad-op" with its seq; neither changes anything. What the server keeps and repeats is capped below that: a presence update larger than 8 KiB or an event larger than 64 KiB gets a non-fatal "too-large", a hello whose user, name or client is longer than 256 bytes a fatal one (close 1008). A message larger than --max-message gets "too-large" and the connection is closed with 1009; a bad room name gets "bad-room" and 1008. A client that does not read (more than --max-queue bytes waiting) is closed with 1008 "slow consumer: ..." and catches up by reconnecting with "since". A peer silent for --ping-interval is pinged and dropped after --ping-timeout more seconds; the others see it leave.

        Floods: each connection may send --max-rate messages a second, in bursts of up to --max-burst (a token bucket, checked before a message is decoded). A message over the limit is dropped, not processed: its sender gets a non-fatal "rate-limited" error, with the op's seq when it was an op, so the op can be sent again (collab-join keeps it and does, after a backoff); at most one such error goes out per connection per second, and an op dropped within that second is reported when it is over. Every message counts, presence and events included: each costs the server a read and a decode before the coalescing of presence can help, and a dropped presence is replaced by the next. A connection that keeps sending after being told (dropped messages beyond 5 seconds' worth of --max-rate, a tenth of the rate forgiven each second) gets a fatal "rate-limited" error and is closed with 1008 "rate limit: ...". Real editors stay far below the defaults (a fast typist sends some 20 ops and cursors a second; collab-join has one op in flight and composes the rest). More than --max-conns-per-ip open WebSocket connections from one address are refused at the upgrade with HTTP 429 (collab-join retries with its backoff); behind a reverse proxy every client has the proxy's address, so set 0 there.

        GET /healthz answers 200 with a JSON object: "status" ("ok"), "rooms" (loaded), "connections", "revisions" (each loaded room's revision) and "commits" (since start); 503 with "status":"stopping" during shutdown. GET /metrics answers in the Prometheus text format: collab_connections, collab_rooms, collab_queued_bytes, collab_messages_in_total and collab_messages_out_total by type (out: one per recipient), collab_bad_messages_total, collab_received_bytes_total, collab_sent_bytes_total, collab_ops_committed_total, collab_commit_latency_seconds (histogram: an op's arrival to its ack), collab_journal_fsync_seconds (histogram), collab_snapshots_total, collab_slow_consumer_closes_total, collab_heartbeat_timeouts_total, collab_rate_limited_messages_total (dropped over --max-rate), collab_rate_limit_closes_total, collab_refused_connections_total (429 for --max-conns-per-ip), collab_redis_reconnects_total.

        If the journal of a room cannot be written or synced, its senders get "unavailable" instead of an ack, its clients are disconnected (1011) and the room is reloaded from disk on the next join; other rooms are not affected.

        SIGTERM or SIGINT: stop accepting, send what is pending, close clients with 1001, snapshot the rooms, exit 0 (a second signal exits at once). Logs go to stderr, one line per event; the first lines give the data directory and the listening address.

        Authentication: with a secret (--auth-secret-file FILE, or the environment variable COLLAB_AUTH_SECRET; at least 32 bytes) every connection must present an access token signed with it (a JWT, HS256; collab-serve token mints them): in the token query parameter (ws://HOST:PORT/ROOM?token=...), an Authorization: Bearer header, or the hello's "token". Its sub becomes the member's user on every message (the hello's user is ignored), its name the display name, and the client id is prefixed with the user (USER/ID) so no member can take over another's; rooms lists the rooms it opens (names or globs: * within a path segment, ** across, ? one character); perm read makes a read-only member, whose ops get "forbidden" (its cursor and typing still go out); exp is required. A missing, malformed, wrongly signed or expired token gets "unauthorized", a token for other rooms "forbidden", both fatal and followed by close 1008, before the room is even loaded; so does a connection with no valid token after --auth-timeout seconds. When a member's token expires it gets "unauthorized" and is closed with 1008. Without a secret the server is open and says so at start-up; --require-auth makes that an error. --allowed-origin refuses WebSocket upgrades from other browser origins with HTTP 403.

        TLS: with --tls-cert and --tls-key (PEM files; the certificate file may hold the whole chain) the server speaks only TLS on its port: clients connect to wss://HOST:PORT/ROOM, and /healthz and /metrics are https://. Both are checked at start: a file that cannot be read, is not PEM, or a key that does not belong to the certificate stops the server with one line naming the file. Clients trust the certificate through the system's CA store or their --ca-file; collab-join --insecure skips the check (for tests).

        Close codes: 1000 after a client's leave; 1001 server shutting down; 1008 bad room name, a first message that is not hello, a second connection of the same client, slow consumer, sustained rate-limit abuse, a refused or expired token; 1009 message too large; 1011 the room's storage failed (reconnect: the room is reloaded).

        Exit status: 0 after a clean shutdown; 64 usage error (also --tls-cert without --tls-key, or the reverse); 66 the TLS certificate or key, or the secret file, cannot be read or is not valid; 69 cannot listen (address in use); 73 the data directory cannot be created or is in use by another collab-serve (one server per directory, held with flock); 78 no secret with --require-auth, or a secret shorter than 32 bytes.

        Examples:
          collab-serve
          collab-serve --host 0.0.0.0 --port 8080 --data /var/lib/collab
          collab-serve --max-conns-per-ip 0 --max-rate 50   # behind a reverse proxy; stricter per connection
          collab-serve --port 0 2>&1 | grep -m1 'listening on'
          curl -s http://127.0.0.1:7420/healthz | jq .
          collab-serve --host 0.0.0.0 --port 443 --tls-cert /etc/collab/cert.pem --tls-key /etc/collab/key.pem
          collab-join ws://127.0.0.1:7420/notes < edits.ndjson
          collab-ot-apply apply < ~/.local/state/collab/notes/journal.ndjson
          collab-serve --port 7421 --redis redis://127.0.0.1:6379 & collab-serve --port 7422 --redis redis://127.0.0.1:6379
          collab-serve --auth-secret-file secret --require-auth --allowed-origin https://app.example.com
        """,
        subcommands: [TokenCommand.self]
    )

    @Option(help: ArgumentHelp("Address to listen on (an IPv4 or IPv6 address, or an interface name).", valueName: "HOST"))
    var host: String = "127.0.0.1"

    @Option(help: ArgumentHelp("TCP port; 0 picks a free one (the address is printed on stderr).", valueName: "PORT"))
    var port: Int = 7420

    @Option(name: .customLong("data"),
            help: ArgumentHelp("Directory of the rooms' journals and snapshots (default: $XDG_STATE_HOME/collab, else ~/.local/state/collab). Not used with --redis.",
                               valueName: "DIR"),
            completion: .directory)
    var dataDirectory: String?

    @Option(name: .customLong("max-message"), help: ArgumentHelp("Largest message accepted from a client (bytes; K, M suffixes).", valueName: "SIZE"))
    var maxMessage: ByteSize = ByteSize(1 << 20)

    @Option(name: .customLong("max-queue"), help: ArgumentHelp("Most bytes waiting to be sent to one client before it is closed as a slow consumer (K, M suffixes).", valueName: "SIZE"))
    var maxQueue: ByteSize = ByteSize(8 << 20)

    @Option(name: .customLong("max-rate"), help: ArgumentHelp("Messages per second one connection may send, sustained (a token bucket); more are dropped with a \"rate-limited\" error, and a connection that keeps it up is closed (1008). 0: no limit.", valueName: "N"))
    var maxRate: Int = 200

    @Option(name: .customLong("max-burst"), help: ArgumentHelp("Messages one connection may send at once after a quiet spell (the bucket's size; default 5 × --max-rate).", valueName: "N"))
    var maxBurst: Int?

    @Option(name: .customLong("max-conns-per-ip"), help: ArgumentHelp("WebSocket connections one peer address may hold open; more are refused with HTTP 429. 0: no limit (behind a reverse proxy, where every client has the proxy's address).", valueName: "N"))
    var maxConnsPerIP: Int = 256

    @Option(name: .customLong("ping-interval"), help: ArgumentHelp("Ping a client after this many seconds of silence.", valueName: "SECONDS"))
    var pingInterval: Seconds = Seconds(25)

    @Option(name: .customLong("ping-timeout"), help: ArgumentHelp("Drop a client that stays silent this many seconds after a ping.", valueName: "SECONDS"))
    var pingTimeout: Seconds = Seconds(20)

    @Option(name: .customLong("snapshot-every"), help: ArgumentHelp("Snapshot a room (and empty its journal) every N ops; 0: only at unload and shutdown. With --redis: the instance that commits every Nth op writes the room's snapshot to Redis (0: never).", valueName: "N"))
    var snapshotEvery: Int = 1000

    @Option(name: .customLong("idle-unload"), help: ArgumentHelp("Snapshot and unload a room this many seconds after its last client left (with --redis: at once).", valueName: "SECONDS"))
    var idleUnload: Seconds = Seconds(60)

    @Option(name: .customLong("history"), help: ArgumentHelp("Committed ops kept in memory per room for catch-up (older joins get the whole document). With --redis also what the room's stream keeps behind its latest snapshot.", valueName: "N"))
    var history: Int = 10_000

    @Option(name: .customLong("typing-timeout"), help: ArgumentHelp("A member's typing flag turns off by itself this many seconds after its last update.", valueName: "SECONDS"))
    var typingTimeout: Seconds = Seconds(5)

    @Option(name: .customLong("presence-interval"), help: ArgumentHelp("Relay at most one presence update per client per this many seconds; updates in between are coalesced, the last one wins.", valueName: "SECONDS"))
    var presenceInterval: Seconds = Seconds(0.05)

    @Option(name: .customLong("presence-ttl"), help: ArgumentHelp("With --redis: members of an instance that stops (crash, network) leave every roster within this many seconds.", valueName: "SECONDS"))
    var presenceTTL: Seconds = Seconds(30)

    @Option(name: .customLong("redis"),
            help: ArgumentHelp("Keep the rooms' histories in Redis (redis://[user:pass@]host:port[/db]), so several collab-serve instances serve one room with one history.",
                               valueName: "URL"))
    var redis: String?

    @OptionGroup var secret: SecretOptions

    @Flag(name: .customLong("require-auth"), help: "Refuse to start without a secret (--auth-secret-file or COLLAB_AUTH_SECRET), instead of serving everyone.")
    var requireAuth = false

    @Option(name: .customLong("auth-timeout"), help: ArgumentHelp("Close a connection that has not presented a valid token within this many seconds.", valueName: "SECONDS"))
    var authTimeout: Seconds = Seconds(10)

    @Option(name: .customLong("allowed-origin"),
            help: ArgumentHelp("A web origin whose pages may connect (https://app.example.com, https://*.example.com, or * for any); repeat for more. Browsers send Origin, programs do not and are let through. Default: any.", valueName: "ORIGIN"))
    var allowedOrigins: [String] = []

    @Option(name: .customLong("tls-cert"),
            help: ArgumentHelp("Serve wss:// and https:// with this certificate (PEM, optionally followed by its chain). Needs --tls-key.",
                               valueName: "FILE"),
            completion: .file())
    var tlsCert: String?

    @Option(name: .customLong("tls-key"),
            help: ArgumentHelp("The private key of --tls-cert (PEM, unencrypted).", valueName: "FILE"),
            completion: .file())
    var tlsKey: String?

    @Option(name: .customLong("log-level"), help: ArgumentHelp("Least severe log lines shown: error, warn, info or debug (debug adds one line per message).", valueName: "LEVEL"))
    var logLevel: LogLevelArgument = .info

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard maxMessage.bytes > 0 else { throw ValidationError("--max-message must be positive") }
        guard maxQueue.bytes > 0 else { throw ValidationError("--max-queue must be positive") }
        guard maxRate >= 0 else { throw ValidationError("--max-rate must be 0 or more") }
        if let maxBurst {
            guard maxBurst >= 1 else { throw ValidationError("--max-burst must be at least 1") }
            guard maxRate > 0 else { throw ValidationError("--max-burst needs a --max-rate above 0") }
        }
        guard maxConnsPerIP >= 0 else { throw ValidationError("--max-conns-per-ip must be 0 or more") }
        guard pingInterval.value >= 0.01, pingTimeout.value >= 0.01 else {
            throw ValidationError("--ping-interval and --ping-timeout must be at least 0.01 seconds")
        }
        guard snapshotEvery >= 0 else { throw ValidationError("--snapshot-every must be 0 or more") }
        guard idleUnload.value >= 0 else { throw ValidationError("--idle-unload must be 0 or more") }
        guard history > 0 else { throw ValidationError("--history must be positive") }
        guard typingTimeout.value >= 0.01 else { throw ValidationError("--typing-timeout must be at least 0.01 seconds") }
        guard presenceInterval.value >= 0 else { throw ValidationError("--presence-interval must be 0 or more") }
        guard presenceTTL.value >= 0.1 else { throw ValidationError("--presence-ttl must be at least 0.1 seconds") }
        guard authTimeout.value >= 0.1 else { throw ValidationError("--auth-timeout must be at least 0.1 seconds") }
        if let redis {
            do { _ = try RedisURL(parsing: redis) } catch { throw ValidationError("--redis: \(error)") }
        }
        if (tlsCert == nil) != (tlsKey == nil) {
            throw ValidationError("give --tls-cert and --tls-key together")
        }
        if redis == nil && dataDirectory == nil && ServerConfiguration.defaultDataDirectory() == nil {
            throw ValidationError("neither XDG_STATE_HOME nor HOME is set: give --data DIR")
        }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        // With --redis the rooms live in Redis: no data directory, so instances are disposable.
        var config = ServerConfiguration(dataDirectory: redis != nil ? nil : dataDirectory ?? ServerConfiguration.defaultDataDirectory()!)
        config.host = host
        config.port = port
        config.maxMessageBytes = maxMessage.bytes
        config.maxQueueBytes = maxQueue.bytes
        config.rateLimit = RateLimit(rate: Double(maxRate), burst: maxBurst.map(Double.init))
        config.maxConnectionsPerAddress = maxConnsPerIP
        config.pingInterval = pingInterval.duration
        config.pingTimeout = pingTimeout.duration
        config.snapshotEvery = snapshotEvery
        config.idleUnload = idleUnload.duration
        config.historyLimit = history
        config.presence = PresencePolicy(typingTimeout: Int((typingTimeout.value * 1000).rounded()),
                                         minInterval: Int((presenceInterval.value * 1000).rounded()))
        config.presenceTTL = presenceTTL.duration
        config.handleSignals = true
        config.redis = try redis.map { try RedisURL(parsing: $0) }
        if let tlsCert, let tlsKey { config.tls = ServerTLS(certificateFile: tlsCert, privateKeyFile: tlsKey) }
        let log = ServerLog(level: logLevel.level)
        if redis != nil && dataDirectory != nil { log.warn("--data is not used with --redis: the rooms live in Redis") }
        do {
            config.tokens = try secret.authority()
        } catch let e as CommandFailure {
            log.error(e.message)
            throw ExitCode(e.status)
        }
        if config.tokens == nil && requireAuth {
            log.error("--require-auth: no secret (give --auth-secret-file FILE or set COLLAB_AUTH_SECRET)")
            throw ExitCode(78)
        }
        config.authTimeout = authTimeout.duration
        config.allowedOrigins = OriginPolicy(allowedOrigins)
        let host: ServerHost
        do {
            host = try ServerHost(configuration: config, log: log)
        } catch let e as ServerStartError {
            log.error(e.message)
            switch e.kind {
            case .listen: throw ExitCode(69)
            case .tls: throw ExitCode(66)
            case .dataDirectory: throw ExitCode(73)
            }
        }
        // Said once the server could start, next to where it listens.
        if config.tokens == nil {
            log.warn("no auth secret: anyone who reaches this port may join any room under any name (--auth-secret-file, --require-auth)")
        } else {
            log.always("connections need an access token (HS256; mint one with collab-serve token)")
        }
        host.run()
    }
}

enum LogLevelArgument: String, ExpressibleByArgument, CaseIterable {
    case error, warn, info, debug
    var level: ServerLog.Level { ServerLog.Level(name: rawValue)! }
}

/// A byte count: `1048576`, `64K`, `1M`, `1MiB`, `2G` (binary multiples).
struct ByteSize: ExpressibleByArgument, CustomStringConvertible {
    var bytes: Int
    init(_ bytes: Int) { self.bytes = bytes }

    init?(argument: String) {
        var text = Substring(argument.lowercased())
        for suffix in ["ib", "b"] where text.hasSuffix(suffix) && text.count > suffix.count {
            text = text.dropLast(suffix.count)
            break
        }
        var multiplier = 1
        switch text.last {
        case "k": multiplier = 1 << 10
        case "m": multiplier = 1 << 20
        case "g": multiplier = 1 << 30
        default: break
        }
        if multiplier != 1 { text = text.dropLast() }
        guard let n = Int(text), n >= 0 else { return nil }
        let (product, overflow) = n.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { return nil }
        bytes = product
    }

    var description: String {
        if bytes > 0 && bytes % (1 << 20) == 0 { return "\(bytes >> 20)M" }
        if bytes > 0 && bytes % (1 << 10) == 0 { return "\(bytes >> 10)K" }
        return "\(bytes)"
    }
    var defaultValueDescription: String { description }
}

/// Seconds, possibly fractional (`0.5`).
struct Seconds: ExpressibleByArgument, CustomStringConvertible {
    var value: Double
    init(_ value: Double) { self.value = value }
    init?(argument: String) {
        guard let v = Double(argument), v.isFinite else { return nil }
        value = v
    }
    var duration: Duration { .nanoseconds(Int64((value * 1e9).rounded())) }
    var description: String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
    var defaultValueDescription: String { description }
}

CollabServe.main()
