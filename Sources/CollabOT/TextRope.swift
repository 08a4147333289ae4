import _RopeModule

/// A text document addressed by Unicode scalar offsets, stored as a B-tree of UTF-8 chunks.
///
/// Why not `BigString`: it maintains grapheme-break state in every chunk and its scalar view walks
/// linearly; replaying the automerge-paper trace through `BigString.unicodeScalars` took 3.1 s here.
/// The document only ever needs scalar positions, so this rope keeps two counts per chunk (UTF-8
/// bytes and scalars) in swift-collections' generic `Rope`, which supplies the balanced tree and
/// the O(log n) search by either count. An edit costs O(log n + chunk size + edit size).
public struct TextRope: Sendable {
    @usableFromInline var rope: Rope<Chunk>

    public init() { rope = Rope() }

    public init(_ text: String) {
        self.init()
        insert(text, at: 0)
    }

    /// Number of Unicode scalars: the unit of every position in collab.
    @inlinable public var count: Int { rope.summary.scalars }
    /// Size of the text in UTF-8 bytes.
    @inlinable public var utf8Count: Int { rope.summary.utf8 }
    @inlinable public var isEmpty: Bool { rope.summary.utf8 == 0 }

    /// Inserts `text` so that its first scalar lands at scalar offset `offset`.
    /// - Precondition: `0 <= offset <= count`.
    public mutating func insert(_ text: String, at offset: Int) {
        precondition(offset >= 0 && offset <= count, "TextRope.insert: offset out of range")
        var text = text
        text.withUTF8 { insert(utf8: $0, at: offset) }
    }

    /// Inserts already-validated UTF-8 bytes at scalar offset `offset`.
    public mutating func insert(utf8 bytes: UnsafeBufferPointer<UInt8>, at offset: Int) {
        guard !bytes.isEmpty else { return }
        let scalars = Chunk.scalarCount(bytes)
        if rope.isEmpty {
            rope = Rope(Chunk.split(bytes, scalars: scalars))
            return
        }
        // Fast path: the insertion fits into the chunk that holds the position. The size check
        // happens inside `update`: reading the chunk first (`rope[found]`) would copy it, paying a
        // retain and release of its buffer on every keystroke.
        let (found, remaining) = rope.find(at: offset, in: ScalarMetric(), preferEnd: true)
        if found < rope.endIndex {
            var index = found
            let inserted = rope.update(at: &index) { chunk -> Bool in
                guard chunk.utf8Count + bytes.count <= Chunk.maxUTF8 else { return false }
                chunk.insert(bytes, scalars: scalars, atScalar: remaining)
                return true
            }
            if inserted { return }
        }
        // Slow path: the rope's builder splits the chunk at the position and rebalances around the
        // new pieces (inserting pieces one by one would not do: the rope may merge a small piece
        // into either neighbour, so positions computed in advance stop being chunk boundaries).
        rope.replaceSubrange(offset ..< offset, in: ScalarMetric(), with: Chunk.split(bytes, scalars: scalars))
        coalesce(around: offset)
        coalesce(around: offset + scalars)
    }

