import CollabOT
import CollabProtocol
import OrderedCollections

/// One room as a presence observer sees it: its roster and, when the stream carries it, its text.
public struct PresenceRoom: Sendable {
    /// The room's name; nil for messages that never named one (a hand-written capture).
    public let name: String?
    public internal(set) var roster: PresenceRoster
    /// The text, once a `welcome` or `snapshot` line carried it and every op since applied;
    /// nil when it is not known (not in the stream, or an op was missed).
    public internal(set) var document: DocumentFollower?
    /// The client of the last `welcome`: whoever's output the stream is.
    public internal(set) var ownClient: String?
    /// Where the last line:column walk placed its first cursor, while the text before it is
    /// unchanged: the next walk resumes there.
    var checkpoint: TextPositions.Walk?

    init(name: String?, typingTimeout: Int) {
        self.name = name
        roster = PresenceRoster(typingTimeout: typingTimeout)
    }

    /// What a table or a snapshot shows of the room, to tell whether it changed: membership,
    /// identity, presence, cursor offsets, and whether lines and columns can be shown. Times and
    /// the revision a cursor is expressed at are left out: an op after every cursor changes
    /// nothing anyone would see.
    public var view: View {
        View(documentKnown: document != nil, members: roster.members.values.map { member in
            var m = member
            m.rev = nil
            m.lastActive = nil
            m.typingUntil = nil
            return m
        })
    }

    public struct View: Equatable, Sendable {
        public var documentKnown: Bool
        public var members: [PresenceMember]
    }

    /// The room's roster as a `roster` message, for `--once` and the table's pipe form: the
    /// revision in `rev`, the time in `ts`, and for each member, next to its presence, `line` and
    /// `column` of its caret (the head; when the text is known) and `idle` (milliseconds since
    /// its last join or presence; when times are known).
    public mutating func snapshot(now: Int?) -> Message {
        var m = roster.rosterMessage(room: name)
        m.rev = roster.revision
        m.ts = now
        let members = Array(roster.members.values)
        var positions: [LineColumn?] = Array(repeating: nil, count: members.count)
        if document != nil {
            let placed = members.indices.filter { members[$0].cursor != nil && members[$0].rev == roster.revision }
            let found = lineColumns(of: placed.map { members[$0].cursor!.head })
            for (i, p) in zip(placed, found) { positions[i] = p }
        }
        m.members = zip(members, positions).map { member, position in
            var entry = member.message(.join)
            var extra = entry.extra ?? JSONObject()
            if let position {
                extra["line"] = .int(position.line)
                extra["column"] = .int(position.column)
            }
            if let now, let active = member.lastActive { extra["idle"] = .int(max(0, now - active)) }
            entry.extra = extra.isEmpty ? nil : extra
            return entry
        }
        return m
    }

    /// Line and column of each member's anchor and head, when the text is known and the cursor
    /// refers to it (a cursor ahead of the stream's revision cannot be placed yet).
    public mutating func positions() -> [String: (anchor: LineColumn, head: LineColumn)] {
        guard document != nil else { return [:] }
        let placed = roster.members.values.filter { $0.cursor != nil && $0.rev == roster.revision }
        let found = lineColumns(of: placed.flatMap { [$0.cursor!.anchor, $0.cursor!.head] })
        var result: [String: (anchor: LineColumn, head: LineColumn)] = [:]
        for (i, member) in placed.enumerated() { result[member.client] = (found[2 * i], found[2 * i + 1]) }
        return result
    }

    mutating func lineColumns(of offsets: [Int]) -> [LineColumn] {
        guard let text = document?.document, !offsets.isEmpty else { return [] }
        let (found, walk) = TextPositions.lineColumns(of: offsets, in: text, resumingAt: checkpoint)
        checkpoint = walk
        return found
    }

    /// The text changed from scalar `position` on: a checkpoint after it no longer holds.
    mutating func textChanged(from position: Int) {
        if let c = checkpoint, position < c.scalar { checkpoint = nil }
    }
}

