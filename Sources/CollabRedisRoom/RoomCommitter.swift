// The Redis commit path of one room, reusable by collab-bridge --commit and collab-serve --redis:
// transform an op made on revision `base` against what was committed since, commit it through the
// Lua script with the expected revision, and on a conflict read what is missing, transform further
// and retry. Loop thread only; callback based.
import CollabOT
import CollabProtocol
import CollabRedis
import CollabTransport
#if canImport(Glibc)
import Glibc
#endif

/// Why a submission was not committed.
public enum RoomCommitError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `base` is older than the oldest op the stream still holds: the op cannot be transformed.
    case historyUnavailable(base: Int, oldest: Int)
    /// `base` is newer than the room's head.
    case baseInFuture(base: Int, head: Int)
    /// The client committed a later `seq` already.
    case stale(seq: Int, lastSeq: Int)
    /// Still conflicting after this many attempts (the room is too busy).
    case tooManyConflicts(attempts: Int)
    /// A committed op in the stream could not be decoded.
    case corruptLog(rev: Int, reason: String)
    /// Redis failed (not connected, timeout, lost connection: the op may or may not be committed;
    /// resubmitting the same (client, seq) is safe).
    case redis(RedisError)

    public var code: ErrorCode {
        switch self {
        case .historyUnavailable: return .historyUnavailable
        case .baseInFuture: return .badOp
        case .stale: return .conflict
        // Transient, like Redis being away: the client sends it again later (collab-join does).
        case .tooManyConflicts: return .unavailable
        case .corruptLog: return .internalError
        case .redis: return .unavailable
        }
    }

    public var description: String {
        switch self {
        case let .historyUnavailable(base, oldest):
            return "history-unavailable: base revision \(base) is older than the retained history (from \(oldest))"
        case let .baseInFuture(base, head):
            return "base revision \(base) is ahead of the room's revision \(head)"
        case let .stale(seq, last):
            return "op \(seq) is older than this client's last committed op \(last)"
        case let .tooManyConflicts(n):
            return "still conflicting after \(n) attempts (the room is very busy); send it again"
        case let .corruptLog(rev, reason):
            return "committed op \(rev) in the stream is unreadable: \(reason)"
        case let .redis(e):
            return e.description
        }
    }
}

/// What a successful submission became.
public enum RoomCommitResult: Equatable, Sendable {
    /// Committed as `message.rev`; `message` is the committed `op` message as published.
    case committed(Message)
    /// This (client, seq) had been committed before as `rev`.
    case duplicate(rev: Int)

    public var rev: Int {
        switch self {
        case .committed(let m): return m.rev ?? 0
        case .duplicate(let rev): return rev
        }
    }
}

/// Commits ops to one room's Redis history. One commit is in flight at a time (the rest wait in
/// order), so a committer never conflicts with itself; conflicts with other committers (other
/// server instances, other bridges) are resolved by reading, transforming and retrying.
///
/// Group commit: what queued up behind the commit in flight goes in the next round trip as one
/// batch (up to `maxBatch` ops), each transformed past the ones before it, all committed or none.
/// Without it a room's commit rate is one per Redis round trip per instance, and any hiccup
/// (a busy CPU, a slow reply) turns into a queue that every writer waits in.
public final class RoomCommitter {
    public let connection: RedisConnection
    public let keys: RoomKeys
    public let script: RedisScript
    public let batchScript: RedisScript
    /// Most ops committed in one round trip.
    public var maxBatch = 64
    /// Commit attempts per submission before giving up with `.tooManyConflicts`.
    public var maxAttempts: Int
    /// Entries per XRANGE page.
    public var pageSize: Int
    /// Milliseconds since the epoch for `ts` (tests replace it).
    public var clock: () -> Int = { RoomCommitter.nowMillis() }

    /// Committed ops read from the stream (or committed here), by revision: `cache[i]` has
    /// revision `cacheStart + i`. Only a contiguous run is kept.
    public private(set) var cacheStart = 1
    var cache: [TextOperation] = []
    /// The highest revision known to be committed (from the cache, commits or conflicts).
    public private(set) var head = 0
    /// Largest number of ops kept in the cache; older ones are dropped.
    public var cacheLimit = 10_000

