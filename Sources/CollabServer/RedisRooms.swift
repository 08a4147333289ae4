// collab-serve --redis: the rooms' truth is Redis (DESIGN §3), so any number of instances serve
// one room with one history. A room loads from its Redis stream (not from the journal), ops are
// committed by the room's `RoomCommitter` (the Lua script), and every committed op — from this
// instance or another — is integrated into the local `Room` in revision order as it arrives on
// the room's channel or from the commit's reply, whichever comes first; gaps are read from the
// stream. Presence and events are relayed locally and published for the other instances.
// Everything runs on the loop thread; Redis is driven by callbacks, never waited for.
import CollabOT
import CollabProtocol
import CollabRedis
import CollabRedisRoom
import CollabTransport

/// The Redis side of the host: a command connection, a subscriber, the commit script.
final class RedisBackend {
    let connection: RedisConnection
    let subscriber: RedisSubscriber
    let script = RedisScript(source: RoomLog.commitSource)
    let batchScript = RedisScript(source: RoomLog.commitBatchSource)
    let snapshotScript = RedisScript(source: RoomLog.snapshotSource)
    let rosterScripts = RoomRoster.Scripts()
    /// Pushes this instance's members' deadlines forward and sweeps expired members.
    var presenceHeartbeat: LoopTimer?
    /// Tags what this instance publishes, so it ignores its own echo.
    let instanceID: String
    /// Room channel → room name, for the rooms loaded here.
    var channelRooms: [String: String] = [:]
    let pageSize = 1000

    init(loop: EventLoop, url: RedisURL) {
        connection = RedisConnection(loop: loop, url: url)
        subscriber = RedisSubscriber(loop: loop, url: url)
        instanceID = String(UInt64.random(in: 1 ... UInt64.max), radix: 36)
    }
}

/// Per-room state in --redis mode.
struct RedisRoomState {
    /// True until the stream has been read once.
    var loading = false
    /// A stream read (load or catch-up) is in flight.
    var catchingUp = false
    /// Client messages that arrived while loading, in order.
    var backlog: [(ConnectionID, Message)] = []
    /// Channel ops that arrived while a read was in flight or after a gap.
    var channelBacklog: [Message] = []
    /// Join, leave and presence of other instances' members that arrived while loading.
    var presenceBacklog: [Message] = []
    /// Acks of duplicate resubmissions whose revision is not integrated yet.
    var pendingAcks: [(rev: Int, connection: ConnectionID, seq: Int)] = []
    var committer: RoomCommitter?
    var retryTimer: LoopTimer?
    /// Loads restarted because a newer snapshot trimmed the stream while we read it.
    var loadAttempts = 0
    /// Stream reads that failed in a row (Redis away): the retry backs off, one warning.
    var catchUpFailures = 0
    /// This instance committed a revision that calls for a snapshot: write one once integrated.
    var snapshotDue: Int?
    var snapshotWriting = false
}

extension ServerHost {
    func startRedis(_ url: RedisURL) {
        let backend = RedisBackend(loop: loop, url: url)
        redis = backend
        backend.subscriber.onMessage = { [unowned self] channel, bytes in self.channelMessage(channel, bytes) }
        backend.subscriber.onResubscribed = { [unowned self] in
            self.log.info("redis subscriber: subscribed to the channels of \(self.rooms.count) room(s)")
            // Messages published while we were not subscribed were missed: read the streams.
            for slot in self.rooms.values.sorted(by: { $0.name < $1.name }) where !slot.redis.loading {
                self.catchUp(slot)
                self.syncRoster(slot)
            }
        }
        backend.connection.onDisconnect = { [unowned self] e in self.log.warn("redis: disconnected: \(e)") }
        backend.subscriber.onDisconnect = { [unowned self] e in self.log.warn("redis subscriber: disconnected: \(e)") }
        // A refused AUTH or an unreachable host would otherwise retry in silence: say so on the
        // first failure and then at each doubling, so a wrong password shows at once without
        // flooding the log while Redis is down.
        backend.connection.onConnectFailed = { [unowned self] e, attempt in
            if attempt & (attempt - 1) == 0 { self.log.warn("redis: cannot connect to \(url) (attempt \(attempt)): \(e); retrying") }
        }
        backend.connection.onConnect = { [unowned self] in
            self.log.info("redis: connected to \(url)")
            if backend.connection.connectionCount > 1 { self.metrics.redisReconnects.increment() }
        }
        backend.connection.start()
        backend.subscriber.start()
        startPresenceHeartbeat()
    }

