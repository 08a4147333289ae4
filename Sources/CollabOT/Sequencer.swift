/// An op as the sequencer committed it: transformed onto the history, with its place in it.
public struct CommittedOp: Equatable, Sendable {
    public var rev: Int
    public var client: String
    public var seq: Int
    public var op: TextOperation

    public init(rev: Int, client: String, seq: Int, op: TextOperation) {
        self.rev = rev
        self.client = client
        self.seq = seq
        self.op = op
    }
}

/// The server half of OT (ShareDB's model) as a value: one room's document and totally ordered
/// history. An op made on revision `base` is transformed against every op committed after `base`
/// and committed as the next revision. (`client`, `seq`) identifies a submission, so a resubmit
/// after a reconnect is recognised and answered with its original revision instead of being
/// applied twice.
///
/// Revision r is the document after r committed ops; revision 0 is the starting document.
public struct Sequencer: Sendable {
    public enum SubmitError: Error, Equatable, Sendable, CustomStringConvertible {
        /// `base` is newer than anything committed.
        case baseInFuture(base: Int, head: Int)
        /// `base` is older than the retained history, so the op cannot be transformed.
        case historyUnavailable(base: Int, oldest: Int)
        /// The transformed op does not fit the document.
        case doesNotFit(OTError)
        /// Sequence numbers of a client must grow; this one is older than its last commit
        /// and no longer in the retained history.
        case staleSequence(client: String, seq: Int, last: Int)

        public var description: String {
            switch self {
            case let .baseInFuture(base, head):
                return "base revision \(base) is ahead of the room's revision \(head)"
            case let .historyUnavailable(base, oldest):
                return "base revision \(base) is older than the retained history (from \(oldest)); rejoin to resync"
            case let .doesNotFit(e): return e.description
            case let .staleSequence(client, seq, last):
                return "op \(seq) of client \(client) is older than its last committed op \(last)"
            }
        }
    }

    public enum Outcome: Equatable, Sendable {
        /// Newly committed.
        case committed(CommittedOp)
        /// Already committed earlier as `rev`: acknowledge again, apply nothing.
        case duplicate(rev: Int)
    }

    public private(set) var document: TextRope
    /// The current revision: number of ops committed since revision 0.
    public private(set) var revision: Int
    /// Retained history, oldest first; `history[i].rev == firstRetainedRev + i`.
    public private(set) var history: [CommittedOp] = []
    /// Per client: the last committed sequence number and its revision.
    public private(set) var lastCommitted: [String: (seq: Int, rev: Int)] = [:]

    public init(document: TextRope = TextRope(), revision: Int = 0) {
        self.document = document
        self.revision = revision
    }

    /// The oldest revision an op may be based on (ops after it are retained).
    public var oldestBase: Int { revision - history.count }

    public func committed(after rev: Int) -> ArraySlice<CommittedOp>? {
        guard rev >= oldestBase, rev <= revision else { return nil }
        return history[(rev - oldestBase)...]
    }

    public mutating func submit(client: String, seq: Int, base: Int, op: TextOperation) throws -> Outcome {
        if let last = lastCommitted[client], seq <= last.seq {
            if seq == last.seq { return .duplicate(rev: last.rev) }
            if let old = history.last(where: { $0.client == client && $0.seq == seq }) {
                return .duplicate(rev: old.rev)
            }
            throw SubmitError.staleSequence(client: client, seq: seq, last: last.seq)
        }
        guard base <= revision else { throw SubmitError.baseInFuture(base: base, head: revision) }
        guard base >= oldestBase else { throw SubmitError.historyUnavailable(base: base, oldest: oldestBase) }
        var op = op
        // By index, not through a slice: a live slice would share `history`'s buffer and make
        // the append below copy the whole history on every commit.
        for i in (base - oldestBase) ..< history.count { op = op.transformed(against: history[i].op, side: .right) }
        do { try op.apply(to: &document) } catch let e as OTError { throw SubmitError.doesNotFit(e) }
        revision += 1
        let commit = CommittedOp(rev: revision, client: client, seq: seq, op: op)
        history.append(commit)
        lastCommitted[client] = (seq, revision)
        return .committed(commit)
    }

    /// Records an op committed elsewhere (a journal being replayed, another server instance).
    public mutating func integrate(_ commit: CommittedOp) throws {
        precondition(commit.rev == revision + 1, "integrate: revisions must be consecutive")
        try commit.op.apply(to: &document)
        revision = commit.rev
        history.append(commit)
        lastCommitted[commit.client] = (commit.seq, commit.rev)
    }

    /// Gives a sequencer started from a snapshot the ops that led up to it, so submissions based
    /// on older revisions can still be transformed and catch-ups still reach back. The ops are
    /// trusted to be the ones that produced `document` (they are not applied); `ops` must be
    /// consecutive, end at `revision`, and the history must be empty.
    public mutating func seedHistory(_ ops: [CommittedOp]) {
        precondition(history.isEmpty, "seedHistory: the history already has ops")
        guard let last = ops.last else { return }
        precondition(last.rev == revision, "seedHistory: the ops must end at the current revision")
        assert(zip(ops, ops.dropFirst()).allSatisfy { $0.rev + 1 == $1.rev }, "seedHistory: revisions must be consecutive")
        history = ops
        for op in ops { lastCommitted[op.client] = (op.seq, op.rev) }
    }

    /// Restores the dedupe table (saved beside a snapshot), so a client's resubmission after a
    /// server restart is still recognised.
    public mutating func restoreLastCommitted(_ table: [String: (seq: Int, rev: Int)]) {
        for (client, entry) in table where (lastCommitted[client]?.seq ?? 0) < entry.seq {
            lastCommitted[client] = entry
        }
    }

    /// Forgets history older than `keep` revisions (the dedupe table is kept).
    public mutating func trimHistory(keeping keep: Int) {
        if history.count > keep { history.removeFirst(history.count - keep) }
    }
}
