import CollabOT
import CollabPresence
import CollabProtocol

/// The client side of a room as a value with no I/O (sans-I/O, like `Room` on the server): it
/// takes what arrives from the server and from the user, and says what to send and what to print.
/// `collab-join` drives it over a WebSocket; tests drive it directly.
///
/// It runs the OT client state machine, so local edits never wait for the network: they apply at
/// once, at most one op is in flight, later ones are composed into a buffer. Across a disconnect
/// the in-flight op and the buffer are kept; after reconnecting with `since`, the session catches
/// up on what it missed (rebasing its pending edits) and then resubmits the in-flight op with its
/// original `client`/`seq`/`base`, which the server recognises if it had already committed it.
/// The same resubmission follows a non-fatal `unavailable` or `rate-limited` for the op in flight
/// (the server did not commit it for now but kept the connection): the host waits, then calls
/// `resubmit(seq:)`.
public struct ClientSession: Sendable {
    /// What the host should do after an event.
    public struct Output: Sendable {
        /// Messages for the server, in order.
        public var send: [Message] = []
        /// Messages for stdout (the room's traffic, and own ops once committed).
        public var print: [Message] = []
        /// Problems with local input (reported on stderr, not sent).
        public var problems: [String] = []
        /// The server ended the session for good (a fatal error that retrying cannot fix).
        public var fatal: Message?
        /// The server could not commit the in-flight op with this seq for now (`unavailable`, e.g.
        /// its Redis is down, or `rate-limited`) and kept the connection: call `resubmit(seq:)`
        /// after a delay.
        public var retry: Int?
        /// The error code behind `retry` (for the host's log line).
        public var retryCode: String?
        public init() {}
    }

    /// Who this client is: as asked for until the first welcome, then as the server says (a
    /// server that checks tokens takes the user from the token).
    public private(set) var user: String
    public let name: String?
    public let token: String?
    /// Identifies this client across reconnects, for the server's (client, seq) dedupe. The
    /// server may qualify it (with tokens it becomes USER/ID); the welcome says, and the
    /// session keeps what the server uses from then on.
    public private(set) var clientID: String

    public private(set) var document = TextRope()
    /// Nil until the first `welcome`: before it there is no document to edit.
    public private(set) var ot: OTClient?
    public private(set) var undo = OTUndoManager()
    public private(set) var room: String?
    /// Connected and caught up: ops may be sent.
    public private(set) var isLive = false
    /// After a `since` welcome: the revision the catch-up ops lead to.
    var catchUpTarget: Int?
    /// The seq of the in-flight op as last sent on the current connection (nil: not sent yet).
    var sentSeq: Int?
    /// This client's own presence as the user set it (see ClientPresence.swift).
    var own = OwnPresence()
    /// Everyone in the room as the server reports them, cursors at the server's revision (see
    /// `cursorInLocalDocument(of:)` for where they are in the local copy).
    public internal(set) var roster = PresenceRoster()

    public init(user: String, name: String? = nil, token: String? = nil, clientID: String) {
        self.user = user
        self.name = name
        self.token = token
        self.clientID = clientID
    }

    public var hasDocument: Bool { ot != nil }
    public var revision: Int? { ot?.revision }
    /// True when every local edit has been acknowledged.
    public var isDrained: Bool { !(ot?.hasPendingChanges ?? false) }

    // MARK: Connection events

    /// A connection opened: the hello to send.
    public mutating func connected() -> Message {
        isLive = false
        sentSeq = nil
        catchUpTarget = nil
        var hello = Message(.hello)
        hello.user = user
        hello.name = name
        hello.token = token
        hello.client = clientID
        hello.since = ot?.revision
        return hello
    }

    public mutating func disconnected() {
        isLive = false
        sentSeq = nil
        catchUpTarget = nil
    }

    // MARK: From the server

    public mutating func received(_ m: Message) -> Output {
        var out = Output()
        switch m.type {
        case .welcome: welcome(m, &out)
        case .op: remoteOp(m, &out)
        case .ack: ack(m, &out)
        case .error:
            out.print.append(m)
            if m.fatal == true {
                out.fatal = m
            } else if m.code == ErrorCode.forbidden.rawValue, let seq = m.seq, ot?.inFlight?.seq == seq {
                // A read-only member's edit: it will never be accepted, and every later local
                // edit builds on it. Stop rather than keep a copy that can never converge.
                out.fatal = m
            } else {
                refused(m, &out)
            }
        case .join, .leave, .presence, .roster:
            observe(m)
            out.print.append(m)
        default:
            out.print.append(m) // event: the room's traffic
        }
        return out
    }

