extension TextRope {
    /// Calls `body` with each run of the document's UTF-8 bytes from scalar offset `offset` to
    /// the end, in order: reaching the offset costs a tree search, not a walk over the text
    /// before it. (collab-presence resumes line counting there after an edit further on.)
    /// - Precondition: `0 <= offset <= count`.
    public func forEachUTF8Chunk(from offset: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> Void) rethrows {
        precondition(offset >= 0 && offset <= count, "TextRope.forEachUTF8Chunk(from:): offset out of range")
        guard offset < count else { return }
        var (index, skip) = rope.find(at: offset, in: ScalarMetric(), preferEnd: false)
        while index < rope.endIndex {
            let chunk = rope[index]
            let start = skip == 0 ? 0 : chunk.utf8Offset(ofScalar: skip)
            try chunk.bytes.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[start...])) }
            skip = 0
            rope.formIndex(after: &index)
        }
    }
}
