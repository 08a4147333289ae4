import CollabTransport

/// The Redis layout of a room's shared history, so that any number of server instances can
/// serve one room (DESIGN §3). Every key of a room carries the hash tag `{ROOM}`, so in a Redis
/// Cluster they share one slot and the commit script may touch them all.
public struct RoomKeys: Sendable, Equatable {
    public let room: String
    public init(room: String) { self.room = room }

    var tag: String { "collab:{\(room)}" }
    /// The room's revision: the number of committed ops (absent = 0).
    public var revision: String { tag + ":rev" }
    /// Stream of committed op messages; entry id `REV-0` holds revision REV in field `m`.
    public var log: String { tag + ":log" }
    /// Hash client → "seq:rev" of its last committed op, for (client, seq) dedupe.
    public var clients: String { tag + ":clients" }
    /// Hash of the latest snapshot: `rev`, and `m`, a `snapshot` message (the document at `rev`).
    public var snapshot: String { tag + ":snap" }
    /// Hash client → roster entry of each member, owned by the instance it is connected to
    /// (see `RoomRoster`).
    public var members: String { tag + ":members" }
    /// Sorted set client → deadline (Redis time, milliseconds) of each member.
    public var alive: String { tag + ":alive" }
    /// Pub/Sub channel on which committed ops (and the room's other traffic) are published.
    public var channel: String { tag + ":ch" }
}

/// What the commit script decided.
public enum CommitOutcome: Equatable, Sendable {
    /// Appended as this revision and published.
    case committed(rev: Int)
    /// This (client, seq) was committed before, as this revision: acknowledge, apply nothing.
    case duplicate(rev: Int)
    /// The client has committed a later seq already; this one is older than the dedupe table knows.
    case stale(lastSeq: Int)
    /// Someone else committed first: the room is at `head`. Read the ops after the revision
    /// you had, transform, and try again.
    case conflict(head: Int)
}

/// Commit and read primitives over `RoomKeys`. The commit is one Lua script, so checking the
/// expected revision, the dedupe table, appending, and publishing happen atomically.
public enum RoomLog {
    /// KEYS: revision, log, clients. ARGV: expected current revision, client, seq, the committed
    /// op message (JSON carrying rev = expected + 1), channel.
    ///
    /// The stream is never trimmed here: only behind a snapshot (`snapshotSource`), or a room
    /// whose snapshot is older than the stream's first entry could not be loaded any more.
    public static let commitSource = """
        local head = tonumber(redis.call('GET', KEYS[1]) or '0')
        local expected = tonumber(ARGV[1])
        local seq = tonumber(ARGV[3])
        local last = redis.call('HGET', KEYS[3], ARGV[2])
        if last then
          local sep = string.find(last, ':', 1, true)
          local lastSeq = tonumber(string.sub(last, 1, sep - 1))
          if seq == lastSeq then return {'duplicate', tonumber(string.sub(last, sep + 1))} end
          if seq < lastSeq then return {'stale', lastSeq} end
        end
        if head ~= expected then return {'conflict', head} end
        local rev = head + 1
        redis.call('XADD', KEYS[2], rev .. '-0', 'm', ARGV[4])
        redis.call('SET', KEYS[1], rev)
        redis.call('HSET', KEYS[3], ARGV[2], seq .. ':' .. rev)
        redis.call('PUBLISH', ARGV[5], ARGV[4])
        return {'ok', rev}
        """

    /// Commits one op through `script` (a `RedisScript(source: RoomLog.commitSource)` kept per
    /// connection, so it is loaded once).
    public static func commit(
        on connection: RedisConnection, script: RedisScript, keys: RoomKeys,
        expectedRevision: Int, client: String, seq: Int, message: [UInt8],
        _ completion: @escaping (Result<CommitOutcome, RedisError>) -> Void
    ) {
        let args: [[UInt8]] = [Array(String(expectedRevision).utf8), Array(client.utf8), Array(String(seq).utf8),
                               message, Array(keys.channel.utf8)]
        script.evalsha(connection, keys: [keys.revision, keys.log, keys.clients].map { Array($0.utf8) }, args: args) { result in
            completion(result.flatMap { reply in
                verdict(reply, of: "the commit script") { word, n in
                    switch word {
                    case "ok": return .committed(rev: n)
                    case "duplicate": return .duplicate(rev: n)
                    case "stale": return .stale(lastSeq: n)
                    case "conflict": return .conflict(head: n)
                    default: return nil
                    }
                }
            })
        }
    }

