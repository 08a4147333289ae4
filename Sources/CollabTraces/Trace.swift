import CollabOT
import CollabProtocol
import CZlib

#if canImport(Glibc)
import Glibc
#endif

/// An editing history in the format of josephg/editing-traces (see traces/README.md).
///
/// Sequential traces have one writer; concurrent ones say, for each transaction, which earlier
/// transactions (`parents`) its author had seen.
///
/// Stored flat (a few arrays of integers and one UTF-8 buffer for all inserted text) rather than
/// as an array of transactions holding arrays of patches: automerge-paper has 259,778
/// transactions, and one allocation each would double both the load time and the peak memory.
public struct Trace: Sendable {
    /// One splice: at `position`, delete `deleteCount` scalars, then insert `insert`.
    public struct Patch: Equatable, Sendable {
        public var position: Int
        public var deleteCount: Int
        public var insert: String
    }

    public var isConcurrent = false
    public var startContent = ""
    public var endContent = ""
    public var agentCount = 1

    // Patches, in order: position, delete count, and the bytes of the insert in `insertText`.
    var positions: [Int] = []
    var deleteCounts: [Int] = []
    var insertEnds: [Int] = [] // insert i is insertText[insertEnds[i-1] ..< insertEnds[i]]
    var insertText: [UInt8] = []
    // Transactions: patches txnPatchEnds[t-1] ..< txnPatchEnds[t], parents likewise.
    var txnPatchEnds: [Int] = []
    var txnParentEnds: [Int] = []
    var parentList: [Int] = []
    var agents: [Int] = []

    public var transactionCount: Int { txnPatchEnds.count }
    public var patchCount: Int { positions.count }

    public func patchRange(ofTransaction t: Int) -> Range<Int> {
        (t == 0 ? 0 : txnPatchEnds[t - 1]) ..< txnPatchEnds[t]
    }

    public func patch(_ i: Int) -> Patch {
        let start = i == 0 ? 0 : insertEnds[i - 1]
        let text = insertText.withUnsafeBufferPointer {
            String(decoding: UnsafeBufferPointer(rebasing: $0[start ..< insertEnds[i]]), as: UTF8.self)
        }
        return Patch(position: positions[i], deleteCount: deleteCounts[i], insert: text)
    }

    public func patches(ofTransaction t: Int) -> [Patch] { patchRange(ofTransaction: t).map(patch) }

    /// Concurrent traces: the transactions `t` was made on.
    public func parents(ofTransaction t: Int) -> ArraySlice<Int> {
        parentList[(t == 0 ? 0 : txnParentEnds[t - 1]) ..< txnParentEnds[t]]
    }

    public func agent(ofTransaction t: Int) -> Int { agents[t] }
}

public struct TraceError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension Trace {
    /// Loads a trace from a `.json` or `.json.gz` file (gzip is recognised by its magic bytes).
    public static func load(path: String) throws -> Trace {
        var bytes = try readFile(path)
        if bytes.count >= 2, bytes[0] == 0x1F, bytes[1] == 0x8B { bytes = try gunzip(bytes) }
        return try bytes.withUnsafeBufferPointer { try parse($0) }
    }

    /// Parses the JSON text of a trace.
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws -> Trace {
        var trace = Trace()
        var scanner = JSONScanner(bytes)
        var sawEnd = false
        try scanner.readObject { s, key in
            switch key {
            case "kind": trace.isConcurrent = try s.readString() == "concurrent"
            case "startContent": trace.startContent = try s.readString()
            case "endContent":
                trace.endContent = try s.readString()
                sawEnd = true
            case "numAgents": trace.agentCount = try s.readInt()
            case "txns":
                // A transaction takes 40 bytes of JSON or more: a cheap upper bound.
                let estimate = bytes.count / 40
                trace.txnPatchEnds.reserveCapacity(estimate)
                trace.positions.reserveCapacity(estimate)
                trace.deleteCounts.reserveCapacity(estimate)
                trace.insertEnds.reserveCapacity(estimate)
                try s.readArray { s in try trace.readTransaction(&s) }
            default: try s.skipValue()
            }
        }
        try scanner.expectEnd()
        guard sawEnd else { throw TraceError("trace has no endContent") }
        if trace.isConcurrent { try trace.validateConcurrent() }
        return trace
    }

