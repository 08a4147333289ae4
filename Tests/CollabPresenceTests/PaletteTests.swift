import CollabPresence
import Foundation
import XCTest

final class PaletteTests: XCTestCase {
    // WCAG 2 relative luminance and contrast ratio.
    func luminance(_ color: String) -> Double {
        let c = Palette.components(color)!
        func channel(_ v: Int) -> Double {
            let s = Double(v) / 255
            return s <= 0.03928 ? s / 12.92 : pow((s + 0.055) / 1.055, 2.4)
        }
        return 0.2126 * channel(c.red) + 0.7152 * channel(c.green) + 0.0722 * channel(c.blue)
    }

    func contrast(_ a: Double, _ b: Double) -> Double { (max(a, b) + 0.05) / (min(a, b) + 0.05) }

    /// CIELAB (D65) of an sRGB colour.
    func lab(_ color: String) -> (Double, Double, Double) {
        let c = Palette.components(color)!
        func lin(_ v: Int) -> Double {
            let s = Double(v) / 255
            return s <= 0.04045 ? s / 12.92 : pow((s + 0.055) / 1.055, 2.4)
        }
        let r = lin(c.red), g = lin(c.green), b = lin(c.blue)
        let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
        let y = 0.2126 * r + 0.7152 * g + 0.0722 * b
        let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
        func f(_ t: Double) -> Double { t > 0.008856 ? cbrt(t) : 7.787 * t + 16.0 / 116 }
        return (116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z)))
    }

    func testEveryColourIsReadableOnWhiteAndOnBlack() {
        for color in Palette.colors {
            let l = luminance(color)
            XCTAssertGreaterThanOrEqual(contrast(l, 1), 3, "\(color) on white")
            XCTAssertGreaterThanOrEqual(contrast(l, 0), 3, "\(color) on black")
        }
    }

    func testColoursAreDistinct() {
        XCTAssertEqual(Set(Palette.colors).count, Palette.colors.count)
        for (i, a) in Palette.colors.enumerated() {
            for b in Palette.colors[(i + 1)...] {
                let p = lab(a), q = lab(b)
                let distance = ((p.0 - q.0) * (p.0 - q.0) + (p.1 - q.1) * (p.1 - q.1) + (p.2 - q.2) * (p.2 - q.2)).squareRoot()
                XCTAssertGreaterThanOrEqual(distance, 25, "\(a) and \(b) are too alike")
            }
        }
    }

    func testPreferredColourIsFNV1aOfTheUserID() {
        // Pinned values: every instance and client of any version must agree.
        XCTAssertEqual(Palette.preferredIndex(for: "ann"), 0)
        XCTAssertEqual(Palette.preferredIndex(for: ""), 5)
        XCTAssertEqual(Palette.preferredIndex(for: "carol"), 10)
        XCTAssertEqual(Palette.color(for: "carol"), Palette.colors[10])
    }

    func testTakenColoursAreAvoidedWhileThePaletteHasRoom() {
        let ann = Palette.color(for: "ann")
        // bob prefers ann's colour too (both index 0): he gets the next one.
        XCTAssertEqual(Palette.preferredIndex(for: "bob"), 0)
        XCTAssertEqual(Palette.color(for: "bob", avoiding: [ann]), Palette.colors[1])
        var taken: Set<String> = []
        for i in 0 ..< Palette.colors.count {
            let c = Palette.color(for: "user\(i)", avoiding: taken)
            XCTAssertFalse(taken.contains(c))
            taken.insert(c)
        }
        XCTAssertEqual(taken.count, Palette.colors.count)
        // Full: the preferred colour, stable.
        XCTAssertEqual(Palette.color(for: "zed", avoiding: taken), Palette.color(for: "zed"))
    }

    func testInitials() {
        XCTAssertEqual(Palette.initials(name: "Ada Lovelace", user: "ada"), "AL")
        XCTAssertEqual(Palette.initials(name: "Grace Brewster Murray Hopper", user: "g"), "GH")
        XCTAssertEqual(Palette.initials(name: "élodie", user: "e"), "É")
        XCTAssertEqual(Palette.initials(name: nil, user: "jean-luc.picard"), "JP")
        XCTAssertEqual(Palette.initials(name: "  ", user: "bot_7"), "B7")
        XCTAssertEqual(Palette.initials(name: nil, user: "@@@"), "?")
        XCTAssertEqual(Palette.initials(name: "🙂 Sam", user: "s"), "S")
    }
}
