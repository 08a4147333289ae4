// swift-tools-version:6.0
// collab: small Unix tools for real-time collaboration. See README.md and man/collab-protocol.7.
import PackageDescription

let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let rope: Target.Dependency = .product(name: "_RopeModule", package: "swift-collections")
let deque: Target.Dependency = .product(name: "DequeModule", package: "swift-collections")
let ordered: Target.Dependency = .product(name: "OrderedCollections", package: "swift-collections")

let package = Package(
    name: "collab",
    products: [
        .executable(name: "collab-ot-apply", targets: ["collab-ot-apply"]),
        .executable(name: "collab-serve", targets: ["collab-serve"]),
        .executable(name: "collab-join", targets: ["collab-join"]),
        .executable(name: "collab-bridge", targets: ["collab-bridge"]),
        .executable(name: "collab-presence", targets: ["collab-presence"]),
        .executable(name: "collab-tap", targets: ["collab-tap"]),
        .executable(name: "collab-bench", targets: ["collab-bench"]),
        .library(name: "CollabProtocol", targets: ["CollabProtocol"]),
        .library(name: "CollabOT", targets: ["CollabOT"]),
        .library(name: "CollabPresence", targets: ["CollabPresence"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Latency percentiles of collab-bench: fixed memory, constant-time recording.
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // Signed access tokens (JWT, HS256): verified by collab-serve, minted by `collab-serve token`.
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.8.0"),
    ],
    targets: [
        // C libraries from Debian, bound as system libraries. Each module map points at a tiny shim
        // header that re-exports what Swift cannot import (function-like macros, variadic logging).
        .systemLibrary(name: "CLibWebSockets", pkgConfig: "libwebsockets",
                       providers: [.apt(["libwebsockets-dev"])]),
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // Operational transformation: text operations, the rope document, client state machine,
        // sequencer, undo manager. Pure values: no I/O, no JSON.
        .target(name: "CollabOT", dependencies: [rope]),
        // Wire schema: JSON values, the NDJSON line codec, message types (which carry ops).
        .target(name: "CollabProtocol", dependencies: ["CollabOT"]),
        // Presence: who is in a room, their colours and initials, cursors that follow the
        // document, typing that expires. Pure values, shared by server, clients and collab-presence.
        .target(name: "CollabPresence", dependencies: ["CollabOT", "CollabProtocol", deque, ordered]),
        // Editing traces (josephg/editing-traces format) and their replay through the OT engine.
        .target(name: "CollabTraces", dependencies: ["CollabOT", "CollabProtocol", "CZlib"]),
        // What the command-line tools share (stdin/stdout loops, logging, exit codes) and the logic
        // of each tool, so executables stay thin and tests drive tools in-process.
        .target(name: "CollabCLI", dependencies: ["CollabProtocol", "CollabOT", "CollabTraces", "CollabClient", "CollabTransport",
                                                 "CollabRedis", "CollabRedisRoom", "CollabPresence",
                                                 .product(name: "Histogram", package: "hdrhistogram-swift")]),
        // The libwebsockets event loop: WebSocket server and client, HTTP GET, raw fds, timers,
        // cross-thread wake-ups. Moves bytes and timers only; knows nothing of the message schema.
        .target(name: "CollabTransport", dependencies: ["CLibWebSockets"]),

        // The client side of a room (sans-I/O): OT client, document, undo, reconnect catch-up.
        .target(name: "CollabClient", dependencies: ["CollabOT", "CollabPresence", "CollabProtocol"]),

        // Rooms (sans-I/O: events in, messages and journal records out), their durable storage,
        // and the host that serves them over WebSockets (collab-serve's logic).
        .target(name: "CollabServer", dependencies: ["CollabAuth", "CollabOT", "CollabPresence", "CollabProtocol", "CollabTransport", "CollabRedis", "CollabRedisRoom",
                                                     .product(name: "Prometheus", package: "swift-prometheus")]),
        // Who may do what: JWT access tokens (verify, mint), their claims, room globs, origins.
        .target(name: "CollabAuth", dependencies: [.product(name: "JWTKit", package: "jwt-kit")]),
        // hiredis' async API inside the CollabTransport loop: connections, pub/sub, Lua scripts.
        .target(name: "CollabRedis", dependencies: ["CHiredis", "CollabTransport", deque]),
        // A room's Redis commit path (read, transform, commit, retry), shared by collab-bridge
        // --commit and collab-serve --redis.
        .target(name: "CollabRedisRoom", dependencies: ["CollabRedis", "CollabOT", "CollabProtocol", "CollabTransport"]),

        .executableTarget(name: "collab-ot-apply", dependencies: ["CollabCLI", argumentParser]),
        .executableTarget(name: "collab-serve", dependencies: ["CollabServer", "CollabAuth", "CollabRedis", "CollabTransport", argumentParser]),
        .executableTarget(name: "collab-join", dependencies: ["CollabCLI", argumentParser]),
        .executableTarget(name: "collab-bridge", dependencies: ["CollabCLI", argumentParser]),
        .executableTarget(name: "collab-presence", dependencies: ["CollabCLI", argumentParser]),
        .executableTarget(name: "collab-tap", dependencies: ["CollabCLI", argumentParser]),
        .executableTarget(name: "collab-bench", dependencies: ["CollabCLI", argumentParser]),

        // What the test targets share: the seeded generator, child processes with bounded waits,
        // polling, loopback sockets. Foundation and XCTest only, so any test target may use it.
        .target(name: "CollabTestSupport", path: "Tests/CollabTestSupport"),

        .testTarget(name: "CollabProtocolTests", dependencies: ["CollabProtocol", "CollabOT", "CollabTestSupport"]),
        .testTarget(name: "CollabToolTests",
                    dependencies: ["CollabCLI", "CollabProtocol", "CollabOT", "CollabPresence", "CollabTestSupport",
                                   "collab-ot-apply", "collab-presence"]),
        .testTarget(name: "CollabOTTests", dependencies: ["CollabOT", "CollabProtocol", "CollabTestSupport"]),
        .testTarget(name: "CollabTransportTests", dependencies: ["CollabTransport", "CollabTestSupport"]),
        .testTarget(name: "CollabServerTests",
                    dependencies: ["CollabServer", "CollabOT", "CollabProtocol", "CollabTransport", "CollabTestSupport",
                                   "CollabRedis", "collab-serve"]),
        .testTarget(name: "CollabClientTests",
                    dependencies: ["CollabClient", "CollabServer", "CollabOT", "CollabProtocol", "CollabTestSupport"]),
        .testTarget(name: "CollabRedisTests", dependencies: ["CollabRedis", "CollabRedisRoom", "CollabOT", "CollabProtocol",
                                                         "CollabTransport", "CollabTestSupport"]),
        .testTarget(name: "CollabBridgeTests",
                    dependencies: ["CollabProtocol", "CollabOT", "CollabRedis", "CollabTestSupport", "collab-bridge", "collab-ot-apply"]),
        .testTarget(name: "CollabAuthTests", dependencies: ["CollabAuth"]),
        .testTarget(name: "CollabPresenceTests", dependencies: ["CollabPresence", "CollabOT", "CollabProtocol", "CollabTestSupport"]),
        .testTarget(name: "CollabTracesTests", dependencies: ["CollabTraces", "CollabOT"]),
        .testTarget(name: "CollabTapTests",
                    dependencies: ["CollabCLI", "CollabProtocol", "CollabOT", "CollabPresence", "CollabTestSupport",
                                   "collab-tap", "collab-serve", "collab-join", "collab-bridge", "collab-ot-apply"]),
        .testTarget(name: "CollabBenchTests",
                    dependencies: ["CollabCLI", "CollabProtocol", "CollabTestSupport", "collab-bench", "collab-serve",
                                   .product(name: "Histogram", package: "hdrhistogram-swift")]),
        .testTarget(name: "CollabJoinTests",
                    dependencies: ["CollabCLI", "CollabClient", "CollabProtocol", "CollabOT", "CollabTransport",
                                   "CollabTestSupport", "collab-join", "collab-serve", "collab-presence", "collab-tap"]),
    ]
)
