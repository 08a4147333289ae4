// The only parts of the loop other threads may touch: a lock-protected job queue and
// `lws_cancel_service`, which makes the loop thread leave poll() and run
// LWS_CALLBACK_EVENT_WAIT_CANCELLED, where the queue is drained.
import CLibWebSockets
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A thread-safe handle to an `EventLoop`: hand work to the loop thread, wake it, stop it.
/// Everything else about the loop is confined to the thread that runs it.
public final class LoopHandle: Sendable {
    struct State: ~Copyable {
        /// The lws context as bits; 0 once the loop has been torn down.
        var contextBits: UInt = 0
        var jobs: [@Sendable () -> Void] = []
        var readyMailboxes: [Int] = []
        /// A wake-up is already in flight; further posts need not write the eventfd again.
        var wakePending = false
        var loopThread: pthread_t? = nil
    }

    let state = Mutex(State())
    let stopFlag = Atomic<Bool>(false)

    init() {}

    /// Runs `job` on the loop thread soon, in posting order. Returns false (and drops the job)
    /// once the loop has finished.
    @discardableResult
    public func post(_ job: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { s in
            guard s.contextBits != 0 else { return false }
            s.jobs.append(job)
            Self.wakeLocked(&s)
            return true
        }
    }

    /// Makes the loop thread run its `onWakeUp` handler (and drain posted work) soon.
    public func wakeUp() {
        state.withLock { s in
            guard s.contextBits != 0 else { return }
            s.wakePending = true
            lws_cancel_service(OpaquePointer(bitPattern: s.contextBits))
        }
    }

    /// Asks the loop to leave `run()`. Safe from any thread, also before `run()` started.
    public func stop() {
        stopFlag.store(true, ordering: .releasing)
        state.withLock { s in
            guard s.contextBits != 0 else { return }
            lws_cancel_service(OpaquePointer(bitPattern: s.contextBits))
        }
    }

    /// True when called on the thread that is running (or last ran) the loop.
    public var isOnLoopThread: Bool {
        state.withLock { s in
            guard let t = s.loopThread else { return false }
            return pthread_equal(t, pthread_self()) != 0
        }
    }

    /// True once the loop has been torn down; posts are refused from then on.
    public var isFinished: Bool { state.withLock { $0.contextBits == 0 } }

    func markMailboxReady(_ id: Int) -> Bool {
        state.withLock { s in
            guard s.contextBits != 0 else { return false }
            s.readyMailboxes.append(id)
            Self.wakeLocked(&s)
            return true
        }
    }

    private static func wakeLocked(_ s: inout State) {
        if !s.wakePending {
            s.wakePending = true
            lws_cancel_service(OpaquePointer(bitPattern: s.contextBits))
        }
    }

    func attach(context: OpaquePointer) {
        state.withLock { $0.contextBits = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(context))) }
    }

    func setLoopThread() {
        let me = pthread_self()
        state.withLock { $0.loopThread = me }
    }

    /// Called on the loop thread, under no lock held by the caller: takes what is queued.
    func takePending() -> (jobs: [@Sendable () -> Void], mailboxes: [Int]) {
        state.withLock { s in
            s.wakePending = false
            let jobs = s.jobs
            let boxes = s.readyMailboxes
            s.jobs = []
            s.readyMailboxes = []
            return (jobs, boxes)
        }
    }

    /// Detaches from the context before it is destroyed, so no thread signals a freed context.
    /// Returns jobs that were never run (they are dropped).
    func detach() {
        state.withLock { s in
            s.contextBits = 0
            s.jobs = []
            s.readyMailboxes = []
        }
    }
}

/// The cross-thread half of a `Mailbox`: any thread may send messages; they are handed to the
/// mailbox's handler on the loop thread, in sending order.
public final class MailboxSender<Message: Sendable>: Sendable {
    let queue = Mutex<[Message]>([])
    let closed = Atomic<Bool>(false)
    let handle: LoopHandle
    let id: Int

    init(handle: LoopHandle, id: Int) {
        self.handle = handle
        self.id = id
    }

    /// Queues `message` for the loop. Returns false (message dropped) once the loop has finished
    /// or the mailbox was closed.
    @discardableResult
    public func send(_ message: Message) -> Bool {
        if closed.load(ordering: .acquiring) { return false }
        let wasEmpty: Bool = queue.withLock { q in
            let empty = q.isEmpty
            q.append(message)
            return empty
        }
        if wasEmpty { return handle.markMailboxReady(id) }
        return !handle.isFinished
    }
}

/// Type-erased loop side of a mailbox, so the loop can drain mailboxes of any message type.
protocol MailboxDraining: AnyObject {
    func drain()
}

/// A typed channel into the loop thread: create it on the loop (`EventLoop.makeMailbox`), give
/// `sender` to other threads. The handler runs on the loop thread, so it may touch loop state.
public final class Mailbox<Message: Sendable>: MailboxDraining {
    public let sender: MailboxSender<Message>
    let handler: (Message) -> Void
    weak var loop: EventLoop?

    init(sender: MailboxSender<Message>, handler: @escaping (Message) -> Void) {
        self.sender = sender
        self.handler = handler
    }

    /// Stops delivery; later sends return false and queued messages are dropped.
    public func close() {
        sender.closed.store(true, ordering: .releasing)
        sender.queue.withLock { $0.removeAll() }
        loop?.mailboxes[sender.id] = nil
    }

    func drain() {
        let batch = sender.queue.withLock { q in
            let b = q
            q.removeAll()
            return b
        }
        for m in batch { handler(m) }
    }
}
