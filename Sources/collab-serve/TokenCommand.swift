import ArgumentParser
import CollabAuth
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `collab-serve token`: mints an access token with the server's secret, for operators and for
/// the scripts that hand tokens to clients.
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Print an access token for collab-serve, signed with the server's secret.",
        discussion: """
        The token is a JWT (HS256) with the claims sub (--user), name (--name), rooms (--room, repeatable: room names or globs, where * matches within one path segment, ** across segments and ? one character), perm (read with --read-only, else write) and exp (now + --ttl). A server started with the same secret admits its holder to the rooms it lists, as that user, whatever the client's hello says.

        The secret comes from --auth-secret-file, else from the environment variable COLLAB_AUTH_SECRET; it must have at least 32 bytes (a trailing newline is ignored).

        Exit status: 0 the token was printed; 64 usage error; 66 the secret file cannot be read; 78 no secret, or one shorter than 32 bytes.

        Examples:
          head -c 32 /dev/urandom | base64 > secret
          collab-serve token --auth-secret-file secret --user ann --name 'Ann Lee' --room 'docs/*' --ttl 8h
          collab-join --token "$(collab-serve token --auth-secret-file secret --user bot --room notes --read-only)" ws://127.0.0.1:7420/notes
        """
    )

    @Option(help: ArgumentHelp("The user id (the token's sub): the user of every message its holder sends.", valueName: "USER"))
    var user: String

    @Option(help: ArgumentHelp("Display name shown to the others.", valueName: "NAME"))
    var name: String?

    @Option(name: .customLong("room"), help: ArgumentHelp("A room the token opens: a name or a glob (docs/*, team/**); repeat for more.", valueName: "GLOB"))
    var rooms: [String] = []

    @Flag(name: .customLong("read-only"), help: "Receive only: the holder's edits are refused (perm read).")
    var readOnly = false

    @Option(help: ArgumentHelp("How long the token is valid: seconds, or a number with s, m, h or d.", valueName: "DURATION"))
    var ttl: TimeToLive = TimeToLive(seconds: 3600)

    @OptionGroup var secret: SecretOptions

    func validate() throws {
        guard !user.isEmpty else { throw ValidationError("--user must not be empty") }
        guard !rooms.isEmpty else { throw ValidationError("give at least one --room (a name or a glob such as 'docs/*', or '**' for every room)") }
        guard ttl.seconds > 0 else { throw ValidationError("--ttl must be positive") }
    }

    func run() throws {
        let authority: TokenAuthority
        do {
            guard let a = try secret.authority() else {
                throw CommandFailure(78, "no secret: give --auth-secret-file FILE or set COLLAB_AUTH_SECRET")
            }
            authority = a
        } catch let e as CommandFailure {
            var line = "collab-serve token: \(e.message)\n"
            line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
            throw ExitCode(e.status)
        }
        let claims = AccessClaims(user: user, name: name, rooms: rooms, permission: readOnly ? .read : .write,
                                  expires: Date().addingTimeInterval(ttl.seconds))
        let token = try blocking { try await authority.mint(claims) }
        print(token)
    }
}

/// Where the shared secret comes from: the same for serving and for minting.
struct SecretOptions: ParsableArguments {
    @Option(name: .customLong("auth-secret-file"),
            help: ArgumentHelp("File holding the secret that signs access tokens (at least 32 bytes). Default: the environment variable COLLAB_AUTH_SECRET.", valueName: "FILE"),
            completion: .file())
    var file: String?

    /// The authority, nil when no secret is given; exits 66/78 on an unusable one.
    func authority() throws -> TokenAuthority? {
        let bytes: [UInt8]
        if let file {
            do {
                bytes = try TokenAuthority.readSecret(file: file)
            } catch {
                throw CommandFailure(66, error.description)
            }
        } else if let env = ProcessInfo.processInfo.environment["COLLAB_AUTH_SECRET"], !env.isEmpty {
            bytes = TokenAuthority.secret(fromEnvironment: env)
        } else {
            return nil
        }
        do {
            return try TokenAuthority(secret: bytes)
        } catch {
            throw CommandFailure(78, error.description)
        }
    }
}

/// An error message on stderr and an exit status.
struct CommandFailure: Error {
    var status: Int32
    var message: String
    init(_ status: Int32, _ message: String) {
        self.status = status
        self.message = message
    }
}

/// Runs async work from a command's synchronous `run()`: a one-shot wait at start-up or in a
/// short command, never on the server's loop.
func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let result = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        let r: Result<T, any Error>
        do { r = .success(try await body()) } catch { r = .failure(error) }
        result.withLock { $0 = r }
        done.signal()
    }
    done.wait()
    return try result.withLock { $0! }.get()
}

/// `--ttl`: `3600`, `90s`, `15m`, `8h`, `7d`.
struct TimeToLive: ExpressibleByArgument, CustomStringConvertible {
    var seconds: Double
    init(seconds: Double) { self.seconds = seconds }
    init?(argument: String) {
        var text = Substring(argument)
        var unit = 1.0
        switch text.last {
        case "s": unit = 1
        case "m": unit = 60
        case "h": unit = 3600
        case "d": unit = 86400
        default: break
        }
        if text.last.map({ "smhd".contains($0) }) == true { text = text.dropLast() }
        guard let v = Double(text), v.isFinite else { return nil }
        seconds = v * unit
    }
    var description: String {
        seconds.truncatingRemainder(dividingBy: 3600) == 0 ? "\(Int(seconds / 3600))h" : "\(Int(seconds))s"
    }
    var defaultValueDescription: String { description }
}
