// collab-serve --redis: the roster of a room spans instances (RoomRoster in CollabRedis). Each
// instance announces its own members (and their latest presence) in the room's members hash,
// keeps their deadlines fresh on its heartbeat, and sweeps members whose deadline passed, so a
// dead instance's members leave every roster within --presence-ttl. Join, leave, presence and
// event messages also travel on the room channel, tagged with the instance that sent them.
import CollabPresence
import CollabProtocol
import CollabRedis
import CollabTransport

extension ServerHost {
    /// Deadlines are set 3/4 TTL ahead and renewed every 1/4 TTL, and every instance sweeps
    /// every 1/4 TTL: a member of a dead instance leaves within 3/4 + 1/4 = one TTL, while a
    /// live instance may miss two renewals (a slow Redis, a long loop iteration) without its
    /// members flickering out.
    var presenceDeadline: Int { max(1, Int(Self.millis(configuration.presenceTTL)) * 3 / 4) }

    func startPresenceHeartbeat() {
        guard let r = redis else { return }
        let every = Duration.milliseconds(max(1, Self.millis(configuration.presenceTTL) / 4))
        r.presenceHeartbeat = loop.schedule(every: every) { [weak self] in self?.presenceHeartbeat() }
    }

    func presenceHeartbeat() {
        guard let r = redis, r.connection.isReady else { return }
        for slot in rooms.values.sorted(by: { $0.name < $1.name }) where !slot.redis.loading {
            let keys = RoomKeys(room: slot.name)
            let clients = Array(Set(slot.room.members.values.map(\.client))).sorted()
            if !clients.isEmpty {
                RoomRoster.refresh(on: r.connection, scripts: r.rosterScripts, keys: keys, instance: r.instanceID,
                                   ttl: presenceDeadline, clients: clients) { [weak self, weak slot] result in
                    guard let self, let slot, self.rooms[slot.name] === slot else { return }
                    switch result {
                    case .success(let missing):
                        // Swept while we could not reach Redis: still here, so announced again.
                        for client in missing where slot.room.presence[client] != nil {
                            self.log.info("room \(slot.name): \(client) was swept from the shared roster; announcing it again")
                            self.announce(client, in: slot, publishing: .join)
                        }
                    case .failure(let e):
                        self.log.debug("room \(slot.name): presence refresh failed: \(e)")
                    }
                }
            }
            RoomRoster.sweep(on: r.connection, scripts: r.rosterScripts, keys: keys) { [weak self] result in
                if case .success(let n) = result, n > 0 { self?.log.info("room \(keys.room): \(n) member(s) of a silent instance swept") }
            }
        }
    }

    /// Stores a member of this instance in the shared roster (its state as it is now) and
    /// publishes `type` (join or presence) for the other instances.
    func announce(_ client: String, in slot: RoomSlot, publishing type: MessageType, ts: Int? = nil) {
        guard let r = redis, let state = slot.room.presence[client] else { return }
        let keys = RoomKeys(room: slot.name)
        var stateMessage = state.message(.join, room: slot.name)
        stateMessage.extra = nil
        let entry = RoomRoster.Entry(instance: r.instanceID, leave: Array(state.message(.leave, room: slot.name).json.utf8),
                                     state: Array(stateMessage.json.utf8))
        var published = state.message(type, room: slot.name)
        published.ts = ts
        RoomRoster.announce(on: r.connection, scripts: r.rosterScripts, keys: keys, client: client, entry: entry,
                            ttl: presenceDeadline, publish: tagged(published)) { [weak self] result in
            if case .failure(let e) = result { self?.log.debug("room \(slot.name): announcing \(client) failed: \(e)") }
        }
    }

    /// The message with this instance's id, so the instance ignores its own echo.
    func tagged(_ m: Message) -> [UInt8] {
        var t = m
        var extra = t.extra ?? JSONObject()
        extra.fields.removeAll { $0.key == "instance" }
        extra.fields.append((key: "instance", value: .string(redis!.instanceID)))
        t.extra = extra
        return Array(t.json.utf8)
    }

    /// Join, leave, presence and events of members here, for the members of other instances.
    func publish(_ messages: [Message], from slot: RoomSlot) {
        guard let r = redis else { return }
        let keys = RoomKeys(room: slot.name)
        for m in messages {
            switch m.type {
            case .join, .presence:
                guard let client = m.client else { continue }
                announce(client, in: slot, publishing: m.type, ts: m.ts)
            case .leave:
                guard let client = m.client else { continue }
                RoomRoster.leave(on: r.connection, scripts: r.rosterScripts, keys: keys, client: client, instance: r.instanceID,
                                 message: tagged(m)) { [weak self] result in
                    if case .failure(let e) = result { self?.log.debug("room \(slot.name): leave of \(client) failed: \(e)") }
                }
            default:
                r.connection.command(["PUBLISH", keys.channel, String(decoding: tagged(m), as: UTF8.self)]) { [weak self] result in
                    if case .failure(let e) = result { self?.log.debug("room \(slot.name): publish failed: \(e)") }
                }
            }
        }
    }

    /// Last step of a load: the members of other instances, then what waited.
    func loadRoster(_ slot: RoomSlot) {
        guard let r = redis else { return }
        RoomRoster.read(on: r.connection, scripts: r.rosterScripts, keys: RoomKeys(room: slot.name)) { [weak self, weak slot] result in
            guard let self, let slot, self.rooms[slot.name] === slot else { return }
            switch result {
            case .failure(let e):
                // Not fatal: the roster fills in as members of other instances speak.
                self.log.warn("room \(slot.name): reading the shared roster failed: \(e)")
            case .success(let entries):
                self.apply(slot.room.syncRemote(self.remoteMembers(entries), now: Self.nowMillis()), to: slot)
            }
            slot.redis.loading = false
            self.log.info("room \(slot.name) loaded from Redis at rev \(slot.room.revision)")
            let backlog = slot.redis.presenceBacklog
            slot.redis.presenceBacklog = []
            for m in backlog { self.apply(slot.room.remote(m, now: Self.nowMillis()), to: slot) }
            self.finishCatchUp(slot)
        }
    }

    /// After a reconnect to Redis: joins and leaves may have been missed.
    func syncRoster(_ slot: RoomSlot) {
        guard let r = redis else { return }
        RoomRoster.read(on: r.connection, scripts: r.rosterScripts, keys: RoomKeys(room: slot.name)) { [weak self, weak slot] result in
            guard let self, let slot, self.rooms[slot.name] === slot, !slot.redis.loading, case .success(let entries) = result else { return }
            self.apply(slot.room.syncRemote(self.remoteMembers(entries), now: Self.nowMillis()), to: slot)
        }
    }

    func remoteMembers(_ entries: [RoomRoster.Entry]) -> [Message] {
        entries.filter { $0.instance != redis?.instanceID }.compactMap { Self.decode($0.state) }
    }
}
