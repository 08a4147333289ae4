import CollabOT
import CollabPresence
import CollabProtocol

/// This client's presence as the user set it: the cursor in the local copy (which includes
/// edits the server has not acknowledged yet), the typing flag and status.
struct OwnPresence: Sendable {
    var cursor: Selection?
    var typing: Bool?
    var status: String?
    var extra: JSONObject?
    /// Not sent yet: the caret is inside text this client inserted and the server has not
    /// acknowledged, a place the server's revision has no position for.
    var held = false

    var isSet: Bool { cursor != nil || typing != nil || status != nil || extra != nil }

    /// The local copy changed: the caret moves with it (past text the user typed at it, not
    /// past text someone else inserted there).
    mutating func transform(by op: TextOperation, isOwnOp: Bool) {
        cursor = cursor?.transformed(by: op, isOwnOp: isOwnOp)
    }

    /// The whole document was replaced: keep the cursor, clamped.
    mutating func documentReplaced(length: Int) {
        guard let c = cursor else { return }
        cursor = Selection(anchor: min(c.anchor, length), head: min(c.head, length))
    }
}

extension ClientSession {
    /// A `cursor`, `typing` or `presence` line from the user: remembered, and sent when live.
    /// Presence is partial: a typing line keeps the cursor, a cursor line keeps typing.
    mutating func setPresence(_ m: Message, _ out: inout Output) {
        switch m.type {
        case .cursor:
            guard let anchor = m.anchor ?? m.pos, anchor >= 0, anchor <= document.count else {
                out.problems.append("cursor needs \"anchor\" (and \"head\") within the document (0...\(document.count))")
                return
            }
            let head = m.head ?? anchor
            guard head >= 0, head <= document.count else {
                out.problems.append("cursor head \(head) is outside the document (0...\(document.count))")
                return
            }
            own.cursor = Selection(anchor: anchor, head: head)
            if let typing = m.typing { own.typing = typing }
        case .typing:
            own.typing = m.typing ?? true
        default: // presence
            if let c = m.cursor {
                guard c.anchor >= 0, c.head >= 0, c.anchor <= document.count, c.head <= document.count else {
                    out.problems.append("cursor \(c.anchor)...\(c.head) is outside the document (0...\(document.count))")
                    return
                }
                own.cursor = c
            }
            if let typing = m.typing { own.typing = typing }
            if let status = m.status { own.status = status }
            if let fields = m.extra?.fields, !fields.isEmpty {
                var merged = own.extra ?? JSONObject()
                for f in fields { merged[f.key] = f.value }
                own.extra = merged
            }
        }
        if isLive { sendPresence(&out) }
    }

    /// Sends the whole own presence. The server only knows revision `ot.revision`, not our
    /// pending edits, so the cursor is mapped back through them first: the server moves it
    /// forward again, as the cursor owner's own ops, when they commit. Waiting for the edits to
    /// be acknowledged instead would silence the presence of anyone typing faster than the
    /// round trip. Only a caret inside our own unacknowledged text has no such place (mapped
    /// back it collapses to where the text starts, and forward again to where it ends): that
    /// presence waits for the acknowledgement.
    mutating func sendPresence(_ out: inout Output) {
        guard let ot else { return }
        var p = Message(.presence)
        p.rev = ot.revision
        if let c = own.cursor {
            let pending = pendingOps(ot)
            var mapped = c
            for op in pending.reversed() { mapped = mapped.transformed(by: op.positionInverse(), isOwnOp: false) }
            var forward = mapped
            for op in pending { forward = forward.transformed(by: op, isOwnOp: true) }
            guard forward == c else {
                own.held = true
                return
            }
            p.cursor = mapped
        }
        own.held = false
        p.typing = own.typing
        p.status = own.status
        p.extra = own.extra
        out.send.append(p)
    }

    /// The local edits the server has not acknowledged, oldest first.
    func pendingOps(_ client: OTClient) -> [TextOperation] {
        switch client.state {
        case .synchronized: return []
        case .awaitingAck(let o): return [o]
        case .awaitingAckWithBuffer(let o, let b): return [o, b]
        }
    }

    /// Where a member's cursor (as the roster has it, at the server's revision) is in the local
    /// copy: moved past the local edits not yet acknowledged. Nil when unknown, or when it
    /// refers to a revision this client has not reached yet.
    public func cursorInLocalDocument(of client: String) -> Selection? {
        guard let ot, let member = roster[client], var c = member.cursor, member.rev == ot.revision else { return nil }
        if client == clientID { return own.cursor }
        for op in pendingOps(ot) { c = c.transformed(by: op, isOwnOp: false) }
        return c
    }

    /// An acknowledgement arrived: a held presence may have a place now.
    mutating func acknowledged(_ out: inout Output) {
        if own.held && isLive { sendPresence(&out) }
    }

    /// Keeps the roster as the server reports it.
    mutating func observe(_ m: Message) {
        switch m.type {
        case .join: roster.join(m)
        case .leave: if let client = m.client { roster.leave(client: client) }
        case .presence: roster.update(m)
        case .roster: roster.replace(with: m.members ?? [])
        default: break
        }
    }
}
