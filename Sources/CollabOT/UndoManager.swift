/// Selective undo of one user's own edits, as in ot.js' UndoManager.
///
/// Each local edit pushes its inverse. Remote edits transform every stored inverse, so undoing
/// later removes exactly what this user did, where it is now, and leaves others' edits alone.
/// Undo and redo themselves produce ordinary ops that the caller applies and sends like any edit.
public struct OTUndoManager: Sendable {
    public private(set) var undoStack: [TextOperation] = []
    public private(set) var redoStack: [TextOperation] = []
    /// Oldest entries are dropped beyond this depth.
    public var limit: Int

    public init(limit: Int = 1000) { self.limit = limit }

    public var canUndo: Bool { !undoStack.isEmpty }
    public var canRedo: Bool { !redoStack.isEmpty }

    /// A new local edit (not an undo or redo): remember how to reverse it; the redo history ends.
    /// - Parameter inverse: `op.inverted(against: documentBeforeOp)`.
    public mutating func recordLocal(inverse: TextOperation) {
        Self.push(inverse, onto: &undoStack, limit: limit)
        redoStack.removeAll()
    }

    /// Takes the op that undoes the latest edit; the caller applies it as a local edit and passes
    /// its inverse to `recordUndone`.
    public mutating func popUndo() -> TextOperation? { undoStack.popLast() }
    public mutating func recordUndone(inverse: TextOperation) { Self.push(inverse, onto: &redoStack, limit: limit) }

    public mutating func popRedo() -> TextOperation? { redoStack.popLast() }
    public mutating func recordRedone(inverse: TextOperation) { Self.push(inverse, onto: &undoStack, limit: limit) }

    /// A remote edit was applied to the document: rebase both stacks onto it.
    public mutating func transform(against remote: TextOperation) {
        Self.transform(&undoStack, against: remote)
        Self.transform(&redoStack, against: remote)
    }

    /// The newest entry applies to the current document, each older one to the document after the
    /// newer ones were undone; so the remote op is rebased past each entry on the way down.
    private static func transform(_ stack: inout [TextOperation], against remote: TextOperation) {
        var remote = remote
        for i in stack.indices.reversed() {
            let entry = stack[i]
            stack[i] = entry.transformed(against: remote, side: .left)
            remote = remote.transformed(against: entry, side: .right)
        }
        stack.removeAll { $0.isNoop }
    }

    /// Static on purpose: as a `mutating` method taking `&undoStack`/`&redoStack` it accessed `self`
    /// twice at once (the method's own inout `self` plus the stored property passed inout), which
    /// Swift's exclusivity checking rejects at compile time, so the target did not build.
    private static func push(_ op: TextOperation, onto stack: inout [TextOperation], limit: Int) {
        guard !op.isNoop else { return }
        stack.append(op)
        if stack.count > limit { stack.removeFirst(stack.count - limit) }
    }
}
