import CollabOT

/// Replays traces through the OT engine.
public enum TraceReplay {
    /// Applies every patch of a sequential trace, in order, as a `TextOperation`.
    /// `onCommit` sees each transaction as one op, committed as revision t + 1.
    public static func replaySequential(
        _ trace: Trace, progress: ((Int, Int) -> Void)? = nil, onCommit: ((CommittedOp) -> Void)? = nil
    ) throws -> TextRope {
        var doc = TextRope(trace.startContent)
        let total = trace.transactionCount
        for t in 0 ..< total {
            do {
                let op = try trace.operation(forTransaction: t)
                try op.apply(to: &doc)
                onCommit?(CommittedOp(rev: t + 1, client: "agent-0", seq: t + 1, op: op))
            } catch {
                throw TraceError("transaction \(t): \(error)")
            }
            if let progress, t & 0x3FFF == 0 { progress(t, total) }
        }
        return doc
    }

    /// What a concurrent replay did, for reports and tests.
    public struct ConcurrentStats: Sendable {
        /// Revisions the sequencer committed.
        public var revisions = 0
        /// Transactions that their client had to rebase past remote edits their author had not
        /// seen (see `replayConcurrent`).
        public var rebased = 0
        /// Remote ops that the server transformed (the op was made on an older revision).
        public var transformedByServer = 0
    }