    func stopRedis() {
        guard let r = redis else { return }
        r.presenceHeartbeat?.cancel()
        for slot in rooms.values { slot.redis.retryTimer?.cancel() }
        r.subscriber.close()
        r.connection.close()
    }

    // MARK: Loading and unloading

    func loadRedisRoom(_ name: String) -> RoomSlot? {
        guard let r = redis else { return nil }
        let slot = RoomSlot(room: Room(name: name, historyLimit: configuration.historyLimit, presencePolicy: configuration.presence))
        slot.redis.loading = true
        slot.redis.committer = RoomCommitter(connection: r.connection, room: name, script: r.script, batchScript: r.batchScript,
                                             pageSize: r.pageSize)
        rooms[name] = slot
        let keys = RoomKeys(room: name)
        r.channelRooms[keys.channel] = name
        log.info("room \(name): loading from Redis")
        // Subscribe first, then read: whatever is committed after the read is on the channel.
        r.subscriber.subscribe([keys.channel]) { [weak self, weak slot] in
            guard let self, let slot, self.rooms[name] === slot else { return }
            self.loadSnapshot(slot)
        }
        return slot
    }

    /// Starts a load: the room's snapshot if it has one, then the ops before it (history for
    /// catch-ups, not applied) and after it (applied).
    func loadSnapshot(_ slot: RoomSlot) {
        guard let r = redis, rooms[slot.name] === slot else { return }
        slot.redis.catchingUp = true
        slot.redis.loadAttempts += 1
        RoomLog.readSnapshot(on: r.connection, keys: RoomKeys(room: slot.name)) { [weak self, weak slot] result in
            guard let self, let slot, self.rooms[slot.name] === slot else { return }
            switch result {
            case .failure(let e):
                self.failRedisLoad(slot, "reading the snapshot: \(e)")
            case .success(nil):
                slot.room = Room(name: slot.name, historyLimit: self.configuration.historyLimit, presencePolicy: self.configuration.presence)
                slot.redis.catchingUp = false
                self.catchUp(slot)
            case .success(let (rev, bytes)?):
                guard let snap = Self.decode(bytes), snap.type == .snapshot, snap.rev == rev, let doc = snap.doc else {
                    return self.failRedisLoad(slot, "the snapshot in \(RoomKeys(room: slot.name).snapshot) is unreadable")
                }
                slot.room = Room(name: slot.name, document: TextRope(doc), revision: rev, historyLimit: self.configuration.historyLimit,
                                 presencePolicy: self.configuration.presence)
                self.loadHistory(slot, snapshot: rev, after: max(0, rev - self.configuration.historyLimit), seed: [])
            }
        }
    }

