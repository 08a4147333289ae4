/// A JSON value, for the parts of a message the schema leaves open (an app's `event` payload,
/// fields a newer peer adds). Objects keep their key order so tools pass lines through unchanged.
public enum JSONValue: Equatable, Hashable, Sendable {
    case null
    case bool(Bool)
    /// A number written without fraction or exponent that fits in 64 bits.
    case int(Int)
    /// Any other number.
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d == d.rounded() && abs(d) < 9.0e15: return Int(d)
        default: return nil
        }
    }
}

/// A JSON object with its keys in the order they were written. Lookups are linear: messages have
/// a handful of keys, where a dictionary would cost more than it saves.
public struct JSONObject: Equatable, Hashable, Sendable, ExpressibleByDictionaryLiteral {
    public var fields: [(key: String, value: JSONValue)]

    public init() { fields = [] }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        fields = elements.map { (key: $0.0, value: $0.1) }
    }

    public var isEmpty: Bool { fields.isEmpty }

    public subscript(key: String) -> JSONValue? {
        get { fields.first(where: { $0.key == key })?.value }
        set {
            if let i = fields.firstIndex(where: { $0.key == key }) {
                if let newValue { fields[i].value = newValue } else { fields.remove(at: i) }
            } else if let newValue {
                fields.append((key: key, value: newValue))
            }
        }
    }

    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        a.fields.count == b.fields.count && zip(a.fields, b.fields).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for f in fields {
            hasher.combine(f.key)
            hasher.combine(f.value)
        }
    }
}
