#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import JWTKit

/// Who a verified token says a member is, and what it may do.
public struct AccessGrant: Sendable, Equatable {
    public var user: String
    public var name: String?
    public var rooms: [RoomPattern]
    public var permission: Permission
    /// When the grant ends: the token's `exp` plus the authority's clock leeway.
    public var expires: Date

    public var canWrite: Bool { permission == .write }

    public func opens(room: String) -> Bool {
        rooms.contains { $0.matches(room) }
    }
}

/// The shared secret's checks, done once at start-up rather than at the first connection.
public struct AuthSecretError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// Verifies and mints HS256 access tokens with one shared secret (jwt-kit does the JOSE work:
/// base64url, the header's `alg`, the constant-time MAC comparison).
public final class TokenAuthority: Sendable {
    /// HS256 needs a key at least as long as its output; jwt-kit asserts it, and a short
    /// secret is guessable offline from any token it signed.
    public static let minimumSecretBytes = 32

    private let keys: Keys

    /// Adding a key to jwt-kit's collection is async (it is an actor); doing it on first use
    /// lets the authority be made where nothing is async, such as a command's start-up.
    private actor Keys {
        let secret: [UInt8]
        var collection: JWTKeyCollection?
        init(secret: [UInt8]) { self.secret = secret }
        func get() async -> JWTKeyCollection {
            if let collection { return collection }
            let c = JWTKeyCollection()
            await c.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
            collection = c
            return c
        }
    }

    /// Seconds by which this host's clock may disagree with the minting host's.
    public let clockSkew: TimeInterval

    public init(secret: [UInt8], clockSkew: TimeInterval = AccessClaims.clockSkew) throws(AuthSecretError) {
        self.clockSkew = clockSkew
        guard secret.count >= Self.minimumSecretBytes else {
            throw AuthSecretError(description: "the auth secret has \(secret.count) bytes; it needs at least \(Self.minimumSecretBytes) (e.g. head -c 32 /dev/urandom | base64 > secret)")
        }
        keys = Keys(secret: secret)
    }

    /// Reads a secret file: its bytes without the trailing newline an editor or `echo` leaves.
    public static func readSecret(file path: String) throws(AuthSecretError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AuthSecretError(description: "cannot read the auth secret file \(path)")
        }
        return trimmed(Array(data))
    }

    /// The secret as given in an environment variable, trimmed the same way.
    public static func secret(fromEnvironment value: String) -> [UInt8] {
        trimmed(Array(value.utf8))
    }

    static func trimmed(_ bytes: [UInt8]) -> [UInt8] {
        var b = bytes[...]
        while let last = b.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { b = b.dropLast() }
        return Array(b)
    }

    /// The grant of a token, or why it has none. `now` is for tests; the signature is checked
    /// first, so nothing of an unsigned token is believed (not even its expiry).
    public func verify(_ token: String, now: Date = Date()) async -> Result<AccessGrant, AuthError> {
        let claims: AccessClaims
        do {
            claims = try await keys.get().verify(token, as: AccessClaims.self)
        } catch let e as AuthError {
            return .failure(e)
        } catch let e as JWTError {
            return .failure(Self.translate(e))
        } catch let e as DecodingError {
            return .failure(.malformed(Self.describe(e)))
        } catch {
            return .failure(.malformed("\(error)"))
        }
        do throws(AuthError) {
            try claims.check(now: now, skew: clockSkew)
        } catch {
            return .failure(error)
        }
        return .success(AccessGrant(user: claims.sub.value, name: claims.name, rooms: claims.rooms.map(RoomPattern.init),
                                    permission: claims.perm ?? .read, expires: claims.exp!.value.addingTimeInterval(clockSkew)))
    }

    /// A signed token for `user`.
    public func mint(_ claims: AccessClaims) async throws -> String {
        try await keys.get().sign(claims)
    }

    static func translate(_ e: JWTError) -> AuthError {
        switch e.errorType {
        case .signatureVerificationFailed, .unsupportedAlgorithm, .missingKIDHeader, .unknownKID, .noKeyProvided:
            return .badSignature
        case .claimVerificationFailure:
            return .invalidClaims(e.reason ?? "a claim does not verify")
        default:
            return .malformed(e.reason ?? "\(e.errorType)")
        }
    }

    static func describe(_ e: DecodingError) -> String {
        switch e {
        case .keyNotFound(let key, _): return "claim \"\(key.stringValue)\" is missing"
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
            let path = c.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? c.debugDescription : "claim \"\(path)\": \(c.debugDescription)"
        @unknown default: return "\(e)"
        }
    }
}