    /// Reads the stream from `after` in pages: entries up to the snapshot's revision become the
    /// room's history, the ones after it are integrated, then `catchUp` finishes the load.
    func loadHistory(_ slot: RoomSlot, snapshot: Int, after: Int, seed: [Message]) {
        guard let r = redis else { return }
        RoomLog.read(on: r.connection, keys: RoomKeys(room: slot.name), after: after, count: r.pageSize) { [weak self, weak slot] result in
            guard let self, let slot, self.rooms[slot.name] === slot else { return }
            let entries: [(rev: Int, message: [UInt8])]
            switch result {
            case .failure(let e): return self.failRedisLoad(slot, "reading the stream: \(e)")
            case .success(let read): entries = read
            }
            var seed = seed
            var index = 0
            while index < entries.count, entries[index].rev <= snapshot {
                guard let m = Self.decode(entries[index].message), m.type == .op, m.rev == entries[index].rev else {
                    return self.failRedisLoad(slot, "committed op \(entries[index].rev) in the stream is unreadable")
                }
                // Only a run ending at the snapshot is usable; a hole (trimmed meanwhile) restarts it.
                if let last = seed.last?.rev, last + 1 != m.rev { seed = [] }
                seed.append(m)
                index += 1
            }
            if index == entries.count && entries.count == r.pageSize {
                return self.loadHistory(slot, snapshot: snapshot, after: entries[index - 1].rev, seed: seed)
            }
            if seed.last?.rev == snapshot {
                do { try slot.room.seedHistory(seed) } catch {
                    self.log.warn("room \(slot.name): history before the snapshot not usable: \(error)")
                }
            }
            slot.redis.catchingUp = false
            let rest = entries[index...]
            if let first = rest.first, first.rev != snapshot + 1 {
                // A newer snapshot trimmed the stream past ours while we read: start over.
                return self.restartLoad(slot, "the stream starts at revision \(first.rev) after a snapshot at \(snapshot)")
            }
            guard self.integrate(rest, into: slot) else { return }
            self.catchUp(slot)
        }
    }

    func restartLoad(_ slot: RoomSlot, _ why: String) {
        guard slot.redis.loadAttempts < 5 else { return failRedisLoad(slot, why) }
        log.info("room \(slot.name): \(why); loading again")
        loadSnapshot(slot)
    }

    /// A committed op that another instance, or a journal, reads back.
    static func decode(_ bytes: [UInt8]) -> Message? {
        bytes.withUnsafeBufferPointer { b in try? Message.decode(b) }
    }

    func unloadRedisRoom(_ slot: RoomSlot) {
        guard let r = redis else { return }
        slot.redis.retryTimer?.cancel()
        let channel = RoomKeys(room: slot.name).channel
        r.channelRooms[channel] = nil
        r.subscriber.unsubscribe([channel])
    }

    /// The room could not be read from Redis: its waiting clients get `unavailable`, and the
    /// next join tries again.
    func failRedisLoad(_ slot: RoomSlot, _ reason: String) {
        log.error("room \(slot.name): cannot load from Redis: \(reason)")
        guard rooms[slot.name] === slot else { return }
        rooms[slot.name] = nil
        unloadRedisRoom(slot)
        for id in slot.connections.sorted() {
            emit(Delivery(to: [id], .error(code: .unavailable, "room \(slot.name) cannot be loaded; see the server log",
                                           room: slot.name, fatal: true)), room: slot.name, durable: false)
            emitClose(id, code: CloseCode.internalError, reason: "room unavailable")
        }
    }

    // MARK: Reading the stream

    /// Reads the committed ops after the room's revision, in pages, and integrates them; then
    /// finishes a load and replays what waited.
    func catchUp(_ slot: RoomSlot) {
        guard let r = redis, !slot.redis.catchingUp, rooms[slot.name] === slot else { return }
        slot.redis.catchingUp = true
        let keys = RoomKeys(room: slot.name)
        RoomLog.read(on: r.connection, keys: keys, after: slot.room.revision, count: r.pageSize) { [weak self, weak slot] result in
            guard let self, let slot, self.rooms[slot.name] === slot else { return }
            slot.redis.catchingUp = false
            switch result {
            case .failure(let e):
                if slot.redis.loading { return self.failRedisLoad(slot, "reading the stream: \(e)") }
                if slot.redis.catchUpFailures == 0 {
                    self.log.warn("room \(slot.name): reading the Redis stream failed: \(e); retrying with backoff")
                }
                slot.redis.catchUpFailures += 1
                self.retryCatchUp(slot)
            case .success(let entries):
                if slot.redis.catchUpFailures > 0 {
                    self.log.info("room \(slot.name): reading the Redis stream again after \(slot.redis.catchUpFailures) failure(s)")
                    slot.redis.catchUpFailures = 0
                }
                let head = slot.room.revision
                if let first = entries.first, first.rev != head + 1 {
                    let why = "the stream starts at revision \(first.rev) but the room is at \(head)"
                    if slot.redis.loading { return self.restartLoad(slot, why) }
                    return self.reloadRedisRoom(slot, why)
                }
                guard self.integrate(entries[...], into: slot) else { return }
                if entries.count == r.pageSize {
                    return self.catchUp(slot)
                }
                self.finishCatchUp(slot)
            }
        }
    }

