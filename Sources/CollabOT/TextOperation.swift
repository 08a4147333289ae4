/// One step of a text operation, in ShareDB's `text-unicode` model. Lengths count Unicode scalars.
public enum OpComponent: Equatable, Hashable, Sendable {
    /// Keep (skip over) this many scalars.
    case retain(Int)
    /// Insert this text at the current position.
    case insert(String)
    /// Delete this many scalars at the current position.
    case delete(Int)

    /// Length in scalars: of the input consumed (retain, delete) or the text inserted.
    public var length: Int {
        switch self {
        case .retain(let n), .delete(let n): return n
        case .insert(let s): return s.unicodeScalars.count
        }
    }
}

extension OpComponent {
    // Written out instead of synthesized: the synthesized versions compare inserted text with
    // `String ==`, which is canonical equivalence, so inserting "é" and inserting "e\u{301}" (one
    // scalar versus two: different edits of different lengths) compared and hashed as equal.
    // Positions count scalars, so text is equal here only when its scalars are.
    public static func == (a: OpComponent, b: OpComponent) -> Bool {
        switch (a, b) {
        case let (.retain(x), .retain(y)), let (.delete(x), .delete(y)): return x == y
        case let (.insert(x), .insert(y)): return x.utf8.elementsEqual(y.utf8)
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .retain(let n):
            hasher.combine(0)
            hasher.combine(n)
        case .insert(let s):
            hasher.combine(1)
            hasher.combine(s.utf8.count)
            for byte in s.utf8 { hasher.combine(byte) }
        case .delete(let n):
            hasher.combine(2)
            hasher.combine(n)
        }
    }
}

/// Why an operation was rejected. Never thrown half-way through a change: every check runs
/// before the document is touched.
public enum OTError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The op reaches past the end of the document (keeps or deletes more than there is).
    case doesNotFit(needs: Int, documentLength: Int)
    /// A component that the format forbids (zero or negative count, empty insert).
    case invalidComponent(String)

    public var description: String {
        switch self {
        case let .doesNotFit(needs, length):
            return "operation needs a document of at least \(needs) characters, but it has \(length)"
        case let .invalidComponent(what):
            return "invalid operation component: \(what)"
        }
    }
}

/// A text operation: keeps, inserts and deletes applied left to right from position 0.
///
/// Invariant (checked in debug builds): normalized — no empty components, no two adjacent
/// components of one kind, an insert never directly follows a delete (the two orders mean the same
/// and this one is canonical, as in ot.js), and no trailing keep (it is implicit). Normalized ops
/// compare equal exactly when they are the same edit.
public struct TextOperation: Equatable, Hashable, Sendable {
    public private(set) var components: [OpComponent]

    /// The empty operation (changes nothing).
    public init() { components = [] }

    /// An empty operation with room for `capacity` components (saves regrowth in decoders).
    public init(reservingCapacity capacity: Int) {
        components = []
        components.reserveCapacity(capacity)
    }

    /// Builds a normalized operation from components, merging and reordering as needed.
    /// - Throws: `OTError.invalidComponent` for zero/negative counts.
    public init(_ components: [OpComponent]) throws {
        self.init()
        for c in components {
            switch c {
            case .retain(let n) where n <= 0, .delete(let n) where n <= 0:
                throw OTError.invalidComponent("count \(n) must be a positive integer")
            case .insert(let s) where s.isEmpty:
                throw OTError.invalidComponent("inserted text must not be empty")
            case .retain(let n), .delete(let n):
                // Merging adjacent counts, and every length computed from them, must not overflow.
                let (total, overflow) = inputLength.addingReportingOverflow(n)
                guard !overflow, total <= TextOperation.maxInputLength else {
                    throw OTError.invalidComponent("the op keeps and deletes more than \(TextOperation.maxInputLength) characters")
                }
                append(c)
            default: append(c)
            }
        }
        trimTrailingRetain()
    }

    public var isNoop: Bool { components.isEmpty }

    /// The most characters an op may keep and delete in all: 2^53 - 1, the largest integer a
    /// JavaScript peer (ShareDB) reads exactly. Far beyond any document, and small enough that
    /// sums of a few ops' lengths (merging counts, transform, compose) cannot overflow `Int`,
    /// which would trap: the decoders reject larger ops.
    public static let maxInputLength = (1 << 53) - 1

