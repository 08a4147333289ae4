/// The client half of the OT protocol (the ot.js state machine), as a value with no I/O.
///
/// A client has at most one op in flight. Edits made while it waits are composed into one buffer,
/// sent when the in-flight op is acknowledged. Remote ops are transformed against the in-flight op
/// and the buffer before they are applied locally, and those two are rebased onto the remote op,
/// so every replica converges on the server's order.
///
/// Tie-breaking matches the server: an op the server has already committed wins ties, so local
/// pending ops take side `.right` against it.
public struct OTClient: Sendable {
    public enum State: Equatable, Sendable {
        case synchronized
        case awaitingAck(outstanding: TextOperation)
        case awaitingAckWithBuffer(outstanding: TextOperation, buffer: TextOperation)
    }

    /// An op to send: its sequence number and the revision it was made on.
    public struct Submission: Equatable, Sendable {
        public var seq: Int
        public var base: Int
        public var op: TextOperation
    }

    public enum ClientError: Error, Equatable, Sendable, CustomStringConvertible {
        case unexpectedAck(seq: Int)
        case revisionGap(expected: Int, got: Int)
        public var description: String {
            switch self {
            case .unexpectedAck(let seq): return "acknowledgement for op \(seq), which is not in flight"
            case let .revisionGap(expected, got): return "expected revision \(expected) from the server, got \(got)"
            }
        }
    }

    public private(set) var state: State = .synchronized
    /// The last server revision this client has integrated.
    public private(set) var revision: Int
    /// The sequence number of the in-flight op (valid while awaiting an ack).
    public private(set) var outstandingSeq: Int = 0
    /// The next sequence number to use.
    public private(set) var nextSeq: Int

    public init(revision: Int, nextSeq: Int = 1) {
        self.revision = revision
        self.nextSeq = nextSeq
    }

    /// The op in flight, as it should be resubmitted after a reconnect (same seq, same base).
    public var inFlight: Submission? {
        switch state {
        case .synchronized: return nil
        case .awaitingAck, .awaitingAckWithBuffer:
            return Submission(seq: outstandingSeq, base: outstandingBase, op: outstandingAsSent)
        }
    }

    /// The revision the in-flight op was made on. Transforming it locally against remote ops does
    /// not change what the server knows: it still has the original, made on this base.
    public private(set) var outstandingBase: Int = 0
    /// The in-flight op as originally sent (a resubmission must be byte-identical for dedupe to
    /// make sense, and the server transforms it itself).
    public private(set) var outstandingAsSent = TextOperation()

    public var hasPendingChanges: Bool { state != .synchronized }

    /// A local edit, already applied to the local document. Returns what to send now, if anything.
    public mutating func applyLocal(_ op: TextOperation) -> Submission? {
        guard !op.isNoop else { return nil }
        switch state {
        case .synchronized:
            return send(op)
        case .awaitingAck(let o):
            state = .awaitingAckWithBuffer(outstanding: o, buffer: op)
            return nil
        case .awaitingAckWithBuffer(let o, let b):
            state = .awaitingAckWithBuffer(outstanding: o, buffer: b.composed(with: op))
            return nil
        }
    }

    private mutating func send(_ op: TextOperation) -> Submission {
        outstandingSeq = nextSeq
        nextSeq += 1
        outstandingBase = revision
        outstandingAsSent = op
        state = .awaitingAck(outstanding: op)
        return Submission(seq: outstandingSeq, base: revision, op: op)
    }

    /// A remote op committed as `rev`. Returns the op to apply to the local document.
    public mutating func applyRemote(_ op: TextOperation, rev: Int) throws -> TextOperation {
        guard rev == revision + 1 else { throw ClientError.revisionGap(expected: revision + 1, got: rev) }
        revision = rev
        switch state {
        case .synchronized:
            return op
        case .awaitingAck(let o):
            let o2 = o.transformed(against: op, side: .right)
            let op2 = op.transformed(against: o, side: .left)
            state = .awaitingAck(outstanding: o2)
            return op2
        case .awaitingAckWithBuffer(let o, let b):
            let o2 = o.transformed(against: op, side: .right)
            let op1 = op.transformed(against: o, side: .left)
            let b2 = b.transformed(against: op1, side: .right)
            let op2 = op1.transformed(against: b, side: .left)
            state = .awaitingAckWithBuffer(outstanding: o2, buffer: b2)
            return op2
        }
    }

    /// The server committed our in-flight op as `rev`. Returns the buffered op to send next.
    public mutating func acknowledge(seq: Int, rev: Int) throws -> Submission? {
        guard state != .synchronized, seq == outstandingSeq else { throw ClientError.unexpectedAck(seq: seq) }
        guard rev == revision + 1 else { throw ClientError.revisionGap(expected: revision + 1, got: rev) }
        revision = rev
        switch state {
        case .synchronized:
            return nil
        case .awaitingAck:
            state = .synchronized
            return nil
        case .awaitingAckWithBuffer(_, let b):
            return send(b)
        }
    }

    /// The ops not yet acknowledged, transformed to apply after `revision`: what the local
    /// document has on top of the server's.
    public var pending: TextOperation? {
        switch state {
        case .synchronized: return nil
        case .awaitingAck(let o): return o
        case .awaitingAckWithBuffer(let o, let b): return o.composed(with: b)
        }
    }
}
