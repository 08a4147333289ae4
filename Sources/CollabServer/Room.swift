import CollabOT
import CollabPresence
import CollabProtocol
// Only for the RFC 6455 close-code constants: the room itself does no I/O.
import enum CollabTransport.CloseCode

/// Identifies a connection inside one server process.
public typealias ConnectionID = Int

/// One message for one or more connections. A broadcast is one delivery, so the host encodes
/// the message once, whatever the number of recipients.
public struct Delivery: Sendable {
    public var recipients: [ConnectionID]
    public var message: Message
    public init(to recipients: [ConnectionID], _ message: Message) {
        self.recipients = recipients
        self.message = message
    }
}

/// What a room asks its host to do after an event. The room never does I/O itself: the
/// WebSocket server, the tests and any other host carry these out (sans-I/O, DESIGN §4).
public struct RoomEffects: Sendable {
    /// Messages to send now, in order.
    public var sends: [Delivery] = []
    /// Messages to send only once `records` are durable (acks and broadcasts of new commits):
    /// nobody may see an edit that a crash could still lose.
    public var durableSends: [Delivery] = []
    /// Committed ops to append to the room's journal.
    public var records: [Message] = []
    /// Connections to close after their queued messages, with a WebSocket close code.
    public var closes: [(ConnectionID, code: UInt16, reason: String)] = []
    /// Ephemeral messages of this room's members (join, leave, presence, event) that members
    /// connected elsewhere must see too: a host sharing the room with other instances publishes
    /// them; a host alone ignores them.
    public var relays: [Message] = []

    public init() {}

    public var isEmpty: Bool { sends.isEmpty && durableSends.isEmpty && records.isEmpty && closes.isEmpty && relays.isEmpty }
}

/// One room: its document and history (through the `Sequencer`) and its members. Pure logic.
public struct Room: Sendable {
    public struct Member: Sendable, Equatable {
        public var user: String
        public var name: String?
        public var client: String
        public var color: String
        public var initials: String
        /// Watches only (collab-tap): receives the room's traffic, sends nothing to it, and is
        /// in nobody's roster.
        public var observer = false
    }

    /// Commit metadata kept beside the sequencer's history, for catch-up messages.
    struct Meta: Sendable {
        var user: String?
        var ts: Int?
    }

    public let name: String
    public private(set) var sequencer: Sequencer
    var meta: [Meta] = []
    /// Members by connection, once they said hello.
    public internal(set) var members: [ConnectionID: Member] = [:] {
        // Joins and leaves are rare next to broadcasts: order once here, not per message.
        didSet { memberConnections = members.keys.sorted() }
    }
    /// `members`' connections in ascending order: who a broadcast goes to.
    public private(set) var memberConnections: [ConnectionID] = []
    /// How many committed ops stay in memory for `since` catch-ups and late transforms.
    public var historyLimit: Int
    /// Everyone in the room (members connected here and, with other instances, there) and what
    /// they are doing. Ephemeral: never journaled.
    public internal(set) var presence: PresenceRoster
    public var presencePolicy: PresencePolicy {
        didSet { presence.typingTimeout = presencePolicy.typingTimeout }
    }
    /// Per connection: when its presence was last relayed, and whether a newer one waits.
    var presenceThrottle: [ConnectionID: PresenceThrottle] = [:]

    public init(name: String, document: TextRope = TextRope(), revision: Int = 0, historyLimit: Int = 10_000,
                presencePolicy: PresencePolicy = PresencePolicy()) {
        self.name = name
        sequencer = Sequencer(document: document, revision: revision)
        self.historyLimit = historyLimit
        self.presencePolicy = presencePolicy
        presence = PresenceRoster(revision: revision, typingTimeout: presencePolicy.typingTimeout)
    }

    public var revision: Int { sequencer.revision }
    public var isEmpty: Bool { members.isEmpty }

    /// Re-applies a journaled commit at start-up.
    public mutating func replay(_ record: Message) throws {
        guard let op = record.op, let rev = record.rev, let client = record.client, let seq = record.seq else {
            throw RoomError("journal record is not a committed op")
        }
        try sequencer.integrate(CommittedOp(rev: rev, client: client, seq: seq, op: op))
        meta.append(Meta(user: record.user, ts: record.ts))
        presence.integrate(rev: rev, op: op, client: client)
        trim()
    }