    /// Scalars the document must have at least: everything kept or deleted.
    public var inputLength: Int {
        var n = 0
        for c in components {
            switch c {
            case .retain(let k), .delete(let k): n += k
            case .insert: break
            }
        }
        return n
    }

    /// How much the document grows (negative: shrinks).
    public var lengthChange: Int {
        var n = 0
        for c in components {
            switch c {
            case .retain: break
            case .insert(let s): n += s.unicodeScalars.count
            case .delete(let k): n -= k
            }
        }
        return n
    }

    // MARK: Building

    public mutating func retain(_ n: Int) {
        precondition(n >= 0)
        guard n > 0 else { return }
        if case .retain(let m)? = components.last {
            components[components.count - 1] = .retain(m + n)
        } else {
            components.append(.retain(n))
        }
    }

    public mutating func insert(_ s: String) {
        guard !s.isEmpty else { return }
        let count = components.count
        if case .insert(var t)? = components.last {
            // Appended in place: with the array still holding `t`, `t + s` copied it, and an op
            // of many short inserts (["a","b",…], easy to send) took quadratic time to decode.
            components[count - 1] = .retain(0)
            t += s
            components[count - 1] = .insert(t)
        } else if case .delete(let d)? = components.last {
            // Canonical order: insert before delete.
            if count >= 2, case .insert(var t) = components[count - 2] {
                components[count - 2] = .retain(0)
                t += s
                components[count - 2] = .insert(t)
            } else {
                components[count - 1] = .insert(s)
                components.append(.delete(d))
            }
        } else {
            components.append(.insert(s))
        }
    }

    public mutating func delete(_ n: Int) {
        precondition(n >= 0)
        guard n > 0 else { return }
        if case .delete(let m)? = components.last {
            components[components.count - 1] = .delete(m + n)
        } else {
            components.append(.delete(n))
        }
    }

    public mutating func append(_ c: OpComponent) {
        switch c {
        case .retain(let n): retain(n)
        case .insert(let s): insert(s)
        case .delete(let n): delete(n)
        }
    }

    /// Drops a trailing keep (it is implicit). Builders that append components one by one call it
    /// last to restore the normalization invariant.
    public mutating func trimTrailingRetain() {
        if case .retain? = components.last { components.removeLast() }
    }

    /// Convenience constructors for single edits.
    public static func insert(_ text: String, at position: Int) -> TextOperation {
        var op = TextOperation()
        op.retain(position)
        op.insert(text)
        // For empty text the op was a lone keep: not normalized, not `isNoop`, and not equal to
        // `TextOperation()`, so an empty edit would be sent as if it changed something.
        op.trimTrailingRetain()
        return op
    }

    public static func delete(_ range: Range<Int>) -> TextOperation {
        var op = TextOperation()
        op.retain(range.lowerBound)
        op.delete(range.count)
        op.trimTrailingRetain() // an empty range left a lone keep; see `insert(_:at:)`
        return op
    }

    /// Checks the normalization invariant (debug builds, tests).
    public func checkInvariants() {
        var previous: OpComponent?
        for c in components {
            switch (previous, c) {
            case (.retain?, .retain), (.insert?, .insert), (.delete?, .delete):
                preconditionFailure("adjacent components of one kind in \(components)")
            case (.delete?, .insert):
                preconditionFailure("insert after delete in \(components)")
            default: break
            }
            switch c {
            case .retain(let n), .delete(let n): precondition(n > 0, "empty component")
            case .insert(let s): precondition(!s.isEmpty, "empty insert")
            }
            previous = c
        }
        if case .retain? = components.last { preconditionFailure("trailing retain") }
    }
}

extension TextOperation: CustomStringConvertible {
    public var description: String {
        "[" + components.map { c -> String in
            switch c {
            case .retain(let n): return "\(n)"
            case .insert(let s): return s.debugDescription
            case .delete(let n): return "{d:\(n)}"
            }
        }.joined(separator: ",") + "]"
    }
}

// MARK: - Apply and invert

