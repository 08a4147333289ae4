// The single libwebsockets protocol callback of every vhost the loop creates. It finds Swift
// state through the wsi's opaque user data (connections, raw descriptors), the protocol's `user`
// pointer (the server of a listening vhost) and the context user pointer (the loop).
import CLibWebSockets

@inline(__always)
private func loopOf(_ wsi: OpaquePointer) -> EventLoop? {
    guard let ctx = lws_get_context(wsi), let user = lws_context_user(ctx) else { return nil }
    return Unmanaged<LoopRef>.fromOpaque(user).takeUnretainedValue().loop
}

@inline(__always)
private func boundObject(_ wsi: OpaquePointer) -> AnyObject? {
    guard let p = lws_get_opaque_user_data(wsi) else { return nil }
    return Unmanaged<AnyObject>.fromOpaque(p).takeUnretainedValue()
}

@inline(__always)
private func connectionOf(_ wsi: OpaquePointer) -> WebSocketConnection? {
    boundObject(wsi) as? WebSocketConnection
}

@inline(__always)
private func serverOf(_ wsi: OpaquePointer) -> WebSocketServer? {
    guard let proto = lws_get_protocol(wsi), let user = proto.pointee.user else { return nil }
    return Unmanaged<WebSocketServer>.fromOpaque(user).takeUnretainedValue()
}

