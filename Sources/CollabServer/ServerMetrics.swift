import CollabProtocol
import Prometheus

/// What `GET /metrics` reports, in the Prometheus text format (swift-prometheus renders it).
/// Counters and histograms are updated on the hot path (an atomic add, or a short uncontended
/// lock for a histogram); gauges that are sums over connections or rooms are computed at scrape
/// time instead, so serving costs nothing when nobody scrapes.
final class ServerMetrics {
    let registry = PrometheusCollectorRegistry()

    let connections: Gauge
    let rooms: Gauge
    let bytesQueued: Gauge
    let messagesIn: [MessageType: Counter]
    let messagesOut: [MessageType: Counter]
    let badMessages: Counter
    let bytesIn: Counter
    let bytesOut: Counter
    let opsCommitted: Counter
    let commitLatency: DurationHistogram
    let slowConsumerCloses: Counter
    let heartbeatTimeouts: Counter
    let rateLimited: Counter
    let rateLimitCloses: Counter
    let refusedPerAddress: Counter
    let redisReconnects: Counter
    let journalSync: DurationHistogram
    let snapshots: Counter
    /// Connections refused for their token: [unauthorized, forbidden].
    let authRefusals: [Counter]

    /// Buckets from 50 µs to 5 s: an fdatasync on an SSD is ~0.1 ms, a commit through Redis ~1
    /// ms, and anything past a second is an outage worth seeing.
    static let latencyBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(5),
    ]

    init() {
        func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "collab", metricName: metric, unitName: unit, helpText: help)
        }
        connections = registry.makeGauge(descriptor: name("connections", "", "Open WebSocket connections."))
        rooms = registry.makeGauge(descriptor: name("rooms", "", "Rooms loaded in this instance."))
        bytesQueued = registry.makeGauge(descriptor: name("queued", "bytes", "Bytes waiting to be sent, over all connections."))
        // Every type a client may send or the server may deliver, made up front: the hot path
        // then only looks one up.
        let inTypes: [MessageType] = [.hello, .op, .presence, .event, .leave]
        let outTypes: [MessageType] = [.welcome, .op, .ack, .presence, .join, .leave, .roster, .event, .error]
        let inName = name("messages_in", "total", "Messages received from clients, by type.")
        let outName = name("messages_out", "total", "Messages delivered to clients (one per recipient), by type.")
        let registry = self.registry
        messagesIn = Dictionary(uniqueKeysWithValues: inTypes.map { ($0, registry.makeCounter(descriptor: inName, labels: [("type", $0.rawValue)])) })
        messagesOut = Dictionary(uniqueKeysWithValues: outTypes.map { ($0, registry.makeCounter(descriptor: outName, labels: [("type", $0.rawValue)])) })
        badMessages = registry.makeCounter(descriptor: name("bad_messages", "total", "Messages refused as unreadable or out of place."))
        bytesIn = registry.makeCounter(descriptor: name("received", "bytes_total", "Bytes of client messages received."))
        bytesOut = registry.makeCounter(descriptor: name("sent", "bytes_total", "Bytes of messages queued for clients."))
        opsCommitted = registry.makeCounter(descriptor: name("ops_committed", "total", "Ops this instance committed."))
        commitLatency = registry.makeDurationHistogram(
            descriptor: name("commit_latency", "seconds", "From an op's arrival to its ack leaving (after fdatasync, or the Redis commit)."),
            buckets: Self.latencyBuckets)
        slowConsumerCloses = registry.makeCounter(descriptor: name("slow_consumer_closes", "total", "Connections closed for not reading (--max-queue)."))
        heartbeatTimeouts = registry.makeCounter(descriptor: name("heartbeat_timeouts", "total", "Connections dropped after a ping went unanswered."))
        rateLimited = registry.makeCounter(descriptor: name("rate_limited_messages", "total", "Messages dropped over a connection's rate limit (--max-rate)."))
        rateLimitCloses = registry.makeCounter(descriptor: name("rate_limit_closes", "total", "Connections closed for staying over the rate limit."))
        refusedPerAddress = registry.makeCounter(descriptor: name("refused_connections", "total", "WebSocket upgrades refused with 429 (--max-conns-per-ip)."))
        redisReconnects = registry.makeCounter(descriptor: name("redis_reconnects", "total", "Connections to Redis re-established after a loss."))
        journalSync = registry.makeDurationHistogram(
            descriptor: name("journal_fsync", "seconds", "Duration of each grouped fdatasync of the journals."),
            buckets: Self.latencyBuckets)
        snapshots = registry.makeCounter(descriptor: name("snapshots", "total", "Room snapshots written (journal or Redis)."))
        let refusals = name("auth_refusals", "total", "Connections refused for their token: unauthorized (missing, invalid, expired) or forbidden (not for this room).")
        authRefusals = ["unauthorized", "forbidden"].map { registry.makeCounter(descriptor: refusals, labels: [("code", $0)]) }
    }

    func received(_ type: MessageType, bytes: Int) {
        messagesIn[type]?.increment()
        bytesIn.increment(by: Int64(bytes))
    }

    func delivered(_ type: MessageType, recipients: Int, bytes: Int) {
        messagesOut[type]?.increment(by: Int64(recipients))
        bytesOut.increment(by: Int64(recipients * bytes))
    }

    /// The text exposition, with the scrape-time gauges set first.
    func render(connections: Int, rooms: Int, queuedBytes: Int) -> [UInt8] {
        self.connections.set(Int64(connections))
        self.rooms.set(Int64(rooms))
        bytesQueued.set(Int64(queuedBytes))
        return registry.emitToBuffer()
    }
}