extension TextOperation {
    /// Throws unless the op fits a document of `length` scalars.
    public func checkFits(documentLength length: Int) throws {
        let needs = inputLength
        if needs > length { throw OTError.doesNotFit(needs: needs, documentLength: length) }
    }

    /// Applies the op to `doc` in place. All-or-nothing: a misfit throws before any change.
    /// Cost: O(components · log n) plus the inserted and deleted text.
    public func apply(to doc: inout TextRope) throws {
        try checkFits(documentLength: doc.count)
        var pos = 0
        for c in components {
            switch c {
            case .retain(let n): pos += n
            case .insert(let s):
                doc.insert(s, at: pos)
                pos += s.unicodeScalars.count
            case .delete(let n): doc.remove(pos ..< pos + n)
            }
        }
    }

    /// Applies the op to a `String` (convenience for tests and small documents).
    public func apply(to text: String) throws -> String {
        var rope = TextRope(text)
        try apply(to: &rope)
        return rope.string
    }

    /// The op that undoes `self` on the document that results from applying it to `doc`.
    public func inverted(against doc: TextRope) throws -> TextOperation {
        try checkFits(documentLength: doc.count)
        var inverse = TextOperation()
        var pos = 0
        for c in components {
            switch c {
            case .retain(let n):
                inverse.retain(n)
                pos += n
            case .insert(let s):
                inverse.delete(s.unicodeScalars.count)
            case .delete(let n):
                inverse.insert(doc.substring(pos ..< pos + n))
                pos += n
            }
        }
        inverse.trimTrailingRetain()
        return inverse
    }
}

// MARK: - Transform and compose

/// Which of two concurrent inserts at the same position goes first.
public enum Side: String, Sendable, CaseIterable {
    /// This op's insert goes first (to the left).
    case left
    /// The other op's insert goes first.
    case right
}

/// Reads an op's components piece by piece, splitting them on demand. Past the end it yields an
/// endless keep, since trailing keeps are implicit.
struct ComponentReader {
    let components: [OpComponent]
    var index = 0
    /// Scalars already consumed from the current component.
    var offset = 0
    /// For an insert being split: its scalar count and where the unconsumed rest starts, kept so
    /// that taking it piece by piece is linear. Recounting and re-walking from the start on each
    /// piece made composing a long insert with an op of many small components quadratic.
    var insertCount = 0
    var insertRest: String.UnicodeScalarView.Index? = nil

    init(_ op: TextOperation) { components = op.components }

    var hasMore: Bool { index < components.count }

    func peek() -> OpComponent? { hasMore ? components[index] : nil }

    /// Takes up to `n` scalars of the current component. A component kind named `whole` is taken
    /// entirely whatever `n` says (inserts in transform, deletes in compose do not count).
    mutating func take(_ n: Int, whole: Kind?) -> OpComponent {
        guard index < components.count else { return .retain(n) }
        let c = components[index]
        switch c {
        case .retain(let len):
            if whole == .retain || len - offset <= n {
                defer { index += 1; offset = 0 }
                return .retain(len - offset)
            }
            offset += n
            return .retain(n)
        case .delete(let len):
            if whole == .delete || len - offset <= n {
                defer { index += 1; offset = 0 }
                return .delete(len - offset)
            }
            offset += n
            return .delete(n)
        case .insert(let s):
            let scalars = s.unicodeScalars
            if offset == 0 {
                if whole == .insert { index += 1; return c }
                insertCount = scalars.count
                insertRest = scalars.startIndex
            }
            let from = insertRest ?? scalars.startIndex
            if whole == .insert || insertCount - offset <= n {
                defer { index += 1; offset = 0; insertRest = nil }
                return .insert(offset == 0 ? s : String(scalars[from...]))
            }
            let to = scalars.index(from, offsetBy: n)
            offset += n
            insertRest = to
            return .insert(String(scalars[from ..< to]))
        }
    }

    enum Kind { case retain, insert, delete }
}