/// Keeps the rosters of every room in a message stream (collab-join's or collab-bridge's output,
/// a capture) and says what changed, as the lines `collab-presence` writes:
///
/// - `join` when a member appears (by a `join`, a `roster`, or a first `presence` from a
///   stream joined midway), with its whole state;
/// - `leave` when it goes (by a `leave`, or a `roster` that no longer lists it);
/// - `presence` when its state changes, whole, with the cursor at the latest revision seen
///   (a presence made on an older revision is brought forward through the ops since);
/// - `typing` (`{"type":"typing","user":…,"client":…,"typing":true|false}`) at each start and
///   stop of typing, including a stop because the flag ran out here; joining while typing is a
///   start and leaving while typing a stop, so the typing lines alone say who is typing.
///
/// A repeated message that changes nothing writes nothing. Ops move the cursors but write no
/// line (the lines would be one per member per keystroke). Sans-I/O: the caller passes the time.
public struct PresenceFeed: Sendable {
    public struct Options: Sendable {
        /// How long `typing` lasts without an update saying so again, in milliseconds.
        public var typingTimeout = 5_000
        /// Follow the text (for line:column); costs applying every op.
        public var followDocument = false
        /// Only this room (messages naming another one are skipped).
        public var room: String?

        public init() {}
    }

    /// What one message did.
    public struct Outcome: Sendable {
        /// The index in `rooms` of the room it was about; nil when it was skipped.
        public var room: Int?
        /// Something about the stream a person should know (a missed op); the line itself was valid.
        public var problem: String?
    }

    public let options: Options
    public private(set) var rooms: OrderedDictionary<String?, PresenceRoom> = [:]
    /// The last room a message named: lines without `room` (collab-join's own lines in older
    /// captures, hand-written ones) belong to it.
    var currentRoom: String?

    public init(options: Options = Options()) { self.options = options }

    /// The earliest time a typing flag runs out, for the caller's timer.
    public var nextTypingExpiry: Int? {
        var earliest: Int?
        for i in rooms.values.indices {
            if let t = rooms.values[i].roster.nextTypingExpiry, t < earliest ?? .max { earliest = t }
        }
        return earliest
    }

    /// Handles one message received at `now` (milliseconds; nil: unknown), appending the lines
    /// it causes to `out`.
    public mutating func handle(_ m: Message, now: Int?, into out: inout [Message]) -> Outcome {
        switch m.type {
        case .welcome, .snapshot, .op, .join, .leave, .presence, .roster: break
        default: return Outcome()
        }
        if let name = m.room { currentRoom = name }
        let name = m.room ?? currentRoom
        if let only = options.room, let name, name != only { return Outcome() }
        let index: Int
        if let i = rooms.index(forKey: name) {
            index = i
        } else {
            rooms[name] = PresenceRoom(name: name, typingTimeout: options.typingTimeout)
            index = rooms.count - 1
        }
        // In place through the index: a copy of the room taken out and put back would copy its
        // rope on the next edit.
        let problem = Self.handle(m, in: &rooms.values[index], now: now, followDocument: options.followDocument, into: &out)
        return Outcome(room: index, problem: problem)
    }

    static func handle(_ m: Message, in room: inout PresenceRoom, now: Int?, followDocument: Bool, into out: inout [Message]) -> String? {
        switch m.type {
        case .welcome, .snapshot:
            if m.type == .welcome, let client = m.client { room.ownClient = client }
            guard m.doc != nil else { return nil } // a catch-up welcome: the ops it missed follow
            room.roster.reset(revision: m.rev ?? 0)
            room.checkpoint = nil
            if followDocument {
                var follower = DocumentFollower()
                _ = follower.handle(DocumentEvent(m))
                room.document = follower
            }
            return nil
        case .op:
            return integrate(m, in: &room)
        case .join, .presence:
            guard let client = m.client else { return nil }
            let before = room.roster[client]
            let after = (m.type == .join ? room.roster.join(m, now: now) : room.roster.update(m, now: now))!
            report(before: before, after: after, room: room.name, ts: m.ts, into: &out)
            return nil
        case .leave:
            guard let client = m.client, let gone = room.roster.leave(client: client) else { return nil }
            report(before: gone, after: nil, room: room.name, ts: m.ts, into: &out)
            return nil
        case .roster:
            let difference = room.roster.reconcile(with: (m.members ?? []).map(withoutDerivedFields), now: now)
            for gone in difference.left { report(before: gone, after: nil, room: room.name, ts: m.ts, into: &out) }
            for (before, after) in difference.changed { report(before: before, after: after, room: room.name, ts: m.ts, into: &out) }
            return nil
        default:
            return nil
        }
    }