    /// Replays a concurrent trace through the real client state machine (`OTClient`, one per
    /// agent) and the real `Sequencer`, then checks that every client converged on the server's
    /// document.
    ///
    /// Each transaction is made on its agent's client once the client has integrated every
    /// transaction its `parents` name. A client cannot always have integrated *only* those: it
    /// reads the server's stream in order, and the stream may hold a transaction its author had
    /// not seen before one it had (the trace was recorded peer to peer, not through a server).
    /// Such extra edits are kept aside, in the order they were applied, and the transaction's
    /// patches — written against its parents' document — are transformed past them before they
    /// are applied and sent. That is exactly what a real editor would have seen: a concurrent
    /// edit arriving just before the user typed.
    ///
    /// Limitation: with three or more agents, an extra edit may precede one the author had seen
    /// *and* be concurrent with it; moving it aside would need an exclusion transform, which the
    /// `text-unicode` type does not define. Such a trace is reported, not guessed at.
    public static func replayConcurrent(
        _ trace: Trace, progress: ((Int, Int) -> Void)? = nil, onCommit: ((CommittedOp) -> Void)? = nil
    ) throws -> (document: TextRope, stats: ConcurrentStats) {
        let agents = trace.agentCount
        let count = trace.transactionCount
        let agentOf = trace.agents
        // ancestors[t][b]: how many of agent b's transactions t had seen, counting t itself.
        var ancestors: [[Int]] = []
        ancestors.reserveCapacity(count)
        var indexInAgent = [Int](repeating: 0, count: count)
        var perAgent = [Int](repeating: 0, count: agents)
        for i in 0 ..< count {
            let agent = agentOf[i]
            var v = [Int](repeating: 0, count: agents)
            for p in trace.parents(ofTransaction: i) {
                for b in 0 ..< agents { v[b] = max(v[b], ancestors[p][b]) }
            }
            guard v[agent] == perAgent[agent] else {
                throw TraceError("transaction \(i): agent \(agent) had not seen its own earlier transactions")
            }
            indexInAgent[i] = perAgent[agent]
            perAgent[agent] += 1
            v[agent] += 1
            ancestors.append(v)
        }

        struct Extra {
            var txn: Int
            var op: TextOperation
        }
        struct SimClient {
            var ot: OTClient
            var doc: TextRope
            /// Position in the server's stream of committed ops.
            var read = 0
            /// Edits applied after everything this agent is known to have seen, oldest first.
            var extras: [Extra] = []
            /// Transactions integrated, per agent.
            var known: [Int]
            /// Transactions sent, by seq - 1.
            var sentTxns: [Int] = []
        }

        var server = Sequencer(document: TextRope(trace.startContent))
        var stream: [(agent: Int, commit: CommittedOp)] = []
        var txnOfCommit: [Int] = [] // parallel to `stream`
        var clients = (0 ..< agents).map { _ in
            SimClient(ot: OTClient(revision: 0), doc: TextRope(trace.startContent), known: [Int](repeating: 0, count: agents))
        }
        var stats = ConcurrentStats()

        /// Reads the next committed op from the server's stream into client `a`.
        func deliverNext(_ a: Int) throws {
            let (from, commit) = stream[clients[a].read]
            let txn = txnOfCommit[clients[a].read]
            clients[a].read += 1
            if from == a {
                if try clients[a].ot.acknowledge(seq: commit.seq, rev: commit.rev) != nil {
                    throw TraceError("internal: a buffered op appeared (one op in flight at a time here)")
                }
                return
            }
            let local = try clients[a].ot.applyRemote(commit.op, rev: commit.rev)
            try local.apply(to: &clients[a].doc)
            clients[a].extras.append(Extra(txn: txn, op: local))
            clients[a].known[from] += 1
        }

        for t in 0 ..< count {
            let a = agentOf[t]
            let need = ancestors[t]
            // Integrate until every remote ancestor is in, and our own last op is acknowledged
            // (so this transaction is sent at once and never waits in a buffer).
            while true {
                let missing = (0 ..< agents).contains { b in b != a && clients[a].known[b] < need[b] }
                guard missing || clients[a].ot.hasPendingChanges else { break }
                guard clients[a].read < stream.count else {
                    throw TraceError("transaction \(t): its parents were never committed")
                }
                try deliverNext(a)
            }
            // Edits the author had seen join the document proper; they lead the extras list.
            var seen = 0
            while seen < clients[a].extras.count {
                let x = clients[a].extras[seen].txn
                guard indexInAgent[x] < need[agentOf[x]] else { break }
                seen += 1
            }
            clients[a].extras.removeFirst(seen)
            for x in clients[a].extras where indexInAgent[x.txn] < need[agentOf[x.txn]] {
                throw TraceError("transaction \(t): needs an exclusion transform (edit \(x.txn) was seen, an earlier one was not)")
            }
            // The transaction, written against its parents' document, rebased past the extras.
            var op: TextOperation
            do { op = try trace.operation(forTransaction: t) } catch { throw TraceError("transaction \(t): \(error)") }
            if !clients[a].extras.isEmpty { stats.rebased += 1 }
            for k in clients[a].extras.indices {
                let extra = clients[a].extras[k].op
                // Concurrent inserts at one position: the lower agent's text goes first, which
                // is how the tool that recorded these traces orders them.
                let side: Side = a < agentOf[clients[a].extras[k].txn] ? .left : .right
                let rebased = op.transformed(against: extra, side: side)
                clients[a].extras[k].op = extra.transformed(against: op, side: side.opposite)
                op = rebased
            }
            do { try op.apply(to: &clients[a].doc) } catch { throw TraceError("transaction \(t): \(error)") }
            clients[a].known[a] += 1
            guard let submission = clients[a].ot.applyLocal(op) else { continue } // a no-op
            clients[a].sentTxns.append(t)
            let outcome = try server.submit(client: "agent-\(a)", seq: submission.seq, base: submission.base, op: submission.op)
            guard case .committed(let commit) = outcome else { throw TraceError("transaction \(t): sequencer saw a duplicate") }
            if submission.base < commit.rev - 1 { stats.transformedByServer += 1 }
            stream.append((a, commit))
            onCommit?(commit)
            txnOfCommit.append(t)
            if let progress, t & 0xFFF == 0 { progress(t, count) }
        }
        for a in 0 ..< agents {
            while clients[a].read < stream.count { try deliverNext(a) }
            guard clients[a].doc == server.document else {
                throw TraceError("client of agent \(a) diverged from the server")
            }
        }
        stats.revisions = server.revision
        return (server.document, stats)
    }

    /// Position (in scalars) of the first difference between `a` and `b`, or nil if equal.
    public static func firstDifference(_ a: String, _ b: String) -> Int? {
        var i = 0
        var x = a.unicodeScalars.makeIterator()
        var y = b.unicodeScalars.makeIterator()
        while true {
            let p = x.next(), q = y.next()
            if p == nil && q == nil { return nil }
            if p != q { return i }
            i += 1
        }
    }
}
