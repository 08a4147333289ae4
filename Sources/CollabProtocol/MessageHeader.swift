/// The fields an inspector sorts traffic by (`type`, `room`, `user`, `ts`), read without building a
/// whole `Message`: the other fields are validated and skipped, ops are not decoded. This is what
/// lets `collab-tap --raw` and `--stats` filter a capture several times faster than decoding each
/// line in full.
public struct MessageHeader: Sendable, Equatable {
    public var type: MessageType
    public var room: String?
    public var user: String?
    /// Milliseconds since 1970, as in `Message.ts`.
    public var ts: Int?

    public init(type: MessageType, room: String? = nil, user: String? = nil, ts: Int? = nil) {
        self.type = type
        self.room = room
        self.user = user
        self.ts = ts
    }

    /// Decodes a line: a message object, or a bare op array (an `op`, as tools accept on input).
    /// Rejects exactly what `Message.decode` rejects, apart from the content of `op` and of the
    /// other fields' nested values, which are only checked to be valid JSON.
    public static func decode(_ bytes: UnsafeBufferPointer<UInt8>) throws(MessageError) -> MessageHeader {
        try Message.decodeLine(bytes, MessageHeader(type: .op),
                               bareOp: { s in
                                   try s.skipValue()
                                   return MessageHeader(type: .op)
                               },
                               type: { $0.type = $1 },
                               field: { header, s, field in
            switch field {
            case .room: header.room = try Message.optionalString(&s, "room")
            case .user: header.user = try Message.optionalString(&s, "user")
            case .ts: header.ts = try Message.optionalTimestamp(&s, "ts")
            default: try s.skipValue()
            }
        })
    }
}
