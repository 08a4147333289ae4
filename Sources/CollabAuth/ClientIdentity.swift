/// Client ids under authentication.
///
/// A client id is the key of the server's (client, seq) dedupe table and of "a second connection
/// with the same client replaces the first". Left to the client, one member could take over
/// another's id: kick their connection, or commit a seq ahead of theirs so that their next edit
/// is acknowledged as a duplicate and lost. So with tokens the server puts the verified user in
/// front: `USER/ID`, with `%` and `/` of the user escaped so that no two users can produce the
/// same prefix. A client that reconnects with the id its welcome gave it keeps it unchanged.
public enum ClientIdentity {
    /// The id the server uses for `claimed` (the hello's `client`) from `user`; `fresh` makes
    /// the client's part when the hello named none.
    public static func qualify(_ claimed: String?, user: String, fresh: () -> String) -> String {
        let prefix = escape(user) + "/"
        guard let claimed, !claimed.isEmpty else { return prefix + fresh() }
        if claimed.hasPrefix(prefix) && claimed.utf8.count > prefix.utf8.count { return claimed }
        return prefix + claimed
    }

    static func escape(_ user: String) -> String {
        guard user.utf8.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "%") }) else { return user }
        var out = ""
        for ch in user.unicodeScalars {
            switch ch {
            case "%": out += "%25"
            case "/": out += "%2F"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }
}

/// `--allowed-origin`: which web pages may open WebSockets to the server from a visitor's
/// browser. Browsers always send `Origin` and scripts cannot forge it; programs send none, and
/// are let through (the check exists to stop other sites riding on a visitor's browser, not to
/// identify programs — tokens do that).
public struct OriginPolicy: Sendable {
    public let allowed: [String]

    /// `origins`: exact origins (`https://app.example.com`, case-insensitive), globs whose `*`
    /// stays within a host name (`https://*.example.com`), or `*` for any.
    public init(_ origins: [String]) {
        allowed = origins.map { $0.lowercased() }
    }

    public var isOpen: Bool { allowed.isEmpty || allowed.contains("*") }

    public func permits(origin: String?) -> Bool {
        guard !isOpen, let origin else { return true }
        let o = origin.lowercased()
        return allowed.contains { $0 == o || ($0.contains("*") && RoomPattern($0).matches(o)) }
    }
}
