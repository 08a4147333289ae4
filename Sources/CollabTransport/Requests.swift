// What a server sees of an HTTP request (a WebSocket upgrade or a plain GET), and the response
// a plain GET handler returns.
import CLibWebSockets

/// One `name=value` pair of the query string (already percent-decoded by libwebsockets).
public struct QueryItem: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// The head of an HTTP request: method, path, query and headers. libwebsockets percent-decodes
/// the path and query components and normalises the path (no `..`, no `//`).
public struct RequestHead: Sendable, Equatable {
    public var method: String
    /// The path without the query, e.g. `/my-room`.
    public var path: String
    /// The query items in order, e.g. `token=abc` → `[QueryItem(name: "token", value: "abc")]`.
    public var queryItems: [QueryItem]
    /// Header values by lower-case name (`authorization`, `origin`, `host`, `user-agent`,
    /// `x-forwarded-for`, `cookie`, ...). Only headers libwebsockets knows by name are captured.
    public var headers: [String: String]
    /// The peer's IP address as text (empty if unknown).
    public var peerAddress: String

    public init(method: String = "GET", path: String, queryItems: [QueryItem] = [],
                headers: [String: String] = [:], peerAddress: String = "") {
        self.method = method
        self.path = path
        self.queryItems = queryItems
        self.headers = headers
        self.peerAddress = peerAddress
    }

    /// The query as `a=1&b=2` (decoded components joined again).
    public var query: String {
        queryItems.map { $0.value.isEmpty && !$0.name.isEmpty ? $0.name : "\($0.name)=\($0.value)" }
            .joined(separator: "&")
    }

    /// The first value of query parameter `name`.
    public func queryValue(_ name: String) -> String? {
        queryItems.first { $0.name == name }?.value
    }

    /// A header by case-insensitive name.
    public func header(_ name: String) -> String? {
        headers[name.lowercased()]
    }

    /// Reads the request head of `wsi` while libwebsockets still holds its header table
    /// (LWS_CALLBACK_HTTP, LWS_CALLBACK_HTTP_CONFIRM_UPGRADE).
    static func capture(wsi: OpaquePointer, method: String, path explicitPath: String?) -> RequestHead {
        let path = explicitPath ?? headerValue(wsi, WSI_TOKEN_GET_URI) ?? "/"
        var items: [QueryItem] = []
        var index: Int32 = 0
        while true {
            let flen = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, index)
            if flen <= 0 { break }
            var buf = [CChar](repeating: 0, count: Int(flen) + 1)
            let n = lws_hdr_copy_fragment(wsi, &buf, Int32(buf.count), WSI_TOKEN_HTTP_URI_ARGS, index)
            if n < 0 { break }
            let text = String(decoding: buf.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if let eq = text.firstIndex(of: "=") {
                items.append(QueryItem(name: String(text[..<eq]), value: String(text[text.index(after: eq)...])))
            } else {
                items.append(QueryItem(name: text, value: ""))
            }
            index += 1
        }
        var headers: [String: String] = [:]
        var t: UInt32 = 0
        while t < WSI_TOKEN_COUNT.rawValue {
            defer { t += 1 }
            let token = lws_token_indexes(rawValue: t)
            guard lws_hdr_total_length(wsi, token) > 0, let namePtr = lws_token_to_string(token) else { continue }
            let name = String(cString: namePtr)
            guard name.count > 1, name.hasSuffix(":"), !name.hasPrefix(":") else { continue }
            if let value = headerValue(wsi, token) {
                headers[String(name.dropLast()).lowercased()] = value
            }
        }
        var peer = [CChar](repeating: 0, count: 128)
        let peerAddress: String
        if let p = lws_get_peer_simple(wsi, &peer, peer.count) {
            peerAddress = String(cString: p)
        } else {
            peerAddress = ""
        }
        return RequestHead(method: method, path: path, queryItems: items, headers: headers,
                           peerAddress: peerAddress)
    }

    static func headerValue(_ wsi: OpaquePointer, _ token: lws_token_indexes) -> String? {
        let total = lws_hdr_total_length(wsi, token)
        guard total > 0 else { return nil }
        // Fragments are joined with separators; leave room for them.
        var buf = [CChar](repeating: 0, count: Int(total) * 2 + 16)
        let n = lws_hdr_copy(wsi, &buf, Int32(buf.count), token)
        guard n >= 0 else { return nil }
        return String(decoding: buf.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// The answer of a plain HTTP GET handler.
public struct HTTPResponse: Sendable, Equatable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    /// Extra response headers (name without ':').
    public var headers: [(String, String)]

    public init(status: Int = 200, contentType: String = "text/plain; charset=utf-8", body: [UInt8],
                headers: [(String, String)] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    public init(status: Int = 200, contentType: String = "text/plain; charset=utf-8", text: String,
                headers: [(String, String)] = []) {
        self.init(status: status, contentType: contentType, body: Array(text.utf8), headers: headers)
    }

    public static func == (a: HTTPResponse, b: HTTPResponse) -> Bool {
        a.status == b.status && a.contentType == b.contentType && a.body == b.body
            && a.headers.elementsEqual(b.headers, by: { $0.0 == $1.0 && $0.1 == $1.1 })
    }
}
