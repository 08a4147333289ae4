// Client connections: ws://host:port/path?query, with the same send/receive/close API as
// server connections. Failures are reported asynchronously (never from inside `connect`), so a
// higher layer can reconnect with backoff from `onConnectFailure` / `onClose`.
import CLibWebSockets

public struct ClientOptions: Sendable {
    /// Extra upgrade request headers, e.g. `("Authorization", "Bearer ...")`.
    public var headers: [(String, String)] = []
    public var origin: String?
    /// Offer this subprotocol (Sec-WebSocket-Protocol); nil offers none.
    public var subprotocol: String?
    /// Heartbeat defaults to off on clients (servers ping); set it to detect a dead server.
    public var limits: ConnectionLimits = {
        var l = ConnectionLimits()
        l.heartbeat = nil
        return l
    }()

    public init() {}
}

/// The parts of a `ws://` URL.
public struct WebSocketURL: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// Path and query, e.g. `/room?token=x`.
    public var pathAndQuery: String

    /// Parses `ws://host[:port][/path][?query]` (IPv6 hosts in brackets). `wss://` is refused:
    /// terminate TLS in front of collab instead.
    public init(parsing text: String) throws {
        guard text.hasPrefix("ws://") else {
            throw TransportError("unsupported URL (only ws:// is supported): \(text)")
        }
        let rest = text.dropFirst(5)
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var tail = String(rest[authorityEnd...])
        if tail.isEmpty { tail = "/" } else if tail.hasPrefix("?") { tail = "/" + tail }
        var host: Substring
        var port = 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw TransportError("bad URL: \(text)") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()) else { throw TransportError("bad port in URL: \(text)") }
                port = p
            } else if !after.isEmpty {
                throw TransportError("bad URL: \(text)")
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let p = Int(authority[authority.index(after: colon)...]) else {
                throw TransportError("bad port in URL: \(text)")
            }
            port = p
        } else {
            host = authority
        }
        guard !host.isEmpty, (1...65535).contains(port) else { throw TransportError("bad URL: \(text)") }
        self.host = String(host)
        self.port = port
        self.pathAndQuery = tail
    }
}

extension EventLoop {
    /// Opens a client connection. Throws only for a bad URL or a finished loop; everything else
    /// (refused, handshake rejected) arrives as `onConnectFailure` on a later loop iteration.
    public func connect(to url: String, options: ClientOptions = .init(),
                        handlers: WebSocketHandlers) throws -> WebSocketConnection {
        let target = try WebSocketURL(parsing: url)
        guard let context, let baseVhost, !tearingDown else { throw TransportError("loop finished") }

        let (path, items) = Self.splitQuery(target.pathAndQuery)
        var headers: [String: String] = ["host": "\(target.host):\(target.port)"]
        for (k, v) in options.headers { headers[k.lowercased()] = v }
        let head = RequestHead(method: "GET", path: path, queryItems: items, headers: headers,
                               peerAddress: target.host)
        let conn = WebSocketConnection(id: newConnectionID(), isClient: true, request: head, loop: self,
                                       limits: options.limits, handlers: handlers)
        conn.clientHeaders = options.headers.map { ($0.0.lowercased() + ":", $0.1) }
        register(conn)

        var info = lws_client_connect_info()
        info.context = context
        info.vhost = baseVhost
        info.port = Int32(target.port)
        info.ssl_connection = 0
        info.opaque_user_data = Unmanaged.passUnretained(conn as AnyObject).toOpaque()
        info.retry_and_idle_policy = UnsafePointer(disabledValidityPolicy())
        var wsiOut: OpaquePointer?
        let hostHeader = target.port == 80 ? target.host : "\(target.host):\(target.port)"
        let wsi: OpaquePointer? = withOptionalCString(options.origin) { origin in
            withOptionalCString(options.subprotocol) { proto in
                target.host.withCString { address in
                    target.pathAndQuery.withCString { p in
                        hostHeader.withCString { h in
                            baseProtocolName.withCString { local in
                                withUnsafeMutablePointer(to: &wsiOut) { pw in
                                    info.address = address
                                    info.path = p
                                    info.host = h
                                    info.origin = origin
                                    info.protocol = proto
                                    info.local_protocol_name = local
                                    info.pwsi = pw
                                    return lws_client_connect_via_info(&info)
                                }
                            }
                        }
                    }
                }
            }
        }
        if let wsi {
            conn.wsi = wsi
        } else {
            // lws freed the attempt (sometimes without any callback): report it ourselves.
            conn.wsi = nil
            failClient(conn, "connect failed")
        }
        return conn
    }

    /// Reports a client failure on the next loop iteration and forgets the connection.
    func failClient(_ conn: WebSocketConnection, _ message: String) {
        if tearingDown {
            conn.connectFailed(message)
            return
        }
        conn.state = .closed
        schedule(after: .zero) { [weak self] in
            conn.connectFailed(message)
            if conn.wsi == nil { self?.unregister(conn) }
        }
    }

    static func splitQuery(_ pathAndQuery: String) -> (String, [QueryItem]) {
        guard let q = pathAndQuery.firstIndex(of: "?") else { return (pathAndQuery, []) }
        let path = String(pathAndQuery[..<q])
        let items = pathAndQuery[pathAndQuery.index(after: q)...].split(separator: "&").map { part in
            if let eq = part.firstIndex(of: "=") {
                return QueryItem(name: String(part[..<eq]), value: String(part[part.index(after: eq)...]))
            }
            return QueryItem(name: String(part), value: "")
        }
        return (path, items)
    }
}

func withOptionalCString<R>(_ s: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    if let s { return s.withCString { body($0) } }
    return body(nil)
}
