import CollabOT
import CollabProtocol
import DequeModule
import OrderedCollections

/// One member of a room as presence sees it: who (user, name, colour, initials) and what they are
/// doing (cursor or selection, typing, status).
public struct PresenceMember: Sendable, Equatable {
    public var client: String
    public var user: String
    public var name: String?
    public var color: String?
    public var initials: String?
    /// The cursor or selection, in the document at revision `rev`.
    public var cursor: Selection?
    /// The revision `cursor` refers to. Normally the roster's revision; later than it when the
    /// update came from a peer that had seen more ops than we have (it is then left alone until
    /// the roster catches up).
    public var rev: Int?
    public var typing = false
    /// When `typing` turns off by itself (milliseconds, the caller's clock).
    public var typingUntil: Int?
    public var status: String?
    /// The last join or presence of this member (milliseconds, the caller's clock).
    public var lastActive: Int?
    /// An application's own presence fields (a viewport, a mode, ...), merged key by key.
    public var extra: JSONObject?

    public init(client: String, user: String, name: String? = nil, color: String? = nil, initials: String? = nil) {
        self.client = client
        self.user = user
        self.name = name
        self.color = color
        self.initials = initials
    }

    /// The member as a message of `type` (`join`, `leave`, `presence`, or a roster entry):
    /// identity always, and for anything but `leave` the whole presence state, so a receiver
    /// replaces what it had instead of merging.
    public func message(_ type: MessageType, room: String? = nil) -> Message {
        var m = Message(type)
        m.room = room
        m.user = user
        m.name = name
        m.color = color
        m.initials = initials
        m.client = client
        guard type != .leave else { return m }
        if let cursor {
            m.cursor = cursor
            m.rev = rev
        }
        m.typing = typing
        m.status = status
        m.extra = extra
        return m
    }
}

extension PresenceMember {
    /// Same identity and presence (cursor and its revision, typing, status, app fields); when
    /// the member was last active and when its typing runs out do not count.
    public func hasSameState(as other: PresenceMember) -> Bool {
        client == other.client && user == other.user && name == other.name && color == other.color
            && initials == other.initials && cursor == other.cursor && rev == other.rev && typing == other.typing
            && status == other.status && extra == other.extra
    }
}

/// The members of one room and their presence, kept current as messages and committed ops go
/// by. Used by the server (what a newcomer's roster shows), by clients, and by collab-presence
/// on any message stream.
///
/// Cursors follow the document: a committed op moves every cursor that refers to the revision
/// before it, with the op's author's own insertions pushing its caret and others' not. A
/// presence update made on an older revision is brought forward through the ops the roster
/// remembers (`historyLimit`); one older than that loses its cursor (its position cannot be
/// known) but keeps everything else. Presence updates are partial: a field that is absent keeps
/// its value. Pure value type: time is passed in.
public struct PresenceRoster: Sendable {
    public private(set) var members: OrderedDictionary<String, PresenceMember> = [:]
    /// The last committed revision integrated (nil until the first).
    public private(set) var revision: Int?
    /// How long `typing` lasts after the update that set it, in milliseconds.
    public var typingTimeout: Int
    /// Committed ops remembered to bring late cursors forward.
    public var historyLimit: Int

    struct Commit: Sendable {
        var rev: Int
        var client: String?
        var op: TextOperation
    }
    var recent: Deque<Commit> = []

    public init(revision: Int? = nil, typingTimeout: Int = 5_000, historyLimit: Int = 256) {
        precondition(typingTimeout > 0 && historyLimit >= 0, "PresenceRoster: bad limits")
        self.revision = revision
        self.typingTimeout = typingTimeout
        self.historyLimit = historyLimit
    }

    public subscript(client: String) -> PresenceMember? { members[client] }
    public var isEmpty: Bool { members.isEmpty }
    public var count: Int { members.count }

    // MARK: Membership

    /// Adds a member from a `join` (or a roster entry), or refreshes its identity if known; the
    /// presence fields the message carries are applied too.
    @discardableResult
    public mutating func join(_ m: Message, now: Int? = nil) -> PresenceMember? {
        guard let client = m.client else { return nil }
        var member = members[client] ?? PresenceMember(client: client, user: m.user ?? "anonymous")
        if let user = m.user { member.user = user }
        if let name = m.name { member.name = name }
        if let color = m.color { member.color = color }
        if let initials = m.initials { member.initials = initials }
        members[client] = member
        return update(m, now: now)
    }

    /// Removes a member; returns what it was.
    @discardableResult
    public mutating func leave(client: String) -> PresenceMember? {
        members.removeValue(forKey: client)
    }

    /// Replaces the whole membership with a roster's (a `roster` message lists everyone).
    public mutating func replace(with roster: [Message], now: Int? = nil) {
        members = [:]
        for m in roster { join(m, now: now) }
    }

    /// What a `roster` message changed, in the roster's order (`before` nil: a member that is new).
    public struct Difference: Sendable {
        public var left: [PresenceMember] = []
        public var changed: [(before: PresenceMember?, after: PresenceMember)] = []
    }

    /// Replaces the membership with a roster's, as `replace` does, and says who left, who joined
    /// and whose state differs. A member whose state the roster repeats keeps its activity time
    /// and typing deadline: a roster sent again (after a reconnect) is not news about anyone.
    public mutating func reconcile(with roster: [Message], now: Int? = nil) -> Difference {
        let before = members
        replace(with: roster, now: now)
        var difference = Difference()
        for (client, old) in before where members[client] == nil { difference.left.append(old) }
        for i in members.values.indices {
            let new = members.values[i]
            guard let old = before[new.client] else {
                difference.changed.append((nil, new))
                continue
            }
            if new.hasSameState(as: old) {
                members.values[i].lastActive = old.lastActive
                members.values[i].typingUntil = old.typingUntil
            } else {
                difference.changed.append((old, new))
            }
        }
        return difference
    }

