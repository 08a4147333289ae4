import CollabProtocol
import CollabTransport

#if canImport(Glibc)
import Glibc
#endif

/// A file descriptor (standard input) read inside the event loop, for the tools that also hold
/// network connections: chunks go to `onBytes` as they arrive, and `onEnd` runs once at end of
/// input.
///
/// libwebsockets reports a hang-up even while reading is paused and data remains in the pipe;
/// the rest is then read here without blocking, before `onEnd`, so no line is lost.
final class LoopInput {
    private(set) var descriptor: RawDescriptor?
    /// True once the input has ended (or could not be read at all).
    private(set) var isClosed = false
    private var buffer = [UInt8](repeating: 0, count: 64 << 10)
    private let onBytes: (UnsafeBufferPointer<UInt8>) -> Void
    private let onEnd: () -> Void
    private let diagnostics: Diagnostics

    /// Starts reading `fd` (paused if asked). If the descriptor cannot join the loop (closed, or
    /// not pollable), the input counts as ended at once: check `isClosed`; `onEnd` is not called.
    init(loop: EventLoop, fd: Int32, paused: Bool = false, diagnostics: Diagnostics,
         onBytes: @escaping (UnsafeBufferPointer<UInt8>) -> Void, onEnd: @escaping () -> Void) {
        self.onBytes = onBytes
        self.onEnd = onEnd
        self.diagnostics = diagnostics
        do {
            let raw = try loop.adopt(fd: fd, ownsDescriptor: false)
            raw.onReadable = { [weak self] r in self?.readable(r) }
            raw.onClose = { [weak self] r in self?.ended(r) }
            if paused { raw.pauseReading() }
            descriptor = raw
        } catch {
            isClosed = true
        }
    }

    func pause() { descriptor?.pauseReading() }
    func resume() { descriptor?.resumeReading() }

    private func readable(_ r: RawDescriptor) {
        let n = buffer.withUnsafeMutableBytes { read(r.fd, $0.baseAddress, $0.count) }
        if n > 0 {
            buffer.withUnsafeBufferPointer { onBytes(UnsafeBufferPointer(rebasing: $0[..<n])) }
        } else if n == 0 {
            r.close()
        } else if errno != EAGAIN && errno != EINTR {
            diagnostics.error("reading stdin: \(SystemError(operation: "read", errno: errno))")
            r.close()
        }
    }

    private func ended(_ r: RawDescriptor) {
        guard !isClosed else { return }
        isClosed = true
        descriptor = nil
        while true {
            var p = pollfd(fd: r.fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 0) > 0, p.revents & Int16(POLLIN | POLLHUP) != 0 else { break }
            let n = buffer.withUnsafeMutableBytes { read(r.fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            buffer.withUnsafeBufferPointer { onBytes(UnsafeBufferPointer(rebasing: $0[..<n])) }
        }
        onEnd()
    }
}

extension EventLoop {
    /// The event loop of a tool, nil (reported) if it cannot be made: libwebsockets' own logging
    /// is off, since the tool reports failures itself, once, in its words; SIGINT and SIGTERM
    /// go to `interrupted` on the loop thread.
    static func forTool(_ diagnostics: Diagnostics, interrupted: @escaping (Int32) -> Void) -> EventLoop? {
        var options = EventLoop.Options()
        options.logLevel = .none
        do {
            let loop = try EventLoop(options: options)
            loop.handleSignals([SIGINT, SIGTERM], interrupted)
            return loop
        } catch {
            diagnostics.error("\(error)")
            return nil
        }
    }
}
