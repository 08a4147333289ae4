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
    /// Hash of the latest snapshot (`rev`, `doc`).
    public var snapshot: String { tag + ":snap" }
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
    /// op message (JSON carrying rev = expected + 1), channel, stream entries to keep (0: all).
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
        local keep = tonumber(ARGV[6])
        if keep > 0 then
          redis.call('XADD', KEYS[2], 'MAXLEN', '~', keep, rev .. '-0', 'm', ARGV[4])
        else
          redis.call('XADD', KEYS[2], rev .. '-0', 'm', ARGV[4])
        end
        redis.call('SET', KEYS[1], rev)
        redis.call('HSET', KEYS[3], ARGV[2], seq .. ':' .. rev)
        redis.call('PUBLISH', ARGV[5], ARGV[4])
        return {'ok', rev}
        """

    /// Commits one op through `script` (a `RedisScript(source: RoomLog.commitSource)` kept per
    /// connection, so it is loaded once).
    public static func commit(
        on connection: RedisConnection, script: RedisScript, keys: RoomKeys,
        expectedRevision: Int, client: String, seq: Int, message: [UInt8], keep: Int = 0,
        _ completion: @escaping (Result<CommitOutcome, RedisError>) -> Void
    ) {
        let args: [[UInt8]] = [Array(String(expectedRevision).utf8), Array(client.utf8), Array(String(seq).utf8),
                               message, Array(keys.channel.utf8), Array(String(keep).utf8)]
        script.evalsha(connection, keys: [keys.revision, keys.log, keys.clients].map { Array($0.utf8) }, args: args) { result in
            completion(result.flatMap { reply in
                guard let parts = reply.array, parts.count == 2, let word = parts[0].string, let n = parts[1].integer else {
                    return .failure(.reply("unexpected reply from the commit script: \(reply)"))
                }
                switch word {
                case "ok": return .success(.committed(rev: Int(n)))
                case "duplicate": return .success(.duplicate(rev: Int(n)))
                case "stale": return .success(.stale(lastSeq: Int(n)))
                case "conflict": return .success(.conflict(head: Int(n)))
                default: return .failure(.reply("unexpected reply from the commit script: \(word)"))
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
}
