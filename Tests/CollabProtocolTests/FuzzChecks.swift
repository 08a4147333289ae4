// The properties both fuzzers check: the seeded ones in this test target (FuzzTests.swift) and
// the coverage-guided libFuzzer targets (Tests/Fuzz/fuzz.sh compiles this file into them). One
// copy, so the two can never check different things. Public API only and no XCTest or
// Foundation, so it compiles outside the package.

import CollabOT
import CollabProtocol

/// A property that did not hold, with what is needed to understand it.
struct FuzzFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum FuzzChecks {
    /// Line lengths the splitter is run with: the default, and one small enough that fuzzed
    /// inputs hit the overlong-line path.
    static let smallLineLimit = 64

    // MARK: Target "message": NDJSON splitting, decoding, re-encoding

    /// Splits `data` as NDJSON in several chunkings and line limits (all must agree with a
    /// reference split), decodes every line as a `Message`, and checks that each decoded message
    /// re-encodes to one line of JSON that decodes to an equal message and encodes the same again.
    static func message(_ data: UnsafeBufferPointer<UInt8>) throws(FuzzFailure) {
        for limit in [LineSplitter.defaultMaxLineLength, smallLineLimit] {
            let expected = referenceSplit(data, maxLineLength: limit)
            // Byte by byte only for short inputs: on long ones it made this target ten times slower
            // while the 7-byte chunks already split every line somewhere.
            for chunk in [data.count, data.count <= 512 ? 1 : 0, 7, data.count > 4096 ? 4096 : 0] where chunk > 0 {
                let got = split(data, maxLineLength: limit, chunk: chunk)
                guard got == expected else {
                    throw FuzzFailure("LineSplitter (limit \(limit), chunks of \(chunk)) gave \(got), the reference \(expected)")
                }
            }
            guard limit == LineSplitter.defaultMaxLineLength else { continue }
            for item in expected { if case .line(_, let bytes) = item { try roundTrip(bytes) } }
        }
    }

    enum SplitItem: Equatable, CustomStringConvertible {
        case line(Int, [UInt8])
        case overlong(Int)
        var description: String {
            switch self {
            case let .line(n, bytes): return "\(n):\(String(decoding: bytes, as: UTF8.self).debugDescription)"
            case let .overlong(n): return "\(n):overlong"
            }
        }
    }

    static func split(_ data: UnsafeBufferPointer<UInt8>, maxLineLength: Int, chunk: Int) -> [SplitItem] {
        var splitter = LineSplitter(maxLineLength: maxLineLength)
        var out: [SplitItem] = []
        var start = 0
        repeat {
            let end = min(data.count, start + chunk)
            splitter.feed(UnsafeBufferPointer(rebasing: data[start ..< end]),
                          line: { out.append(.line($0, Array($1))) }, error: { out.append(.overlong($0.line)) })
            start = end
        } while start < data.count
        splitter.finish(line: { out.append(.line($0, Array($1))) }, error: { out.append(.overlong($0.line)) })
        return out
    }

    /// What the splitter's documentation promises, written the obvious way: lines end at `\n`,
    /// a line longer than the limit (counting a `\r`) is one error, one `\r` before the newline
    /// is dropped, blank lines (spaces and tabs) are skipped, a last line without newline counts.
    static func referenceSplit(_ data: UnsafeBufferPointer<UInt8>, maxLineLength: Int) -> [SplitItem] {
        var out: [SplitItem] = []
        var number = 1
        var segment: [UInt8] = []
        func end() {
            if segment.count > maxLineLength {
                out.append(.overlong(number))
            } else {
                if segment.last == 0x0D { segment.removeLast() }
                if segment.contains(where: { $0 != 0x20 && $0 != 0x09 }) { out.append(.line(number, segment)) }
            }
            segment = []
            number += 1
        }
        for b in data {
            if b == 0x0A { end() } else { segment.append(b) }
        }
        if !segment.isEmpty { end() }
        return out
    }

