// Client connections: ws[s]://host:port/path?query, with the same send/receive/close API as
// server connections. Failures are reported asynchronously (never from inside `connect`), so a
// higher layer can reconnect with backoff from `onConnectFailure` / `onClose`.
import CLibWebSockets

public struct ClientOptions: Sendable {
    /// Extra upgrade request headers, e.g. `("Authorization", "Bearer ...")`.
    public var headers: [(String, String)] = []
    public var origin: String?
    /// Offer this subprotocol (Sec-WebSocket-Protocol); nil offers none.
    public var subprotocol: String?
    /// How wss:// URLs check the server's certificate (ws:// ignores it).
    public var tls = ClientTLS()
    /// Heartbeat defaults to off on clients (servers ping); set it to detect a dead server.
    public var limits: ConnectionLimits = {
        var l = ConnectionLimits()
        l.heartbeat = nil
        return l
    }()

    public init() {}
}

/// The parts of a `ws://` or `wss://` URL.
public struct WebSocketURL: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// Path and query, e.g. `/room?token=x`.
    public var pathAndQuery: String
    /// wss://: TLS.
    public var isSecure: Bool

    /// Parses `ws[s]://host[:port][/path][?query]` (IPv6 hosts in brackets; the scheme in any
    /// case, as RFC 3986 says; default ports 80 and 443).
    public init(parsing text: String) throws {
        let lower = text.prefix(6).lowercased()
        if lower.hasPrefix("wss://") {
            isSecure = true
        } else if lower.hasPrefix("ws://") {
            isSecure = false
        } else {
            throw TransportError("unsupported URL (only ws:// and wss:// are supported): \(text)")
        }
        let rest = text.dropFirst(isSecure ? 6 : 5)
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var tail = String(rest[authorityEnd...])
        if tail.isEmpty { tail = "/" } else if tail.hasPrefix("?") { tail = "/" + tail }
        var host: Substring
        var port = isSecure ? 443 : 80
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
    /// Opens a client connection. Throws only for a bad URL, a finished loop or (wss://) an
    /// unusable CA file; everything else (refused, handshake rejected, certificate not trusted)
    /// arrives as `onConnectFailure` on a later loop iteration.
    public func connect(to url: String, options: ClientOptions = .init(),
                        handlers: WebSocketHandlers) throws -> WebSocketConnection {
        let target = try WebSocketURL(parsing: url)
        guard let context, baseVhost != nil, !tearingDown else { throw TransportError("loop finished") }
        let vhost = try target.isSecure ? clientTLSVhost(caFile: options.tls.caFile) : baseVhost!

        let (path, items) = Self.splitQuery(target.pathAndQuery)
        var headers: [String: String] = ["host": "\(target.host):\(target.port)"]
        for (k, v) in options.headers { headers[k.lowercased()] = v }
        let head = RequestHead(method: "GET", path: path, queryItems: items, headers: headers,
                               peerAddress: target.host)
        let conn = WebSocketConnection(id: newConnectionID(), isClient: true, request: head, loop: self,
                                       limits: options.limits, handlers: handlers)
        conn.clientHeaders = options.headers.map { ($0.0.lowercased() + ":", $0.1) }
        conn.tlsTarget = target.isSecure ? "\(target.host):\(target.port)" : nil
        conn.insecureTLS = target.isSecure && options.tls.insecure
        register(conn)

        var info = lws_client_connect_info()
        info.context = context
        info.vhost = vhost
        info.port = Int32(target.port)
        if target.isSecure {
            var flags = LCCSCF_USE_SSL.rawValue
            if options.tls.insecure {
                // These waive only self-signed and expired certificates and the host name in
                // lws 4.1, not an unknown CA: the verification callback (Callback.swift) does.
                flags |= LCCSCF_ALLOW_SELFSIGNED.rawValue | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK.rawValue
                    | LCCSCF_ALLOW_EXPIRED.rawValue | LCCSCF_ALLOW_INSECURE.rawValue
            }
            info.ssl_connection = Int32(bitPattern: flags)
        } else {
            info.ssl_connection = 0
        }
        info.opaque_user_data = Unmanaged.passUnretained(conn as AnyObject).toOpaque()
        info.retry_and_idle_policy = UnsafePointer(disabledValidityPolicy())
        var wsiOut: OpaquePointer?
        let hostHeader = target.port == (target.isSecure ? 443 : 80) ? target.host : "\(target.host):\(target.port)"
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

    /// The client vhost for wss:// with `caFile` (made on first use: its OpenSSL context loads
    /// the system's CA store, a cost plain ws:// clients and servers should not pay).
    func clientTLSVhost(caFile: String?) throws -> OpaquePointer {
        let key = caFile ?? ""
        if let vh = tlsClientVhosts[key] { return vh }
        guard let context else { throw TransportError("loop finished") }
        try ClientTLS(caFile: caFile).check()
        var vinfo = lws_context_creation_info()
        vinfo.port = CONTEXT_PORT_NO_LISTEN
        vinfo.vhost_name = UnsafePointer(cAlloc.string("collab-tls-client-\(tlsClientVhosts.count)"))
        vinfo.protocols = UnsafePointer(makeProtocols(name: baseProtocolName, user: nil,
                                                      rxBufferSize: options.clientRxBufferSize))
        vinfo.retry_and_idle_policy = UnsafePointer(disabledValidityPolicy())
        vinfo.options = UInt64(LWS_SERVER_OPTION_EXPLICIT_VHOSTS) | UInt64(LWS_SERVER_OPTION_JUST_USE_RAW_ORIGIN)
            | UInt64(LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT)
        if options.validateUTF8 { vinfo.options |= UInt64(LWS_SERVER_OPTION_VALIDATE_UTF8) }
        if let caFile { vinfo.client_ssl_ca_filepath = UnsafePointer(cAlloc.string(caFile)) }
        guard let vh = lws_create_vhost(context, &vinfo) else {
            throw TransportError("libwebsockets: cannot set up TLS for client connections")
        }
        tlsClientVhosts[key] = vh
        return vh
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
