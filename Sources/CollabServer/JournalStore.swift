import CollabOT
import CollabProtocol

#if canImport(Glibc)
import Glibc
#endif

/// Durable history of rooms on local disk: per room a directory (`DATA/<room>/`) with
///
/// - `journal.ndjson`: committed `op` messages, one per line, appended as they commit;
/// - `snapshot.json`: a `snapshot` message (document at a revision, plus the dedupe table under
///   `"clients"`), written atomically (temp file, fsync, rename, fsync of the directory).
///
/// The journal uses the wire schema, so `collab-ot-apply apply < journal.ndjson` rebuilds a room.
/// Writes go to the page cache as ops commit; `sync()` makes everything appended so far durable
/// with one `fdatasync` per written room, which is what lets the server group the fsyncs of one
/// loop iteration and release acks after it (like Redis' appendfsync always, batched).
public final class JournalStore {
    public let directory: String
    var journals: [String: Int32] = [:]
    var dirty: Set<String> = []
    var snapshotRevisions: [String: Int] = [:]

    public init(directory: String) throws {
        self.directory = directory
        try makeDirectories(directory)
    }

    deinit {
        for fd in journals.values { Glibc.close(fd) }
    }

    func roomDirectory(_ room: String) -> String { directory + "/" + RoomName.fileName(room) }

    /// Rooms that have something on disk.
    public func storedRooms() -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var rooms: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { rooms.append(RoomName.roomName(fileName: name)) }
        }
        return rooms.sorted()
    }

    /// Loads a room: its snapshot, then the journal after it. A torn last line (a crash during an
    /// append) is dropped with a warning and cut off the file; damage anywhere else is an error,
    /// because silently skipping a committed op would lose an acknowledged edit.
    public func load(room name: String, historyLimit: Int = 10_000, warn: (String) -> Void) throws -> Room {
        let dir = roomDirectory(name)
        var room = Room(name: name, historyLimit: historyLimit)
        snapshotRevisions[name] = nil
        if let bytes = try readWholeFile(dir + "/snapshot.json") {
            let snap: Message
            do {
                snap = try bytes.withUnsafeBufferPointer { try Message.decode(trimNewline($0)) }
            } catch {
                throw RoomError("room \(name): snapshot.json is damaged: \(error)")
            }
            guard snap.type == .snapshot, let rev = snap.rev, let doc = snap.doc else {
                throw RoomError("room \(name): snapshot.json is not a snapshot message")
            }
            room = Room(name: name, document: TextRope(doc), revision: rev, historyLimit: historyLimit)
            snapshotRevisions[name] = rev
            if case .object(let clients)? = snap.extra?["clients"] {
                var table: [String: (seq: Int, rev: Int)] = [:]
                for (client, entry) in clients.fields {
                    if case .array(let pair) = entry, pair.count == 2, let s = pair[0].intValue, let r = pair[1].intValue {
                        table[client] = (s, r)
                    }
                }
                room.restoreClients(table)
            }
        }
        let journalPath = dir + "/journal.ndjson"
        guard let bytes = try readWholeFile(journalPath) else { return room }
        var goodLength = 0
        var lineNumber = 0
        var start = 0
        try bytes.withUnsafeBufferPointer { all in
            while start < all.count {
                lineNumber += 1
                let newline = all[start...].firstIndex(of: 0x0A)
                let end = newline ?? all.count
                let line = UnsafeBufferPointer(rebasing: all[start ..< end])
                let isLast = newline == nil || newline! + 1 == all.count
                do {
                    guard newline != nil else { throw RoomError("no newline at the end") }
                    let record = try Message.decode(line)
                    if let rev = record.rev, rev <= room.revision {
                        // Already in the snapshot (a crash between snapshot and truncation).
                    } else {
                        guard record.rev == room.revision + 1 else {
                            throw RoomError("revision \(record.rev.map(String.init) ?? "missing") follows \(room.revision)")
                        }
                        try room.replay(record)
                    }
                } catch {
                    guard isLast else {
                        throw RoomError("room \(name): journal line \(lineNumber) is damaged (\(error)); refusing to load rather than lose later edits")
                    }
                    warn("room \(name): dropping a torn last journal line \(lineNumber) (\(error)); it was never acknowledged")
                    break
                }
                goodLength = end + 1
                start = end + 1
            }
        }
        if goodLength < bytes.count {
            guard truncate(journalPath, off_t(goodLength)) == 0 else {
                throw RoomError("\(journalPath): cannot cut the torn line: \(String(cString: strerror(errno)))")
            }
        }
        return room
    }

    /// Appends committed ops to the room's journal (durable after the next `sync()`).
    public func append(room: String, records: [Message]) throws {
        guard !records.isEmpty else { return }
        let fd = try journal(for: room)
        if let fault = appendFault?(room) { throw RoomError("writing journal of room \(room): \(fault)") }
        var w = JSONWriter(capacity: 128 * records.count)
        for r in records {
            r.write(to: &w)
            w.newline()
        }
        try writeAll(fd, w.bytes, what: "journal of room \(room)")
        dirty.insert(room)
    }

    /// Makes every append so far durable: one `fdatasync` per room written since the last sync.
    /// Every dirty room is tried; if some fail, `JournalSyncError` names them (the others are
    /// durable) and the failed ones stay dirty.
    public func sync() throws {
        guard !dirty.isEmpty else { return }
        var failures: [(room: String, message: String)] = []
        for room in dirty.sorted() {
            guard let fd = journals[room] else {
                dirty.remove(room)
                continue
            }
            var failure: String?
            if let fault = syncFault?(room) {
                failure = fault
            } else if fdatasync(fd) != 0 {
                failure = String(cString: strerror(errno))
            }
            if let failure {
                failures.append((room, "fsync of the journal of room \(room): \(failure)"))
            } else {
                dirty.remove(room)
            }
        }
        if !failures.isEmpty { throw JournalSyncError(failures: failures) }
    }

    /// Rooms appended to since their last successful sync.
    public var unsyncedRooms: Set<String> { dirty }

    /// The revision of the room's snapshot on disk (as loaded or last written), if any.
    public func snapshotRevision(of room: String) -> Int? { snapshotRevisions[room] }

    /// Test hook: returning a message makes the sync of that room fail with it.
    var syncFault: ((String) -> String?)?
    /// Test hook: returning a message makes appends to that room fail with it.
    var appendFault: ((String) -> String?)?

    public var hasUnsyncedWrites: Bool { !dirty.isEmpty }

    /// Writes the room's snapshot atomically, then empties its journal: replay at start-up then
    /// costs one snapshot plus the ops since.
    public func writeSnapshot(_ room: Room) throws {
        // Not needed for the snapshot itself, but a failing disk is better found here.
        if dirty.contains(room.name), let fd = journals[room.name] {
            guard fdatasync(fd) == 0 else {
                throw RoomError("fsync of the journal of room \(room.name): \(String(cString: strerror(errno)))")
            }
            dirty.remove(room.name)
        }
        let dir = roomDirectory(room.name)
        try makeDirectories(dir)
        var snap = room.snapshot
        var clients = JSONObject()
        for (client, entry) in room.sequencer.lastCommitted.sorted(by: { $0.key < $1.key }) {
            clients.fields.append((key: client, value: .array([.int(entry.seq), .int(entry.rev)])))
        }
        snap.extra = ["clients": .object(clients)]
        var w = JSONWriter()
        snap.write(to: &w)
        w.newline()
        let tmp = dir + "/snapshot.json.tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RoomError("\(tmp): \(String(cString: strerror(errno)))") }
        do {
            try writeAll(fd, w.bytes, what: tmp)
            guard fsync(fd) == 0 else { throw RoomError("fsync \(tmp): \(String(cString: strerror(errno)))") }
        } catch {
            Glibc.close(fd)
            throw error
        }
        Glibc.close(fd)
        guard rename(tmp, dir + "/snapshot.json") == 0 else { throw RoomError("rename \(tmp): \(String(cString: strerror(errno)))") }
        try syncDirectory(dir)
        // Only now may the journal forget what the snapshot holds.
        let journalFD = try journal(for: room.name)
        guard ftruncate(journalFD, 0) == 0, fdatasync(journalFD) == 0 else {
            throw RoomError("truncating the journal of room \(room.name): \(String(cString: strerror(errno)))")
        }
        snapshotRevisions[room.name] = room.revision
    }

    /// Closes the room's journal (the room was unloaded from memory).
    public func close(room: String) {
        snapshotRevisions[room] = nil
        if let fd = journals.removeValue(forKey: room) {
            if dirty.contains(room) { fdatasync(fd) }
            dirty.remove(room)
            Glibc.close(fd)
        }
    }

    func journal(for room: String) throws -> Int32 {
        if let fd = journals[room] { return fd }
        let dir = roomDirectory(room)
        try makeDirectories(dir)
        let fd = open(dir + "/journal.ndjson", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RoomError("\(dir)/journal.ndjson: \(String(cString: strerror(errno)))") }
        journals[room] = fd
        try syncDirectory(dir)
        return fd
    }
}