    /// For a room started from a snapshot: the committed ops that led up to it (consecutive,
    /// ending at the snapshot's revision), kept as history for `since` catch-ups, not applied.
    public mutating func seedHistory(_ records: [Message]) throws {
        var ops: [CommittedOp] = []
        ops.reserveCapacity(records.count)
        for record in records.suffix(historyLimit) {
            guard let op = record.op, let rev = record.rev, let client = record.client, let seq = record.seq else {
                throw RoomError("history record is not a committed op")
            }
            guard ops.last.map({ $0.rev + 1 == rev }) ?? true else { throw RoomError("history records are not consecutive") }
            ops.append(CommittedOp(rev: rev, client: client, seq: seq, op: op))
        }
        guard ops.isEmpty || ops.last!.rev == revision else {
            throw RoomError("history ends at revision \(ops.last!.rev), not at the snapshot's \(revision)")
        }
        sequencer.seedHistory(ops)
        meta = records.suffix(historyLimit).map { Meta(user: $0.user, ts: $0.ts) }
    }

    /// Restores the dedupe table saved with a snapshot.
    public mutating func restoreClients(_ clients: [String: (seq: Int, rev: Int)]) {
        sequencer.restoreLastCommitted(clients)
    }

    // MARK: Events

    /// A message from a connection.
    public mutating func receive(_ message: Message, from connection: ConnectionID, now: Int) -> RoomEffects {
        var fx = RoomEffects()
        guard let member = members[connection] else {
            guard message.type == .hello else {
                fx.sends.append(Delivery(to: [connection], .error(code: .badMessage, "the first message must be hello", room: name, fatal: true)))
                fx.closes.append((connection, CloseCode.policyViolation, "hello expected"))
                return fx
            }
            hello(message, from: connection, into: &fx, now: now)
            return fx
        }
        if member.observer, [.op, .presence, .event].contains(message.type) {
            fx.sends.append(Delivery(to: [connection], .error(code: .forbidden,
                "an observer sends nothing to the room (\(message.type.rawValue) refused)", seq: message.seq, room: name)))
            return fx
        }
        switch message.type {
        case .op: submit(message, from: connection, member: member, now: now, into: &fx)
        case .leave:
            fx = close(connection)
            fx.closes.append((connection, CloseCode.normal, "bye"))
        case .presence:
            presenceUpdate(message, from: connection, member: member, now: now, into: &fx)
        case .event:
            var relayed = message
            relayed.room = name
            relayed.user = member.user
            relayed.name = member.name
            relayed.color = member.color
            relayed.client = member.client
            relayed.token = nil
            relayed.ts = now
            broadcast(relayed, except: connection, into: &fx.sends)
            fx.relays.append(relayed)
        case .hello:
            fx.sends.append(Delivery(to: [connection], .error(code: .badMessage, "already joined: hello is sent once", room: name)))
        default:
            fx.sends.append(Delivery(to: [connection], .error(code: .badMessage, "a client cannot send \(message.type.rawValue) messages", room: name)))
        }
        return fx
    }

    /// The connection went away (closed, or missed its heartbeat).
    public mutating func close(_ connection: ConnectionID) -> RoomEffects {
        var fx = RoomEffects()
        presenceThrottle[connection] = nil
        guard let member = members.removeValue(forKey: connection) else { return fx }
        if member.observer { return fx }
        let leave = presence.leave(client: member.client)?.message(.leave, room: name) ?? Message(.leave)
        broadcast(leave, except: connection, into: &fx.sends)
        fx.relays.append(leave)
        return fx
    }

