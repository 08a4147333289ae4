// The WebSocket host of the rooms: libwebsockets I/O around the sans-I/O `Room`s and the
// `JournalStore`. Everything runs on the one loop thread (DESIGN §4), so nothing is locked.
//
// The durability rule: a committed op is appended to its room's journal at once, but its ack
// and its broadcast wait in `outbox` until the end of the loop iteration, when one `sync()`
// (an fdatasync per written room) makes every op of the iteration durable; then the outbox is
// sent in order. Messages that need no durability go straight out while the outbox is empty
// and queue behind it otherwise, so each connection sees messages in the order the rooms
// produced them.
import CollabAuth
import CollabOT
import CollabProtocol
import CollabTransport

#if canImport(Glibc)
import Glibc
#endif

/// Counters for tests, benchmarks and /healthz.
public struct ServerStats: Sendable, Equatable {
    /// Ops committed (journal records written).
    public var commits = 0
    /// Journal syncs (each covers every room written since the previous one).
    public var syncs = 0
    /// Time spent in journal syncs, in nanoseconds: total and the longest one.
    public var syncNanos: UInt64 = 0
    public var maxSyncNanos: UInt64 = 0
    /// Messages received from clients, and message deliveries queued (one per recipient).
    public var messagesIn = 0
    public var deliveries = 0
    public var snapshots = 0
}

/// Why a host could not start.
public struct ServerStartError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case dataDirectory, listen, tls }
    public var kind: Kind
    public var message: String
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }
}

/// A thread-safe way to reach a running host (e.g. from a test or a supervisor thread).
public final class ServerControl: Sendable {
    enum Request: Sendable {
        case shutdown
    }

    let sender: MailboxSender<Request>

    init(sender: MailboxSender<Request>) { self.sender = sender }

    /// Asks the host to shut down gracefully (as on SIGTERM). Returns false when it has already
    /// finished.
    @discardableResult
    public func shutdown() -> Bool { sender.send(.shutdown) }
}

public final class ServerHost {
    public let configuration: ServerConfiguration
    public let log: ServerLog
    public let loop: EventLoop
    public let server: WebSocketServer
    /// The rooms' journals; nil with --redis.
    public let store: JournalStore?
    public let control: ServerControl
    public private(set) var stats = ServerStats()
    /// True from the start of a graceful shutdown.
    public private(set) var isShuttingDown = false

    /// The bound TCP port (the actual one when the configuration asked for 0).
    public var port: Int { server.port }
    /// `ws://HOST:PORT` (`wss://` with TLS).
    public var url: String { ServerConfiguration.url(host: configuration.host, port: port, secure: configuration.tls != nil) }

    final class Session {
        let id: ConnectionID
        let connection: WebSocketConnection
        let room: String
        let peer: String
        var user: String?
        var client: String?
        /// With --auth-secret-file: how far it is on its way in, and what its token grants.
        var admission = Admission.admitted
        var grant: AccessGrant?
        var openedAtNanos: UInt64 = 0
        var tokenExpiredSent = false
        /// --max-rate: made on the connection's first message (see ServerHost+Limits.swift).
        var limiter: ConnectionRateLimiter?

        init(id: ConnectionID, connection: WebSocketConnection, room: String, peer: String) {
            self.id = id
            self.connection = connection
            self.room = room
            self.peer = peer
        }
    }

    final class RoomSlot {
        var room: Room
        var connections: Set<ConnectionID> = []
        var idleTimer: LoopTimer?
        /// After a failed periodic snapshot, the revision at which to try again.
        var snapshotRetryRevision = 0
        /// --redis: the room's state while it is read from Redis, its commit path, and what
        /// waits for a load or a catch-up.
        var redis = RedisRoomState()
        /// The timer for `Room.tick` (held presence, typing expiry) and when it fires.
        var presenceTimer: LoopTimer?
        var presenceTickAt: Int?
        init(room: Room) { self.room = room }
        var name: String { room.name }
    }