    /// Several ops of one committer in one round trip, all or nothing, as revisions expected+1,
    /// expected+2, ... KEYS: revision, log, clients. ARGV: expected current revision, channel,
    /// then client, seq, message for each op (each message already carrying its revision).
    /// Any op the dedupe table knows (a resubmission) refuses the whole batch with
    /// {'dedupe', i}: the caller then commits them one by one, which answers each properly.
    public static let commitBatchSource = """
        local head = tonumber(redis.call('GET', KEYS[1]) or '0')
        local expected = tonumber(ARGV[1])
        local n = (#ARGV - 2) / 3
        local seen = {}
        for i = 0, n - 1 do
          local client = ARGV[3 + 3 * i]
          local seq = tonumber(ARGV[4 + 3 * i])
          local last = seen[client]
          if not last then
            local v = redis.call('HGET', KEYS[3], client)
            if v then last = tonumber(string.sub(v, 1, string.find(v, ':', 1, true) - 1)) end
          end
          if last and seq <= last then return {'dedupe', i + 1} end
          seen[client] = seq
        end
        if head ~= expected then return {'conflict', head} end
        for i = 0, n - 1 do
          local rev = head + 1 + i
          redis.call('XADD', KEYS[2], rev .. '-0', 'm', ARGV[5 + 3 * i])
          redis.call('HSET', KEYS[3], ARGV[3 + 3 * i], ARGV[4 + 3 * i] .. ':' .. rev)
          redis.call('PUBLISH', ARGV[2], ARGV[5 + 3 * i])
        end
        redis.call('SET', KEYS[1], head + n)
        return {'ok', head + 1}
        """

    /// What the batch script decided.
    public enum BatchOutcome: Equatable, Sendable {
        /// Committed as `first`, `first + 1`, ... and published.
        case committed(first: Int)
        /// Op number `index` (1-based) was committed before, or is older than its client's last:
        /// nothing was written.
        case dedupe(index: Int)
        /// Someone else committed first: the room is at `head`; nothing was written.
        case conflict(head: Int)
    }

    public static func commitBatch(
        on connection: RedisConnection, script: RedisScript, keys: RoomKeys, expectedRevision: Int,
        ops: [(client: String, seq: Int, message: [UInt8])],
        _ completion: @escaping (Result<BatchOutcome, RedisError>) -> Void
    ) {
        var args: [[UInt8]] = [Array(String(expectedRevision).utf8), Array(keys.channel.utf8)]
        args.reserveCapacity(2 + 3 * ops.count)
        for op in ops { args += [Array(op.client.utf8), Array(String(op.seq).utf8), op.message] }
        script.evalsha(connection, keys: [keys.revision, keys.log, keys.clients].map { Array($0.utf8) }, args: args) { result in
            completion(result.flatMap { reply in
                verdict(reply, of: "the batch commit script") { word, n in
                    switch word {
                    case "ok": return .committed(first: n)
                    case "dedupe": return .dedupe(index: n)
                    case "conflict": return .conflict(head: n)
                    default: return nil
                    }
                }
            })
        }
    }

    /// The committed op messages after revision `after`, oldest first (at most `count`), as
    /// (revision, message bytes). Fewer than asked for, with a first revision above `after + 1`,
    /// means the stream was trimmed past what the caller has.
    public static func read(
        on connection: RedisConnection, keys: RoomKeys, after: Int, count: Int = 1000,
        _ completion: @escaping (Result<[(rev: Int, message: [UInt8])], RedisError>) -> Void
    ) {
        connection.command(["XRANGE", keys.log, "(\(after)-0", "+", "COUNT", String(count)]) { result in
            completion(result.flatMap { reply in
                guard let entries = reply.array else { return .failure(.reply("XRANGE: unexpected reply \(reply)")) }
                var out: [(rev: Int, message: [UInt8])] = []
                out.reserveCapacity(entries.count)
                for entry in entries {
                    guard let pair = entry.array, pair.count == 2, let id = pair[0].string,
                          let rev = Int(id.prefix { $0 != "-" }), let fields = pair[1].array,
                          fields.count >= 2, let message = fields[1].bytes else {
                        return .failure(.reply("XRANGE: malformed entry \(entry)"))
                    }
                    out.append((rev, message))
                }
                return .success(out)
            })
        }
    }