func collabLWSCallback(_ wsi: OpaquePointer?, _ reason: lws_callback_reasons,
                       _ user: UnsafeMutableRawPointer?, _ input: UnsafeMutableRawPointer?,
                       _ len: Int) -> Int32 {
    guard let wsi else { return 0 }
    switch reason {
    // MARK: WebSocket traffic (hot paths first)
    case LWS_CALLBACK_RECEIVE, LWS_CALLBACK_CLIENT_RECEIVE:
        connectionOf(wsi)?.didReceive(input, len, wsi: wsi)
        return 0

    case LWS_CALLBACK_SERVER_WRITEABLE, LWS_CALLBACK_CLIENT_WRITEABLE:
        guard let c = connectionOf(wsi) else { return 0 }
        return c.writable(wsi: wsi)

    case LWS_CALLBACK_RECEIVE_PONG, LWS_CALLBACK_CLIENT_RECEIVE_PONG:
        connectionOf(wsi)?.didReceivePong()
        return 0

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        connectionOf(wsi)?.peerInitiatedClose(input, len)
        return 0

    // MARK: Server side
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirmUpgrade(wsi, input)

    case LWS_CALLBACK_ESTABLISHED:
        connectionOf(wsi)?.didOpen()
        return 0

    case LWS_CALLBACK_CLOSED, LWS_CALLBACK_CLIENT_CLOSED:
        connectionOf(wsi)?.didClose()
        return 0

    case LWS_CALLBACK_HTTP:
        return httpRequest(wsi, input)

    case LWS_CALLBACK_HTTP_WRITEABLE:
        return httpWritable(wsi)

    // MARK: Client side
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        connectionOf(wsi)?.didOpen()
        return 0

    case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
        // Once per certificate of the server's chain: `user` is the X509_STORE_CTX, `len` is
        // OpenSSL's verdict (1 ok). Returning 0 keeps it; clearing the error overrules it.
        guard let c = connectionOf(wsi), let user else { return 0 }
        let store = OpaquePointer(user)
        if c.insecureTLS {
            X509_STORE_CTX_set_error(store, X509_V_OK)
        } else if len == 0, c.certificateProblem == nil {
            let err = X509_STORE_CTX_get_error(store)
            c.certificateProblem = X509_verify_cert_error_string(Int(err)).map { String(cString: $0) } ?? "error \(err)"
        }
        return 0

    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if let c = connectionOf(wsi) {
            var message = input.map { String(cString: $0.assumingMemoryBound(to: CChar.self)) }
                ?? "connection error"
            if let target = c.tlsTarget, c.certificateProblem != nil || message.contains("certificate verify failed") {
                c.certificateRejected = true
                let detail = c.certificateProblem.map { " (\($0))" } ?? ""
                message = "TLS handshake with \(target) failed: certificate verify failed\(detail)"
            } else if let target = c.tlsTarget, message.contains("SSL") || message.contains("ssl") || message.contains("tls") {
                // Mostly a plain server on the port: OpenSSL's own words for it are opaque.
                message = "TLS handshake with \(target) failed (\(message)); a server without TLS needs ws://"
            }
            if let loop = c.loop { loop.failClient(c, message) } else { c.connectFailed(message) }
        }
        return 0

    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        guard let c = connectionOf(wsi), !c.clientHeaders.isEmpty, let input else { return 0 }
        let pp = input.assumingMemoryBound(to: UnsafeMutablePointer<UInt8>?.self)
        guard let start = pp.pointee else { return 0 }
        let end = start + len
        for (name, value) in c.clientHeaders {
            var v = Array(value.utf8)
            let r = name.withCString { n in
                v.withUnsafeMutableBufferPointer { vb in
                    lws_add_http_header_by_name(wsi, UnsafeRawPointer(n).assumingMemoryBound(to: UInt8.self),
                                                vb.baseAddress, Int32(vb.count), pp, end)
                }
            }
            if r != 0 { return -1 }
        }
        return 0

    // MARK: Raw descriptors
    case LWS_CALLBACK_RAW_RX_FILE:
        guard let r = boundObject(wsi) as? RawDescriptor else { return 0 }
        return r.callbackReadable()

    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
        guard let r = boundObject(wsi) as? RawDescriptor else { return 0 }
        return r.callbackWritable()

    case LWS_CALLBACK_RAW_CLOSE_FILE:
        (boundObject(wsi) as? RawDescriptor)?.didClose()
        return 0

    // MARK: Loop plumbing
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        // Broadcast to every protocol of every vhost: act once, for the base vhost.
        if let loop = loopOf(wsi), let vh = lws_get_vhost(wsi), vh == loop.baseVhost {
            loop.serviceWakeUp()
        }
        return 0

    case LWS_CALLBACK_WSI_DESTROY:
        let key = UnsafeMutableRawPointer(wsi)
        guard let loop = loopOf(wsi) else { return 0 }
        if !loop.httpPending.isEmpty { loop.httpPending[key] = nil }
        guard let obj = boundObject(wsi) else { return 0 }
        lws_set_opaque_user_data(wsi, nil)
        if let c = obj as? WebSocketConnection {
            c.detach()
            if c.state != .closed {
                if c.isClient && !c.wasOpened {
                    loop.failClient(c, "closed before open")
                } else {
                    c.didClose()
                }
            }
            loop.unregister(c)
        } else if let r = obj as? RawDescriptor {
            r.didClose()
            r.wsi = nil
            loop.raws[ObjectIdentifier(r)] = nil
        }
        return 0

    default:
        return lws_callback_http_dummy(wsi, reason, user, input, len)
    }
}

// MARK: - Server helpers

/// LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: the headers are still available; accept or refuse with an
/// HTTP status. Returning 1 tells lws we answered with our own response.
private func confirmUpgrade(_ wsi: OpaquePointer, _ input: UnsafeMutableRawPointer?) -> Int32 {
    guard let input, let server = serverOf(wsi), let loop = loopOf(wsi), !loop.tearingDown else { return 0 }
    let upgrade = String(cString: input.assumingMemoryBound(to: CChar.self))
    guard upgrade.lowercased() == "websocket" else { return 0 }
    let head = RequestHead.capture(wsi: wsi, method: "GET", path: nil)
    switch server.onAccept?(head) ?? .accept {
    case .accept:
        let conn = WebSocketConnection(id: loop.newConnectionID(), isClient: false, request: head, loop: loop,
                                       limits: server.options.limits, handlers: server.handlers)
        conn.server = server
        conn.wsi = wsi
        loop.register(conn)
        lws_set_opaque_user_data(wsi, Unmanaged.passUnretained(conn as AnyObject).toOpaque())
        return 0
    case .reject(let status, let message):
        let r = message.withCString { m in
            lws_return_http_status(wsi, UInt32(clamping: status), m)
        }
        return r != 0 ? -1 : 1
    }
}