    static func roundTrip(_ line: [UInt8]) throws(FuzzFailure) {
        let first: Message
        do throws(MessageError) { first = try decodeMessage(line) } catch { return } // typed: nothing else can come out
        let encoded = first.json
        let bytes = Array(encoded.utf8)
        guard !bytes.contains(0x0A) else { throw FuzzFailure("encoding \(show(line)) gave a newline: \(encoded.debugDescription)") }
        let second: Message
        do throws(MessageError) { second = try decodeMessage(bytes) } catch {
            throw FuzzFailure("\(show(line)) decoded, but its encoding \(encoded.debugDescription) does not: \(error)")
        }
        guard second == first else {
            throw FuzzFailure("\(show(line)) re-encoded as \(encoded.debugDescription) decodes to a different message:\n  \(first)\n  \(second)")
        }
        guard second.json == encoded else {
            throw FuzzFailure("encoding is not stable: \(encoded.debugDescription) then \(second.json.debugDescription)")
        }
    }

    // MARK: Target "partial": DocumentEvent and MessageHeader agree with Message.decode

    /// Decodes `data` (one line) with the full decoder and both partial ones. Whatever the full
    /// decoder accepts, the partial ones accept with the same values; what they accept and it
    /// rejects may only be a bad field they do not read; a JSON syntax error is the same error.
    static func partial(_ data: UnsafeBufferPointer<UInt8>) throws(FuzzFailure) {
        let line = Array(data)
        let full = Result { () throws(MessageError) in try decodeMessage(line) }
        let event = Result { () throws(MessageError) in try DocumentEvent.decode(data) }
        let header = Result { () throws(MessageError) in try MessageHeader.decode(data) }
        let bareArray = firstSignificantByte(line) == UInt8(ascii: "[")

        if bareArray {
            // A bare op array: an `op` for the partial decoders, not an object for the full one.
            guard case .failure(.notAnObject) = full else {
                if case .failure(.syntax) = full { return try sameSyntaxError(full, event, header, line) }
                throw FuzzFailure("\(show(line)): a bare array gave \(full) from Message.decode")
            }
            let op = Result { () throws(MessageError) -> TextOperation in
                do { return try TextOperation(json: String(decoding: line, as: UTF8.self)) } catch { throw MessageError(decodingForFuzz: error) }
            }
            switch (event, op) {
            case let (.success(e), .success(o)):
                guard e.type == .op, e.op == o, e.rev == nil, e.doc == nil else {
                    throw FuzzFailure("\(show(line)): DocumentEvent \(e) differs from TextOperation(json:) \(o)")
                }
            case (.failure, .failure): break
            default: throw FuzzFailure("\(show(line)): DocumentEvent gave \(event), TextOperation(json:) \(op)")
            }
            if case .success = event, case .failure(let e) = header {
                throw FuzzFailure("\(show(line)): a valid bare op, but MessageHeader rejects it: \(e)")
            }
            return
        }

        switch full {
        case .success(let m):
            guard case .success(let e) = event else { throw FuzzFailure("\(show(line)): Message decodes, DocumentEvent gave \(event)") }
            guard e.type == m.type, e.rev == m.rev, e.op == m.op, e.doc == m.doc else {
                throw FuzzFailure("\(show(line)): DocumentEvent (\(e.type), \(e.rev as Any), \(e.op as Any)) differs from Message \(m)")
            }
            guard case .success(let h) = header else { throw FuzzFailure("\(show(line)): Message decodes, MessageHeader gave \(header)") }
            guard h == MessageHeader(type: m.type, room: m.room, user: m.user, ts: m.ts) else {
                throw FuzzFailure("\(show(line)): MessageHeader \(h) differs from Message \(m)")
            }
        case .failure(.syntax):
            try sameSyntaxError(full, event, header, line)
        case .failure(let error):
            if case .success = event, !error.isBadField(except: ["type", "rev", "op", "doc"]) {
                throw FuzzFailure("\(show(line)): DocumentEvent accepts it, Message.decode says \(error)")
            }
            if case .success = header, !error.isBadField(except: ["type", "room", "user", "ts"]) {
                throw FuzzFailure("\(show(line)): MessageHeader accepts it, Message.decode says \(error)")
            }
        }
    }

