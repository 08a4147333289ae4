import CollabTestSupport
import XCTest
@testable import CollabOT

// MARK: - Random text

/// Pieces of text that stress scalar addressing: multi-byte scalars of every UTF-8 length,
/// combining marks (a random position may fall between a base letter and its mark), emoji with
/// skin-tone modifiers, ZWJ sequences, flags (regional-indicator pairs), CRLF, and canonically
/// equivalent spellings of one character (precomposed and decomposed).
let textAtoms: [String] = [
    "a", "b", "c", "x", "y", "z", " ", "\n", "0", "7", ".",
    "é", "e\u{301}", "ñ", "n\u{303}", "ü", "A\u{30A}", "Å", "o\u{308}\u{301}", "\u{301}",
    "e\u{301}\u{323}", "e\u{323}\u{301}", // canonically equivalent, different scalar order
    "中", "文", "字", "日本語", "한국어", "ß", "Ω", "Ж", "ש", "ع", "क्षि", "ไทย",
    "👍", "👍🏽", "👋🏿", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🧑🏽‍💻", "🇫🇷", "🇯🇵", "😀", "𝄞", "𐍈",
    "\r\n", "\t", "\u{200B}", "\u{FEFF}", "\u{10FFFF}",
]

extension SplitMix64 {
    /// Random text of about `scalars` scalars (it may overshoot by part of one atom).
    mutating func text(scalars: Int) -> String {
        var out = ""
        var n = 0
        while n < scalars {
            let atom = pick(textAtoms)
            out += atom
            n += atom.unicodeScalars.count
        }
        return out
    }

    /// Random text of exactly `scalars` scalars (cuts inside an atom when needed: a ZWJ sequence or
    /// a letter and its mark may be split, as real positions can).
    mutating func scalars(_ count: Int) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(count + 8)
        while out.count < count { out.append(contentsOf: pick(textAtoms).unicodeScalars) }
        out.removeLast(out.count - count)
        return out
    }

    mutating func document(maxScalars: Int) -> [Unicode.Scalar] {
        scalars(int(0 ... maxScalars))
    }

    /// A random op that fits a document of `length` scalars. Mostly built with the mutating
    /// builders; sometimes through `TextOperation.init` from unnormalized components (adjacent
    /// kinds, insert after delete, explicit trailing keep) to exercise normalization.
    mutating func operation(documentLength length: Int, maxInsert: Int = 6) -> TextOperation {
        var components: [OpComponent] = []
        var pos = 0
        // How busy the op is: mostly keeps, or edits everywhere.
        let editRate = pick([0.1, 0.3, 0.7])
        while pos < length {
            let remaining = length - pos
            if !chance(editRate) {
                let n = int(1 ... min(remaining, pick([1, 3, 10, remaining])))
                components.append(.retain(n))
                pos += n
            } else if chance(0.5) {
                components.append(.insert(String(scalars: scalars(int(1 ... maxInsert)))))
            } else {
                let n = int(1 ... min(remaining, pick([1, 2, 5, remaining])))
                components.append(.delete(n))
                pos += n
            }
        }
        if chance(length == 0 ? 0.7 : 0.2) {
            components.append(.insert(String(scalars: scalars(int(1 ... maxInsert)))))
        }
        if chance(0.5) {
            // Drop a random tail of keeps: trailing keeps are implicit anyway.
            while case .retain? = components.last { components.removeLast() }
        }
        do {
            let op = try TextOperation(components)
            if chance(0.5) { return op }
            var built = TextOperation()
            for c in components { built.append(c) }
            // The public builders leave a trailing keep in place (nothing public removes it);
            // `TextOperation.init` and every library result drop it.
            built.trimTrailingRetain()
            return built
        } catch {
            fatalError("generator built an invalid op \(components): \(error)")
        }
    }
}

extension String {
    init(scalars: [Unicode.Scalar]) {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        self = String(view)
    }

    var scalarArray: [Unicode.Scalar] { Array(unicodeScalars) }
}