    /// Integrates entries read from the stream, in order. False (and the room failed or
    /// reloaded) when one cannot be read or applied.
    func integrate(_ entries: ArraySlice<(rev: Int, message: [UInt8])>, into slot: RoomSlot) -> Bool {
        for e in entries {
            guard let m = Self.decode(e.message), m.type == .op, m.rev == e.rev else {
                let why = "committed op \(e.rev) in the stream is unreadable"
                if slot.redis.loading { failRedisLoad(slot, why) } else { reloadRedisRoom(slot, why) }
                return false
            }
            guard integrate(m, into: slot) else {
                let why = "committed op \(e.rev) does not apply"
                if slot.redis.loading { failRedisLoad(slot, why) } else { reloadRedisRoom(slot, why) }
                return false
            }
        }
        return true
    }

    /// The stream is read up to its end: a load is complete; what waited is replayed.
    func finishCatchUp(_ slot: RoomSlot) {
        if slot.redis.loading {
            // Last step of a load: who is in the room on other instances.
            return loadRoster(slot)
        }
        let channelBacklog = slot.redis.channelBacklog
        slot.redis.channelBacklog = []
        for m in channelBacklog { channelOp(m, slot: slot) }
        let backlog = slot.redis.backlog
        slot.redis.backlog = []
        for (id, m) in backlog {
            guard let s = sessions[id], slot.connections.contains(id) else { continue }
            redisReceived(m, from: s, slot: slot)
        }
    }

    /// The room here can no longer follow the stream (this instance fell further behind than
    /// the stream keeps, or an op does not apply): drop it and disconnect its clients with 1011,
    /// so they reconnect and the room is loaded again from the snapshot. Their own unacknowledged
    /// edits are resubmitted by them; a catch-up older than the history gets the document.
    func reloadRedisRoom(_ slot: RoomSlot, _ why: String) {
        log.error("room \(slot.name): \(why); reloading it, its \(slot.connections.count) client(s) will reconnect")
        guard rooms[slot.name] === slot else { return }
        rooms[slot.name] = nil
        slot.idleTimer?.cancel()
        unloadRedisRoom(slot)
        for id in slot.connections.sorted() {
            // Not 1012 (Service Restart): libwebsockets 4.1 clients reject codes above 1011 with 1002.
            emitClose(id, code: CloseCode.internalError, reason: "room reloading")
        }
    }

    func retryCatchUp(_ slot: RoomSlot) {
        slot.redis.retryTimer?.cancel()
        // 0.5 s doubling up to 8 s: a Redis outage must not turn into a busy loop of reads.
        let delay = 500 << min(4, max(0, slot.redis.catchUpFailures - 1))
        slot.redis.retryTimer = loop.schedule(after: .milliseconds(delay)) { [weak self, weak slot] in
            guard let self, let slot else { return }
            slot.redis.retryTimer = nil
            self.catchUp(slot)
        }
    }

    // MARK: Committed ops

    /// A committed op, from the channel or a commit reply: integrated if it is the next revision,
    /// ignored if already integrated, and after a gap the stream is read first.
    func channelOp(_ m: Message, slot: RoomSlot) {
        guard let rev = m.rev else { return }
        if slot.redis.loading || slot.redis.catchingUp {
            slot.redis.channelBacklog.append(m)
            return
        }
        let head = slot.room.revision
        if rev <= head { return }
        if rev > head + 1 {
            log.debug("room \(slot.name): op \(rev) after \(head): reading the missing ops from the stream")
            slot.redis.channelBacklog.append(m)
            catchUp(slot)
            return
        }
        integrate(m, into: slot)
    }

