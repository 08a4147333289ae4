#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Why a token was not accepted. The descriptions are for the client's `error` message and the
/// server log: they say what is wrong without echoing the token.
public enum AuthError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not three base64url parts, bad JSON, a claim of the wrong type.
    case malformed(String)
    /// Signed with another secret or algorithm (or not signed: `alg: none`).
    case badSignature
    case expired(at: Date)
    case notYetValid(from: Date)
    case invalidClaims(String)
    /// A valid token that does not open this room.
    case roomNotAllowed(String)

    public var description: String {
        switch self {
        case .malformed(let why): return "malformed token: \(why)"
        case .badSignature: return "token signature does not verify (signed with another secret?)"
        case .expired(let at): return "token expired at \(Self.format(at))"
        case .notYetValid(let from): return "token not valid before \(Self.format(from))"
        case .invalidClaims(let why): return "invalid token: \(why)"
        case .roomNotAllowed(let room): return "this token does not open room \(room)"
        }
    }

    /// `unauthorized` (who you are is not established) or `forbidden` (it is, and the answer is no).
    public var isForbidden: Bool {
        if case .roomNotAllowed = self { return true }
        return false
    }

    static func format(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
