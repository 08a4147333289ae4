// A file descriptor in the loop (stdin, a pipe, a Redis socket): readable and writable
// notifications, pause/resume of reading for back-pressure. libwebsockets polls it as a
// LWS_ADOPT_RAW_FILE_DESC; the loop gives lws a dup() so both sides can close their own copy.
import CLibWebSockets
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public final class RawDescriptor {
    /// The descriptor to read from / write to. Valid until `onClose` has returned.
    public let fd: Int32
    /// Closed by the loop after `onClose` when true.
    public let ownsDescriptor: Bool
    /// The fd is readable (or at end of file / hung up with data left): `read()` once; reading
    /// 0 bytes means end of file — call `close()`. Runs on the loop thread.
    public var onReadable: ((RawDescriptor) -> Void)?
    /// The fd became writable after `requestWritable()` (one notification per request).
    public var onWritable: ((RawDescriptor) -> Void)?
    /// The descriptor left the loop (after `close()`, a hang-up with nothing left to read, or
    /// loop teardown). Data still buffered in a pipe can be read from `fd` here: libwebsockets
    /// reports a hang-up while reading is paused even if unread data remains.
    public var onClose: ((RawDescriptor) -> Void)?
    /// Free for the layer above.
    public var userInfo: AnyObject?

    public private(set) var isOpen = true
    public private(set) var isReadingPaused = false

    var wsi: OpaquePointer?
    weak var loop: EventLoop?
    var inCallback = false
    var closeRequested = false

    init(fd: Int32, ownsDescriptor: Bool, loop: EventLoop) {
        self.fd = fd
        self.ownsDescriptor = ownsDescriptor
        self.loop = loop
    }

    /// Stops readable notifications until `resumeReading()`.
    public func pauseReading() {
        guard isOpen, !isReadingPaused, let wsi else { return }
        isReadingPaused = true
        lws_rx_flow_control(wsi, 0)
    }

    public func resumeReading() {
        guard isOpen, isReadingPaused, let wsi else { return }
        isReadingPaused = false
        lws_rx_flow_control(wsi, 1)
    }

    /// Asks for one `onWritable` call when the fd can be written.
    public func requestWritable() {
        guard isOpen, let wsi else { return }
        lws_callback_on_writable(wsi)
    }

    /// Removes the descriptor from the loop; `onClose` follows (synchronously after the current
    /// callback of this descriptor, otherwise on the next loop iteration).
    public func close() {
        guard isOpen, !closeRequested else { return }
        closeRequested = true
        if !inCallback, let wsi {
            lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC)
        }
    }

    func callbackReadable() -> Int32 {
        guard isOpen else { return 0 }
        inCallback = true
        onReadable?(self)
        inCallback = false
        return closeRequested ? -1 : 0
    }

    func callbackWritable() -> Int32 {
        guard isOpen else { return 0 }
        inCallback = true
        onWritable?(self)
        inCallback = false
        return closeRequested ? -1 : 0
    }

    func didClose() {
        guard isOpen else { return }
        isOpen = false
        onClose?(self)
        if ownsDescriptor { systemClose(fd) }
        onReadable = nil
        onWritable = nil
        onClose = nil
    }
}
