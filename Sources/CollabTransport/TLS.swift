// TLS settings of listeners (wss://, https://) and client connections (wss://). libwebsockets
// does the TLS (OpenSSL); these types carry the files and check them first, because lws only
// logs what is wrong with a certificate and then fails in ways a caller cannot tell apart (a
// vhost that failed to load its key looks like one that failed to bind).
import CLibWebSockets
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A certificate, key or CA file that cannot be used; `message` is one line for people.
public struct TLSSetupError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What a listener serves TLS with: PEM files of its certificate (chain) and private key.
public struct ServerTLS: Sendable, Equatable {
    public var certificateFile: String
    public var privateKeyFile: String

    public init(certificateFile: String, privateKeyFile: String) {
        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
    }

    /// Loads both files into a throwaway OpenSSL context, as lws will: readable, PEM, and the
    /// key belongs to the certificate.
    public func check() throws(TLSSetupError) {
        try TLSFiles.requireReadable(certificateFile, what: "TLS certificate")
        try TLSFiles.requireReadable(privateKeyFile, what: "TLS key")
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw TLSSetupError("OpenSSL: cannot create a context") }
        defer { SSL_CTX_free(ctx) }
        ERR_clear_error()
        if SSL_CTX_use_certificate_chain_file(ctx, certificateFile) != 1 {
            throw TLSSetupError("TLS certificate \(certificateFile): not a PEM certificate (\(TLSFiles.lastOpenSSLError()))")
        }
        if SSL_CTX_use_PrivateKey_file(ctx, privateKeyFile, SSL_FILETYPE_PEM) != 1 {
            let reason = TLSFiles.lastOpenSSLError()
            // OpenSSL compares the key with the certificate while loading it.
            if reason.contains("mismatch") {
                throw TLSSetupError("TLS key \(privateKeyFile) does not belong to the certificate \(certificateFile)")
            }
            throw TLSSetupError("TLS key \(privateKeyFile): not a PEM private key (\(reason))")
        }
        if SSL_CTX_check_private_key(ctx) != 1 {
            throw TLSSetupError("TLS key \(privateKeyFile) does not belong to the certificate \(certificateFile)")
        }
    }
}

/// How client connections to wss:// URLs check the server.
public struct ClientTLS: Sendable, Equatable, Hashable {
    /// PEM file of CA certificates (or the server's own certificate) trusted in addition to the
    /// system's store.
    public var caFile: String?
    /// Accept any certificate: self-signed, unknown CA, expired, another host's. The connection
    /// is encrypted but not authenticated; for tests.
    public var insecure: Bool

    public init(caFile: String? = nil, insecure: Bool = false) {
        self.caFile = caFile
        self.insecure = insecure
    }

    /// Checks that `caFile` holds at least one certificate OpenSSL can load.
    public func check() throws(TLSSetupError) {
        guard let caFile else { return }
        try TLSFiles.requireReadable(caFile, what: "CA file")
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw TLSSetupError("OpenSSL: cannot create a context") }
        defer { SSL_CTX_free(ctx) }
        ERR_clear_error()
        if SSL_CTX_load_verify_locations(ctx, caFile, nil) != 1 {
            throw TLSSetupError("CA file \(caFile): no PEM certificate in it (\(TLSFiles.lastOpenSSLError()))")
        }
    }
}

enum TLSFiles {
    /// Opening it ourselves gives the errno a person understands; OpenSSL would say "system lib".
    static func requireReadable(_ path: String, what: String) throws(TLSSetupError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw TLSSetupError("\(what) \(path): \(String(cString: strerror(errno)))") }
        systemClose(fd)
    }

    /// The reason of the first error OpenSSL queued, e.g. "no start line" (the later ones are
    /// its callers giving up: "PEM lib"), and clears the queue.
    static func lastOpenSSLError() -> String {
        let code = ERR_peek_error()
        defer { ERR_clear_error() }
        guard code != 0, let reason = ERR_reason_error_string(code) else { return "unknown error" }
        return String(cString: reason)
    }
}