    mutating func hello(_ m: Message, from connection: ConnectionID, into fx: inout RoomEffects, now: Int) {
        let user = m.user ?? "anonymous"
        let client = m.client ?? "c\(connection)-\(sequencer.revision)"
        if m.observer != true, let (old, _) = members.first(where: { $0.value.client == client && !$0.value.observer }) {
            // The same client again: a reconnect that beat the old connection's heartbeat
            // timeout. The old one is the ghost; it goes without a leave, the member stays.
            members[old] = nil
            presenceThrottle[old] = nil
            fx.closes.append((old, CloseCode.policyViolation, "replaced by a new connection of the same client"))
        }
        // One colour per user in a room (all their tabs alike), avoiding the others' colours.
        let color = presence.members.values.first { $0.user == user }?.color
            ?? Palette.color(for: user, avoiding: presence.colors(exceptUser: user))
        var member = Member(user: user, name: m.name, client: client, color: color, initials: Palette.initials(name: m.name, user: user))
        member.observer = m.observer == true
        var welcome = Message(.welcome)
        welcome.room = name
        welcome.client = client
        welcome.user = user
        welcome.color = member.color
        welcome.initials = member.initials
        welcome.rev = revision
        if let since = m.since, since >= 0, since <= revision, sequencer.oldestBase <= since {
            welcome.since = since
            fx.sends.append(Delivery(to: [connection], welcome))
            for (offset, commit) in sequencer.history[(since - sequencer.oldestBase)...].enumerated() {
                let metaIndex = since - sequencer.oldestBase + offset
                fx.sends.append(Delivery(to: [connection], opMessage(commit, meta[metaIndex])))
            }
        } else {
            welcome.doc = sequencer.document.string
            fx.sends.append(Delivery(to: [connection], welcome))
        }
        if let since = m.since, since > revision {
            fx.sends.append(Delivery(to: [connection], .error(code: .historyUnavailable,
                "your revision \(since) is ahead of the room's \(revision) (history was lost?); the full document was sent",
                room: name)))
        }
        var join = Message(.join)
        join.room = name
        join.user = user
        join.name = m.name
        join.color = member.color
        join.initials = member.initials
        join.client = client
        join.ts = now
        if member.observer {
            members[connection] = member
            fx.sends.append(Delivery(to: [connection], presence.rosterMessage(room: name)))
            return
        }
        let joined = presence.join(join, now: now)
        members[connection] = member
        // The newcomer gets everyone, itself included (it learns its colour there too).
        fx.sends.append(Delivery(to: [connection], presence.rosterMessage(room: name)))
        let announced = joined?.message(.join, room: name) ?? join
        broadcast(announced, except: connection, into: &fx.sends)
        fx.relays.append(announced)
    }

    mutating func submit(_ m: Message, from connection: ConnectionID, member: Member, now: Int, into fx: inout RoomEffects) {
        guard let op = m.op, let seq = m.seq, let base = m.base else {
            fx.sends.append(Delivery(to: [connection], .error(code: .badMessage, "an op needs \"op\", \"seq\" and \"base\"", seq: m.seq, room: name)))
            return
        }
        guard seq >= 1, base >= 0 else {
            fx.sends.append(Delivery(to: [connection], .error(code: .badMessage, "\"seq\" must be >= 1 and \"base\" >= 0", seq: seq, room: name)))
            return
        }
        // The connection's client id, not one the message claims: a client cannot commit in
        // another's name (and its dedupe entries stay its own).
        let client = member.client
        do {
            switch try sequencer.submit(client: client, seq: seq, base: base, op: op) {
            case .duplicate(let rev):
                fx.durableSends.append(Delivery(to: [connection], ack(seq: seq, rev: rev)))
            case .committed(let commit):
                let info = Meta(user: member.user, ts: now)
                meta.append(info)
                let record = opMessage(commit, info)
                fx.records.append(record)
                fx.durableSends.append(Delivery(to: [connection], ack(seq: seq, rev: commit.rev)))
                broadcast(record, except: connection, into: &fx.durableSends)
                presence.integrate(rev: commit.rev, op: commit.op, client: client)
                trim()
            }
        } catch let e as Sequencer.SubmitError {
            let code: ErrorCode
            switch e {
            case .historyUnavailable: code = .historyUnavailable
            default: code = .badOp
            }
            fx.sends.append(Delivery(to: [connection], .error(code: code, e.description, seq: seq, room: name)))
        } catch {
            fx.sends.append(Delivery(to: [connection], .error(code: .internalError, "\(error)", seq: seq, room: name)))
        }
    }

    func ack(seq: Int, rev: Int) -> Message {
        var a = Message(.ack)
        a.room = name
        a.seq = seq
        a.rev = rev
        return a
    }

    func opMessage(_ commit: CommittedOp, _ info: Meta) -> Message {
        var m = Message(.op)
        m.room = name
        m.user = info.user
        m.client = commit.client
        m.seq = commit.seq
        m.rev = commit.rev
        m.op = commit.op
        m.ts = info.ts
        return m
    }

    func broadcast(_ m: Message, except: ConnectionID, into out: inout [Delivery]) {
        let recipients = memberConnections.filter { $0 != except }
        if !recipients.isEmpty { out.append(Delivery(to: recipients, m)) }
    }

    mutating func trim() {
        let excess = sequencer.history.count - historyLimit
        if excess > 0 {
            sequencer.trimHistory(keeping: historyLimit)
            meta.removeFirst(excess)
        }
    }

    /// The snapshot message of the room at its current revision.
    public var snapshot: Message {
        var m = Message(.snapshot)
        m.room = name
        m.rev = revision
        m.doc = sequencer.document.string
        return m
    }
}

public struct RoomError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