    /// The scripts answer {word, number}: `decode` names the outcome, nil for a word it does not
    /// know.
    static func verdict<T>(_ reply: RedisReply, of script: String, _ decode: (String, Int) -> T?) -> Result<T, RedisError> {
        guard let parts = reply.array, parts.count == 2, let word = parts[0].string, let n = parts[1].integer else {
            return .failure(.reply("unexpected reply from \(script): \(reply)"))
        }
        guard let outcome = decode(word, Int(n)) else { return .failure(.reply("unexpected reply from \(script): \(word)")) }
        return .success(outcome)
    }

    // MARK: Snapshots

    /// KEYS: snapshot, log. ARGV: revision, the `snapshot` message, ops to keep in the stream
    /// behind it. Stores the snapshot unless one at the same or a later revision is there
    /// already (instances race to write them), then trims the stream to the entries after
    /// `revision - keep`, so `since` catch-ups and late transforms still reach that far back.
    /// `MINID ~` trims whole stream nodes only: cheap, and it may keep a few more.
    public static let snapshotSource = """
        local current = tonumber(redis.call('HGET', KEYS[1], 'rev') or '-1')
        local rev = tonumber(ARGV[1])
        if rev <= current then return {'older', current} end
        redis.call('HSET', KEYS[1], 'rev', rev, 'm', ARGV[2])
        local keep = tonumber(ARGV[3])
        local trimmed = 0
        if rev - keep > 0 then
          trimmed = redis.call('XTRIM', KEYS[2], 'MINID', '~', (rev - keep + 1) .. '-0')
        end
        return {'ok', trimmed}
        """

    /// What `writeSnapshot` did.
    public enum SnapshotOutcome: Equatable, Sendable {
        /// Stored; this many stream entries were trimmed behind it.
        case stored(trimmed: Int)
        /// A snapshot at `revision` (the same or later) was there already: nothing changed.
        case superseded(revision: Int)
    }

    /// Stores `message` (a `snapshot` message of the document at `revision`) through `script`
    /// (a `RedisScript(source: RoomLog.snapshotSource)`), and trims the stream to `keep` ops
    /// behind it.
    public static func writeSnapshot(
        on connection: RedisConnection, script: RedisScript, keys: RoomKeys,
        revision: Int, message: [UInt8], keep: Int,
        _ completion: @escaping (Result<SnapshotOutcome, RedisError>) -> Void
    ) {
        precondition(revision >= 0 && keep >= 0, "writeSnapshot: revision and keep must not be negative")
        let args: [[UInt8]] = [Array(String(revision).utf8), message, Array(String(keep).utf8)]
        script.evalsha(connection, keys: [keys.snapshot, keys.log].map { Array($0.utf8) }, args: args) { result in
            completion(result.flatMap { reply in
                verdict(reply, of: "the snapshot script") { word, n in
                    switch word {
                    case "ok": return .stored(trimmed: n)
                    case "older": return .superseded(revision: n)
                    default: return nil
                    }
                }
            })
        }
    }

    /// The room's latest snapshot as (revision, `snapshot` message bytes), nil when it has none.
    public static func readSnapshot(
        on connection: RedisConnection, keys: RoomKeys,
        _ completion: @escaping (Result<(rev: Int, message: [UInt8])?, RedisError>) -> Void
    ) {
        connection.command(["HMGET", keys.snapshot, "rev", "m"]) { result in
            completion(result.flatMap { reply in
                guard let parts = reply.array, parts.count == 2 else {
                    return .failure(.reply("HMGET: unexpected reply \(reply)"))
                }
                if parts[0].isNull && parts[1].isNull { return .success(nil) }
                guard let text = parts[0].string, let rev = Int(text), rev >= 0, let message = parts[1].bytes else {
                    return .failure(.reply("the snapshot hash \(keys.snapshot) is malformed"))
                }
                return .success((rev, message))
            })
        }
    }
}
