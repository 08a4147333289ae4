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
    /// Acks of duplicate resubmissions whose revision is not integrated yet.
    var pendingAcks: [(rev: Int, connection: ConnectionID, seq: Int)] = []
    var committer: RoomCommitter?
    var retryTimer: LoopTimer?
}

extension ServerHost {
    func startRedis(_ url: RedisURL) {
        let backend = RedisBackend(loop: loop, url: url)
        redis = backend
        backend.subscriber.onMessage = { [unowned self] channel, bytes in self.channelMessage(channel, bytes) }
        backend.subscriber.onResubscribed = { [unowned self] in
            // Messages published while we were not subscribed were missed: read the streams.
            for slot in self.rooms.values.sorted(by: { $0.name < $1.name }) where !slot.redis.loading {
                self.catchUp(slot)
            }
        }
        backend.connection.onDisconnect = { [unowned self] e in self.log.warn("redis: disconnected: \(e)") }
        backend.subscriber.onDisconnect = { [unowned self] e in self.log.warn("redis subscriber: disconnected: \(e)") }
        backend.connection.onConnect = { [unowned self] in self.log.info("redis: connected to \(url)") }
        backend.connection.start()
        backend.subscriber.start()
    }

    func stopRedis() {
        guard let r = redis else { return }
        for slot in rooms.values { slot.redis.retryTimer?.cancel() }
        r.subscriber.close()
        r.connection.close()
    }

    // MARK: Loading and unloading

    func loadRedisRoom(_ name: String) -> RoomSlot? {
        guard let r = redis else { return nil }
        let slot = RoomSlot(room: Room(name: name, historyLimit: configuration.historyLimit))
        slot.redis.loading = true
        slot.redis.committer = RoomCommitter(connection: r.connection, room: name, script: r.script, pageSize: r.pageSize)
        rooms[name] = slot
        let keys = RoomKeys(room: name)
        r.channelRooms[keys.channel] = name
        log.info("room \(name): loading from Redis")
        // Subscribe first, then read: whatever is committed after the read is on the channel.
        r.subscriber.subscribe([keys.channel]) { [weak self, weak slot] in
            guard let self, let slot, self.rooms[name] === slot else { return }
            self.catchUp(slot)
        }
        return slot
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
                if slot.redis.loading { return self.failRedisLoad(slot, "\(e)") }
                self.log.warn("room \(slot.name): reading the Redis stream failed: \(e); retrying")
                self.retryCatchUp(slot)
            case .success(let entries):
                let head = slot.room.revision
                if let first = entries.first, first.rev != head + 1 {
                    let why = "the stream starts at revision \(first.rev) but the room is at \(head) (trimmed, and no snapshot support yet)"
                    if slot.redis.loading { return self.failRedisLoad(slot, why) }
                    self.log.error("room \(slot.name): \(why)")
                    return
                }
                for e in entries {
                    let decoded: Result<Message, MessageError> = e.message.withUnsafeBufferPointer { b in
                        do throws(MessageError) { return .success(try Message.decode(b)) } catch { return .failure(error) }
                    }
                    guard case .success(let m) = decoded, m.type == .op, m.rev == e.rev else {
                        let why = "committed op \(e.rev) in the stream is unreadable"
                        if slot.redis.loading { return self.failRedisLoad(slot, why) }
                        self.log.error("room \(slot.name): \(why)")
                        return
                    }
                    guard self.integrate(m, into: slot) else {
                        if slot.redis.loading { return self.failRedisLoad(slot, "op \(e.rev) does not apply") }
                        return
                    }
                }
                if entries.count == r.pageSize {
                    return self.catchUp(slot)
                }
                if slot.redis.loading {
                    slot.redis.loading = false
                    self.log.info("room \(slot.name) loaded from Redis at rev \(slot.room.revision)")
                }
                let channelBacklog = slot.redis.channelBacklog
                slot.redis.channelBacklog = []
                for m in channelBacklog { self.channelOp(m, slot: slot) }
                let backlog = slot.redis.backlog
                slot.redis.backlog = []
                for (id, m) in backlog {
                    guard let s = self.sessions[id], slot.connections.contains(id) else { continue }
                    self.redisReceived(m, from: s, slot: slot)
                }
            }
        }
    }

    func retryCatchUp(_ slot: RoomSlot) {
        slot.redis.retryTimer?.cancel()
        slot.redis.retryTimer = loop.schedule(after: .milliseconds(500)) { [weak self, weak slot] in
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
        if let member, message.type == .op {
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
        if let member, message.type == .presence || message.type == .event {
            var relayed = message
            relayed.room = slot.name
            relayed.user = member.user
            relayed.name = member.name
            relayed.client = member.client
            relayed.token = nil
            relayed.ts = now
            var extra = relayed.extra ?? JSONObject()
            extra.fields.removeAll { $0.key == "instance" }
            extra.fields.append((key: "instance", value: .string(redis!.instanceID)))
            relayed.extra = extra
            redis!.connection.command(["PUBLISH", RoomKeys(room: slot.name).channel, relayed.json]) { [weak self] result in
                if case .failure(let e) = result { self?.log.debug("room \(slot.name): publish failed: \(e)") }
            }
        }
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
        let decoded: Result<Message, MessageError> = bytes.withUnsafeBufferPointer { b in
            do throws(MessageError) { return .success(try Message.decode(b)) } catch { return .failure(error) }
        }
        guard case .success(var m) = decoded else {
            log.warn("room \(name): unreadable message on \(channel)")
            return
        }
        if m.type == .op {
            guard m.rev != nil, m.op != nil else { return }
            channelOp(m, slot: slot)
            return
        }
        guard m.type == .presence || m.type == .event else { return }
        if case .string(let origin)? = m.extra?["instance"], origin == r.instanceID { return }
        guard !slot.redis.loading else { return }
        m.extra?.fields.removeAll { $0.key == "instance" }
        if m.extra?.isEmpty == true { m.extra = nil }
        m.room = name
        let recipients = slot.room.members.keys.sorted()
        if !recipients.isEmpty { emit(Delivery(to: recipients, m), room: name, durable: false) }
    }
}