    static func integrate(_ m: Message, in room: inout PresenceRoom) -> String? {
        guard let op = m.op else { return "op message without \"op\"" }
        let current = room.roster.revision
        // An op without `rev` (a bare op array) is the next revision, as for collab-ot-apply.
        let rev = m.rev ?? (current ?? 0) + 1
        var problem: String?
        if let current {
            if rev <= current { return "revision \(rev) repeats (the room is at revision \(current)); skipped" }
            if rev > current + 1 {
                problem = "revision gap: expected \(current + 1), got \(rev); cursors placed before it are dropped"
                if room.document != nil {
                    room.document = nil
                    problem! += ", and line:column is unknown until the next welcome or snapshot with the text"
                }
            }
        }
        if room.document != nil {
            var event = DocumentEvent(m)
            event.rev = rev
            if case .refused(let why) = room.document!.handle(event) {
                room.document = nil
                problem = "\(why); line:column is unknown until the next welcome or snapshot with the text"
            }
            // The text before the op's first change is untouched.
            if case .retain(let n)? = op.components.first {
                room.textChanged(from: n)
            } else if !op.isNoop {
                room.textChanged(from: 0)
            }
        }
        room.roster.integrate(rev: rev, op: op, client: m.client)
        return problem
    }

    /// A roster entry without what `snapshot` adds (line, column, idle): those describe this
    /// tool's view, not the member's presence, so a snapshot read back must not keep them as the
    /// member's own fields.
    static func withoutDerivedFields(_ m: Message) -> Message {
        guard var extra = m.extra else { return m }
        var m = m
        for key in ["line", "column", "idle"] { extra[key] = nil }
        m.extra = extra.isEmpty ? nil : extra
        return m
    }

    /// The lines for a member that went from `before` to `after` (nil: not in the roster).
    static func report(before: PresenceMember?, after: PresenceMember?, room: String?, ts: Int?, into out: inout [Message]) {
        let wasTyping = before?.typing ?? false
        let isTyping = after?.typing ?? false
        if let after {
            if before == nil {
                out.append(stamped(after.message(.join, room: room), ts))
            } else if let before, !after.hasSameState(as: before) {
                out.append(stamped(after.message(.presence, room: room), ts))
            }
        }
        if wasTyping != isTyping, let member = after ?? before {
            out.append(typingLine(member, typing: isTyping, room: room, ts: ts))
        }
        if after == nil, let before {
            out.append(stamped(before.message(.leave, room: room), ts))
        }
    }

    static func stamped(_ m: Message, _ ts: Int?) -> Message {
        var m = m
        m.ts = ts
        return m
    }

    static func typingLine(_ member: PresenceMember, typing: Bool, room: String?, ts: Int?) -> Message {
        var m = Message(.typing)
        m.room = room
        m.user = member.user
        m.client = member.client
        m.typing = typing
        m.ts = ts
        return m
    }

    /// The snapshot of `rooms.values[room]` (see `PresenceRoom.snapshot`), in place: it keeps
    /// where its line counting can resume.
    public mutating func snapshot(room: Int, now: Int?) -> Message {
        rooms.values[room].snapshot(now: now)
    }

    /// Line and column of the cursors in `rooms.values[room]` (see `PresenceRoom.positions`).
    public mutating func positions(room: Int) -> [String: (anchor: LineColumn, head: LineColumn)] {
        rooms.values[room].positions()
    }

    /// Typing that ran out by `now`: each such member gets a `presence` line and a `typing`
    /// line saying it stopped, stamped with the time it ran out. Returns the indexes of the rooms
    /// that changed.
    public mutating func expireTyping(now: Int, into out: inout [Message]) -> [Int] {
        var changed: [Int] = []
        for i in rooms.values.indices {
            guard let next = rooms.values[i].roster.nextTypingExpiry, next <= now else { continue }
            let deadlines = Dictionary(rooms.values[i].roster.members.values.compactMap { m in m.typingUntil.map { (m.client, $0) } },
                                       uniquingKeysWith: { a, _ in a })
            let name = rooms.values[i].name
            for member in rooms.values[i].roster.expireTyping(now: now) {
                let at = deadlines[member.client] ?? now
                out.append(Self.stamped(member.message(.presence, room: name), at))
                out.append(Self.typingLine(member, typing: false, room: name, ts: at))
            }
            changed.append(i)
        }
        return changed
    }
}