    /// Invalid JSON is invalid to every decoder. (Which error comes first may differ when a field
    /// the full decoder checks more strictly comes before the syntax error, so only "fails".)
    static func sameSyntaxError(_ full: Result<Message, MessageError>, _ event: Result<DocumentEvent, MessageError>,
                                _ header: Result<MessageHeader, MessageError>, _ line: [UInt8]) throws(FuzzFailure) {
        if case .success(let e) = event { throw FuzzFailure("\(show(line)): DocumentEvent accepts invalid JSON (\(full)) as \(e)") }
        if case .success(let h) = header { throw FuzzFailure("\(show(line)): MessageHeader accepts invalid JSON (\(full)) as \(h)") }
    }

    // MARK: Target "ot": op decoding and the OT properties on documents from the input

    /// Input: a document, then one op per line (JSON arrays), then optionally a cursor position.
    /// Ops that fail to decode must fail with the decoder's error types; the rest are checked
    /// against the document (padded so that small ops fit): apply, invert, transform (TP1 on both
    /// sides), compose, JSON round trip, the sequencer, cursor transforms. Nothing may trap.
    static func operations(_ data: UnsafeBufferPointer<UInt8>) throws(FuzzFailure) {
        var lines = data.split(separator: 0x0A, maxSplits: 3, omittingEmptySubsequences: false).map { Array($0) }
        let docText = String(decoding: lines.removeFirst(), as: UTF8.self)
        var ops: [TextOperation] = []
        for line in lines.prefix(2) {
            do {
                let op = try TextOperation(json: String(decoding: line, as: UTF8.self))
                try checkDecoded(op, line)
                ops.append(op)
            } catch let e as FuzzFailure {
                throw e
            } catch is JSONSyntaxError {
            } catch is OperationSyntaxError {
            } catch {
                throw FuzzFailure("\(show(line)): TextOperation(json:) threw \(type(of: error)) \(error)")
            }
        }
        let cursor = lines.count > 2 ? Int(String(decoding: lines[2], as: UTF8.self).prefix(30)) : nil

        // Pad the document so ops that need a little more than it has still apply: most fuzzed ops
        // would otherwise stop at "does not fit". Huge ones stay misfits, to test that path.
        var doc = Array(docText.unicodeScalars)
        let needed = ops.map { saturatingInputLength($0) }.max() ?? 0
        if needed > doc.count, needed <= 4096 { doc += repeatElement("·", count: needed - doc.count) }
        let d = TextRope(String(String.UnicodeScalarView(doc)))

        for op in ops { try checkApplyAndInvert(op, d, doc) }
        if ops.count == 2 { try checkPair(ops[0], ops[1], d, doc) }
        for op in ops { try checkCursors(op, doc.count, cursor) }
    }

    /// A decoded op is normalized and survives its own JSON form.
    static func checkDecoded(_ op: TextOperation, _ line: [UInt8]) throws(FuzzFailure) {
        if let problem = normalizationProblem(op) { throw FuzzFailure("\(show(line)) decoded to \(op), which has \(problem)") }
        let again: TextOperation
        do { again = try TextOperation(json: op.json) } catch {
            throw FuzzFailure("\(show(line)) decoded to \(op), whose JSON \(op.json.debugDescription) does not decode: \(error)")
        }
        guard again == op else { throw FuzzFailure("\(show(line)): \(op) round-trips to \(again)") }
    }

    static func saturatingInputLength(_ op: TextOperation) -> Int {
        var n = 0
        for c in op.components {
            switch c {
            case .retain(let k), .delete(let k):
                let (sum, overflow) = n.addingReportingOverflow(k)
                n = overflow ? .max : sum
            case .insert: break
            }
        }
        return n
    }