    mutating func readTransaction(_ s: inout JSONScanner) throws {
        var agent = 0
        // Raw keys: a String per key would be a third of the load time of a 260k-transaction trace.
        try s.readObject(rawKeys: { s, key in
            if JSONScanner.key(key, is: "patches") {
                try s.readArray { s in
                    var n = 0
                    try s.readArray { s in
                        switch n {
                        case 0: positions.append(try s.readInt())
                        case 1: deleteCounts.append(try s.readInt())
                        case 2:
                            _ = try s.readString(appendingTo: &insertText)
                            insertEnds.append(insertText.count)
                        default: throw TraceError("a patch must be [position, deleteCount, \"text\"]")
                        }
                        n += 1
                    }
                    guard n == 3, positions.last! >= 0, deleteCounts.last! >= 0 else {
                        throw TraceError("a patch must be [position, deleteCount, \"text\"] with non-negative numbers")
                    }
                }
            } else if JSONScanner.key(key, is: "parents") {
                try s.readArray { s in parentList.append(try s.readInt()) }
            } else if JSONScanner.key(key, is: "agent") {
                agent = try s.readInt()
            } else {
                try s.skipValue()
            }
        })
        txnPatchEnds.append(positions.count)
        txnParentEnds.append(parentList.count)
        agents.append(agent)
    }

    func validateConcurrent() throws {
        for t in 0 ..< transactionCount {
            let a = agents[t]
            guard a >= 0 && a < agentCount else { throw TraceError("transaction \(t): agent \(a) out of range") }
            for p in parents(ofTransaction: t) where p < 0 || p >= t {
                throw TraceError("transaction \(t): parent \(p) is not an earlier transaction")
            }
        }
    }

    /// The patches of a transaction as one operation on the document it was made on.
    public func operation(forTransaction t: Int) throws -> TextOperation {
        var op = TextOperation()
        for (k, i) in patchRange(ofTransaction: t).enumerated() {
            let p = try operation(forPatch: i)
            op = k == 0 ? p : op.composed(with: p)
        }
        return op
    }

    /// One patch as an operation: keep `position`, insert, delete `deleteCount`.
    public func operation(forPatch i: Int) throws -> TextOperation {
        var op = TextOperation()
        op.retain(positions[i])
        let start = i == 0 ? 0 : insertEnds[i - 1]
        if start < insertEnds[i] {
            op.insert(insertText.withUnsafeBufferPointer {
                String(decoding: UnsafeBufferPointer(rebasing: $0[start ..< insertEnds[i]]), as: UTF8.self)
            })
        }
        op.delete(deleteCounts[i])
        return op
    }
}

// MARK: - Files

func readFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw TraceError("\(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var st = stat()
    fstat(fd, &st)
    var out = [UInt8](repeating: 0, count: max(Int(st.st_size), 0))
    var done = 0
    while true {
        if done == out.count { out.append(contentsOf: [UInt8](repeating: 0, count: max(out.count, 64 << 10))) }
        let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 {
            if errno == EINTR { continue }
            throw TraceError("\(path): \(String(cString: strerror(errno)))")
        }
        if n == 0 { break }
        done += n
    }
    out.removeSubrange(done...)
    return out
}

/// Decompresses a gzip stream with zlib.
public func gunzip(_ input: [UInt8]) throws -> [UInt8] {
    var stream = z_stream()
    guard collab_inflate_init_gzip(&stream) == Z_OK else { throw TraceError("zlib: cannot initialise") }
    defer { inflateEnd(&stream) }
    // The trailer's ISIZE is the uncompressed size modulo 2^32: right for any trace, and only a
    // starting size (the buffer still grows) if it is not.
    let trailerSize = input.count >= 4
        ? Int(input[input.count - 4]) | Int(input[input.count - 3]) << 8 | Int(input[input.count - 2]) << 16 | Int(input[input.count - 1]) << 24
        : 0
    var output = [UInt8](repeating: 0, count: max(trailerSize + 1, 1 << 16))
    var produced = 0
    var input = input
    let status: Int32 = input.withUnsafeMutableBufferPointer { inBuf in
        stream.next_in = inBuf.baseAddress
        stream.avail_in = uInt(inBuf.count)
        while true {
            if produced == output.count { output.append(contentsOf: [UInt8](repeating: 0, count: output.count)) }
            let r: Int32 = output.withUnsafeMutableBufferPointer { outBuf in
                stream.next_out = outBuf.baseAddress! + produced
                stream.avail_out = uInt(outBuf.count - produced)
                let r = inflate(&stream, Z_NO_FLUSH)
                produced = outBuf.count - Int(stream.avail_out)
                return r
            }
            if r == Z_STREAM_END { return r }
            if r != Z_OK && r != Z_BUF_ERROR { return r }
            if r == Z_BUF_ERROR && stream.avail_in == 0 { return r }
        }
    }
    guard status == Z_STREAM_END else { throw TraceError("gzip: corrupt or truncated input (zlib status \(status))") }
    output.removeSubrange(produced...)
    return output
}
