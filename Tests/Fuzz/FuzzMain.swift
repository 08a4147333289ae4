// The libFuzzer entry point. Built by Tests/Fuzz/fuzz.sh with `swiftc -sanitize=fuzzer,address`,
// once per target (-D FUZZ_MESSAGE, FUZZ_PARTIAL or FUZZ_OT); the properties themselves are in
// Tests/CollabProtocolTests/FuzzChecks.swift, shared with the seeded fuzz tests of `swift test`.

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: size == 0 ? nil : data, count: size)
    do throws(FuzzFailure) {
        #if FUZZ_MESSAGE
        try FuzzChecks.message(input)
        #elseif FUZZ_PARTIAL
        try FuzzChecks.partial(input)
        #elseif FUZZ_OT
        try FuzzChecks.operations(input)
        #else
        #error("build with -D FUZZ_MESSAGE, FUZZ_PARTIAL or FUZZ_OT")
        #endif
    } catch {
        // A broken property is a crash to libFuzzer: it saves the input and stops.
        let text = "property failed: \(error)\n"
        fputs(text, stderr)
        abort()
    }
    return 0
}