/// LWS_CALLBACK_HTTP: a plain request (no upgrade). GET/HEAD go to `onHTTP`.
private func httpRequest(_ wsi: OpaquePointer, _ input: UnsafeMutableRawPointer?) -> Int32 {
    guard let server = serverOf(wsi), let loop = loopOf(wsi) else { return 0 }
    let method: String
    if lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0 {
        method = "GET"
    } else if lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0 {
        method = "HEAD"
    } else {
        if lws_return_http_status(wsi, 405, nil) != 0 { return -1 }
        return lws_http_transaction_completed(wsi) != 0 ? -1 : 0
    }
    let path = input.map { String(cString: $0.assumingMemoryBound(to: CChar.self)) }
    let head = RequestHead.capture(wsi: wsi, method: method, path: path)
    let response = server.onHTTP?(head)
        ?? HTTPResponse(status: 404, text: "not found\n")

    // Status line and headers.
    let headerCapacity = 4096 + response.headers.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count + 4 }
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: lwsPre + headerCapacity, alignment: 16)
    defer { buffer.deallocate() }
    let start = (buffer + lwsPre).assumingMemoryBound(to: UInt8.self)
    let end = start + headerCapacity
    var p: UnsafeMutablePointer<UInt8>? = start
    let ok: Bool = response.contentType.withCString { ct in
        lws_add_http_common_headers(wsi, UInt32(clamping: response.status), ct,
                                    lws_filepos_t(response.body.count), &p, end) == 0
    }
    guard ok else { return -1 }
    for (name, value) in response.headers {
        var v = Array(value.utf8)
        let r = (name.lowercased() + ":").withCString { n in
            v.withUnsafeMutableBufferPointer { vb in
                lws_add_http_header_by_name(wsi, UnsafeRawPointer(n).assumingMemoryBound(to: UInt8.self),
                                            vb.baseAddress, Int32(vb.count), &p, end)
            }
        }
        if r != 0 { return -1 }
    }
    if lws_finalize_write_http_header(wsi, start, &p, end) != 0 { return -1 }
    if method == "HEAD" || response.body.isEmpty {
        return lws_http_transaction_completed(wsi) != 0 ? -1 : 0
    }
    loop.httpPending[UnsafeMutableRawPointer(wsi)] = PendingHTTPBody(body: response.body)
    lws_callback_on_writable(wsi)
    return 0
}

/// LWS_CALLBACK_HTTP_WRITEABLE: the next slice of a GET response body.
private func httpWritable(_ wsi: OpaquePointer) -> Int32 {
    guard let loop = loopOf(wsi), let scratch = loop.httpScratch,
          let pending = loop.httpPending[UnsafeMutableRawPointer(wsi)] else { return 0 }
    let remaining = pending.body.count - pending.offset
    let n = min(remaining, loop.httpScratchSize)
    let final = n == remaining
    pending.body.withUnsafeBytes { b in
        (scratch + lwsPre).copyMemory(from: b.baseAddress! + pending.offset, byteCount: n)
    }
    let w = lws_write(wsi, (scratch + lwsPre).assumingMemoryBound(to: UInt8.self), n,
                      final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP)
    if w < 0 {
        loop.httpPending[UnsafeMutableRawPointer(wsi)] = nil
        return -1
    }
    pending.offset += n
    if final {
        loop.httpPending[UnsafeMutableRawPointer(wsi)] = nil
        return lws_http_transaction_completed(wsi) != 0 ? -1 : 0
    }
    lws_callback_on_writable(wsi)
    return 0
}
