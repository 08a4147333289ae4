// Host names are resolved on a thread of their own: getaddrinfo blocks for as long as DNS takes
// (seconds when a resolver is down), and nothing may block the event loop's thread.
import CollabTransport
#if canImport(Glibc)
import Glibc
#endif

enum HostResolver {
    /// An IPv4 or IPv6 literal needs no resolving.
    static func isAddressLiteral(_ host: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    struct Resolution: Sendable {
        var attempt: Int
        /// Addresses as text, IPv4 first (Redis is commonly bound to 127.0.0.1 only, while
        /// "localhost" often lists ::1 first); or why there are none.
        var addresses: Result<[String], RedisError>
    }

    final class Job: @unchecked Sendable {
        let host: String
        let attempt: Int
        let sender: MailboxSender<Resolution>
        init(host: String, attempt: Int, sender: MailboxSender<Resolution>) {
            self.host = host
            self.attempt = attempt
            self.sender = sender
        }
    }

    /// Resolves `host` on a detached thread and sends the outcome to `sender`'s loop. False if
    /// no thread could be started.
    static func resolve(_ host: String, attempt: Int, to sender: MailboxSender<Resolution>) -> Bool {
        let job = Unmanaged.passRetained(Job(host: host, attempt: attempt, sender: sender)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let job = Unmanaged<Job>.fromOpaque(arg!).takeRetainedValue()
            _ = job.sender.send(Resolution(attempt: job.attempt, addresses: HostResolver.lookUp(job.host)))
            return nil
        }, job)
        guard rc == 0 else {
            Unmanaged<Job>.fromOpaque(job).release()
            return false
        }
        pthread_detach(thread)
        return true
    }

    static func string(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// getaddrinfo, blocking: call it off the loop thread.
    static func lookUp(_ host: String) -> Result<[String], RedisError> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &list)
        guard rc == 0 else { return .failure(.disconnected("cannot resolve \(host): \(String(cString: gai_strerror(rc)))")) }
        defer { freeaddrinfo(list) }
        var v4: [String] = [], v6: [String] = []
        var node = list
        while let n = node {
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            switch n.pointee.ai_family {
            case AF_INET:
                var a = n.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                if inet_ntop(AF_INET, &a, &text, socklen_t(text.count)) != nil { v4.append(Self.string(text)) }
            case AF_INET6:
                var a = n.pointee.ai_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                if inet_ntop(AF_INET6, &a, &text, socklen_t(text.count)) != nil { v6.append(Self.string(text)) }
            default:
                break
            }
            node = n.pointee.ai_next
        }
        let all = v4 + v6.filter { !v4.contains($0) }
        return all.isEmpty ? .failure(.disconnected("\(host) has no address")) : .success(all)
    }
}