    /// Applies the next committed op to the room and sends it to the local connections: an ack to
    /// the connection(s) of the client that made it, the op to the others.
    @discardableResult
    func integrate(_ m: Message, into slot: RoomSlot) -> Bool {
        guard let rev = m.rev, rev == slot.room.revision + 1, let op = m.op else { return false }
        do {
            try slot.room.replay(m)
        } catch {
            log.error("room \(slot.name): committed op \(rev) does not apply: \(error)")
            return false
        }
        slot.redis.committer?.learn(rev: rev, op: op)
        defer { writeSnapshotIfDue(slot) }
        var others: [ConnectionID] = []
        var own: [ConnectionID] = []
        for (id, member) in slot.room.members.sorted(by: { $0.key < $1.key }) {
            if member.client == m.client { own.append(id) } else { others.append(id) }
        }
        var record = m
        record.extra = nil
        if !others.isEmpty { emit(Delivery(to: others, record), room: slot.name, durable: false) }
        if let seq = m.seq {
            for id in own { emit(Delivery(to: [id], slot.room.ack(seq: seq, rev: rev)), room: slot.name, durable: false) }
        }
        releaseAcks(slot)
        return true
    }

    func releaseAcks(_ slot: RoomSlot) {
        let head = slot.room.revision
        guard slot.redis.pendingAcks.contains(where: { $0.rev <= head }) else { return }
        let ready = slot.redis.pendingAcks.filter { $0.rev <= head }.sorted { $0.rev < $1.rev }
        slot.redis.pendingAcks.removeAll { $0.rev <= head }
        for a in ready where slot.connections.contains(a.connection) {
            emit(Delivery(to: [a.connection], slot.room.ack(seq: a.seq, rev: a.rev)), room: slot.name, durable: false)
        }
    }

    // MARK: Snapshots

    /// Writes the room's snapshot to Redis once the room has integrated the revision that made
    /// one due, and trims the stream to --history ops behind it.
    func writeSnapshotIfDue(_ slot: RoomSlot) {
        guard let r = redis, let due = slot.redis.snapshotDue, slot.room.revision >= due, !slot.redis.snapshotWriting else { return }
        slot.redis.snapshotDue = nil
        slot.redis.snapshotWriting = true
        let rev = slot.room.revision
        let start = Self.monotonicNanos()
        let bytes = Array(slot.room.snapshot.json.utf8)
        RoomLog.writeSnapshot(on: r.connection, script: r.snapshotScript, keys: RoomKeys(room: slot.name), revision: rev,
                              message: bytes, keep: configuration.historyLimit) { [weak self, weak slot] result in
            guard let self, let slot else { return }
            slot.redis.snapshotWriting = false
            let ms = Self.format(Double(Self.monotonicNanos() &- start) / 1e6)
            switch result {
            case .success(.stored(let trimmed)):
                self.countRedisSnapshot()
                self.log.info("room \(slot.name): snapshot at rev \(rev) in Redis (\(bytes.count) bytes, \(ms) ms; \(trimmed) stream entries trimmed)")
            case .success(.superseded(let newer)):
                self.log.debug("room \(slot.name): snapshot at rev \(rev) not needed, Redis has one at \(newer)")
            case .failure(let e):
                // Nothing is lost: the stream still has every op after the last snapshot.
                self.log.warn("room \(slot.name): snapshot at rev \(rev) failed: \(e)")
            }
            self.writeSnapshotIfDue(slot)
        }
    }

    // MARK: Client messages

