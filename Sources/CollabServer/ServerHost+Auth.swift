// Authentication of connections (--auth-secret-file): a JWT from the `token` query parameter,
// an `Authorization: Bearer` header or the hello's `token`, verified before the connection joins
// its room — an unauthenticated peer cannot even make the server load a room.
//
// Verification is async (jwt-kit's key collection is an actor), the loop is not: the token goes
// to a task, and its verdict comes back through a mailbox. Meanwhile the connection's messages
// are held in order, up to a small limit, and replayed once it is admitted.
import CollabAuth
import CollabProtocol
import CollabTransport

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension ServerHost {
    /// Where a connection is on its way into its room.
    enum Admission {
        /// In the room (or no authentication is asked for).
        case admitted
        /// Connected with no token: its first message must be a hello that carries one.
        case awaitingToken
        /// Its token is being checked; these messages arrived meanwhile.
        case verifying(held: [[UInt8]], bytes: Int)
        /// Refused and closing: nothing more it sends is read.
        case refused
    }

    struct AuthVerdict: Sendable {
        var connection: ConnectionID
        var result: Result<AccessGrant, AuthError>
    }

    /// Messages held per connection while its token is checked. A client sends its hello and
    /// perhaps a few ops queued offline; more than this before the answer is abuse.
    static let maxHeldMessages = 64
    static let maxHeldBytes = 256 << 10

    /// A token from the upgrade request: the `token` query parameter or a Bearer header.
    static func requestToken(_ head: RequestHead) -> String? {
        if let t = head.queryValue("token"), !t.isEmpty { return t }
        if let h = head.header("authorization") {
            let parts = h.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count == 2, parts[0].lowercased() == "bearer" { return String(parts[1]) }
        }
        return nil
    }

    func startAuthentication(_ s: Session) {
        s.openedAtNanos = Self.monotonicNanos()
        if let token = Self.requestToken(s.connection.request) {
            s.admission = .verifying(held: [], bytes: 0)
            verify(token, for: s.id)
        } else {
            s.admission = .awaitingToken
        }
        armAuthSweep()
    }

    func verify(_ token: String, for id: ConnectionID) {
        guard let tokens = configuration.tokens, let sender = authMailbox?.sender else { return }
        Task {
            let result = await tokens.verify(token)
            sender.send(AuthVerdict(connection: id, result: result))
        }
    }

    /// A message from a connection that is not in its room yet.
    func receivedBeforeAdmission(_ s: Session, _ bytes: [UInt8]) {
        switch s.admission {
        case .admitted, .refused:
            return
        case .awaitingToken:
            let decoded: Message? = bytes.withUnsafeBufferPointer { try? Message.decode(trimNewline($0)) }
            guard let hello = decoded, hello.type == .hello, let token = hello.token, !token.isEmpty else {
                refuse(s, .unauthorized, "authentication required: give a token (the token query parameter, an Authorization: Bearer header, or \"token\" in the hello)")
                return
            }
            s.admission = .verifying(held: [bytes], bytes: bytes.count)
            verify(token, for: s.id)
        case .verifying(var held, var size):
            held.append(bytes)
            size += bytes.count
            guard held.count <= Self.maxHeldMessages, size <= Self.maxHeldBytes else {
                refuse(s, .unauthorized, "too many messages before authentication completed")
                return
            }
            s.admission = .verifying(held: held, bytes: size)
        }
    }

    func authenticated(_ verdict: AuthVerdict) {
        guard let s = sessions[verdict.connection], case .verifying(let held, _) = s.admission else { return }
        switch verdict.result {
        case .failure(let e):
            refuse(s, .unauthorized, e.description)
        case .success(let grant) where !grant.opens(room: s.room):
            refuse(s, .forbidden, AuthError.roomNotAllowed(s.room).description)
        case .success(let grant):
            s.grant = grant
            s.admission = .admitted
            log.info("conn \(s.id) room \(s.room) peer \(s.peer): authenticated as \(quoted(grant.user))\(grant.canWrite ? "" : " (read-only)")")
            guard admit(s) else { return }
            for bytes in held {
                // A message may have closed it (a leave, a refusal).
                guard sessions[s.id] === s else { return }
                received(s.connection, bytes)
            }
        }
    }

    /// Refuses a connection before it joins: an error it can read, then close 1008.
    func refuse(_ s: Session, _ code: ErrorCode, _ why: String) {
        metrics.authRefusals[code == .forbidden ? 1 : 0].increment()
        log.info("conn \(s.id) room \(s.room) peer \(s.peer): refused (\(code.rawValue)): \(why)")
        s.admission = .refused
        s.connection.send(encode(.error(code: code, why, room: s.room, fatal: true)))
        s.connection.close(code: CloseCode.policyViolation, reason: code.rawValue)
    }

    /// What an authenticated connection's message becomes: the hello speaks for the token's
    /// user, whatever it claims; a read-only member's op is refused.
    func authorize(_ message: inout Message, from s: Session) -> Bool {
        guard let grant = s.grant else { return true }
        switch message.type {
        case .hello:
            message.user = grant.user
            if let name = grant.name { message.name = name }
            message.client = ClientIdentity.qualify(message.client, user: grant.user) { Self.freshClientPart() }
            message.token = nil
        case .op where !grant.canWrite:
            emit(Delivery(to: [s.id], .error(code: .forbidden, "read-only access: this token does not allow edits", seq: message.seq, room: s.room)),
                 room: s.room, durable: false)
            return false
        default:
            break
        }
        return true
    }

    static func freshClientPart() -> String {
        var g = SystemRandomNumberGenerator()
        return String(g.next() as UInt64, radix: 36)
    }

    /// Once a second while anyone is authenticating or authenticated: drops connections that
    /// took too long to authenticate, and members whose token expired (they reconnect with a
    /// fresh one; a token is only as revocable as it is short).
    func armAuthSweep() {
        guard authSweepTimer == nil else { return }
        authSweepTimer = loop.schedule(every: .seconds(1)) { [weak self] in self?.sweepAuth() }
    }

    func sweepAuth() {
        let now = Self.monotonicNanos()
        let wallNow = Date()
        let deadline = UInt64(configuration.authTimeout.components.seconds) * 1_000_000_000
            + UInt64(configuration.authTimeout.components.attoseconds / 1_000_000_000)
        for s in sessions.values {
            switch s.admission {
            case .awaitingToken, .verifying:
                if now &- s.openedAtNanos > deadline {
                    refuse(s, .unauthorized, "no valid token within \(configuration.authTimeout)")
                }
            case .refused:
                break
            case .admitted:
                if let grant = s.grant, grant.expires <= wallNow, s.tokenExpiredSent == false {
                    s.tokenExpiredSent = true
                    log.info("conn \(s.id) room \(s.room) user \(quoted(grant.user)): token expired; closing")
                    emit(Delivery(to: [s.id], .error(code: .unauthorized, "your token expired; reconnect with a new one", room: s.room, fatal: true)),
                         room: s.room, durable: false)
                    emitClose(s.id, code: CloseCode.policyViolation, reason: "token expired")
                }
            }
        }
    }
}
