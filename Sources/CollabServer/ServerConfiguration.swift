import CollabAuth
import CollabRedis
import CollabTransport

#if canImport(Glibc)
import Glibc
#endif

/// Everything `collab-serve` can be told on its command line.
public struct ServerConfiguration: Sendable {
    /// Address to bind: an IPv4 or IPv6 literal, or an interface name.
    public var host: String = "127.0.0.1"
    /// TCP port; 0 picks a free one (see `ServerHost.port`).
    public var port: Int = 7420
    /// Where rooms keep their journals and snapshots (`DIR/<room>/`). Required without `redis`;
    /// with it, unused: the rooms live in Redis and an instance keeps nothing on disk.
    public var dataDirectory: String?
    /// Largest incoming message (bytes); larger → error `too-large`, close 1009.
    public var maxMessageBytes: Int = 1 << 20
    /// Bytes queued for one connection at most; beyond → close 1008 "slow consumer: ...".
    public var maxQueueBytes: Int = 8 << 20
    /// Messages one connection may send: a token bucket of `rate` a second, `burst` at once;
    /// beyond → error `rate-limited` (the message is dropped), sustained → close 1008.
    /// `RateLimit.unlimited` turns it off.
    public var rateLimit = RateLimit(rate: 200)
    /// WebSocket connections one peer address may hold open; more are refused at the upgrade with
    /// HTTP 429. 0: no limit.
    public var maxConnectionsPerAddress: Int = 256
    /// Ping a connection after this much silence...
    public var pingInterval: Duration = .seconds(25)
    /// ...and drop it when nothing is heard for this long after the ping.
    public var pingTimeout: Duration = .seconds(20)
    /// Write a room's snapshot (and empty its journal) every this many ops; 0: only at unload
    /// and shutdown.
    public var snapshotEvery: Int = 1000
    /// Unload a room this long after its last connection left (snapshot first).
    public var idleUnload: Duration = .seconds(60)
    /// Committed ops kept in memory per room, for `since` catch-ups and late transforms.
    public var historyLimit: Int = 10_000
    /// How long a graceful shutdown waits for clients to complete the close handshake.
    public var shutdownGrace: Duration = .seconds(3)
    /// Catch SIGINT and SIGTERM and shut down gracefully (the executable does; in-process tests
    /// do not, since signal dispositions are process-wide).
    public var handleSignals: Bool = false
    /// Typing expiry and the presence rate limit.
    public var presence = PresencePolicy()
    /// --redis: a member of an instance that stopped refreshing it leaves every roster within
    /// this time.
    public var presenceTTL: Duration = .seconds(30)
    /// With a Redis server, rooms' histories live there (shared by every instance using it)
    /// instead of in the journals.
    public var redis: RedisURL?
    /// With a token authority every connection must present a token it signed (see
    /// ServerHost+Auth.swift); without one the server is open to anyone who can reach it.
    public var tokens: TokenAuthority?
    /// A connection that has not authenticated within this time is closed.
    public var authTimeout: Duration = .seconds(10)
    /// Which browser origins may connect (--allowed-origin); open when empty.
    public var allowedOrigins = OriginPolicy([])
    /// Serve wss:// (and https:// for /healthz, /metrics) with this certificate and key.
    public var tls: ServerTLS?

    /// Size caps for what the server stores and repeats (hello names, presence, events).
    public var messageBudget = MessageBudget()

    public init(dataDirectory: String?) {
        self.dataDirectory = dataDirectory
    }

    /// `$XDG_STATE_HOME/collab`, else `$HOME/.local/state/collab`; nil when neither is set.
    public static func defaultDataDirectory() -> String? {
        if let x = getenv("XDG_STATE_HOME"), x.pointee != 0 {
            let base = String(cString: x)
            if base.hasPrefix("/") { return base + "/collab" }  // the spec ignores relative paths
        }
        if let h = getenv("HOME"), h.pointee != 0 {
            return String(cString: h) + "/.local/state/collab"
        }
        return nil
    }

    /// The URL clients use, for messages: `ws://HOST:PORT`, or `wss://` with TLS.
    static func url(host: String, port: Int, secure: Bool = false) -> String {
        let scheme = secure ? "wss" : "ws"
        return host.contains(":") ? "\(scheme)://[\(host)]:\(port)" : "\(scheme)://\(host):\(port)"
    }
}