    enum Pending {
        case deliver(Delivery, room: String, durable: Bool)
        case close(ConnectionID, code: UInt16, reason: String)
    }

    var sessions: [ConnectionID: Session] = [:]
    /// What /metrics reports.
    let metrics = ServerMetrics()
    /// Per connection: the seq of its latest op and when it arrived (monotonic ns), for the
    /// commit latency histogram (the protocol has one op in flight per client).
    var opArrivals: [ConnectionID: (seq: Int, at: UInt64)] = [:]
    var rooms: [String: RoomSlot] = [:]
    var outbox: [Pending] = []
    var flushTimer: LoopTimer?
    /// Rooms that committed ops since the last flush (candidates for a periodic snapshot).
    var roomsWritten: Set<String> = []
    var shutdownTimer: LoopTimer?
    var controlMailbox: Mailbox<ServerControl.Request>?
    /// Verdicts on tokens, from the tasks that check them (see ServerHost+Auth.swift).
    var authMailbox: Mailbox<AuthVerdict>?
    var authSweepTimer: LoopTimer?
    /// The data directory, open and flock'ed while this host owns it (-1 once released).
    var dataLock: Int32 = -1
    /// --redis: the connections to Redis and the channel → room map (nil without --redis).
    var redis: RedisBackend?
    /// --max-conns-per-ip: open connections by peer address.
    lazy var perAddress = ConnectionCounter(limit: configuration.maxConnectionsPerAddress)

    /// Opens the data directory and starts listening (the loop runs in `run()`). Call `run()`
    /// on the thread that created the host.
    public init(configuration: ServerConfiguration, log: ServerLog) throws {
        self.configuration = configuration
        self.log = log
        var loopOptions = EventLoop.Options()
        loopOptions.logLevel = log.enabled(.debug) ? .standard : .errors
        // The JSON reader validates UTF-8 and answers with a bad-message error instead.
        loopOptions.validateUTF8 = false
        if configuration.redis != nil {
            // Redis holds the rooms; instances are interchangeable and keep nothing on disk.
            store = nil
        } else {
            guard let directory = configuration.dataDirectory else {
                throw ServerStartError(.dataDirectory, "no data directory (--data DIR) and no --redis URL: rooms need one of them")
            }
            do {
                store = try JournalStore(directory: directory)
            } catch {
                throw ServerStartError(.dataDirectory, "data directory \(directory): \(error)")
            }
            // One server per data directory: two would interleave revisions in the same journals.
            // flock on the directory itself (no lock file that could clash with a room's name);
            // the kernel drops it when the process dies, so a crash leaves nothing stale.
            dataLock = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dataLock < 0 || flock(dataLock, LOCK_EX | LOCK_NB) != 0 {
                let why = errno == EWOULDBLOCK ? "is in use by another collab-serve" : String(cString: strerror(errno))
                if dataLock >= 0 { Glibc.close(dataLock) }
                throw ServerStartError(.dataDirectory, "data directory \(directory) \(why)")
            }
        }
        do {
            loop = try EventLoop(options: loopOptions)
        } catch {
            Glibc.close(dataLock)
            throw ServerStartError(.listen, "\(error)")
        }
        var options = WebSocketServer.Options(host: configuration.host, port: configuration.port)
        options.limits.maxMessageSize = configuration.maxMessageBytes
        options.limits.maxQueuedBytes = configuration.maxQueueBytes
        options.limits.heartbeat = Heartbeat(idle: configuration.pingInterval, timeout: configuration.pingTimeout)
        options.serverName = "collab-serve"
        options.tls = configuration.tls
        do {
            server = try loop.listen(options)
        } catch let error as TLSSetupError {
            loop.shutdown()
            Glibc.close(dataLock)
            throw ServerStartError(.tls, error.message)
        } catch {
            loop.shutdown()
            Glibc.close(dataLock)
            throw ServerStartError(.listen, "cannot listen on \(ServerConfiguration.url(host: configuration.host, port: configuration.port, secure: configuration.tls != nil)) (address in use, or not an address of this host?)")
        }
        let ref = HostRef()
        let mailbox = loop.makeMailbox { (request: ServerControl.Request) in
            switch request {
            case .shutdown: ref.host?.shutdown()
            }
        }
        control = ServerControl(sender: mailbox.sender)
        controlMailbox = mailbox
        if configuration.tokens != nil {
            authMailbox = loop.makeMailbox { (verdict: AuthVerdict) in ref.host?.authenticated(verdict) }
        }
        ref.host = self
        installHandlers()
        if let url = configuration.redis {
            startRedis(url)
        }
        if configuration.handleSignals {
            loop.handleSignals { [weak self] signo in
                self?.log.info("caught \(signo == SIGINT ? "SIGINT" : signo == SIGTERM ? "SIGTERM" : "signal \(signo)")")
                self?.shutdown()
            }
        }
    }

