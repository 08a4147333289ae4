import CollabOT
import CollabPresence
import CollabProtocol
import enum CollabTransport.CloseCode

/// How a room treats presence.
public struct PresencePolicy: Sendable, Equatable {
    /// A member's `typing` turns off by itself this long after its last update saying true
    /// (milliseconds), announced to the room like any presence change.
    public var typingTimeout: Int = 5_000
    /// At most one presence relayed per connection per this many milliseconds; updates in
    /// between are coalesced (the last one wins) and relayed when the interval is over.
    public var minInterval: Int = 50

    public init(typingTimeout: Int = 5_000, minInterval: Int = 50) {
        precondition(typingTimeout > 0 && minInterval >= 0, "PresencePolicy: bad values")
        self.typingTimeout = typingTimeout
        self.minInterval = minInterval
    }
}

struct PresenceThrottle: Sendable {
    /// When this connection's presence was last relayed.
    var lastRelay: Int
    /// An update arrived since and waits for the interval to end.
    var held = false
}

extension Room {
    /// A member's presence: checked, merged into the roster (its cursor brought to the room's
    /// revision), then relayed now or, within `minInterval` of the previous relay, held.
    mutating func presenceUpdate(_ m: Message, from connection: ConnectionID, member: Member, now: Int, into fx: inout RoomEffects) {
        if let c = m.cursor {
            let at = m.rev ?? revision
            guard at >= 0, at <= revision else {
                fx.sends.append(Delivery(to: [connection], .error(code: .badMessage,
                    at < 0 ? "presence at revision \(at): revisions start at 0" : "presence at revision \(at) is ahead of the room's \(revision)", room: name)))
                return
            }
            // Checked against the document it was made on when that is the current one;
            // older ones are brought forward and clamped.
            let length = sequencer.document.count
            // (An older cursor is not checked against today's length, but no document ever had
            // more characters than an op may keep: beyond that it is garbage, not stale.)
            let limit = at < revision ? TextOperation.maxInputLength : length
            guard c.anchor >= 0, c.head >= 0, c.anchor <= limit, c.head <= limit else {
                fx.sends.append(Delivery(to: [connection], .error(code: .badMessage,
                    "cursor \(c.anchor)...\(c.head) is outside the document (0...\(length))", room: name)))
                return
            }
        }
        var update = m
        update.client = member.client
        presence.update(update, now: now)
        presence.clampCursors(toLength: sequencer.document.count)
        var throttle = presenceThrottle[connection] ?? PresenceThrottle(lastRelay: Int.min / 2)
        if now - throttle.lastRelay >= presencePolicy.minInterval {
            throttle.lastRelay = now
            throttle.held = false
            relayPresence(of: member.client, except: connection, now: now, into: &fx)
        } else {
            throttle.held = true
        }
        presenceThrottle[connection] = throttle
    }

    /// Sends a member's current presence to the room's other connections and to other instances.
    func relayPresence(of client: String, except connection: ConnectionID?, now: Int, into fx: inout RoomEffects) {
        guard let state = presence[client] else { return }
        var m = state.message(.presence, room: name)
        m.ts = now
        let recipients = memberConnections.filter { $0 != connection }
        if !recipients.isEmpty { fx.sends.append(Delivery(to: recipients, m)) }
        fx.relays.append(m)
    }

    /// When `tick` has something to do: a held presence to release or a typing flag to expire.
    public var nextWakeup: Int? {
        let held = presenceThrottle.values.lazy.filter(\.held).map { $0.lastRelay + presencePolicy.minInterval }.min()
        switch (held, presence.nextTypingExpiry) {
        case let (a?, b?): return min(a, b)
        case let (a, b): return a ?? b
        }
    }

    /// Time passed: held presence whose interval is over is relayed, and typing that ran out
    /// is announced as stopped.
    public mutating func tick(now: Int) -> RoomEffects {
        var fx = RoomEffects()
        for (connection, throttle) in presenceThrottle.sorted(by: { $0.key < $1.key }) where throttle.held {
            guard now - throttle.lastRelay >= presencePolicy.minInterval, let member = members[connection] else { continue }
            presenceThrottle[connection] = PresenceThrottle(lastRelay: now)
            relayPresence(of: member.client, except: connection, now: now, into: &fx)
        }
        let local = Set(members.values.map(\.client))
        for expired in presence.expireTyping(now: now) where local.contains(expired.client) {
            // Its owner's presence may be held right now: that one already says typing false.
            if let (connection, _) = members.first(where: { $0.value.client == expired.client }), presenceThrottle[connection]?.held == true {
                presenceThrottle[connection]?.held = false
            }
            relayPresence(of: expired.client, except: nil, now: now, into: &fx)
        }
        return fx
    }

    /// A member connected to another instance joined, left, or changed presence (from the
    /// room's shared channel): the roster follows and the members here are told.
    public mutating func remote(_ m: Message, now: Int) -> RoomEffects {
        var fx = RoomEffects()
        guard let client = m.client else { return fx }
        if let (connection, _) = members.first(where: { $0.value.client == client && !$0.value.observer }) {
            // A join from elsewhere for a client connected here: it reconnected through another
            // instance before this one noticed the old connection died. Ours is the ghost: it
            // goes quietly (as a takeover here does) and the member stays. Anything else about
            // a client connected here is stale news from its old instance.
            guard m.type == .join else { return fx }
            members[connection] = nil
            presenceThrottle[connection] = nil
            fx.closes.append((connection, CloseCode.policyViolation, "replaced by a new connection of the same client"))
            presence.join(m, now: now)
            expireRemoteTyping(client)
            return fx
        }
        var out = m
        out.room = name
        switch m.type {
        case .join:
            presence.join(m, now: now)
            expireRemoteTyping(client)
        case .leave:
            guard presence.leave(client: client) != nil else { return fx }
        case .presence:
            presence.update(m, now: now)
            expireRemoteTyping(client)
            if let state = presence[client] {
                out = state.message(.presence, room: name)
                out.ts = m.ts
            }
        default:
            break
        }
        let recipients = memberConnections
        if !recipients.isEmpty { fx.sends.append(Delivery(to: recipients, out)) }
        return fx
    }

    /// The members of other instances as the shared roster lists them now (after a load or a
    /// reconnect to Redis, when join and leave messages may have been missed): newcomers are
    /// announced, members no longer listed leave, the others are refreshed quietly.
    public mutating func syncRemote(_ listed: [Message], now: Int) -> RoomEffects {
        var fx = RoomEffects()
        let local = Set(members.values.filter { !$0.observer }.map(\.client))
        let recipients = memberConnections
        let listedClients = Set(listed.compactMap(\.client))
        for gone in presence.members.keys where !local.contains(gone) && !listedClients.contains(gone) {
            if let left = presence.leave(client: gone), !recipients.isEmpty {
                fx.sends.append(Delivery(to: recipients, left.message(.leave, room: name)))
            }
        }
        for m in listed {
            guard let client = m.client, !local.contains(client) else { continue }
            let isNew = presence[client] == nil
            guard let joined = presence.join(m, now: now) else { continue }
            expireRemoteTyping(client)
            if isNew && !recipients.isEmpty { fx.sends.append(Delivery(to: recipients, joined.message(.join, room: name))) }
        }
        return fx
    }

    /// A remote member's typing is expired by the instance it is connected to, which announces
    /// it; expiring it here too would announce it twice.
    mutating func expireRemoteTyping(_ client: String) {
        presence.forgetTypingDeadline(of: client)
    }
}