extension TextRope {
    init(scalars: [Unicode.Scalar]) { self.init(String(scalars: scalars)) }
    /// The exact scalars. Tests compare documents this way, never with `String ==`, which treats
    /// canonically equivalent texts ("é" and "e\u{301}") as equal although their positions differ.
    var scalarArray: [Unicode.Scalar] { Array(string.unicodeScalars) }
    /// The exact UTF-8 bytes (equal exactly when the scalars are; cheaper to get).
    var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(utf8Count)
        forEachUTF8Chunk { out.append(contentsOf: $0) }
        return out
    }
}

// MARK: - Reference model

/// An independent, obviously correct apply on an array of scalars.
func referenceApply(_ op: TextOperation, to doc: [Unicode.Scalar]) -> [Unicode.Scalar]? {
    var out: [Unicode.Scalar] = []
    var pos = 0
    for c in op.components {
        switch c {
        case .retain(let n):
            guard pos + n <= doc.count else { return nil }
            out.append(contentsOf: doc[pos ..< pos + n])
            pos += n
        case .insert(let s):
            out.append(contentsOf: s.unicodeScalars)
        case .delete(let n):
            guard pos + n <= doc.count else { return nil }
            pos += n
        }
    }
    out.append(contentsOf: doc[pos...])
    return out
}

/// Independent cursor transform: inserts strictly before the cursor shift it, inserts exactly at
/// it shift it only for the owner's own op; deleted text before the cursor pulls it back.
func referenceTransform(position cursor: Int, by op: TextOperation, isOwnOp: Bool) -> Int {
    var result = cursor
    var pos = 0 // input position
    for c in op.components {
        switch c {
        case .retain(let n): pos += n
        case .insert(let s):
            if pos < cursor || (pos == cursor && isOwnOp) { result += s.unicodeScalars.count }
        case .delete(let n):
            result -= min(n, max(0, cursor - pos))
            pos += n
        }
    }
    return result
}

/// Non-crashing version of `TextOperation.checkInvariants()`: the reason it is not normalized.
func normalizationProblem(_ op: TextOperation) -> String? {
    var previous: OpComponent?
    for c in op.components {
        switch (previous, c) {
        case (.retain?, .retain), (.insert?, .insert), (.delete?, .delete):
            return "adjacent components of one kind"
        case (.delete?, .insert):
            return "insert after delete"
        default: break
        }
        switch c {
        case .retain(let n), .delete(let n): if n <= 0 { return "empty component" }
        case .insert(let s): if s.isEmpty { return "empty insert" }
        }
        previous = c
    }
    if case .retain? = op.components.last { return "trailing retain" }
    return nil
}

/// Asserts that `op` is normalized (with the seed in the message), then runs the library's own
/// check, which would stop the process if the two ever disagreed.
func assertNormalized(_ op: TextOperation, _ what: String, _ label: any CustomStringConvertible,
                      file: StaticString = #filePath, line: UInt = #line) {
    if let problem = normalizationProblem(op) {
        XCTFail("\(label): \(what) \(op) is not normalized: \(problem)", file: file, line: line)
    } else {
        op.checkInvariants()
    }
}

/// Applies `op` to a copy of `doc`, checking the rope's invariants and (when `checkReference`)
/// the reference model.
func applied(_ op: TextOperation, to doc: TextRope, _ what: String, _ label: any CustomStringConvertible,
             checkReference: Bool = false,
             file: StaticString = #filePath, line: UInt = #line) -> TextRope? {
    var result = doc
    do {
        try op.apply(to: &result)
    } catch {
        XCTFail("\(label): \(what): \(op) does not apply to \(doc.count) scalars: \(error)", file: file, line: line)
        return nil
    }
    result.checkInvariants()
    if checkReference, let expected = referenceApply(op, to: doc.scalarArray), expected != result.scalarArray {
        XCTFail("\(label): \(what): apply disagrees with the reference model", file: file, line: line)
    }
    return result
}

func debugScalars(_ rope: TextRope) -> String { debugScalars(rope.scalarArray) }
func debugScalars(_ s: [Unicode.Scalar]) -> String {
    String(scalars: s).debugDescription + " (\(s.count) scalars)"
}