    /// Serves until a shutdown completes (or `loop.stop()`), then makes everything durable,
    /// snapshots the rooms still loaded and closes the journals.
    public func run() {
        if store != nil, let directory = configuration.dataDirectory { log.always("data directory \(directory)") }
        log.always("listening on \(url)")
        if let r = configuration.redis { log.always("rooms in Redis at \(r)") }
        loop.run()
        stopRedis()
        finishStorage()
        releaseDataDirectory()
        log.info("stopped")
    }

    deinit {
        releaseDataDirectory()
    }

    func releaseDataDirectory() {
        if dataLock >= 0 {
            Glibc.close(dataLock)
            dataLock = -1
        }
    }

    // MARK: Handlers

    func installHandlers() {
        server.onAccept = { [unowned self] head in
            if self.isShuttingDown { return .reject(status: 503, message: "server shutting down") }
            if let refusal = self.refuseByAddress(head) { return refusal }
            if !self.configuration.allowedOrigins.permits(origin: head.header("origin")) {
                self.log.info("refused upgrade from \(head.peerAddress): origin \(quoted(head.header("origin") ?? "")) is not allowed (--allowed-origin)")
                return .reject(status: 403, message: "origin not allowed")
            }
            return .accept
        }
        server.onHTTP = { [unowned self] head in self.http(head) }
        var h = WebSocketHandlers()
        h.onOpen = { [unowned self] c in
            self.countOpened(c)
            self.opened(c)
        }
        h.onText = { [unowned self] c, bytes in
            if self.admit(c, bytes) { self.received(c, bytes) }
        }
        h.onBinary = { [unowned self] c, _ in
            let id = ConnectionID(truncatingIfNeeded: c.id)
            guard let s = self.sessions[id], self.admit(c, nil) else { return }
            self.stats.messagesIn += 1
            self.emit(Delivery(to: [id], .error(code: .badMessage, "binary frames are not supported: send each message as one JSON text frame", room: s.room)),
                      room: s.room, durable: false)
        }
        h.onMessageTooBig = { [unowned self] c, size in
            let id = ConnectionID(truncatingIfNeeded: c.id)
            let room = self.sessions[id]?.room
            self.log.warn("conn \(id)\(room.map { " room \($0)" } ?? ""): message of \(size)+ bytes exceeds --max-message \(self.configuration.maxMessageBytes); closing")
            // The transport closes with 1009 after this, behind what is queued now.
            c.send(self.encode(.error(code: .tooLarge, "message larger than \(self.configuration.maxMessageBytes) bytes", room: room, fatal: true)))
        }
        h.onClose = { [unowned self] c, code, reason in
            self.countClosed(c)
            self.closed(c, code: code, reason: reason)
        }
        server.handlers = h
    }