    static func checkApplyAndInvert(_ op: TextOperation, _ d: TextRope, _ doc: [Unicode.Scalar]) throws(FuzzFailure) {
        guard let after = try apply(op, d, "op") else { return }
        guard let expected = referenceApply(op, to: doc), Array(after.string.unicodeScalars) == expected else {
            throw FuzzFailure("apply \(op) to \(d.count) scalars disagrees with the reference model")
        }
        let inverse: TextOperation
        do { inverse = try op.inverted(against: d) } catch { throw FuzzFailure("\(op) applies but does not invert: \(error)") }
        if let problem = normalizationProblem(inverse) { throw FuzzFailure("invert(\(op)) = \(inverse) has \(problem)") }
        guard let back = try apply(inverse, after, "inverse") else { throw FuzzFailure("invert(\(op)) = \(inverse) does not fit") }
        guard back.string.unicodeScalars.elementsEqual(d.string.unicodeScalars) else {
            throw FuzzFailure("invert(\(op)) = \(inverse) does not restore the document")
        }
        guard op.lengthChange == after.count - d.count else { throw FuzzFailure("lengthChange of \(op) is wrong") }
    }

    /// Applies, checking that a misfit is reported as `OTError.doesNotFit` and leaves `d` as it was.
    static func apply(_ op: TextOperation, _ d: TextRope, _ what: String) throws(FuzzFailure) -> TextRope? {
        var copy = d
        do {
            try op.apply(to: &copy)
            return copy
        } catch let e as OTError {
            guard case .doesNotFit = e else { throw FuzzFailure("\(what) \(op): unexpected \(e)") }
            guard copy == d, copy.string.unicodeScalars.elementsEqual(d.string.unicodeScalars) else {
                throw FuzzFailure("\(what) \(op) failed half-way: the document changed")
            }
            return nil
        } catch {
            throw FuzzFailure("\(what) \(op) threw \(type(of: error)) \(error)")
        }
    }

    static func checkPair(_ a: TextOperation, _ b: TextOperation, _ d: TextRope, _ doc: [Unicode.Scalar]) throws(FuzzFailure) {
        // The sequencer must take any decoded op without trapping: a misfit (even one with
        // counts near Int.max, transformed against history first) is its clean error.
        var sequencer = Sequencer(document: d)
        let first: Sequencer.Outcome?
        do { first = try sequencer.submit(client: "a", seq: 1, base: 0, op: a) } catch let e as Sequencer.SubmitError {
            guard case .doesNotFit = e else { throw FuzzFailure("sequencer rejected \(a) with \(e)") }
            first = nil
        } catch { throw FuzzFailure("sequencer threw \(type(of: error)) \(error)") }
        if first != nil {
            do { _ = try sequencer.submit(client: "b", seq: 1, base: 0, op: b) } catch let e as Sequencer.SubmitError {
                guard case .doesNotFit = e else { throw FuzzFailure("sequencer rejected \(b) with \(e)") }
            } catch { throw FuzzFailure("sequencer threw \(type(of: error)) \(error)") }
        }

        guard let da = try apply(a, d, "a") else { return }
        if let ab = try apply(b, da, "b after a") {
            // compose(a, b) == a then b.
            let c = a.composed(with: b)
            if let problem = normalizationProblem(c) { throw FuzzFailure("compose(\(a), \(b)) = \(c) has \(problem)") }
            guard let dc = try apply(c, d, "compose(a, b)"), dc.string.unicodeScalars.elementsEqual(ab.string.unicodeScalars) else {
                throw FuzzFailure("compose(\(a), \(b)) = \(c) differs from applying both")
            }
        }
        guard let db = try apply(b, d, "b") else { return }
        for side in Side.allCases {
            let b1 = b.transformed(against: a, side: side)
            let a1 = a.transformed(against: b, side: side.opposite)
            if let problem = normalizationProblem(b1) ?? normalizationProblem(a1) { throw FuzzFailure("transform of \(a), \(b): \(problem)") }
            guard let dab = try apply(b1, da, "b′"), let dba = try apply(a1, db, "a′"),
                  dab.string.unicodeScalars.elementsEqual(dba.string.unicodeScalars) else {
                throw FuzzFailure("TP1 fails for a = \(a), b = \(b) on side \(side): a′ = \(a1), b′ = \(b1)")
            }
            // compose(a, b′) == a then b′, on ops the sequencer would really produce.
            let c = a.composed(with: b1)
            guard let dc = try apply(c, d, "compose(a, b′)"), dc.string.unicodeScalars.elementsEqual(dab.string.unicodeScalars) else {
                throw FuzzFailure("compose(\(a), \(b1)) = \(c) differs from applying both")
            }
        }
    }