extension TextOperation {
    /// Rebases `self` onto `other` (both made on the same document), so that applying `other` and
    /// then the result equals applying `self` and then `other.transformed(against: self, side:
    /// side.opposite)` (TP1). `side` decides ties between inserts at the same position.
    public func transformed(against other: TextOperation, side: Side) -> TextOperation {
        var out = TextOperation()
        var mine = ComponentReader(self)
        for c in other.components {
            switch c {
            case .retain(var n):
                while n > 0 {
                    let piece = mine.take(n, whole: .insert)
                    out.append(piece)
                    if case .insert = piece { continue }
                    n -= piece.length
                }
            case .insert(let s):
                if side == .left, case .insert? = mine.peek() {
                    out.append(mine.take(Int.max, whole: .insert))
                }
                out.retain(s.unicodeScalars.count)
            case .delete(var n):
                while n > 0 {
                    let piece = mine.take(n, whole: .insert)
                    switch piece {
                    case .insert: out.append(piece)
                    case .retain(let k), .delete(let k): n -= k // gone already
                    }
                }
            }
        }
        while mine.hasMore { out.append(mine.take(Int.max, whole: nil)) }
        out.trimTrailingRetain()
        return out
    }

    /// The single op equivalent to applying `self` and then `next`.
    public func composed(with next: TextOperation) -> TextOperation {
        var out = TextOperation()
        var first = ComponentReader(self)
        for c in next.components {
            switch c {
            case .retain(var n):
                while n > 0 {
                    let piece = first.take(n, whole: .delete)
                    out.append(piece)
                    if case .delete = piece { continue }
                    n -= piece.length
                }
            case .insert(let s):
                out.insert(s)
            case .delete(var n):
                while n > 0 {
                    let piece = first.take(n, whole: .delete)
                    switch piece {
                    case .retain(let k):
                        out.delete(k)
                        n -= k
                    case .insert(let s):
                        n -= s.unicodeScalars.count // inserted, then deleted: cancels out
                    case .delete:
                        out.append(piece) // does not consume `next`
                    }
                }
            }
        }
        while first.hasMore { out.append(first.take(Int.max, whole: nil)) }
        out.trimTrailingRetain()
        return out
    }
}

extension Side {
    public var opposite: Side { self == .left ? .right : .left }
}

// MARK: - Cursors

/// A selection: `anchor` is where it started, `head` where the caret is. Equal for a caret.
public struct Selection: Equatable, Hashable, Sendable {
    public var anchor: Int
    public var head: Int
    public init(anchor: Int, head: Int) {
        self.anchor = anchor
        self.head = head
    }
    public init(caret: Int) { self.init(anchor: caret, head: caret) }

    public func transformed(by op: TextOperation, isOwnOp: Bool = false) -> Selection {
        Selection(anchor: op.transform(position: anchor, isOwnOp: isOwnOp),
                  head: op.transform(position: head, isOwnOp: isOwnOp))
    }
}

extension TextOperation {
    /// An op that maps positions of the document after `self` back to the document before it,
    /// for cursors only: inserted text becomes a deletion (positions inside it collapse to
    /// where it was inserted) and deleted text comes back as placeholders of the same length.
    /// Needs no document, unlike `inverted(against:)`.
    public func positionInverse() -> TextOperation {
        var back = TextOperation()
        for c in components {
            switch c {
            case .retain(let n): back.retain(n)
            case .insert(let s): back.delete(s.unicodeScalars.count)
            case .delete(let n): back.insert(String(repeating: " ", count: n))
            }
        }
        return back
    }

    /// Where position `cursor` of the document before `self` lands after it. Text inserted exactly
    /// at the cursor lands after it when the op is the cursor owner's own (typing moves the caret)
    /// and before it otherwise (someone else's text does not push your caret).
    public func transform(position cursor: Int, isOwnOp: Bool = false) -> Int {
        var cursor = cursor
        var pos = 0 // position in the output document
        for c in components {
            if cursor < pos || (cursor == pos && !isOwnOp) { break }
            switch c {
            case .retain(let n):
                pos += n
                if cursor < pos { return cursor }
            case .insert(let s):
                let n = s.unicodeScalars.count
                pos += n
                // Saturating: a cursor comes from the wire and may be anything up to Int.max
                // (a presence far past the end); moving it past Int.max trapped.
                let (moved, overflow) = cursor.addingReportingOverflow(n)
                cursor = overflow ? .max : moved
            case .delete(let n):
                cursor -= min(n, cursor - pos)
            }
        }
        return cursor
    }
}