    func opened(_ c: WebSocketConnection) {
        let id = ConnectionID(truncatingIfNeeded: c.id)
        let peer = c.request.peerAddress
        if isShuttingDown {
            c.close(code: CloseCode.goingAway, reason: "server shutting down")
            return
        }
        let name: String
        switch RoomName.validate(path: c.request.path) {
        case .failure(let e):
            log.info("conn \(id) from \(peer): refused, bad room name \(quoted(c.request.path)): \(e)")
            c.send(encode(.error(code: .badRoom, "bad room name \(quoted(c.request.path)): \(e.message)", fatal: true)))
            c.close(code: CloseCode.policyViolation, reason: "bad room name")
            return
        case .success(let n):
            name = n
        }
        let s = Session(id: id, connection: c, room: name, peer: peer)
        sessions[id] = s
        if configuration.tokens != nil {
            startAuthentication(s)
            return
        }
        admit(s)
    }

    /// Puts a session into its room (loading the room on its first member). False when the
    /// room cannot be loaded: the connection is refused.
    @discardableResult
    func admit(_ s: Session) -> Bool {
        let id = s.id, name = s.room, c = s.connection
        guard let slot = loadRoom(name) else {
            sessions[id] = nil
            c.send(encode(.error(code: .unavailable, "room \(name) cannot be loaded; see the server log", room: name, fatal: true)))
            c.close(code: CloseCode.internalError, reason: "room unavailable")
            return false
        }
        slot.idleTimer?.cancel()
        slot.idleTimer = nil
        slot.connections.insert(id)
        log.info("open conn \(id) room \(name) peer \(s.peer)")
        return true
    }

    func received(_ c: WebSocketConnection, _ bytes: [UInt8]) {
        let id = ConnectionID(truncatingIfNeeded: c.id)
        guard let s = sessions[id] else { return }
        guard case .admitted = s.admission else {
            stats.messagesIn += 1
            receivedBeforeAdmission(s, bytes)
            return
        }
        guard let slot = rooms[s.room] else { return }
        stats.messagesIn += 1
        let decoded: Result<Message, MessageError> = bytes.withUnsafeBufferPointer { b in
            do throws(MessageError) { return .success(try Message.decode(trimNewline(b))) } catch { return .failure(error) }
        }
        var message: Message
        switch decoded {
        case .success(let m):
            message = m
            metrics.received(m.type, bytes: bytes.count)
            if m.type == .op, let seq = m.seq { opArrivals[id] = (seq, Self.monotonicNanos()) }
        case .failure(let e):
            metrics.badMessages.increment()
            log.debug("conn \(id) room \(s.room): bad message: \(e)")
            emit(Delivery(to: [id], .error(code: .badMessage, "\(e)", room: s.room)), room: s.room, durable: false)
            return
        }
        if log.enabled(.debug) {
            log.debug("conn \(id) room \(s.room): \(message.type.rawValue)\(message.seq.map { " seq \($0)" } ?? "")\(message.base.map { " base \($0)" } ?? "")")
        }
        if let why = configuration.messageBudget.violation(message, size: bytes.count) {
            metrics.badMessages.increment()
            log.debug("conn \(id) room \(s.room): refused: \(why)")
            // A hello that cannot be taken leaves the connection with nothing to do: fatal.
            let hello = message.type == .hello && slot.room.members[id] == nil
            emit(Delivery(to: [id], .error(code: .tooLarge, why, seq: message.seq, room: s.room, fatal: hello)), room: s.room, durable: false)
            if hello { emitClose(id, code: CloseCode.policyViolation, reason: "hello too large") }
            return
        }
        if s.grant != nil, !authorize(&message, from: s) { return }
        if redis != nil {
            redisReceived(message, from: s, slot: slot)
            return
        }
        let wasMember = slot.room.members[id] != nil
        let fx = slot.room.receive(message, from: id, now: Self.nowMillis())
        if !wasMember, let member = slot.room.members[id] {
            s.user = member.user
            s.client = member.client
            log.debug("conn \(id) room \(s.room): hello from \(member.user) (client \(member.client))\(message.since.map { ", since \($0)" } ?? "")")
        }
        apply(fx, to: slot)
    }

