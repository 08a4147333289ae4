#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import JWTKit

/// What a member may do in the rooms a token opens.
public enum Permission: String, Sendable, Codable, CaseIterable {
    /// Receives everything; its ops are refused with `forbidden` (cursors and typing still go out:
    /// a viewer's caret is useful to the others, and it changes no document).
    case read
    /// Edits too.
    case write
}

/// The claims of a collab access token (RFC 7519 names where one exists).
///
/// `sub` becomes the member's `user` on every message, whatever the client's hello says; `name`
/// the display name; `rooms` the room names or `RoomPattern` globs it opens; `perm` `read` or
/// `write`. `exp` is required: a token that never expires cannot be withdrawn short of changing
/// the secret. A missing `perm` means `read` — the least a token can mean.
public struct AccessClaims: JWTPayload, Equatable {
    public var sub: SubjectClaim
    public var name: String?
    public var rooms: [String]
    public var perm: Permission?
    public var exp: ExpirationClaim?
    public var nbf: NotBeforeClaim?
    public var iat: IssuedAtClaim?

    public init(user: String, name: String? = nil, rooms: [String], permission: Permission,
                expires: Date, issued: Date = Date()) {
        sub = SubjectClaim(value: user)
        self.name = name
        self.rooms = rooms
        perm = permission
        // Whole seconds: NumericDate may be fractional, but not every JWT library reads that.
        exp = ExpirationClaim(value: Date(timeIntervalSince1970: expires.timeIntervalSince1970.rounded(.down)))
        iat = IssuedAtClaim(value: Date(timeIntervalSince1970: issued.timeIntervalSince1970.rounded(.down)))
    }

    /// Checks what the signature cannot: the dates and the shape of the claims. jwt-kit calls
    /// this after checking the signature.
    public func verify(using algorithm: some JWTAlgorithm) async throws {
        // Nothing here: TokenAuthority.verify checks the claims right after (`check`), with its
        // own clock and leeway, which this signature cannot take.
    }

    func check(now: Date, skew: TimeInterval) throws(AuthError) {
        guard let exp else { throw .invalidClaims("the token has no \"exp\" (expiry) claim") }
        // A little leeway for clocks that disagree between the minting host and this one.
        guard now.addingTimeInterval(-skew) < exp.value else {
            throw .expired(at: exp.value)
        }
        if let nbf, now.addingTimeInterval(skew) < nbf.value {
            throw .notYetValid(from: nbf.value)
        }
        guard !sub.value.isEmpty else { throw .invalidClaims("\"sub\" is empty") }
        guard sub.value.utf8.count <= 256 else { throw .invalidClaims("\"sub\" is longer than 256 bytes") }
        guard !rooms.isEmpty else { throw .invalidClaims("\"rooms\" lists no room") }
    }

    /// Seconds of clock difference tolerated on `exp` and `nbf` by default.
    public static let clockSkew: TimeInterval = 30
}
