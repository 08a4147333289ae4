// Signal handling: a C signal handler may only touch async-signal-safe state, so it sets a bit in
// a global atomic and calls lws_cancel_service (an eventfd write) on the context registered
// for signals; the loop thread then sees the bit in LWS_CALLBACK_EVENT_WAIT_CANCELLED and runs the
// Swift handler there. These two atomics are the only globals of the transport (immutable `let`s
// of Sendable atomic types).
import CLibWebSockets
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Bit n set = signal n arrived and has not been handled yet.
private let pendingSignalBits = Atomic<UInt64>(0)
/// The lws context to wake when a signal arrives (0: none).
private let signalWakeContext = Atomic<UInt>(0)

private func collabSignalHandler(_ signo: Int32) {
    guard signo > 0 && signo < 64 else { return }
    pendingSignalBits.bitwiseOr(UInt64(1) << UInt64(signo), ordering: .sequentiallyConsistent)
    let bits = signalWakeContext.load(ordering: .sequentiallyConsistent)
    if bits != 0, let ctx = OpaquePointer(bitPattern: bits) {
        lws_cancel_service(ctx)
    }
}

enum SignalRouting {
    /// Installs the handler for `signals`, routing wake-ups to `context`. Returns the previous
    /// dispositions so they can be restored.
    static func install(_ signals: [Int32], context: OpaquePointer) -> [(Int32, sigaction)] {
        // Touch the globals first: their lazy initialisation must not happen inside a handler.
        _ = pendingSignalBits.load(ordering: .relaxed)
        signalWakeContext.store(UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(context))),
                                ordering: .sequentiallyConsistent)
        var previous: [(Int32, sigaction)] = []
        for signo in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = collabSignalHandler
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            var old = sigaction()
            if sigaction(signo, &action, &old) == 0 {
                previous.append((signo, old))
            }
        }
        return previous
    }

    /// Restores the previous dispositions and stops waking `context`.
    static func uninstall(_ previous: [(Int32, sigaction)], context: OpaquePointer) {
        for (signo, old) in previous {
            var o = old
            sigaction(signo, &o, nil)
        }
        let bits = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(context)))
        _ = signalWakeContext.compareExchange(expected: bits, desired: 0,
                                              ordering: .sequentiallyConsistent)
    }

    /// Takes the pending bits for `mask` (leaving bits for other signals in place).
    static func take(mask: UInt64) -> UInt64 {
        guard mask != 0 else { return 0 }
        let old = pendingSignalBits.bitwiseAnd(~mask, ordering: .sequentiallyConsistent).oldValue
        return old & mask
    }
}