    func closed(_ c: WebSocketConnection, code: UInt16, reason: String) {
        let id = ConnectionID(truncatingIfNeeded: c.id)
        guard let s = sessions.removeValue(forKey: id) else { return }
        opArrivals[id] = nil
        if reason == "heartbeat timeout" { metrics.heartbeatTimeouts.increment() }
        let who = s.user.map { " user \($0)" } ?? ""
        log.info("close conn \(id) room \(s.room)\(who) peer \(s.peer): \(code)\(reason.isEmpty ? "" : " \(reason)")")
        guard let slot = rooms[s.room], slot.connections.remove(id) != nil else { return }
        apply(slot.room.close(id), to: slot)
        if slot.connections.isEmpty { scheduleIdleUnload(slot) }
    }

    // MARK: Effects

    func apply(_ fx: RoomEffects, to slot: RoomSlot) {
        let name = slot.name
        var failure: String?
        if !fx.records.isEmpty {
            do {
                guard let store else { throw RoomError("no journal for committed ops (--redis rooms commit through Redis)") }
                try store.append(room: name, records: fx.records)
                stats.commits += fx.records.count
                metrics.opsCommitted.increment(by: Int64(fx.records.count))
                roomsWritten.insert(name)
            } catch {
                failure = "\(error)"
            }
        }
        for d in fx.sends { emit(d, room: name, durable: false) }
        for d in fx.durableSends { emit(d, room: name, durable: true) }
        for c in fx.closes { emitClose(c.0, code: c.code, reason: c.reason) }
        if !fx.relays.isEmpty && redis != nil { publish(fx.relays, from: slot) }
        if let failure { failRoom(name, reason: failure) }
        schedulePresenceTick(slot)
    }

    /// Arms the room's timer for its next presence deadline, if any comes earlier than the one
    /// armed. Firing early is harmless: `tick` does what is due and the timer is armed again.
    func schedulePresenceTick(_ slot: RoomSlot) {
        guard let at = slot.room.nextWakeup else { return }
        if let armed = slot.presenceTickAt, armed <= at { return }
        slot.presenceTimer?.cancel()
        slot.presenceTickAt = at
        slot.presenceTimer = loop.schedule(after: .milliseconds(max(0, at - Self.nowMillis()))) { [weak self, weak slot] in
            guard let self, let slot, self.rooms[slot.name] === slot else { return }
            slot.presenceTimer = nil
            slot.presenceTickAt = nil
            self.apply(slot.room.tick(now: Self.nowMillis()), to: slot)
        }
    }

    /// --redis: an op this instance committed to Redis (no journal record is written).
    func countRedisCommit() {
        stats.commits += 1
        metrics.opsCommitted.increment()
    }
    /// --redis: a snapshot this instance wrote to Redis.
    func countRedisSnapshot() {
        stats.snapshots += 1
        metrics.snapshots.increment()
    }

    func emit(_ d: Delivery, room: String, durable: Bool) {
        if !durable && outbox.isEmpty {
            deliver(d)
            return
        }
        outbox.append(.deliver(d, room: room, durable: durable))
        scheduleFlush()
    }

    func emitClose(_ id: ConnectionID, code: UInt16, reason: String) {
        if outbox.isEmpty {
            sessions[id]?.connection.close(code: code, reason: reason)
            return
        }
        outbox.append(.close(id, code: code, reason: reason))
        scheduleFlush()
    }

    func scheduleFlush() {
        guard flushTimer == nil else { return }
        flushTimer = loop.schedule(after: .zero) { [weak self] in self?.flush() }
    }

