import CollabAuth
import XCTest

final class ClientIdentityTests: XCTestCase {
    func testClaimedIdsGetTheUserInFront() {
        XCTAssertEqual(ClientIdentity.qualify("tab1", user: "ann", fresh: { "x" }), "ann/tab1")
        XCTAssertEqual(ClientIdentity.qualify(nil, user: "ann", fresh: { "r4nd" }), "ann/r4nd")
        XCTAssertEqual(ClientIdentity.qualify("", user: "ann", fresh: { "r4nd" }), "ann/r4nd")
    }

    func testTheIdFromTheWelcomeComesBackUnchanged() {
        let first = ClientIdentity.qualify("tab1", user: "ann", fresh: { "x" })
        XCTAssertEqual(ClientIdentity.qualify(first, user: "ann", fresh: { "x" }), first)
    }

    func testAnotherUsersIdCannotBeTaken() {
        let bobs = ClientIdentity.qualify("tab1", user: "bob", fresh: { "x" })
        XCTAssertNotEqual(ClientIdentity.qualify(bobs, user: "ann", fresh: { "x" }), bobs)
    }

    func testUsersWithSlashesCannotCollide() {
        // "a" claiming "b/c" and "a/b" claiming "c" would both be "a/b/c" without escaping.
        let one = ClientIdentity.qualify("b/c", user: "a", fresh: { "x" })
        let two = ClientIdentity.qualify("c", user: "a/b", fresh: { "x" })
        XCTAssertNotEqual(one, two)
        XCTAssertEqual(two, "a%2Fb/c")
        XCTAssertNotEqual(ClientIdentity.qualify("2Fb/c", user: "a%", fresh: { "x" }), two)
    }

    func testOriginPolicy() {
        XCTAssertTrue(OriginPolicy([]).permits(origin: "https://evil.example"))
        let p = OriginPolicy(["https://app.example.com", "https://*.example.org"])
        XCTAssertTrue(p.permits(origin: "https://app.example.com"))
        XCTAssertTrue(p.permits(origin: "HTTPS://APP.EXAMPLE.COM"))
        XCTAssertTrue(p.permits(origin: "https://docs.example.org"))
        XCTAssertFalse(p.permits(origin: "https://evil.example"))
        XCTAssertFalse(p.permits(origin: "http://app.example.com"))
        XCTAssertFalse(p.permits(origin: "https://app.example.com.evil.example"))
        XCTAssertFalse(p.permits(origin: "null"))
        XCTAssertTrue(p.permits(origin: nil), "programs send no Origin")
        XCTAssertTrue(OriginPolicy(["*"]).permits(origin: "https://anything"))
    }
}
