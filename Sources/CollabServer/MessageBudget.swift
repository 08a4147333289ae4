import CollabProtocol

/// Size caps by message type, below --max-message. What the server keeps and repeats must stay
/// small whatever one client sends: a hello's names go into every newcomer's roster, a member's
/// presence state is merged, stored and relayed to everyone, an event is fanned out to the whole
/// room. Without these a single 1 MiB hello or presence would be copied to every member, again
/// for every newcomer. Ops are bounded by --max-message alone: they are the document.
public struct MessageBudget: Sendable {
    /// `user`, `name` and `client` of a hello, in bytes.
    public var identifierBytes = 256
    /// A presence update, as received.
    public var presenceBytes = 8 << 10
    /// An event, as received.
    public var eventBytes = 64 << 10

    public init() {}

    /// Why `message` (`size` bytes on the wire) is refused, or nil.
    public func violation(_ message: Message, size: Int) -> String? {
        switch message.type {
        case .hello:
            for (field, value) in [("user", message.user), ("name", message.name), ("client", message.client)] {
                if let value, value.utf8.count > identifierBytes {
                    return "hello \"\(field)\" is \(value.utf8.count) bytes; at most \(identifierBytes)"
                }
            }
        case .presence where size > presenceBytes:
            return "presence update of \(size) bytes; at most \(presenceBytes) (presence is relayed to everyone and stored)"
        case .event where size > eventBytes:
            return "event of \(size) bytes; at most \(eventBytes) (events are relayed to the whole room)"
        default:
            break
        }
        return nil
    }
}