    /// Makes the journal writes of this iteration durable, then sends what waited for them.
    func flush() {
        flushTimer?.cancel()
        flushTimer = nil
        if let store, !store.unsyncedRooms.isEmpty {
            let start = Self.monotonicNanos()
            var failures: [(room: String, message: String)] = []
            do {
                try store.sync()
            } catch let e as JournalSyncError {
                failures = e.failures
            } catch {
                failures = store.unsyncedRooms.map { ($0, "\(error)") }
            }
            let took = Self.monotonicNanos() &- start
            stats.syncs += 1
            metrics.journalSync.record(.nanoseconds(Int64(took)))
            stats.syncNanos &+= took
            stats.maxSyncNanos = max(stats.maxSyncNanos, took)
            for f in failures { failRoom(f.room, reason: f.message) }
        }
        while !outbox.isEmpty {
            let items = outbox
            outbox = []
            for item in items {
                switch item {
                case .deliver(let d, _, _): deliver(d)
                case .close(let id, let code, let reason): sessions[id]?.connection.close(code: code, reason: reason)
                }
            }
        }
        if let store, configuration.snapshotEvery > 0 && !roomsWritten.isEmpty {
            for name in roomsWritten.sorted() {
                guard let slot = rooms[name] else { continue }
                let base = store.snapshotRevision(of: name) ?? 0
                let due = max(base + configuration.snapshotEvery, slot.snapshotRetryRevision)
                if slot.room.revision >= due && !snapshot(slot) {
                    slot.snapshotRetryRevision = slot.room.revision + configuration.snapshotEvery
                }
            }
        }
        roomsWritten.removeAll()
    }

    /// A room whose journal could not be written or synced: its memory may hold ops the disk does
    /// not, so nobody may see them. Senders waiting for an ack get `unavailable` instead, every
    /// member is disconnected (1011), and the room is dropped from memory; the next join reloads
    /// it from disk and clients resubmit their unacknowledged ops (dedupe makes that safe).
    func failRoom(_ name: String, reason: String) {
        log.error("room \(name): journal failure: \(reason); disconnecting its clients and unloading it")
        var kept: [Pending] = []
        kept.reserveCapacity(outbox.count)
        for item in outbox {
            guard case .deliver(let d, let room, let durable) = item, room == name, durable else {
                kept.append(item)
                continue
            }
            if d.message.type == .ack {
                let e = Message.error(code: .unavailable,
                                      "the server could not store your edit; reconnect and send it again",
                                      seq: d.message.seq, room: name, fatal: true)
                kept.append(.deliver(Delivery(to: d.recipients, e), room: name, durable: false))
            }
        }
        outbox = kept
        guard let slot = rooms.removeValue(forKey: name) else { return }
        slot.idleTimer?.cancel()
        for id in slot.connections.sorted() {
            emitClose(id, code: CloseCode.internalError, reason: "storage failure")
        }
        roomsWritten.remove(name)
        store?.close(room: name)
    }

    func encode(_ m: Message) -> OutgoingMessage {
        var w = JSONWriter()
        m.write(to: &w)
        return OutgoingMessage(text: w.bytes)
    }

    /// Sends one delivery: encoded once, queued on every recipient.
    func deliver(_ d: Delivery) {
        let out = encode(d.message)
        var sent = 0
        for r in d.recipients {
            guard let s = sessions[r] else { continue }
            sent += 1
            if s.connection.send(out) == .queueFull { slowConsumer(s) }
        }
        stats.deliveries += sent
        metrics.delivered(d.message.type, recipients: sent, bytes: out.count)
        if d.message.type == .ack, d.recipients.count == 1, let seq = d.message.seq,
           let arrival = opArrivals[d.recipients[0]], arrival.seq == seq {
            opArrivals[d.recipients[0]] = nil
            metrics.commitLatency.record(.nanoseconds(Int64(Self.monotonicNanos() &- arrival.at)))
        }
    }

