import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and the same sequence on every platform, so a
/// failing case is reproducible from its seed. `SystemRandomNumberGenerator` would not be.
/// `init(seed:)` takes the state as is: a test that names a seed replays exactly what it did.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in `range` (uses the standard library's unbiased algorithm on top of `next()`).
    @inlinable public mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
    @inlinable public mutating func int(_ range: Range<Int>) -> Int { Int.random(in: range, using: &self) }
    /// True with probability `p`.
    @inlinable public mutating func chance(_ p: Double) -> Bool { Double.random(in: 0 ..< 1, using: &self) < p }
    @inlinable public mutating func pick<T>(_ items: [T]) -> T { items[int(0 ..< items.count)] }
}

/// Seeds for randomized tests: a fixed default, overridable with `COLLAB_TEST_SEED` (decimal or
/// 0x-prefixed hex). `COLLAB_TEST_CASE=N` runs only case N of each property, to replay a failure.
public enum TestSeed {
    public static let defaultSeed: UInt64 = 0xC011_AB07_2024_0001

    /// Read once: the environment does not change during a run.
    static let environmentText: String? = {
        guard let text = ProcessInfo.processInfo.environment["COLLAB_TEST_SEED"]?
            .trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        return text
    }()

    static func parse(_ text: String) -> UInt64? {
        text.lowercased().hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
    }

    /// The seed every property derives its cases from. A malformed `COLLAB_TEST_SEED` stops the
    /// run: silently using the default would make a replay look like it passed.
    public static let base: UInt64 = {
        guard let text = environmentText else { return defaultSeed }
        guard let seed = parse(text) else { fatalError("COLLAB_TEST_SEED must be an unsigned integer, got \(text)") }
        return seed
    }()

    /// `COLLAB_TEST_SEED` if it is set and parses, for tests that otherwise draw a fresh seed per
    /// run (and print it); those ignore a malformed value rather than stop the run.
    public static let override: UInt64? = environmentText.flatMap(parse)

    public static let onlyCase: Int? = ProcessInfo.processInfo.environment["COLLAB_TEST_CASE"].flatMap { Int($0) }

    /// The generator for case `index` of the property named `name`: independent of every other
    /// case, so one case replays alone.
    public static func rng(_ name: String, case index: Int) -> SplitMix64 {
        var salt: UInt64 = 0xCBF2_9CE4_8422_2325 // FNV-1a of the property name
        for b in name.utf8 { salt = (salt ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        var mix = SplitMix64(seed: base ^ salt)
        var rng = SplitMix64(seed: mix.next() &+ UInt64(index) &* 0xD1B5_4A32_D192_ED03)
        _ = rng.next()
        return rng
    }

    public static func describe(_ name: String, case index: Int) -> String {
        "[\(name)] COLLAB_TEST_SEED=0x\(String(base, radix: 16)) COLLAB_TEST_CASE=\(index)"
    }
}

/// Names one random case for failure messages; the text is only built when a message is.
public struct CaseLabel: CustomStringConvertible {
    public let name: String
    public let index: Int
    public init(name: String, index: Int) {
        self.name = name
        self.index = index
    }
    public var description: String { TestSeed.describe(name, case: index) }
}

/// Runs `body` for `count` seeded cases (or only `COLLAB_TEST_CASE`). `body` gets the case's
/// generator and a label naming seed and case for failure messages. The case is also kept where
/// a crash handler can print it, since library invariant checks are preconditions that stop
/// the process rather than fail a test.
public func forEachCase(_ name: String, count: Int, _ body: (inout SplitMix64, CaseLabel) throws -> Void) rethrows {
    CrashContext.begin(name)
    defer { CrashContext.end() }
    let cases: [Int] = TestSeed.onlyCase.map { [$0] } ?? Array(0 ..< count)
    for index in cases {
        var rng = TestSeed.rng(name, case: index)
        CrashContext.caseIndex = index
        try body(&rng, CaseLabel(name: name, index: index))
    }
}

/// Prints the running case's seed and number if the process dies on a trap (a failed
/// precondition), so a crash is as reproducible as an XCTest failure. The handler only calls
/// write(2) on memory prepared in advance.
enum CrashContext {
    nonisolated(unsafe) static let prefix = UnsafeMutablePointer<CChar>.allocate(capacity: 512)
    nonisolated(unsafe) static var prefixLength = 0
    nonisolated(unsafe) static var caseIndex = 0
    nonisolated(unsafe) static var installed = false

    static func begin(_ name: String) {
        install()
        let text = "\ncollab test crashed in case: \(TestSeed.describe(name, case: 0).dropLast())"
        let bytes = Array(text.utf8.prefix(511))
        for (i, b) in bytes.enumerated() { prefix[i] = CChar(bitPattern: b) }
        prefixLength = bytes.count
        caseIndex = 0
    }

    static func end() { prefixLength = 0 }

    static func install() {
        guard !installed else { return }
        installed = true
        for sig in [SIGILL, SIGTRAP, SIGABRT, SIGSEGV, SIGBUS] {
            signal(sig) { sig in
                if CrashContext.prefixLength > 0 {
                    _ = write(2, CrashContext.prefix, CrashContext.prefixLength)
                    var digits: (CChar, CChar, CChar, CChar, CChar, CChar, CChar, CChar, CChar, CChar,
                                 CChar, CChar, CChar, CChar, CChar, CChar, CChar, CChar, CChar, CChar) =
                        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
                    withUnsafeMutableBytes(of: &digits) { buf in
                        var n = CrashContext.caseIndex, i = buf.count
                        i -= 1; buf[i] = 0x0A // newline
                        repeat { i -= 1; buf[i] = UInt8(48 + n % 10); n /= 10 } while n > 0 && i > 0
                        _ = write(2, buf.baseAddress! + i, buf.count - i)
                    }
                }
                signal(sig, SIG_DFL)
                raise(sig)
            }
        }
    }
}