    mutating func welcome(_ m: Message, _ out: inout Output) {
        room = m.room ?? room
        if let client = m.client, !client.isEmpty { clientID = client }
        if let user = m.user, !user.isEmpty { self.user = user }
        out.print.append(m)
        guard let rev = m.rev else {
            out.problems.append("server sent a welcome without a revision")
            return
        }
        if let text = m.doc {
            if let ot, ot.hasPendingChanges {
                // The server could not send what we missed (its history no longer reaches our
                // revision): our pending edits have no base on its side any more.
                out.problems.append("the server's history no longer reaches revision \(ot.revision); local edits not yet acknowledged were dropped")
            }
            document = TextRope(text)
            ot = OTClient(revision: rev, nextSeq: ot?.nextSeq ?? 1)
            undo = OTUndoManager(limit: undo.limit)
            roster.reset(revision: rev)
            own.documentReplaced(length: document.count)
            goLive(&out)
        } else {
            catchUpTarget = rev
            if ot == nil { ot = OTClient(revision: rev) }
            if (ot?.revision ?? rev) >= rev { goLive(&out) }
        }
    }

    mutating func remoteOp(_ m: Message, _ out: inout Output) {
        guard var client = ot, let rev = m.rev, let op = m.op else {
            out.print.append(m)
            return
        }
        if rev <= client.revision { return } // already integrated (a repeated catch-up)
        do {
            if m.client == clientID, let seq = m.seq, client.inFlight?.seq == seq {
                // Our own op, committed while we were away: it is its own acknowledgement.
                let next = try client.acknowledge(seq: seq, rev: rev)
                ot = client
                sentSeq = nil
                roster.integrate(rev: rev, op: op, client: clientID)
                out.print.append(m)
                if let next { queue(next, &out) }
            } else {
                let local = try client.applyRemote(op, rev: rev)
                try local.apply(to: &document)
                undo.transform(against: local)
                ot = client
                roster.integrate(rev: rev, op: op, client: m.client)
                own.transform(by: local, isOwnOp: false)
                out.print.append(m)
            }
        } catch {
            out.problems.append("cannot apply the server's revision \(rev): \(error); reconnecting to resync")
            ot = client
            out.fatal = .error(code: .internalError, "client out of sync at revision \(rev)", room: room)
            return
        }
        if let target = catchUpTarget, client.revision >= target { goLive(&out) }
    }

    /// The in-flight op as the server committed it: transformed past everything committed before
    /// it, which is exactly what the state machine has done to its copy.
    func ownCommitted(_ client: OTClient) -> TextOperation {
        switch client.state {
        case .synchronized: return TextOperation()
        case .awaitingAck(let o), .awaitingAckWithBuffer(let o, _): return o
        }
    }

    mutating func ack(_ m: Message, _ out: inout Output) {
        out.print.append(m)
        guard var client = ot, let seq = m.seq, let rev = m.rev else { return }
        guard client.inFlight?.seq == seq else { return } // a repeat of an ack already taken
        let committed = ownCommitted(client)
        do {
            let next = try client.acknowledge(seq: seq, rev: rev)
            var line = Message(.op)
            line.room = m.room ?? room
            line.user = user
            line.client = clientID
            line.seq = seq
            line.rev = rev
            line.op = committed
            out.print.insert(line, at: out.print.count - 1) // the op, then its ack
            ot = client
            roster.integrate(rev: rev, op: committed, client: clientID)
            acknowledged(&out)
            sentSeq = nil
            if let next { queue(next, &out) }
        } catch {
            // An ack that skips a revision means something from the server was missed: catch up
            // again (the reconnect's catch-up carries our op too, which acknowledges it).
            out.problems.append("unexpected acknowledgement: \(error); reconnecting to resync")
            out.fatal = .error(code: .internalError, "client out of sync at revision \(rev)", room: room)
        }
    }

    /// A non-fatal error about an op. Only `unavailable` and `rate-limited` for the op in flight
    /// on this connection are worth sending again unchanged: the server committed nothing (or, if
    /// Redis failed after committing, the resubmission is deduplicated), and later it will.
    /// Other refusals (bad op, conflict) would be refused again.
    mutating func refused(_ m: Message, _ out: inout Output) {
        guard m.code == ErrorCode.unavailable.rawValue || m.code == ErrorCode.rateLimited.rawValue, let seq = m.seq, isLive,
              let inFlight = ot?.inFlight, inFlight.seq == seq, sentSeq == seq else { return }
        // Nothing of this op is outstanding on the connection any more: a reconnect or
        // `resubmit` sends it again.
        sentSeq = nil
        out.retry = seq
        out.retryCode = m.code
    }

