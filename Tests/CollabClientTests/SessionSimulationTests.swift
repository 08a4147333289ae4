import CollabClient
import CollabOT
import CollabProtocol
import CollabServer
import CollabTestSupport
import XCTest

extension SplitMix64 {
    /// In 0 ..< n by plain modulo rather than `int(_:)`'s unbiased draw, so that each seed below
    /// still produces the run it always did (failure messages name the seed).
    fileprivate mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// Client sessions and a room, both sans-I/O, wired through simulated connections that deliver in
/// order per direction, interleave arbitrarily, and drop whatever is in flight when a connection
/// breaks. Every client must end with the room's document and nothing unacknowledged.
final class SessionSimulationTests: XCTestCase {
    final class Link {
        var session: ClientSession
        var connection: ConnectionID?
        var toServer: [Message] = []
        var toClient: [Message] = []
        var printed: [Message] = []
        init(_ s: ClientSession) { session = s }
    }

    struct World {
        var room = Room(name: "sim", historyLimit: 50)
        var links: [Link] = []
        var nextConnection = 1
        var rng: SplitMix64

        mutating func connect(_ i: Int) {
            let link = links[i]
            link.connection = nextConnection
            nextConnection += 1
            link.toServer = [link.session.connected()]
            link.toClient = []
        }

        mutating func disconnect(_ i: Int) {
            let link = links[i]
            guard let c = link.connection else { return }
            route(room.close(c))
            link.connection = nil
            link.toServer = []
            link.toClient = []
            link.session.disconnected()
        }

        mutating func route(_ fx: RoomEffects) {
            for d in fx.sends + fx.durableSends {
                for r in d.recipients {
                    links.first { $0.connection == r }?.toClient.append(d.message)
                }
            }
        }

        mutating func deliverToServer(_ i: Int) {
            let link = links[i]
            guard let c = link.connection, !link.toServer.isEmpty else { return }
            route(room.receive(link.toServer.removeFirst(), from: c, now: 0))
        }

        mutating func deliverToClient(_ i: Int) throws {
            let link = links[i]
            guard link.connection != nil, !link.toClient.isEmpty else { return }
            let out = link.session.received(link.toClient.removeFirst())
            if let fatal = out.fatal { throw SimError("fatal: \(fatal.json); problems: \(out.problems)") }
            link.toServer += out.send
            link.printed += out.print
        }

        mutating func edit(_ i: Int) {
            let link = links[i]
            guard link.session.hasDocument else { return }
            let n = link.session.document.count
            var line: Message
            switch rng.below(5) {
            case 0 where n > 0:
                line = Message(.delete)
                let pos = rng.below(n)
                line.pos = pos
                line.len = 1 + rng.below(min(3, n - pos))
            case 1:
                line = Message(rng.below(2) == 0 ? .undo : .redo)
            default:
                line = Message(.insert)
                line.pos = rng.below(n + 1)
                line.text = ["a", "é", "字", "👍🏽", "xyz"][rng.below(5)]
            }
            let out = link.session.input(line)
            if link.connection != nil { link.toServer += out.send }
        }
    }

    struct SimError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    func run(seed: UInt64, clients: Int, steps: Int) throws {
        var w = World(rng: SplitMix64(seed: seed))
        for k in 0 ..< clients {
            w.links.append(Link(ClientSession(user: "u\(k)", clientID: "client-\(k)")))
            w.connect(k)
        }
        for _ in 0 ..< steps {
            let i = w.rng.below(clients)
            switch w.rng.below(20) {
            case 0 ... 5: w.edit(i)
            case 6 ... 10: w.deliverToServer(i)
            case 11 ... 17: try w.deliverToClient(i)
            case 18: w.disconnect(i)
            default: if w.links[i].connection == nil { w.connect(i) }
            }
        }
        // Heal: everyone reconnects and all traffic is delivered.
        for i in 0 ..< clients where w.links[i].connection == nil { w.connect(i) }
        var rounds = 0
        while w.links.contains(where: { !$0.toServer.isEmpty || !$0.toClient.isEmpty }) {
            for i in 0 ..< clients {
                while !w.links[i].toServer.isEmpty { w.deliverToServer(i) }
                while !w.links[i].toClient.isEmpty { try w.deliverToClient(i) }
            }
            rounds += 1
            XCTAssertLessThan(rounds, 1000, "seed \(seed): no quiescence")
            if rounds >= 1000 { return }
        }
        let expected = w.room.sequencer.document.string
        for (k, link) in w.links.enumerated() {
            XCTAssertTrue(link.session.isDrained, "seed \(seed): client \(k) still has unacknowledged edits")
            XCTAssertEqual(link.session.document.string, expected, "seed \(seed): client \(k) diverged")
            XCTAssertEqual(link.session.revision, w.room.revision, "seed \(seed): client \(k) revision")
        }
    }

