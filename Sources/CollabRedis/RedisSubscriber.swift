// Pub/Sub on its own connection. The caller maintains a set of channels (and patterns); after
// every (re)connect all of them are subscribed again and `onResubscribed` runs once the server
// has confirmed them all, so the caller can catch up from durable state (a stream) from there.
import CHiredis
import CollabTransport

public final class RedisSubscriber {
    public let connection: RedisConnection

    /// A message on a subscribed channel: channel name, payload bytes.
    public var onMessage: ((String, [UInt8]) -> Void)?
    /// A message matching a pattern subscription: pattern, channel, payload.
    public var onPatternMessage: ((String, String, [UInt8]) -> Void)?
    /// After each (re)connect, once every channel and pattern in the sets is confirmed by the
    /// server. Messages published before this point may have been missed.
    public var onResubscribed: (() -> Void)?
    /// The connection was lost (subscriptions stay in the sets and come back after reconnect).
    public var onDisconnect: ((RedisError) -> Void)? {
        get { connection.onDisconnect }
        set { connection.onDisconnect = newValue }
    }
    public var onConnectFailed: ((RedisError, Int) -> Void)? {
        get { connection.onConnectFailed }
        set { connection.onConnectFailed = newValue }
    }

    /// What the caller wants to be subscribed to.
    public private(set) var channels: Set<String> = []
    public private(set) var patterns: Set<String> = []
    /// What the server has confirmed on the current connection.
    public private(set) var activeChannels: Set<String> = []
    public private(set) var activePatterns: Set<String> = []

    /// Keys "c:NAME" / "p:NAME" still to be confirmed for the current resubscription.
    var resubscribing: Set<String>?
    var waiters: [(keys: Set<String>, done: () -> Void)] = []

    public init(loop: EventLoop, url: RedisURL, options: RedisOptions = RedisOptions()) {
        connection = RedisConnection(loop: loop, url: url, options: options)
        connection.subscriptionHandler = { [unowned self] r in self.handle(r) }
        connection.readyHandler = { [unowned self] in self.resubscribeAll() }
        connection.endedHandler = { [unowned self] in
            self.activeChannels = []
            self.activePatterns = []
            self.resubscribing = nil
        }
    }

    public func start() { connection.start() }
    public func close() { connection.close() }

    /// Adds channels to the set and subscribes to the new ones now if connected. `confirmed` runs
    /// when the server has confirmed them (possibly after a reconnect).
    public func subscribe(_ names: [String], confirmed: (() -> Void)? = nil) {
        add(names, kind: "c", confirmed: confirmed)
    }

    public func unsubscribe(_ names: [String]) {
        remove(names, kind: "c")
    }

    /// Pattern subscription (PSUBSCRIBE), e.g. "collab:*".
    public func psubscribe(_ names: [String], confirmed: (() -> Void)? = nil) {
        add(names, kind: "p", confirmed: confirmed)
    }

    public func punsubscribe(_ names: [String]) {
        remove(names, kind: "p")
    }

    func add(_ names: [String], kind: String, confirmed: (() -> Void)?) {
        let isChannel = kind == "c"
        var fresh: [String] = []
        for n in names {
            let inserted = isChannel ? channels.insert(n).inserted : patterns.insert(n).inserted
            if inserted { fresh.append(n) }
        }
        let active = isChannel ? activeChannels : activePatterns
        let missing = Set(names.filter { !active.contains($0) }.map { "\(kind):\($0)" })
        if let confirmed {
            if missing.isEmpty { confirmed() } else { waiters.append((missing, confirmed)) }
        }
        // During a resubscription the fresh names are not part of the batch: send them anyway.
        if !fresh.isEmpty {
            connection.sendSubscription([Array((isChannel ? "SUBSCRIBE" : "PSUBSCRIBE").utf8)] + fresh.map { Array($0.utf8) })
        }
    }

    func remove(_ names: [String], kind: String) {
        let isChannel = kind == "c"
        var gone: [String] = []
        for n in names {
            let removed = isChannel ? channels.remove(n) != nil : patterns.remove(n) != nil
            if removed { gone.append(n) }
        }
        let active = isChannel ? activeChannels : activePatterns
        let toSend = gone.filter { active.contains($0) }
        if !toSend.isEmpty {
            connection.sendSubscription([Array((isChannel ? "UNSUBSCRIBE" : "PUNSUBSCRIBE").utf8)] + toSend.map { Array($0.utf8) })
        }
    }

    func resubscribeAll() {
        var keys = Set(channels.map { "c:\($0)" })
        keys.formUnion(patterns.map { "p:\($0)" })
        resubscribing = keys
        if !channels.isEmpty {
            connection.sendSubscription([Array("SUBSCRIBE".utf8)] + channels.sorted().map { Array($0.utf8) })
        }
        if !patterns.isEmpty {
            connection.sendSubscription([Array("PSUBSCRIBE".utf8)] + patterns.sorted().map { Array($0.utf8) })
        }
        if keys.isEmpty { finishResubscribe() }
    }

    func finishResubscribe() {
        resubscribing = nil
        onResubscribed?()
    }

    func confirm(_ key: String) {
        if resubscribing?.remove(key) != nil, resubscribing?.isEmpty == true { finishResubscribe() }
        var i = 0
        while i < waiters.count {
            waiters[i].keys.remove(key)
            if waiters[i].keys.isEmpty {
                let w = waiters.remove(at: i)
                w.done()
            } else {
                i += 1
            }
        }
    }

    func handle(_ r: UnsafePointer<redisReply>) {
        let reply = r.pointee
        guard reply.type == REDIS_REPLY_ARRAY, reply.elements >= 3, let items = reply.element else { return }
        func bytes(_ i: Int) -> [UInt8] {
            guard let e = items[i], let s = e.pointee.str else { return [] }
            return Array(UnsafeRawBufferPointer(start: s, count: e.pointee.len))
        }
        func text(_ i: Int) -> String { String(decoding: bytes(i), as: UTF8.self) }
        switch text(0) {
        case "message":
            onMessage?(text(1), bytes(2))
        case "pmessage" where reply.elements >= 4:
            onPatternMessage?(text(1), text(2), bytes(3))
        case "subscribe":
            let name = text(1)
            // A channel removed from the set while its SUBSCRIBE was in flight: drop it again.
            activeChannels.insert(name)
            if !channels.contains(name) {
                connection.sendSubscription([Array("UNSUBSCRIBE".utf8), Array(name.utf8)])
            }
            confirm("c:\(name)")
        case "psubscribe":
            let name = text(1)
            activePatterns.insert(name)
            if !patterns.contains(name) {
                connection.sendSubscription([Array("PUNSUBSCRIBE".utf8), Array(name.utf8)])
            }
            confirm("p:\(name)")
        case "unsubscribe":
            let name = text(1)
            activeChannels.remove(name)
            // Added back while the UNSUBSCRIBE was in flight.
            if channels.contains(name) {
                connection.sendSubscription([Array("SUBSCRIBE".utf8), Array(name.utf8)])
            }
        case "punsubscribe":
            let name = text(1)
            activePatterns.remove(name)
            if patterns.contains(name) {
                connection.sendSubscription([Array("PSUBSCRIBE".utf8), Array(name.utf8)])
            }
        default:
            break
        }
    }
}