    func slowConsumer(_ s: Session) {
        metrics.slowConsumerCloses.increment()
        log.warn("conn \(s.id) room \(s.room) peer \(s.peer): more than \(configuration.maxQueueBytes) bytes queued; closing (slow consumer)")
        s.connection.close(code: CloseCode.policyViolation,
                           reason: "slow consumer: more than \(configuration.maxQueueBytes) bytes queued; reconnect with since",
                           discardQueued: true)
        // The close handshake cannot finish while the peer does not read (the transport drops
        // it after its close timeout), so the room lets it go now: the others see it leave at
        // once. On the next iteration, not in the middle of a delivery.
        let id = s.id
        loop.schedule(after: .zero) { [weak self] in
            guard let self, let s = self.sessions[id], let slot = self.rooms[s.room],
                  slot.connections.remove(id) != nil else { return }
            self.apply(slot.room.close(id), to: slot)
            if slot.connections.isEmpty { self.scheduleIdleUnload(slot) }
        }
    }

    // MARK: Rooms

    func loadRoom(_ name: String) -> RoomSlot? {
        if let slot = rooms[name] { return slot }
        guard let store else { return loadRedisRoom(name) }
        let start = Self.monotonicNanos()
        do {
            var room = try store.load(room: name, historyLimit: configuration.historyLimit) { [log] warning in
                log.warn(warning)
            }
            room.presencePolicy = configuration.presence
            let ms = Double(Self.monotonicNanos() &- start) / 1e6
            log.info("room \(name) loaded at rev \(room.revision) (\(Self.format(ms)) ms)")
            let slot = RoomSlot(room: room)
            rooms[name] = slot
            return slot
        } catch {
            log.error("room \(name): cannot load: \(error)")
            store.close(room: name)
            return nil
        }
    }

    func needsSnapshot(_ slot: RoomSlot) -> Bool {
        guard let store else { return false }  // --redis: snapshots are written as ops commit
        return slot.room.revision > (store.snapshotRevision(of: slot.name) ?? 0)
    }

    @discardableResult
    func snapshot(_ slot: RoomSlot) -> Bool {
        guard let store else { return false }
        let start = Self.monotonicNanos()
        do {
            try store.writeSnapshot(slot.room)
            stats.snapshots += 1
            metrics.snapshots.increment()
            let ms = Double(Self.monotonicNanos() &- start) / 1e6
            log.info("room \(slot.name): snapshot at rev \(slot.room.revision) (\(Self.format(ms)) ms)")
            return true
        } catch {
            log.error("room \(slot.name): snapshot failed (the journal still has everything): \(error)")
            return false
        }
    }

    func scheduleIdleUnload(_ slot: RoomSlot) {
        guard !isShuttingDown else { return }
        slot.idleTimer?.cancel()
        // --redis: nothing to save and reloading is one snapshot read, so a room that empties is
        // unloaded (and its channel unsubscribed) at once — on the next loop iteration, not
        // inside the close callback. Journals are worth keeping open for --idle-unload.
        let delay = redis != nil ? Duration.zero : configuration.idleUnload
        slot.idleTimer = loop.schedule(after: delay) { [weak self, weak slot] in
            guard let self, let slot else { return }
            self.unloadIfIdle(slot)
        }
    }

    func unloadIfIdle(_ slot: RoomSlot) {
        slot.idleTimer = nil
        guard slot.connections.isEmpty, rooms[slot.name] === slot else { return }
        if !outbox.isEmpty || store?.unsyncedRooms.contains(slot.name) == true { flush() }
        guard rooms[slot.name] === slot else { return }  // the flush may have failed it
        if needsSnapshot(slot) { snapshot(slot) }
        store?.close(room: slot.name)
        rooms[slot.name] = nil
        if redis != nil { unloadRedisRoom(slot) }
        log.info("room \(slot.name) unloaded at rev \(slot.room.revision)")
    }

    // MARK: Shutdown

