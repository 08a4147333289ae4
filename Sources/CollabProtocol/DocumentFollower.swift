import CollabOT

/// Follows a room's document through its message stream: `welcome`/`snapshot` lines with `doc`
/// set it, `op` lines change it, everything else passes by. Ops carrying `rev` must come in
/// revision order: a gap or a repeat is refused, never guessed at. What `collab-ot-apply apply`
/// does per line, as a value other tools can embed.
public struct DocumentFollower: Sendable {
    public enum Outcome: Equatable, Sendable {
        /// The document or its revision changed.
        case changed
        /// The message is not about the text (acks, presence, …).
        case ignored
        /// The message could not be applied; the document is unchanged.
        case refused(String)
    }

    public private(set) var document: TextRope
    public private(set) var revision = 0
    /// Revisions are checked only once a message has said which one the document is at.
    var tracking = false

    public init(document: TextRope = TextRope()) { self.document = document }

    public mutating func handle(_ m: DocumentEvent) -> Outcome {
        switch m.type {
        case .welcome, .snapshot:
            guard let text = m.doc else { return .ignored } // a catch-up welcome: ops follow
            document = TextRope(text)
            revision = m.rev ?? 0
            tracking = m.rev != nil
            return .changed
        case .op:
            guard let op = m.op else { return .refused("op message without \"op\"") }
            if let r = m.rev, tracking {
                if r <= revision { return .refused("revision \(r) repeats (document is at revision \(revision)); skipped") }
                if r != revision + 1 { return .refused("revision gap: expected \(revision + 1), got \(r); op skipped") }
            }
            do { try op.apply(to: &document) } catch { return .refused("op does not apply: \(error)") }
            if let r = m.rev {
                revision = r
                tracking = true
            } else {
                revision += 1
            }
            return .changed
        default:
            return .ignored
        }
    }

    /// The document as a `snapshot` message.
    public var snapshot: Message {
        var m = Message(.snapshot)
        m.rev = revision
        m.doc = document.string
        return m
    }
}

extension DocumentEvent {
    /// The fields of an already decoded message, for tools that need the whole message anyway
    /// and follow the document too.
    public init(_ m: Message) {
        self.init(type: m.type, rev: m.rev, op: m.op, doc: m.doc)
    }
}