    struct Submission {
        var client: String
        var seq: Int
        var base: Int?
        var op: TextOperation
        var user: String?
        var completion: (Result<RoomCommitResult, RoomCommitError>) -> Void
        /// Commit alone (a batch containing it met the dedupe table).
        var alone = false
    }

    /// Conflicts met so far (another committer was first), and stream reads made: diagnostics.
    public private(set) var conflicts = 0
    public private(set) var reads = 0
    /// Commit round trips that carried more than one op, and the ops they carried.
    public private(set) var batches = 0
    public private(set) var batchedOps = 0

    var queue: [Submission] = []
    var busy = false

    public init(connection: RedisConnection, room: String, script: RedisScript = RedisScript(source: RoomLog.commitSource),
                batchScript: RedisScript = RedisScript(source: RoomLog.commitBatchSource),
                maxAttempts: Int = 50, pageSize: Int = 1000) {
        self.connection = connection
        self.keys = RoomKeys(room: room)
        self.script = script
        self.batchScript = batchScript
        self.maxAttempts = maxAttempts
        self.pageSize = pageSize
    }

    public var room: String { keys.room }
    /// Submissions waiting or in flight.
    public var pending: Int { queue.count + (busy ? 1 : 0) }

    public static func nowMillis() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int(ts.tv_sec) * 1000 + Int(ts.tv_nsec) / 1_000_000
    }

    /// Submits `op`, made on revision `base`, as (`client`, `seq`). A nil `base` means the room's
    /// revision when the submission's turn comes (the op applies to the latest document).
    /// `completion` runs once on the loop thread.
    public func submit(client: String, seq: Int, base: Int?, op: TextOperation, user: String? = nil,
                       completion: @escaping (Result<RoomCommitResult, RoomCommitError>) -> Void) {
        queue.append(Submission(client: client, seq: seq, base: base, op: op, user: user, completion: completion))
        next()
    }

    /// Tells the committer about an op committed elsewhere (e.g. seen on the channel), so the next
    /// transform need not read it. Ignored unless it extends the cache contiguously.
    public func learn(rev: Int, op: TextOperation) {
        if cache.isEmpty {
            cacheStart = rev
            cache = [op]
        } else if rev == cacheStart + cache.count {
            cache.append(op)
        } else {
            return
        }
        head = max(head, rev)
        trimCache()
    }

    func trimCache() {
        if cache.count > cacheLimit {
            let drop = cache.count - cacheLimit
            cache.removeFirst(drop)
            cacheStart += drop
        }
    }

    func next() {
        guard !busy, !queue.isEmpty else { return }
        busy = true
        // The leading submissions that know their base and may share a round trip.
        var batch: [Submission] = []
        while batch.count < maxBatch, let s = queue.first, s.base != nil, !s.alone {
            batch.append(queue.removeFirst())
        }
        if batch.count > 1 { return attemptBatch(batch, attempts: 0, readFirst: false) }
        if let s = batch.first { return attempt(s, op: s.op, transformedTo: s.base!, attempts: 0) }
        var s = queue.removeFirst()
        if let base = s.base {
            attempt(s, op: s.op, transformedTo: base, attempts: 0)
            return
        }
        connection.command(["GET", keys.revision]) { [self] result in
            switch result {
            case .failure(let e):
                finish(s, .failure(.redis(e)))
            case .success(let reply):
                let rev = reply.string.flatMap { Int($0) } ?? 0
                head = max(head, rev)
                s.base = rev
                attempt(s, op: s.op, transformedTo: rev, attempts: 0)
            }
        }
    }

    func finish(_ s: Submission, _ result: Result<RoomCommitResult, RoomCommitError>) {
        busy = false
        s.completion(result)
        next()
    }

    func finish(_ batch: [Submission], _ results: [Result<RoomCommitResult, RoomCommitError>]) {
        busy = false
        for (s, r) in zip(batch, results) { s.completion(r) }
        next()
    }

    /// Commits a batch at the cache's head: each op transformed past the cached ops after its
    /// base, then past the batch's earlier ops (which commit just before it).
    func attemptBatch(_ batch: [Submission], attempts: Int, readFirst: Bool) {
        let minBase = batch.lazy.map { $0.base! }.min()!
        let maxBase = batch.lazy.map { $0.base! }.max()!
        let cacheEnd = cacheStart + cache.count - 1
        guard minBase >= cacheStart - 1 && maxBase <= cacheEnd else {
            if readFirst {
                // A base the stream has not reached: let each op meet its own error alone.
                return splitUp(batch)
            }
            ensureCached(after: minBase, upTo: nil) { [self] result in
                if case .failure(let e) = result { return finish(batch, batch.map { _ in .failure(e) }) }
                attemptBatch(batch, attempts: attempts, readFirst: true)
            }
            return
        }
        var ops: [TextOperation] = []
        var messages: [Message] = []
        let ts = clock()
        for (i, s) in batch.enumerated() {
            var op = s.op
            if s.base! < cacheEnd {
                for r in (s.base! + 1) ... cacheEnd { op = op.transformed(against: cache[r - cacheStart], side: .right) }
            }
            for earlier in ops { op = op.transformed(against: earlier, side: .right) }
            ops.append(op)
            messages.append(message(s, op: op, rev: cacheEnd + 1 + i, ts: ts))
        }
        let wire = zip(batch, messages).map { (client: $0.client, seq: $0.seq, message: Array($1.json.utf8)) }
        RoomLog.commitBatch(on: connection, script: batchScript, keys: keys, expectedRevision: cacheEnd, ops: wire) { [self] result in
            switch result {
            case .failure(let e):
                finish(batch, batch.map { _ in .failure(.redis(e)) })
            case .success(.committed(let first)):
                batches += 1
                batchedOps += batch.count
                for (i, op) in ops.enumerated() { learn(rev: first + i, op: op) }
                head = max(head, first + batch.count - 1)
                finish(batch, messages.map { .success(.committed($0)) })
            case .success(.dedupe):
                splitUp(batch)
            case .success(.conflict(let h)):
                conflicts += 1
                head = max(head, h)
                if maxBase > h { return splitUp(batch) }
                if attempts + 1 >= maxAttempts {
                    return finish(batch, batch.map { _ in .failure(.tooManyConflicts(attempts: attempts + 1)) })
                }
                ensureCached(after: cacheEnd, upTo: h) { [self] r in
                    if case .failure(let e) = r { return finish(batch, batch.map { _ in .failure(e) }) }
                    attemptBatch(batch, attempts: attempts + 1, readFirst: false)
                }
            }
        }
    }

    /// The batch goes back to the front of the queue, to be committed one op at a time.
    func splitUp(_ batch: [Submission]) {
        queue.insert(contentsOf: batch.map { var s = $0; s.alone = true; return s }, at: 0)
        busy = false
        next()
    }

    /// `op` is the submission transformed onto revision `at`. When the cache reaches `at`, the op
    /// is transformed against the cached ops after it and committed at once, expecting the
    /// cache's last revision (optimistic: a conflict says what is missing); otherwise the stream
    /// is read from `at` first.
    func attempt(_ s: Submission, op: TextOperation, transformedTo at: Int, attempts: Int) {
        let cacheEnd = cacheStart + cache.count - 1
        guard at >= cacheStart - 1 && at <= cacheEnd else {
            ensureCached(after: at, upTo: nil) { [self] result in
                if case .failure(let e) = result { return finish(s, .failure(e)) }
                attempt(s, op: op, transformedTo: at, attempts: attempts)
            }
            return
        }
        var op = op
        if at < cacheEnd {
            for r in (at + 1) ... cacheEnd { op = op.transformed(against: cache[r - cacheStart], side: .right) }
        }
        commit(s, op: op, expected: cacheEnd, attempts: attempts + 1)
    }

    /// The committed op message as the stream stores it and the channel carries it.
    func message(_ s: Submission, op: TextOperation, rev: Int, ts: Int) -> Message {
        var m = Message(.op)
        m.room = keys.room
        m.user = s.user
        m.client = s.client
        m.seq = s.seq
        m.rev = rev
        m.op = op
        m.ts = ts
        return m
    }

    func commit(_ s: Submission, op: TextOperation, expected: Int, attempts: Int) {
        var m = message(s, op: op, rev: expected + 1, ts: clock())
        let bytes = Array(m.json.utf8)
        RoomLog.commit(on: connection, script: script, keys: keys, expectedRevision: expected, client: s.client,
                       seq: s.seq, message: bytes) { [self] result in
            switch result {
            case .failure(let e):
                finish(s, .failure(.redis(e)))
            case .success(.committed(let rev)):
                m.rev = rev
                learn(rev: rev, op: op)
                head = max(head, rev)
                finish(s, .success(.committed(m)))
            case .success(.duplicate(let rev)):
                finish(s, .success(.duplicate(rev: rev)))
            case .success(.stale(let last)):
                finish(s, .failure(.stale(seq: s.seq, lastSeq: last)))
            case .success(.conflict(let h)):
                conflicts += 1
                head = max(head, h)
                if let base = s.base, base > h { return finish(s, .failure(.baseInFuture(base: base, head: h))) }
                if attempts >= maxAttempts { return finish(s, .failure(.tooManyConflicts(attempts: attempts))) }
                ensureCached(after: expected, upTo: h) { [self] r in
                    if case .failure(let e) = r { return finish(s, .failure(e)) }
                    attempt(s, op: op, transformedTo: expected, attempts: attempts)
                }
            }
        }
    }

    /// Makes the cache hold every committed op after `after` up to `upTo` (nil: up to what the
    /// stream holds now), reading pages from the stream as needed.
    func ensureCached(after: Int, upTo: Int?, _ done: @escaping (Result<Void, RoomCommitError>) -> Void) {
        // Ops after `after` that the cache lacks at its start cannot be used, and ops only before
        // `after` are not needed: start the cache afresh.
        if !cache.isEmpty && (cacheStart > after + 1 || cacheStart + cache.count - 1 < after) {
            cache = []
        }
        if cache.isEmpty { cacheStart = after + 1 }
        let have = cacheStart + cache.count - 1
        if let upTo, have >= upTo { return done(.success(())) }
        reads += 1
        RoomLog.read(on: connection, keys: keys, after: have, count: pageSize) { [self] result in
            switch result {
            case .failure(let e):
                done(.failure(.redis(e)))
            case .success(let page):
                // `learn` may have extended the cache while the read was in flight: skip what it
                // added, or the page would look like a gap.
                let next = cacheStart + cache.count
                let entries = cache.isEmpty ? page[...] : page.drop { $0.rev >= cacheStart && $0.rev < next }
                if let first = entries.first, first.rev != cacheStart + cache.count {
                    // The stream no longer holds the op right after what we have.
                    if first.rev > after + 1 || cache.isEmpty {
                        return done(.failure(.historyUnavailable(base: after, oldest: first.rev - 1)))
                    }
                    cache = []
                    return ensureCached(after: after, upTo: upTo, done)
                }
                for e in entries {
                    let decoded: Result<Message, MessageError> = e.message.withUnsafeBufferPointer { buf in
                        do throws(MessageError) { return .success(try Message.decode(buf)) } catch { return .failure(error) }
                    }
                    switch decoded {
                    case .failure(let err): return done(.failure(.corruptLog(rev: e.rev, reason: err.description)))
                    case .success(let m):
                        guard let op = m.op else { return done(.failure(.corruptLog(rev: e.rev, reason: "no op"))) }
                        cache.append(op)
                        head = max(head, e.rev)
                    }
                }
                if page.count == pageSize {
                    return ensureCached(after: after, upTo: upTo, done)
                }
                if page.isEmpty, let upTo, cacheStart + cache.count - 1 < upTo {
                    // The head is ahead of the stream: the ops were trimmed (or the key lost).
                    return done(.failure(.historyUnavailable(base: after, oldest: upTo)))
                }
                if let upTo, cacheStart + cache.count - 1 < upTo {
                    return ensureCached(after: after, upTo: upTo, done)
                }
                done(.success(()))
            }
        }
    }
}