    /// A cursor inside the document stays inside it; any cursor, however large, does not trap.
    static func checkCursors(_ op: TextOperation, _ length: Int, _ extra: Int?) throws(FuzzFailure) {
        guard saturatingInputLength(op) <= length else { return }
        let after = length + op.lengthChange
        var positions = [0, length / 2, length]
        if let extra, extra >= 0 { positions.append(extra) }
        for p in positions {
            for own in [false, true] {
                let q = op.transform(position: p, isOwnOp: own)
                if p <= length, !(0 ... after).contains(q) {
                    throw FuzzFailure("cursor \(p) of \(length) moved to \(q) by \(op), outside 0...\(after)")
                }
            }
        }
    }

    // MARK: Helpers

    static func decodeMessage(_ bytes: [UInt8]) throws(MessageError) -> Message {
        let r: Result<Message, MessageError> = bytes.withUnsafeBufferPointer { buf in
            do throws(MessageError) { return .success(try Message.decode(buf)) } catch { return .failure(error) }
        }
        return try r.get()
    }

    static func firstSignificantByte(_ bytes: [UInt8]) -> UInt8? {
        bytes.first { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }
    }

    /// An independent apply on arrays of scalars; nil for a misfit.
    static func referenceApply(_ op: TextOperation, to doc: [Unicode.Scalar]) -> [Unicode.Scalar]? {
        var out: [Unicode.Scalar] = []
        var pos = 0
        for c in op.components {
            switch c {
            case .retain(let n):
                guard n <= doc.count - pos else { return nil }
                out.append(contentsOf: doc[pos ..< pos + n])
                pos += n
            case .insert(let s): out.append(contentsOf: s.unicodeScalars)
            case .delete(let n):
                guard n <= doc.count - pos else { return nil }
                pos += n
            }
        }
        out.append(contentsOf: doc[pos...])
        return out
    }

    /// Why `op` is not normalized, or nil (`checkInvariants` would trap instead of saying).
    static func normalizationProblem(_ op: TextOperation) -> String? {
        var previous: OpComponent?
        for c in op.components {
            switch (previous, c) {
            case (.retain?, .retain), (.insert?, .insert), (.delete?, .delete): return "adjacent components of one kind"
            case (.delete?, .insert): return "an insert after a delete"
            default: break
            }
            switch c {
            case .retain(let n), .delete(let n): if n <= 0 { return "an empty component" }
            case .insert(let s): if s.isEmpty { return "an empty insert" }
            }
            previous = c
        }
        if case .retain? = op.components.last { return "a trailing keep" }
        return nil
    }

    static func show(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes.prefix(300), as: UTF8.self).debugDescription
        return bytes.count > 300 ? text + "… (\(bytes.count) bytes)" : text
    }
}

extension MessageError {
    /// A bad value in a field other than `fields` (which a partial decoder reads itself).
    func isBadField(except fields: Set<String>) -> Bool {
        guard case .badField(let field, _) = self else { return false }
        return !fields.contains(field)
    }

    init(decodingForFuzz error: any Error) {
        switch error {
        case let e as MessageError: self = e
        case let e as JSONSyntaxError: self = .syntax(e)
        case let e as OperationSyntaxError: self = .badField("op", e.description)
        default: self = .badField("?", "\(error)")
        }
    }
}