    /// Graceful shutdown: refuse new connections, send what is pending (after the journal sync),
    /// close every client with 1001, snapshot the loaded rooms, wait (at most
    /// `shutdownGrace`) for the close handshakes, then stop the loop. A second call stops at once.
    public func shutdown() {
        if isShuttingDown {
            log.info("stopping now")
            loop.stop()
            return
        }
        isShuttingDown = true
        log.info("shutting down: \(sessions.count) connection(s), \(rooms.count) room(s)")
        flush()
        for s in sessions.values.sorted(by: { $0.id < $1.id }) {
            s.connection.close(code: CloseCode.goingAway, reason: "server shutting down")
        }
        for slot in rooms.values.sorted(by: { $0.name < $1.name }) {
            slot.idleTimer?.cancel()
            slot.idleTimer = nil
            if needsSnapshot(slot) { snapshot(slot) }
        }
        let deadline = Self.monotonicNanos() &+ UInt64(max(0, Self.millis(configuration.shutdownGrace))) &* 1_000_000
        shutdownTimer = loop.schedule(every: .milliseconds(5)) { [weak self] in
            guard let self else { return }
            if self.server.connections.isEmpty || Self.monotonicNanos() >= deadline {
                self.shutdownTimer?.cancel()
                if !self.server.connections.isEmpty {
                    self.log.warn("\(self.server.connections.count) connection(s) did not close in time; dropping them")
                }
                self.loop.stop()
            }
        }
    }

    /// After the loop: everything appended made durable, rooms snapshotted, journals closed.
    func finishStorage() {
        do { try store?.sync() } catch { log.error("final journal sync failed: \(error)") }
        for slot in rooms.values.sorted(by: { $0.name < $1.name }) {
            slot.idleTimer?.cancel()
            if needsSnapshot(slot) { snapshot(slot) }
            store?.close(room: slot.name)
        }
        rooms = [:]
        sessions = [:]
        outbox = []
    }

    // MARK: HTTP

    func http(_ head: RequestHead) -> HTTPResponse? {
        switch head.path {
        case "/healthz":
            var w = JSONWriter()
            w.beginObject()
            w.key("status"); w.string(isShuttingDown ? "stopping" : "ok")
            w.key("rooms"); w.int(rooms.count)
            w.key("connections"); w.int(sessions.count)
            w.key("revisions")
            w.beginObject()
            for name in rooms.keys.sorted() {
                w.key(name); w.int(rooms[name]!.room.revision)
            }
            w.endObject()
            w.key("commits"); w.int(stats.commits)
            w.endObject()
            w.newline()
            return HTTPResponse(status: isShuttingDown ? 503 : 200, contentType: "application/json", body: w.bytes,
                                headers: [("Cache-Control", "no-store")])
        case "/metrics":
            let queued = sessions.values.reduce(0) { $0 + $1.connection.queuedBytes }
            return HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                body: metrics.render(connections: sessions.count, rooms: rooms.count, queuedBytes: queued),
                                headers: [("Cache-Control", "no-store")])
        case "/":
            return HTTPResponse(text: "collab-serve: connect with a WebSocket to \(url)/ROOM; health at /healthz, metrics at /metrics\n")
        default:
            return nil
        }
    }

    // MARK: Introspection (loop thread)

    /// Names and revisions of the rooms in memory.
    public var loadedRooms: [String: Int] { rooms.mapValues { $0.room.revision } }
    /// The document of a loaded room.
    public func document(of room: String) -> String? { rooms[room]?.room.sequencer.document.string }
    public var connectionCount: Int { sessions.count }

    // MARK: Helpers

    static func nowMillis() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }

    static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    static func millis(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return s &* 1000 &+ atto / 1_000_000_000_000_000
    }

    static func format(_ ms: Double) -> String {
        let tenths = Int((ms * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

final class HostRef {
    weak var host: ServerHost?
}

func quoted(_ s: String) -> String {
    var out = "\""
    for ch in s.unicodeScalars.prefix(140) {
        switch ch {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        default:
            if ch.value < 0x20 || ch.value == 0x7F { out += "\\u{\(String(ch.value, radix: 16))}" } else { out.unicodeScalars.append(ch) }
        }
    }
    return out + "\""
}
