// Lua scripts called by SHA: SCRIPT LOAD once, EVALSHA after, load again on NOSCRIPT (after a
// SCRIPT FLUSH, a restart without persistence, a failover).

public final class RedisScript {
    public let source: String
    /// The SHA1 the server returned for SCRIPT LOAD (nil until loaded).
    public private(set) var sha: String?
    /// SCRIPT LOAD calls made so far (tests and diagnostics).
    public private(set) var loadCount = 0

    var loading = false
    var waiting: [(RedisConnection, [[UInt8]], [[UInt8]], (Result<RedisReply, RedisError>) -> Void)] = []

    public init(source: String) {
        self.source = source
    }

    public func evalsha(_ connection: RedisConnection, keys: [String], args: [String],
                        completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        evalsha(connection, keys: keys.map { Array($0.utf8) }, args: args.map { Array($0.utf8) }, completion: completion)
    }

    /// Runs the script with binary-safe keys and arguments.
    public func evalsha(_ connection: RedisConnection, keys: [[UInt8]], args: [[UInt8]],
                        completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        guard let sha else {
            waiting.append((connection, keys, args, completion))
            load(connection)
            return
        }
        let argv = [Array("EVALSHA".utf8), Array(sha.utf8), Array(String(keys.count).utf8)] + keys + args
        connection.command(bytes: argv) { [self] result in
            if case .failure(let e) = result, e.replyCode == "NOSCRIPT" {
                // Load again (once per flush, shared by every call that hit it) and retry once.
                if self.sha == sha { self.sha = nil }
                self.waiting.append((connection, keys, args, completion))
                self.load(connection)
                return
            }
            completion(result)
        }
    }

    func load(_ connection: RedisConnection) {
        guard !loading else { return }
        loading = true
        loadCount += 1
        connection.command(["SCRIPT", "LOAD", source]) { [self] result in
            loading = false
            let w = waiting
            waiting = []
            switch result {
            case .success(let reply):
                guard let s = reply.string else {
                    for (_, _, _, c) in w { c(.failure(.reply("ERR unexpected SCRIPT LOAD reply \(reply)"))) }
                    return
                }
                sha = s
                for (conn, keys, args, c) in w {
                    let argv = [Array("EVALSHA".utf8), Array(s.utf8), Array(String(keys.count).utf8)] + keys + args
                    conn.command(bytes: argv, c) // no second retry: a NOSCRIPT now is reported
                }
            case .failure(let e):
                for (_, _, _, c) in w { c(.failure(e)) }
            }
        }
    }
}
