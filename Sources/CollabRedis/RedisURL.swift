// Redis connection URLs: redis://[user:pass@]host[:port][/db], redis://:pass@host.
/// Where and how to connect: host, port, optional ACL user and password, database number.
public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String?
    public var password: String?
    public var database: Int

    public init(host: String, port: Int = 6379, user: String? = nil, password: String? = nil, database: Int = 0) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
    }

    /// Parses `redis://[user:pass@]host[:port][/db]`. User and password may be percent-encoded;
    /// an IPv6 host is written in brackets (`redis://[::1]:6379`).
    public init(parsing text: String) throws(RedisURLError) {
        let scheme = "redis://"
        guard text.lowercased().hasPrefix(scheme) else {
            throw RedisURLError("\(text.debugDescription): expected redis://[user:pass@]host[:port][/db]")
        }
        var rest = Substring(text.dropFirst(scheme.count))
        var dbPart: Substring?
        if let slash = rest.firstIndex(of: "/") {
            dbPart = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var user: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let info = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = info.firstIndex(of: ":") {
                let u = info[..<colon]
                user = u.isEmpty ? nil : try Self.decode(u)
                password = try Self.decode(info[info.index(after: colon)...])
            } else if !info.isEmpty {
                // redis://secret@host: a lone userinfo is the password (as redis-cli reads it).
                password = try Self.decode(info)
            }
        }
        var host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else {
                throw RedisURLError("\(text.debugDescription): unterminated IPv6 address")
            }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty {
                throw RedisURLError("\(text.debugDescription): unexpected \(String(after).debugDescription) after the host")
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
        }
        guard !host.isEmpty else { throw RedisURLError("\(text.debugDescription): no host") }
        var port = 6379
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else {
                throw RedisURLError("\(text.debugDescription): port must be 1-65535, got \(String(portText).debugDescription)")
            }
            port = p
        }
        var database = 0
        if let dbPart, !dbPart.isEmpty {
            guard let d = Int(dbPart), d >= 0 else {
                throw RedisURLError("\(text.debugDescription): database must be a number >= 0, got \(String(dbPart).debugDescription)")
            }
            database = d
        }
        self.init(host: String(host), port: port, user: user, password: password, database: database)
    }

    /// The URL with the password masked, for logs.
    public var description: String {
        var s = "redis://"
        if user != nil || password != nil {
            s += (user ?? "") + (password != nil ? ":***" : "") + "@"
        }
        s += host.contains(":") ? "[\(host)]" : host
        s += ":\(port)"
        if database != 0 { s += "/\(database)" }
        return s
    }

    static func decode(_ s: Substring) throws(RedisURLError) -> String {
        guard s.contains("%") else { return String(s) }
        var out: [UInt8] = []
        var bytes = Array(s.utf8)[...]
        while let b = bytes.popFirst() {
            if b == UInt8(ascii: "%") {
                guard bytes.count >= 2, let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) else {
                    throw RedisURLError("bad percent-encoding in \(String(s).debugDescription)")
                }
                out.append(v)
                bytes = bytes.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

public struct RedisURLError: Error, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = "invalid Redis URL: " + description }
}