    func testRandomSessionsConvergeAcrossDisconnects() throws {
        for seed in UInt64(1) ... 300 {
            try run(seed: seed, clients: 2 + Int(seed % 3), steps: 200)
        }
    }

    /// What a client prints is the room's history: applying its op lines reproduces the document
    /// (the `collab-join URL | collab-ot-apply apply` contract), own ops included once committed.
    func testPrintedOpsReproduceTheDocument() throws {
        for seed in UInt64(500) ... 560 {
            var w = World(rng: SplitMix64(seed: seed))
            for k in 0 ..< 3 {
                w.links.append(Link(ClientSession(user: "u\(k)", clientID: "client-\(k)")))
                w.connect(k)
            }
            for _ in 0 ..< 150 {
                let i = w.rng.below(3)
                switch w.rng.below(3) {
                case 0: w.edit(i)
                case 1: w.deliverToServer(i)
                default: try w.deliverToClient(i)
                }
            }
            for _ in 0 ..< 100 {
                for i in 0 ..< 3 {
                    while !w.links[i].toServer.isEmpty { w.deliverToServer(i) }
                    while !w.links[i].toClient.isEmpty { try w.deliverToClient(i) }
                }
            }
            for link in w.links {
                var doc = TextRope()
                var rev = 0
                for m in link.printed {
                    switch m.type {
                    case .welcome:
                        doc = TextRope(m.doc ?? "")
                        rev = m.rev ?? 0
                    case .op:
                        XCTAssertEqual(m.rev, rev + 1, "seed \(seed): printed ops out of order")
                        try m.op!.apply(to: &doc)
                        rev = m.rev!
                    default: break
                    }
                }
                XCTAssertEqual(doc.string, w.room.sequencer.document.string, "seed \(seed)")
            }
        }
    }

    func testMinimalReplaceDiff() throws {
        XCTAssertEqual(ClientSession.diff(from: "hello world", to: "hello brave world").json, #"[6,"brave "]"#)
        XCTAssertEqual(ClientSession.diff(from: "abc", to: "abc").json, "[]")
        XCTAssertEqual(ClientSession.diff(from: "aXc", to: "aYc").json, #"[1,"Y",{"d":1}]"#)
        XCTAssertEqual(try ClientSession.diff(from: "👍🏽x", to: "👍🏿x").apply(to: "👍🏽x"), "👍🏿x")
    }

    func testInputIsValidatedAgainstTheDocument() {
        var s = ClientSession(user: "u", clientID: "c")
        _ = s.connected()
        var welcome = Message(.welcome)
        welcome.rev = 0
        welcome.doc = "abc"
        _ = s.received(welcome)
        var bad = Message(.insert)
        bad.pos = 9
        bad.text = "x"
        XCTAssertEqual(s.input(bad).problems.count, 1)
        var del = Message(.delete)
        del.pos = 2
        del.len = 5
        XCTAssertEqual(s.input(del).problems.count, 1)
        XCTAssertEqual(s.document.string, "abc")
        var ok = Message(.insert)
        ok.pos = 3
        ok.text = "d"
        let out = s.input(ok)
        XCTAssertEqual(out.send.first?.seq, 1)
        XCTAssertEqual(out.send.first?.base, 0)
        XCTAssertEqual(s.document.string, "abcd")
        XCTAssertEqual(s.input(Message(.undo)).send.count, 0, "second op waits for the ack of the first")
        XCTAssertEqual(s.document.string, "abc")
    }
}
