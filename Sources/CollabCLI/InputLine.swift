import CollabOT
import CollabProtocol

/// One line of a tool's input as a message. A bare op array is an op message, so that the output
/// of `collab-ot-apply compose` and friends can be piped straight into `apply` or `collab-join`;
/// both tools must accept exactly the same lines.
func decodeInputLine(_ number: Int, _ bytes: UnsafeBufferPointer<UInt8>) -> Result<Message, LineError> {
    if bytes.first(where: { $0 != 0x20 && $0 != 0x09 }) == UInt8(ascii: "[") {
        do {
            var scanner = JSONScanner(bytes)
            var m = Message(.op)
            m.op = try TextOperation.read(from: &scanner)
            try scanner.expectEnd()
            return .success(m)
        } catch {
            return .failure(LineError(line: number, reason: "invalid op: \(error)"))
        }
    }
    do throws(MessageError) {
        return .success(try Message.decode(bytes))
    } catch {
        return .failure(LineError(line: number, reason: error.description))
    }
}
