import CollabAuth
import Foundation
import XCTest

final class TokenAuthorityTests: XCTestCase {
    let secret = Array("0123456789abcdef0123456789abcdef".utf8)

    func authority(_ secret: [UInt8]? = nil) async throws -> TokenAuthority {
        try TokenAuthority(secret: secret ?? self.secret)
    }

    func claims(user: String = "ann", rooms: [String] = ["docs/*"], permission: Permission = .write,
                expires: TimeInterval = 3600) -> AccessClaims {
        AccessClaims(user: user, name: "Ann", rooms: rooms, permission: permission, expires: Date().addingTimeInterval(expires))
    }

    func testMintedTokenVerifiesToItsGrant() async throws {
        let a = try await authority()
        let token = try await a.mint(claims())
        let grant = try await a.verify(token).get()
        XCTAssertEqual(grant.user, "ann")
        XCTAssertEqual(grant.name, "Ann")
        XCTAssertTrue(grant.canWrite)
        XCTAssertTrue(grant.opens(room: "docs/a"))
        XCTAssertFalse(grant.opens(room: "other"))
    }

    func testReadOnlyAndMissingPermission() async throws {
        let a = try await authority()
        let reader = try await a.verify(try await a.mint(claims(permission: .read))).get()
        XCTAssertFalse(reader.canWrite)
        var noPerm = claims()
        noPerm.perm = nil
        let grant = try await a.verify(try await a.mint(noPerm)).get()
        XCTAssertEqual(grant.permission, .read, "a token that says nothing grants the least")
    }

    func testOtherSecretIsABadSignature() async throws {
        let token = try await authority(Array("another secret, also 32 bytes long!".utf8)).mint(claims())
        let result = try await authority().verify(token)
        XCTAssertEqual(result.failure, .badSignature)
    }

    func testTamperedPayloadIsABadSignature() async throws {
        let a = try await authority()
        let token = try await a.mint(claims(rooms: ["docs/a"]))
        var parts = token.split(separator: ".").map(String.init)
        let forged = try await a.mint(claims(rooms: ["**"]))
        parts[1] = String(forged.split(separator: ".")[1])
        let result = await a.verify(parts.joined(separator: "."))
        XCTAssertEqual(result.failure, .badSignature)
    }

    func testUnsignedTokenIsRefused() async throws {
        let a = try await authority()
        let header = base64URL(#"{"alg":"none","typ":"JWT"}"#)
        let payload = base64URL(#"{"sub":"mallory","rooms":["**"],"perm":"write","exp":9999999999}"#)
        let result = await a.verify("\(header).\(payload).")
        XCTAssertNotNil(result.failure)
        XCTAssertNil(try? result.get())
    }

    func testExpiredTokenIsRefusedBeyondTheLeeway() async throws {
        let a = try await authority()
        let token = try await a.mint(claims(expires: -(AccessClaims.clockSkew + 60)))
        guard case .expired = await a.verify(token).failure else { return XCTFail("expected expired") }
        let fresh = try await a.mint(claims(expires: 60))
        guard case .expired = await a.verify(fresh, now: Date().addingTimeInterval(3600)).failure else {
            return XCTFail("expected expired at a later time")
        }
    }

    func testTokenWithoutExpiryIsRefused() async throws {
        let a = try await authority()
        var c = claims()
        c.exp = nil
        guard case .invalidClaims(let why) = await a.verify(try await a.mint(c)).failure else { return XCTFail() }
        XCTAssertTrue(why.contains("exp"), why)
    }

    func testMalformedTokens() async throws {
        let a = try await authority()
        for bad in ["", "abc", "a.b", "a.b.c", "....", String(repeating: "x", count: 10_000)] {
            let result = await a.verify(bad)
            XCTAssertNotNil(result.failure, bad)
        }
    }

    func testShortSecretIsRefusedAtStart() {
        do {
            _ = try TokenAuthority(secret: Array("short".utf8))
            XCTFail("a 5-byte secret was accepted")
        } catch {
            XCTAssertTrue(error.description.contains("at least 32"), error.description)
        }
    }

    func testSecretFileLosesItsTrailingNewline() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("secret-\(getpid())").path
        try "0123456789abcdef0123456789abcdef\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertEqual(try TokenAuthority.readSecret(file: path), secret)
        XCTAssertThrowsError(try TokenAuthority.readSecret(file: path + ".missing"))
    }

    private func base64URL(_ s: String) -> String {
        Data(s.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
