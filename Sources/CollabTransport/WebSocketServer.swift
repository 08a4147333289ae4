// A listening vhost: WebSocket upgrades on any path (the path names a room) and plain HTTP
// GET/HEAD for the rest (health, metrics).
import CLibWebSockets

public final class WebSocketServer {
    public struct Options: Sendable {
        /// Address to bind (an IP address or interface name); nil binds all interfaces.
        public var host: String?
        /// 0 picks a free port; the bound port is `WebSocketServer.port`.
        public var port: Int
        /// WebSocket subprotocol name. Clients that send no Sec-WebSocket-Protocol are served
        /// too; clients that offer only other subprotocols are refused by libwebsockets.
        public var subprotocol: String = "collab"
        /// Limits applied to each accepted connection.
        public var limits = ConnectionLimits()
        /// Receive buffer per connection (bytes); messages larger than this arrive in pieces and
        /// are reassembled. libwebsockets allocates it for every connection for its whole life, so
        /// it is most of what an idle connection costs: collab-serve with 10,000 idle connections
        /// measured 90 MiB RSS at 4096, 62 MiB at 1024, 56–58 MiB at 512 (benchmarks/idle.sh).
        /// What clients send is mostly ops, cursors and hellos of under 200 bytes; a larger message
        /// costs one copy more.
        public var rxBufferSize: Int = 512
        /// `Server:` header of HTTP responses.
        public var serverName: String = "collab"
        /// Serve TLS (wss://, https://) with this certificate and key; nil: plain ws://, http://.
        public var tls: ServerTLS?

        public init(host: String? = "127.0.0.1", port: Int = 0) {
            self.host = host
            self.port = port
        }
    }

    public enum AcceptDecision: Sendable, Equatable {
        case accept
        /// Refuse the upgrade with an HTTP status (e.g. 401, 403, 404) and a short message.
        case reject(status: Int, message: String)
    }

    public let options: Options
    /// The bound TCP port.
    public internal(set) var port: Int
    /// Decides on each WebSocket upgrade before the handshake completes (default: accept).
    public var onAccept: ((RequestHead) -> AcceptDecision)?
    /// Answers plain GET/HEAD requests; nil or a nil result → 404. Other methods get 405.
    public var onHTTP: ((RequestHead) -> HTTPResponse?)?
    /// Copied into every accepted connection.
    public var handlers: WebSocketHandlers

    weak var loop: EventLoop?
    var vhost: OpaquePointer?

    init(options: Options, handlers: WebSocketHandlers, loop: EventLoop) {
        self.options = options
        self.port = options.port
        self.handlers = handlers
        self.loop = loop
    }

    /// Connections accepted by this server that have not been freed yet, oldest first.
    public var connections: [WebSocketConnection] {
        guard let loop else { return [] }
        return loop.connections.values.filter { $0.server === self }.sorted { $0.id < $1.id }
    }

    func loopFinished() {
        vhost = nil
        onAccept = nil
        onHTTP = nil
        handlers = WebSocketHandlers()
    }
}

extension EventLoop {
    /// Starts listening (a new libwebsockets vhost). Throws `TLSSetupError` if the TLS files are
    /// unusable (checked before anything is bound), another error if the address cannot be bound.
    public func listen(_ options: WebSocketServer.Options = .init(),
                       handlers: WebSocketHandlers = .init()) throws -> WebSocketServer {
        guard let context, !tearingDown else { throw TransportError("loop finished") }
        try options.tls?.check()
        // The protocol table's `user` points at the server (kept alive by `servers`).
        let server = WebSocketServer(options: options, handlers: handlers, loop: self)
        let user = Unmanaged.passUnretained(server).toOpaque()
        var info = lws_context_creation_info()
        info.port = Int32(options.port)
        if let host = options.host { info.iface = UnsafePointer(cAlloc.string(host)) }
        info.vhost_name = UnsafePointer(cAlloc.string("collab-server-\(servers.count)"))
        info.protocols = UnsafePointer(makeProtocols(name: options.subprotocol, user: user,
                                                     rxBufferSize: options.rxBufferSize))
        info.retry_and_idle_policy = UnsafePointer(disabledValidityPolicy())
        info.server_string = UnsafePointer(cAlloc.string(options.serverName))
        // UTF-8 validation is a context option (EventLoop.Options.validateUTF8).
        info.options = UInt64(LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND)
        if let host = options.host, host.contains(".") && !host.contains(":") {
            // An IPv4 literal: bind an IPv4 socket.
            info.options |= UInt64(LWS_SERVER_OPTION_DISABLE_IPV6)
        }
        if let tls = options.tls {
            info.options |= UInt64(LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT)
            info.ssl_cert_filepath = UnsafePointer(cAlloc.string(tls.certificateFile))
            info.ssl_private_key_filepath = UnsafePointer(cAlloc.string(tls.privateKeyFile))
        }
        guard let vh = lws_create_vhost(context, &info) else {
            throw TransportError("cannot listen on \(options.host ?? "*"):\(options.port)")
        }
        server.port = Int(lws_get_vhost_listen_port(vh))
        server.vhost = vh
        servers.append(server)
        return server
    }
}