    func redisReceived(_ message: Message, from s: Session, slot: RoomSlot) {
        let id = s.id
        if slot.redis.loading {
            slot.redis.backlog.append((id, message))
            return
        }
        var message = message
        let member = slot.room.members[id]
        if member == nil, message.type == .hello, message.client == nil {
            // Connection ids repeat across instances: make the default client id unique.
            message.client = "\(redis!.instanceID)-c\(id)"
        }
        if let member, message.type == .op, !member.observer {
            submit(message, from: id, member: member, slot: slot)
            return
        }
        let now = Self.nowMillis()
        let fx = slot.room.receive(message, from: id, now: now)
        if member == nil, let joined = slot.room.members[id] {
            s.user = joined.user
            s.client = joined.client
            log.debug("conn \(id) room \(s.room): hello from \(joined.user) (client \(joined.client))\(message.since.map { ", since \($0)" } ?? "")")
        }
        apply(fx, to: slot)
    }

    func submit(_ m: Message, from id: ConnectionID, member: Room.Member, slot: RoomSlot) {
        let name = slot.name
        guard let op = m.op, let seq = m.seq, let base = m.base else {
            emit(Delivery(to: [id], .error(code: .badMessage, "an op needs \"op\", \"seq\" and \"base\"", seq: m.seq, room: name)),
                 room: name, durable: false)
            return
        }
        guard seq >= 1, base >= 0 else {
            emit(Delivery(to: [id], .error(code: .badMessage, "\"seq\" must be >= 1 and \"base\" >= 0", seq: seq, room: name)),
                 room: name, durable: false)
            return
        }
        guard let committer = slot.redis.committer else { return }
        committer.submit(client: member.client, seq: seq, base: base, op: op, user: member.user) { [weak self, weak slot] result in
            guard let self, let slot, self.rooms[name] === slot else { return }
            switch result {
            case .success(.committed(let message)):
                self.countRedisCommit()
                // The instance that commits a multiple of --snapshot-every writes the snapshot:
                // one writer per revision without any coordination.
                if let rev = message.rev, self.configuration.snapshotEvery > 0, rev % self.configuration.snapshotEvery == 0 {
                    slot.redis.snapshotDue = max(slot.redis.snapshotDue ?? 0, rev)
                    self.writeSnapshotIfDue(slot)
                }
                // Integrated (and acked) now, or already from the channel, or after a stream read.
                self.channelOp(message, slot: slot)
            case .success(.duplicate(let rev)):
                slot.redis.pendingAcks.append((rev, id, seq))
                if rev > slot.room.revision { self.catchUp(slot) } else { self.releaseAcks(slot) }
            case .failure(let e):
                self.log.info("room \(name) conn \(id): op seq \(seq) not committed: \(e)")
                let text = e.code == .unavailable ? "Redis is unavailable (\(e)); send the op again later" : e.description
                self.emit(Delivery(to: [id], .error(code: e.code, text, seq: seq, room: name)), room: name, durable: false)
            }
        }
    }

    // MARK: The channel

    func channelMessage(_ channel: String, _ bytes: [UInt8]) {
        guard let r = redis, let name = r.channelRooms[channel], let slot = rooms[name] else { return }
        guard var m = Self.decode(bytes) else {
            log.warn("room \(name): unreadable message on \(channel)")
            return
        }
        if m.type == .op {
            guard m.rev != nil, m.op != nil else { return }
            channelOp(m, slot: slot)
            return
        }
        guard [.presence, .event, .join, .leave].contains(m.type) else { return }
        if case .string(let origin)? = m.extra?["instance"], origin == r.instanceID { return }
        m.extra?.fields.removeAll { $0.key == "instance" }
        if m.extra?.isEmpty == true { m.extra = nil }
        m.room = name
        if slot.redis.loading {
            if m.type != .event { slot.redis.presenceBacklog.append(m) }
            return
        }
        if m.type == .event {
            let recipients = slot.room.memberConnections
            if !recipients.isEmpty { emit(Delivery(to: recipients, m), room: name, durable: false) }
            return
        }
        apply(slot.room.remote(m, now: Self.nowMillis()), to: slot)
    }
}