    /// Sends the in-flight op `seq` again after an `unavailable` refusal, as a reconnect would
    /// (same client, seq, op and base). Nothing when the request is stale: the op was
    /// acknowledged meanwhile, the connection is not live, or it was sent again already (by a
    /// reconnect's catch-up).
    public mutating func resubmit(seq: Int) -> Output {
        var out = Output()
        guard isLive, let inFlight = ot?.inFlight, inFlight.seq == seq, sentSeq == nil else { return out }
        send(inFlight, &out)
        return out
    }

    mutating func goLive(_ out: inout Output) {
        catchUpTarget = nil
        isLive = true
        if let inFlight = ot?.inFlight, sentSeq != inFlight.seq { send(inFlight, &out) }
        // The server forgot us with the old connection: say again where we are.
        if own.isSet { sendPresence(&out) }
    }

    mutating func queue(_ s: OTClient.Submission, _ out: inout Output) {
        if isLive { send(s, &out) }
    }

    mutating func send(_ s: OTClient.Submission, _ out: inout Output) {
        var m = Message(.op)
        m.client = clientID
        m.seq = s.seq
        m.base = s.base
        m.op = s.op
        sentSeq = s.seq
        out.send.append(m)
    }

    // MARK: From the user

    /// A line of input: an op, a convenience edit, undo/redo, cursor or typing.
    /// - Precondition: `hasDocument` (the host holds input until the first welcome).
    public mutating func input(_ m: Message) -> Output {
        var out = Output()
        switch m.type {
        case .op:
            guard let op = m.op else { out.problems.append("op line without \"op\""); return out }
            edit(op, &out)
        case .insert:
            guard let pos = m.pos, let text = m.text else { out.problems.append("insert needs \"pos\" and \"text\""); return out }
            guard pos >= 0, pos <= document.count else {
                out.problems.append("insert at \(pos) is outside the document (0...\(document.count))")
                return out
            }
            edit(.insert(text, at: pos), &out)
        case .delete:
            guard let pos = m.pos, let len = m.len else { out.problems.append("delete needs \"pos\" and \"len\""); return out }
            guard pos >= 0, len >= 0, pos + len <= document.count else {
                out.problems.append("delete of \(len) at \(pos) is outside the document (length \(document.count))")
                return out
            }
            edit(.delete(pos ..< pos + len), &out)
        case .replace:
            guard let text = m.text else { out.problems.append("replace needs \"text\""); return out }
            edit(Self.diff(from: document.string, to: text), &out)
        case .undo:
            guard let op = undo.popUndo() else { out.problems.append("nothing to undo"); return out }
            apply(op, &out) { session, inverse in session.undo.recordUndone(inverse: inverse) }
        case .redo:
            guard let op = undo.popRedo() else { out.problems.append("nothing to redo"); return out }
            apply(op, &out) { session, inverse in session.undo.recordRedone(inverse: inverse) }
        case .cursor, .presence, .typing:
            setPresence(m, &out)
        case .event:
            var e = m
            e.room = nil
            if isLive { out.send.append(e) }
        default:
            out.problems.append("\(m.type.rawValue) lines are not input (use op, insert, delete, replace, undo, redo, cursor, typing or event)")
        }
        return out
    }

    mutating func edit(_ op: TextOperation, _ out: inout Output) {
        apply(op, &out) { session, inverse in session.undo.recordLocal(inverse: inverse) }
    }

    mutating func apply(_ op: TextOperation, _ out: inout Output, record: (inout ClientSession, TextOperation) -> Void) {
        guard !op.isNoop, var client = ot else { return }
        let inverse: TextOperation
        do {
            inverse = try op.inverted(against: document)
            try op.apply(to: &document)
        } catch {
            out.problems.append("\(error)")
            return
        }
        record(&self, inverse)
        own.transform(by: op, isOwnOp: true)
        if let submission = client.applyLocal(op) {
            ot = client
            queue(submission, &out)
        } else {
            ot = client
        }
    }

    /// The smallest single-range edit that turns `old` into `new`: common prefix and suffix are
    /// kept, the middle replaced.
    public static func diff(from old: String, to new: String) -> TextOperation {
        let a = Array(old.unicodeScalars), b = Array(new.unicodeScalars)
        var prefix = 0
        while prefix < a.count, prefix < b.count, a[prefix] == b[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < a.count - prefix, suffix < b.count - prefix, a[a.count - 1 - suffix] == b[b.count - 1 - suffix] { suffix += 1 }
        var op = TextOperation()
        op.retain(prefix)
        var inserted = String.UnicodeScalarView()
        inserted.append(contentsOf: b[prefix ..< b.count - suffix])
        op.insert(String(inserted))
        op.delete(a.count - prefix - suffix)
        op.trimTrailingRetain()
        return op
    }

    /// A polite goodbye.
    public func leave() -> Message { Message(.leave) }
}