    /// The colours worn by members other than `user`'s own connections.
    public func colors(exceptUser user: String) -> Set<String> {
        Set(members.values.lazy.filter { $0.user != user }.compactMap(\.color))
    }

    // MARK: Presence

    /// Applies a presence update (also the presence fields of a join or roster entry) and
    /// returns the member as it is now; nil if the message names no client. An update from a
    /// client not in the roster (a stream joined midway) adds it.
    @discardableResult
    public mutating func update(_ m: Message, now: Int? = nil) -> PresenceMember? {
        guard let client = m.client else { return nil }
        var member = members[client] ?? PresenceMember(client: client, user: m.user ?? "anonymous", name: m.name,
                                                         color: m.color, initials: m.initials)
        if let cursor = m.cursor {
            let at = m.rev ?? revision
            if let moved = bringForward(cursor, from: at, isOwn: client) {
                member.cursor = moved.cursor
                member.rev = moved.rev
            } else {
                member.cursor = nil
                member.rev = nil
            }
        }
        if let typing = m.typing {
            member.typing = typing
            member.typingUntil = typing ? now.map { $0 + typingTimeout } : nil
        }
        if let status = m.status { member.status = status.isEmpty ? nil : status }
        if let fields = m.extra?.fields, !fields.isEmpty {
            var merged = member.extra ?? JSONObject()
            for field in fields { merged[field.key] = field.value }
            member.extra = merged
        }
        if let now { member.lastActive = now }
        members[client] = member
        return member
    }

    /// A cursor made at revision `rev` (nil: unknown, taken as current) expressed at the
    /// roster's revision, or nil when the ops in between are no longer remembered.
    func bringForward(_ cursor: Selection, from rev: Int?, isOwn client: String) -> (cursor: Selection, rev: Int?)? {
        guard let revision, let rev else { return (cursor, rev ?? revision) }
        if rev >= revision { return (cursor, rev) }
        guard let oldest = recent.first?.rev, oldest <= rev + 1 else { return nil }
        var moved = cursor
        for c in recent where c.rev > rev {
            moved = moved.transformed(by: c.op, isOwnOp: c.client == client)
        }
        return (moved, revision)
    }

    /// Members whose typing ran out by `now`: their flag is cleared and they are returned, so
    /// the caller can announce it.
    public mutating func expireTyping(now: Int) -> [PresenceMember] {
        var expired: [PresenceMember] = []
        for i in members.values.indices where members.values[i].typing {
            guard let until = members.values[i].typingUntil, until <= now else { continue }
            members.values[i].typing = false
            members.values[i].typingUntil = nil
            expired.append(members.values[i])
        }
        return expired
    }

    /// Keeps a member's typing flag until an update says otherwise: for members whose typing is
    /// expired by someone else (the server instance they are connected to).
    public mutating func forgetTypingDeadline(of client: String) {
        members[client]?.typingUntil = nil
    }

    /// The earliest time a typing flag runs out, for the caller's timer.
    public var nextTypingExpiry: Int? {
        // Asked once per message by collab-presence: a loop over the stored values, not a
        // key-path map, which copied every member (and retained its strings) each time.
        var earliest: Int?
        for i in members.values.indices {
            if let t = members.values[i].typingUntil, t < earliest ?? .max { earliest = t }
        }
        return earliest
    }

    // MARK: The document

    /// A committed op: every cursor at the revision before it moves. A gap (ops not seen) makes
    /// the older cursors unknowable: they are dropped.
    public mutating func integrate(rev: Int, op: TextOperation, client: String?) {
        if let revision, rev <= revision { return }
        if let revision, rev > revision + 1 {
            dropCursors(olderThan: rev - 1)
            recent.removeAll()
        }
        // In place by index: iterating the dictionary while assigning through its key subscript
        // copied the whole roster and moved each entry out and back, per committed op.
        for i in members.values.indices {
            guard let cursor = members.values[i].cursor, let at = members.values[i].rev, at == rev - 1 else { continue }
            members.values[i].cursor = cursor.transformed(by: op, isOwnOp: members.keys[i] == client)
            members.values[i].rev = rev
        }
        revision = rev
        guard historyLimit > 0 else { return }
        recent.append(Commit(rev: rev, client: client, op: op))
        if recent.count > historyLimit { recent.removeFirst(recent.count - historyLimit) }
    }

    /// The document was replaced (a welcome with the whole text, a snapshot): cursors that do
    /// not refer to `revision` or later cannot be placed in it.
    public mutating func reset(revision: Int) {
        dropCursors(olderThan: revision)
        recent.removeAll()
        self.revision = revision
    }

    mutating func dropCursors(olderThan rev: Int) {
        for i in members.values.indices {
            if let at = members.values[i].rev, at < rev {
                members.values[i].cursor = nil
                members.values[i].rev = nil
            }
        }
    }

    /// Clamps every cursor at the current revision into a document of `length` scalars (a
    /// client's out-of-range cursor must not travel on).
    public mutating func clampCursors(toLength length: Int) {
        for i in members.values.indices {
            guard let c = members.values[i].cursor, members.values[i].rev == revision else { continue }
            let clamped = Selection(anchor: min(max(c.anchor, 0), length), head: min(max(c.head, 0), length))
            if clamped != c { members.values[i].cursor = clamped }
        }
    }

    /// A `roster` message listing every member with its presence.
    public func rosterMessage(room: String? = nil) -> Message {
        var m = Message(.roster)
        m.room = room
        m.members = members.values.map { $0.message(.join) }
        return m
    }
}