/// `JournalStore.sync()` failed for some rooms; their journals may not hold what was appended.
public struct JournalSyncError: Error, Sendable, CustomStringConvertible {
    public var failures: [(room: String, message: String)]
    public var rooms: [String] { failures.map(\.room) }
    public var description: String { failures.map(\.message).joined(separator: "; ") }
}

// MARK: - File helpers

func trimNewline(_ b: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
    var n = b.count
    while n > 0 && (b[n - 1] == 0x0A || b[n - 1] == 0x0D) { n -= 1 }
    return UnsafeBufferPointer(rebasing: b[..<n])
}

func makeDirectories(_ path: String) throws {
    var current = path.hasPrefix("/") ? "" : "."
    for part in path.split(separator: "/") {
        current += "/" + part
        if mkdir(current, 0o755) != 0 && errno != EEXIST {
            throw RoomError("mkdir \(current): \(String(cString: strerror(errno)))")
        }
    }
}

func syncDirectory(_ path: String) throws {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw RoomError("\(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    fsync(fd)
}

func writeAll(_ fd: Int32, _ bytes: [UInt8], what: String) throws {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 {
            if errno == EINTR { continue }
            throw RoomError("writing \(what): \(String(cString: strerror(errno)))")
        }
        done += n
    }
}

/// The file's bytes, or nil if it does not exist.
func readWholeFile(_ path: String) throws -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
        if errno == ENOENT { return nil }
        throw RoomError("\(path): \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw RoomError("\(path): \(String(cString: strerror(errno)))")
        }
        if n == 0 { break }
        out.append(contentsOf: chunk[..<n])
    }
    return out
}
