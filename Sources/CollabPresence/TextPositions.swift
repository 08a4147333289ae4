import CollabOT

/// A position in a document as people read it: line and column, both counted from 1. Columns
/// count Unicode scalars, like every offset in collab, so a cursor's column and its offset agree
/// on what a character is; only `\n` ends a line.
public struct LineColumn: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "\(line):\(column)" }
}

public enum TextPositions {
    /// The line and column of each scalar offset in `document` (offsets past the end are taken
    /// as the end), in the order given.
    public static func lineColumns(of offsets: [Int], in document: TextRope) -> [LineColumn] {
        lineColumns(of: offsets, in: document, resumingAt: nil).positions
    }

    /// The same, resuming at `checkpoint` (a walk state from an earlier call on this text, or on
    /// a text that differs only from that point on) when every offset is at or after it; also
    /// returns the walk state at the smallest offset, to resume at next time.
    ///
    /// The rope keeps no line index (the OT hot path would pay for it on every edit), so this
    /// reads the text, once for all the offsets. Text between offsets is only counted (scalars
    /// and newlines, a word at a time); bytes are walked one by one only from an offset's chunk
    /// start up to the offset. People edit near their cursors, so after an edit the walk
    /// usually resumes just before them instead of at the start of the document.
    public static func lineColumns(of offsets: [Int], in document: TextRope, resumingAt checkpoint: Walk?)
        -> (positions: [LineColumn], checkpoint: Walk) {
        guard !offsets.isEmpty else { return ([], checkpoint ?? Walk()) }
        let order = offsets.indices.sorted { offsets[$0] < offsets[$1] }
        var result = [LineColumn](repeating: LineColumn(line: 1, column: 1), count: offsets.count)
        var walk = Walk()
        if let checkpoint, checkpoint.scalar <= min(offsets[order[0]], document.count) { walk = checkpoint }
        var first: Walk?
        var next = 0
        // Stops the walk over the chunks once every offset is placed.
        struct Done: Error {}
        do {
            try document.forEachUTF8Chunk(from: walk.scalar) { bytes in
                let (scalars, newlines) = counts(bytes)
                let end = walk.scalar + scalars
                var i = 0
                // Up to each offset this run holds, byte by byte.
                while offsets[order[next]] < end {
                    while walk.scalar < offsets[order[next]] {
                        if bytes[i] == 0x0A {
                            walk.line += 1
                            walk.lineStart = walk.scalar + 1
                        }
                        i += 1
                        while i < bytes.count && bytes[i] & 0xC0 == 0x80 { i += 1 }
                        walk.scalar += 1
                    }
                    if first == nil { first = walk }
                    while next < order.count && offsets[order[next]] <= walk.scalar {
                        result[order[next]] = walk.position
                        next += 1
                    }
                    if next == order.count { throw Done() }
                }
                // The rest of the run, counted.
                if i == 0 {
                    walk.skip(bytes, scalars: scalars, newlines: newlines)
                } else {
                    let rest = UnsafeBufferPointer(rebasing: bytes[i...])
                    let (s, n) = counts(rest)
                    walk.skip(rest, scalars: s, newlines: n)
                }
            }
        } catch {}
        if first == nil { first = walk }
        while next < order.count {
            result[order[next]] = walk.position
            next += 1
        }
        return (result, first!)
    }

    /// Where a walk through the text is: the state `lineColumns` resumes from.
    public struct Walk: Sendable, Equatable {
        /// Scalars before this point.
        public internal(set) var scalar = 0
        var line = 1
        /// The scalar offset the current line starts at.
        var lineStart = 0

        public init() {}

        var position: LineColumn { LineColumn(line: line, column: scalar - lineStart + 1) }

        /// Moves past `bytes`, which hold `scalars` scalars and `newlines` newlines.
        mutating func skip(_ bytes: UnsafeBufferPointer<UInt8>, scalars: Int, newlines: Int) {
            if newlines > 0 {
                // The scalars after the last newline are the start of the current line.
                var tail = 0
                var i = bytes.count - 1
                while bytes[i] != 0x0A {
                    if bytes[i] & 0xC0 != 0x80 { tail += 1 }
                    i -= 1
                }
                line += newlines
                lineStart = scalar + scalars - tail
            }
            scalar += scalars
        }
    }

    /// Scalars (bytes that do not continue a UTF-8 sequence) and newlines in `bytes`, eight bytes
    /// per step with bit tricks on a 64-bit word: written as a byte loop the compiler kept a
    /// branch per byte, and the SIMD types were slower still (not specialized).
    static func counts(_ bytes: UnsafeBufferPointer<UInt8>) -> (scalars: Int, newlines: Int) {
        guard let base = bytes.baseAddress else { return (0, 0) }
        let raw = UnsafeRawPointer(base)
        let high: UInt64 = 0x8080_8080_8080_8080, low7: UInt64 = 0x7F7F_7F7F_7F7F_7F7F
        let newline: UInt64 = 0x0A0A_0A0A_0A0A_0A0A
        var continuations = 0
        var newlines = 0
        var i = 0
        while i + 8 <= bytes.count {
            let w = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            // 10xxxxxx: bit 7 set and bit 6 (shifted up into bit 7's place) clear.
            continuations &+= (w & ~(w << 1) & high).nonzeroBitCount
            // Bytes equal to \n are the zero bytes of x; adding 0x7F to the low seven bits sets
            // bit 7 of every non-zero byte without carrying into the next one.
            let x = w ^ newline
            newlines &+= (~(((x & low7) &+ low7) | x) & high).nonzeroBitCount
            i += 8
        }
        while i < bytes.count {
            if bytes[i] & 0xC0 == 0x80 { continuations += 1 }
            if bytes[i] == 0x0A { newlines += 1 }
            i += 1
        }
        return (bytes.count - continuations, newlines)
    }
}
