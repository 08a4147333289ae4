// Timers on libwebsockets' sorted-usec-list scheduler (lws_sul). Each timer owns a small C block:
// the lws_sorted_usec_list_t first (lws hands its address to the callback), then a pointer back to
// the Swift timer object. Loop thread only.
import CLibWebSockets

/// A scheduled callback on the loop thread. Keep it to cancel; dropping it does not cancel
/// (the loop keeps scheduled timers alive until they fire or are cancelled).
public final class LoopTimer {
    weak var loop: EventLoop?
    let block: UnsafeMutableRawPointer
    var body: (() -> Void)?
    let intervalMicros: Int64
    let repeats: Bool
    public private(set) var isScheduled = false

    static let ownerOffset: Int = {
        let s = MemoryLayout<lws_sorted_usec_list_t>.stride
        let a = MemoryLayout<UnsafeMutableRawPointer>.alignment
        return (s + a - 1) / a * a
    }()

    init(loop: EventLoop, micros: Int64, repeats: Bool, body: @escaping () -> Void) {
        self.loop = loop
        self.intervalMicros = max(0, micros)
        self.repeats = repeats
        self.body = body
        let size = Self.ownerOffset + MemoryLayout<UnsafeMutableRawPointer>.size
        block = UnsafeMutableRawPointer.allocate(byteCount: size,
                                                 alignment: MemoryLayout<lws_sorted_usec_list_t>.alignment)
        block.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        block.storeBytes(of: Unmanaged.passUnretained(self).toOpaque(), toByteOffset: Self.ownerOffset,
                         as: UnsafeMutableRawPointer.self)
    }

    deinit {
        block.deallocate()
    }

    var sul: UnsafeMutablePointer<lws_sorted_usec_list_t> {
        block.assumingMemoryBound(to: lws_sorted_usec_list_t.self)
    }

    func arm() {
        guard let loop, let ctx = loop.context, !loop.tearingDown else { return }
        isScheduled = true
        loop.activeTimers[ObjectIdentifier(self)] = self
        lws_sul_schedule(ctx, 0, sul, loopTimerFired, intervalMicros)
    }

    /// Cancels the timer; its body will not run (again). Idempotent.
    public func cancel() {
        body = nil
        guard isScheduled else { return }
        isScheduled = false
        lws_sul_cancel(sul)
        loop?.activeTimers[ObjectIdentifier(self)] = nil
    }

    func fire() {
        isScheduled = false
        if repeats, let body {
            arm()
            body()
        } else {
            let b = body
            body = nil
            loop?.activeTimers[ObjectIdentifier(self)] = nil
            b?()
        }
    }
}

/// The lws_sul callback: find the timer through the pointer stored after the sul.
private func loopTimerFired(_ sul: UnsafeMutablePointer<lws_sorted_usec_list_t>?) {
    guard let sul else { return }
    let owner = UnsafeMutableRawPointer(sul).load(fromByteOffset: LoopTimer.ownerOffset,
                                                  as: UnsafeMutableRawPointer.self)
    let timer = Unmanaged<LoopTimer>.fromOpaque(owner).takeUnretainedValue()
    timer.fire()
}