    /// Removes the scalars in `range`.
    /// - Precondition: the range lies within `0...count`.
    public mutating func remove(_ range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= count,
                     "TextRope.remove: range out of bounds")
        guard !range.isEmpty else { return }
        let (found, remaining) = rope.find(at: range.lowerBound, in: ScalarMetric(), preferEnd: false)
        // Fast path: the range lies inside one chunk and leaves something behind in it.
        var index = found
        let left = rope.update(at: &index) { chunk -> Int? in
            guard remaining + range.count <= chunk.scalars, range.count < chunk.scalars else { return nil }
            chunk.remove(scalars: remaining ..< remaining + range.count)
            return chunk.utf8Count
        }
        if let left {
            if left < Chunk.minUTF8 { mergeIfSmall(chunkAt: range.lowerBound - remaining) }
            return
        }
        rope.removeSubrange(range, in: ScalarMetric())
        coalesce(around: range.lowerBound)
    }

    /// Merges small chunks on either side of `offset` into a neighbour, so that edits cannot leave
    /// the rope as a long list of tiny chunks.
    ///
    /// This is done here, not by the rope: `Chunk.isUndersized` is always false so that
    /// swift-collections never rebalances chunks itself. Its `Rope.Builder._insertAfterTip`
    /// (1.6.0) drops the merged item when `rebalance(nextNeighbor:)` absorbs the old suffix item
    /// (the merge happens on a shadowed copy), which lost text in tests with randomized edits.
    private mutating func coalesce(around offset: Int) {
        if offset > 0 { mergeIfSmall(chunkAt: offset - 1) }
        if offset < count { mergeIfSmall(chunkAt: offset) }
    }

    /// If the chunk holding scalar `position` is small, moves its text into a neighbour that has
    /// room and removes it.
    private mutating func mergeIfSmall(chunkAt position: Int) {
        guard position >= 0, position < count else { return }
        let (index, remaining) = rope.find(at: position, in: ScalarMetric(), preferEnd: false)
        let chunk = rope[index]
        guard chunk.utf8Count < Chunk.minUTF8 else { return }
        let start = position - remaining
        var next = index
        rope.formIndex(after: &next)
        if next < rope.endIndex, rope[next].utf8Count + chunk.utf8Count <= Chunk.maxUTF8 {
            rope.update(at: &next) { $0.prepend(chunk) }
            // The small chunk still starts at `start`; its copy now leads the next chunk.
            let (stale, _) = rope.find(at: start, in: ScalarMetric(), preferEnd: false)
            _ = rope.remove(at: stale)
            return
        }
        guard index > rope.startIndex else { return }
        var previous = index
        rope.formIndex(before: &previous)
        guard rope[previous].utf8Count + chunk.utf8Count <= Chunk.maxUTF8 else { return }
        rope.update(at: &previous) { $0.append(chunk) }
        // The previous chunk grew by the small chunk's scalars; the small one now follows it.
        let (stale, _) = rope.find(at: start + chunk.scalars, in: ScalarMetric(), preferEnd: false)
        _ = rope.remove(at: stale)
    }

    /// The text of the scalars in `range`.
    public func substring(_ range: Range<Int>) -> String {
        precondition(range.lowerBound >= 0 && range.upperBound <= count,
                     "TextRope.substring: range out of bounds")
        guard !range.isEmpty else { return "" }
        var bytes: [UInt8] = []
        var (index, skip) = rope.find(at: range.lowerBound, in: ScalarMetric(), preferEnd: false)
        var left = range.count
        while left > 0 {
            let chunk = rope[index]
            let take = min(left, chunk.scalars - skip)
            chunk.appendUTF8(scalars: skip ..< skip + take, to: &bytes)
            left -= take
            skip = 0
            rope.formIndex(after: &index)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Calls `body` with each run of the document's UTF-8 bytes, in order.
    public func forEachUTF8Chunk(_ body: (UnsafeBufferPointer<UInt8>) throws -> Void) rethrows {
        for chunk in rope {
            try chunk.bytes.withUnsafeBufferPointer { try body($0) }
        }
    }

    /// The whole document as a `String`.
    public var string: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8Count)
        for chunk in rope { bytes.append(contentsOf: chunk.bytes) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Verifies the tree's counts against its contents (debug builds and tests).
    public func checkInvariants() {
        var utf8 = 0, scalars = 0
        for chunk in rope {
            precondition(!chunk.bytes.isEmpty, "empty chunk in rope")
            precondition(chunk.bytes.count <= Chunk.maxUTF8, "oversized chunk")
            precondition(chunk.scalars == chunk.bytes.withUnsafeBufferPointer(Chunk.scalarCount),
                         "chunk scalar count is stale")
            precondition(chunk.bytes[0] & 0xC0 != 0x80, "chunk starts inside a scalar")
            utf8 += chunk.bytes.count
            scalars += chunk.scalars
        }
        precondition(utf8 == utf8Count && scalars == count, "rope summary is stale")
    }
}

extension TextRope: Equatable {
    /// Equal when the scalars are, byte for byte. Not `String ==`: that is canonical equivalence,
    /// under which "e\u{301}\u{323}" and "e\u{323}\u{301}" (same counts, different scalars, so
    /// different positions) were equal, and diverged replicas could compare as converged.
    public static func == (a: TextRope, b: TextRope) -> Bool {
        a.count == b.count && a.utf8Count == b.utf8Count && a.string.utf8.elementsEqual(b.string.utf8)
    }
}

extension TextRope: CustomStringConvertible {
    public var description: String { string }
}

// MARK: - Chunks

extension TextRope {
    /// A run of whole UTF-8-encoded scalars. Chunks never split a scalar.
    @usableFromInline struct Chunk: RopeElement, Sendable {
        /// Large enough that a 100k-scalar document is a few hundred chunks, small enough that the
        /// memmove and scalar scan inside a chunk stay cheaper than a tree step.
        static let maxUTF8 = 1024
        static let minUTF8 = 256

        @usableFromInline var bytes: [UInt8]
        @usableFromInline var scalars: Int

        init(bytes: [UInt8], scalars: Int) {
            self.bytes = bytes
            self.scalars = scalars
        }

        var utf8Count: Int { bytes.count }

        @usableFromInline typealias Index = Int // a UTF-8 offset on a scalar boundary

        @usableFromInline var summary: Summary { Summary(utf8: bytes.count, scalars: scalars) }
        @usableFromInline var isEmpty: Bool { bytes.isEmpty }
        @usableFromInline var isUndersized: Bool { false }

        @usableFromInline func invariantCheck() {
            assert(bytes.count <= Self.maxUTF8)
            assert(bytes.withUnsafeBufferPointer(Self.scalarCount) == scalars)
        }

        /// The rope never sees a chunk as undersized, so it never calls `rebalance`; see
        /// `TextRope.coalesce(around:)` for why small chunks are merged by `TextRope` instead.
        @usableFromInline mutating func rebalance(nextNeighbor right: inout Chunk) -> Bool {
            if bytes.count + right.bytes.count <= Self.maxUTF8 {
                append(right)
                right = Chunk(bytes: [], scalars: 0)
                return true
            }
            return false
        }

        mutating func append(_ other: Chunk) {
            bytes.append(contentsOf: other.bytes)
            scalars += other.scalars
        }

        mutating func prepend(_ other: Chunk) {
            bytes.insert(contentsOf: other.bytes, at: 0)
            scalars += other.scalars
        }

        @usableFromInline mutating func split(at index: Int) -> Chunk {
            let tail = Array(bytes[index...])
            let tailScalars = tail.withUnsafeBufferPointer(Self.scalarCount)
            bytes.removeSubrange(index...)
            scalars -= tailScalars
            return Chunk(bytes: tail, scalars: tailScalars)
        }

        mutating func split(atScalar offset: Int) -> Chunk {
            split(at: utf8Offset(ofScalar: offset))
        }

        /// UTF-8 offset of the scalar at `offset` (or the end).
        func utf8Offset(ofScalar offset: Int) -> Int {
            if scalars == bytes.count { return offset } // all ASCII
            if offset == scalars { return bytes.count }
            return bytes.withUnsafeBufferPointer { buf in
                var seen = 0
                var i = 0
                while i < buf.count {
                    if buf[i] & 0xC0 != 0x80 {
                        if seen == offset { return i }
                        seen += 1
                    }
                    i += 1
                }
                return buf.count
            }
        }

        mutating func insert(_ new: UnsafeBufferPointer<UInt8>, scalars newScalars: Int, atScalar offset: Int) {
            let at = utf8Offset(ofScalar: offset)
            bytes.insert(contentsOf: new, at: at)
            scalars += newScalars
        }

        mutating func remove(scalars range: Range<Int>) {
            let from = utf8Offset(ofScalar: range.lowerBound)
            let to = utf8Offset(ofScalar: range.upperBound)
            bytes.removeSubrange(from ..< to)
            scalars -= range.count
        }

        func appendUTF8(scalars range: Range<Int>, to out: inout [UInt8]) {
            let from = utf8Offset(ofScalar: range.lowerBound)
            let to = utf8Offset(ofScalar: range.upperBound)
            out.append(contentsOf: bytes[from ..< to])
        }

        static func scalarCount(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
            var n = 0
            for b in bytes where b & 0xC0 != 0x80 { n += 1 }
            return n
        }

        /// Cuts `bytes` into chunks of at most `maxUTF8` bytes on scalar boundaries.
        static func split(_ bytes: UnsafeBufferPointer<UInt8>, scalars: Int) -> [Chunk] {
            if bytes.count <= maxUTF8 { return [Chunk(bytes: Array(bytes), scalars: scalars)] }
            var out: [Chunk] = []
            var start = 0
            // Aim at 3/4 full so that later small inserts take the fast path.
            let target = maxUTF8 * 3 / 4
            while start < bytes.count {
                var end = min(start + target, bytes.count)
                while end < bytes.count && bytes[end] & 0xC0 == 0x80 { end += 1 }
                let piece = UnsafeBufferPointer(rebasing: bytes[start ..< end])
                out.append(Chunk(bytes: Array(piece), scalars: scalarCount(piece)))
                start = end
            }
            return out
        }
    }

    @usableFromInline struct Summary: RopeSummary, Sendable {
        @usableFromInline var utf8: Int
        @usableFromInline var scalars: Int

        @usableFromInline init(utf8: Int, scalars: Int) {
            self.utf8 = utf8
            self.scalars = scalars
        }

        @usableFromInline static var maxNodeSize: Int { 15 }
        @usableFromInline static var zero: Summary { Summary(utf8: 0, scalars: 0) }
        @usableFromInline var isZero: Bool { utf8 == 0 && scalars == 0 }
        @usableFromInline mutating func add(_ other: Summary) {
            utf8 += other.utf8
            scalars += other.scalars
        }
        @usableFromInline mutating func subtract(_ other: Summary) {
            utf8 -= other.utf8
            scalars -= other.scalars
        }
    }

    @usableFromInline struct ScalarMetric: RopeMetric {
        @usableFromInline typealias Element = Chunk
        @usableFromInline init() {}
        @usableFromInline func size(of summary: Summary) -> Int { summary.scalars }
        @usableFromInline func index(at offset: Int, in element: Chunk) -> Int {
            element.utf8Offset(ofScalar: offset)
        }
    }
}
