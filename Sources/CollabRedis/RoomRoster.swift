import CollabTransport

/// Who is in a room across server instances (DESIGN §3, presence): one entry per member in the
/// hash `collab:{ROOM}:members`, owned by the instance its connection is on, and a deadline per
/// member in the sorted set `collab:{ROOM}:alive`. The owner pushes the deadline forward on its
/// heartbeat; any instance sweeps members whose deadline passed and publishes their `leave`, so
/// an instance that dies takes its members out of every roster within one TTL.
///
/// Why not a key per member with a Redis TTL: Redis expires keys silently (keyspace
/// notifications are fire-and-forget and reach nobody while nothing listens), so someone has to
/// notice the expiry and announce the leave anyway; deadlines in a sorted set make that one
/// range query, and the sweep script removes and announces each member exactly once. Deadlines
/// use Redis' clock (`TIME`), so instances' clocks need not agree.
///
/// A member entry is three lines: the owning instance, the member's `leave` message, and its
/// latest state as a `join` message (identity and presence). JSON text never contains a raw
/// newline, and prebuilt messages spare the scripts any JSON handling.
public enum RoomRoster {
    static let now = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        """

    /// KEYS: members, alive. ARGV: client, entry, ttl ms, channel, message to publish ("" for
    /// none). Stores the member (owned by the entry's instance) and its deadline.
    public static let announceSource = now + """

        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
        if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
        return 1
        """

    /// KEYS: members, alive. ARGV: client, instance, channel, leave message. Removes the member
    /// and publishes the leave, only if this instance still owns it: if the client has already
    /// reconnected through another instance, nobody must see it leave.
    public static let leaveSource = """
        local v = redis.call('HGET', KEYS[1], ARGV[1])
        if not v or string.sub(v, 1, #ARGV[2] + 1) ~= ARGV[2] .. '\\n' then return 0 end
        redis.call('HDEL', KEYS[1], ARGV[1])
        redis.call('ZREM', KEYS[2], ARGV[1])
        redis.call('PUBLISH', ARGV[3], ARGV[4])
        return 1
        """

    /// KEYS: members, alive. ARGV: instance, ttl ms, clients... Pushes the deadlines of the
    /// instance's members forward; returns the clients that have no entry any more (swept while
    /// the instance could not reach Redis), which the instance announces again.
    public static let refreshSource = now + """

        local missing = {}
        local prefix = ARGV[1] .. '\\n'
        for i = 3, #ARGV do
          local v = redis.call('HGET', KEYS[1], ARGV[i])
          if v and string.sub(v, 1, #prefix) == prefix then
            redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[i])
          elseif not v then
            table.insert(missing, ARGV[i])
          end
        end
        return missing
        """

    /// KEYS: members, alive. ARGV: channel. Removes every member whose deadline passed and
    /// publishes its leave; returns how many.
    public static let sweepSource = now + """

        local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
        for _, client in ipairs(gone) do
          local v = redis.call('HGET', KEYS[1], client)
          redis.call('ZREM', KEYS[2], client)
          redis.call('HDEL', KEYS[1], client)
          if v then
            local a = string.find(v, '\\n', 1, true)
            local b = a and string.find(v, '\\n', a + 1, true)
            if b then redis.call('PUBLISH', ARGV[1], string.sub(v, a + 1, b - 1)) end
          end
        end
        return #gone
        """

    /// KEYS: members, alive. The entries of members whose deadline has not passed.
    public static let readSource = now + """

        local out = {}
        for _, client in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], now, '+inf')) do
          local v = redis.call('HGET', KEYS[1], client)
          if v then table.insert(out, v) end
        end
        return out
        """

    /// The scripts, each loaded once per connection.
    public final class Scripts {
        public let announce = RedisScript(source: RoomRoster.announceSource)
        public let leave = RedisScript(source: RoomRoster.leaveSource)
        public let refresh = RedisScript(source: RoomRoster.refreshSource)
        public let sweep = RedisScript(source: RoomRoster.sweepSource)
        public let read = RedisScript(source: RoomRoster.readSource)
        public init() {}
    }

    /// A member entry: owning instance, leave message, state message.
    public struct Entry: Equatable, Sendable {
        public var instance: String
        public var leave: [UInt8]
        public var state: [UInt8]

        public init(instance: String, leave: [UInt8], state: [UInt8]) {
            precondition(!instance.utf8.contains(10) && !leave.contains(10) && !state.contains(10),
                         "roster entry parts must not contain newlines")
            self.instance = instance
            self.leave = leave
            self.state = state
        }

        public var bytes: [UInt8] { Array(instance.utf8) + [10] + leave + [10] + state }

        public init?(_ bytes: [UInt8]) {
            guard let a = bytes.firstIndex(of: 10), let b = bytes[(a + 1)...].firstIndex(of: 10) else { return nil }
            instance = String(decoding: bytes[..<a], as: UTF8.self)
            leave = Array(bytes[(a + 1) ..< b])
            state = Array(bytes[(b + 1)...])
        }
    }

    static func keys(_ k: RoomKeys) -> [[UInt8]] { [Array(k.members.utf8), Array(k.alive.utf8)] }

    public static func announce(on c: RedisConnection, scripts: Scripts, keys: RoomKeys, client: String, entry: Entry,
                                ttl: Int, publish message: [UInt8]?, _ completion: @escaping (Result<Void, RedisError>) -> Void) {
        let args: [[UInt8]] = [Array(client.utf8), entry.bytes, Array(String(ttl).utf8), Array(keys.channel.utf8), message ?? []]
        scripts.announce.evalsha(c, keys: Self.keys(keys), args: args) { completion($0.map { _ in () }) }
    }

    /// Completes with true when the member was removed (and its leave published).
    public static func leave(on c: RedisConnection, scripts: Scripts, keys: RoomKeys, client: String, instance: String,
                             message: [UInt8], _ completion: @escaping (Result<Bool, RedisError>) -> Void) {
        let args: [[UInt8]] = [Array(client.utf8), Array(instance.utf8), Array(keys.channel.utf8), message]
        scripts.leave.evalsha(c, keys: Self.keys(keys), args: args) { completion($0.map { $0.integer == 1 }) }
    }

    /// Completes with the clients that have no entry any more.
    public static func refresh(on c: RedisConnection, scripts: Scripts, keys: RoomKeys, instance: String, ttl: Int,
                               clients: [String], _ completion: @escaping (Result<[String], RedisError>) -> Void) {
        let args: [[UInt8]] = [Array(instance.utf8), Array(String(ttl).utf8)] + clients.map { Array($0.utf8) }
        scripts.refresh.evalsha(c, keys: Self.keys(keys), args: args) { result in
            completion(result.map { ($0.array ?? []).compactMap(\.string) })
        }
    }

    /// Completes with the number of members swept.
    public static func sweep(on c: RedisConnection, scripts: Scripts, keys: RoomKeys,
                             _ completion: @escaping (Result<Int, RedisError>) -> Void) {
        scripts.sweep.evalsha(c, keys: Self.keys(keys), args: [Array(keys.channel.utf8)]) { result in
            completion(result.map { Int($0.integer ?? 0) })
        }
    }

    /// Completes with the live members' entries.
    public static func read(on c: RedisConnection, scripts: Scripts, keys: RoomKeys,
                            _ completion: @escaping (Result<[Entry], RedisError>) -> Void) {
        scripts.read.evalsha(c, keys: Self.keys(keys), args: []) { result in
            completion(result.map { ($0.array ?? []).compactMap { $0.bytes.flatMap(Entry.init) } })
        }
    }
}
