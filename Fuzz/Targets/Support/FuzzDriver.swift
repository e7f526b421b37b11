// The libFuzzer entry shared by every fuzz target: `runFuzzer` hands the command line to
// libFuzzer's driver, whose callback (LLVMFuzzerTestOneInput) runs the target's test.
import Glibc
import Scrollback
import ScrollbackFormat

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// The running target's test; set once by `runFuzzer` before libFuzzer starts calling back
/// (libFuzzer runs inputs on the calling thread, one at a time).
nonisolated(unsafe) private var testOneInput: (([UInt8]) -> Void)?

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzEntry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    testOneInput?(bytes)
    return 0
}

/// Runs libFuzzer with `test` as the per-input callback; exits with libFuzzer's status.
package func runFuzzer(_ test: @escaping ([UInt8]) -> Void) -> Never {
    testOneInput = test
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzEntry))
}

/// A finding: print and abort so libFuzzer saves the input as crash-<sha1>.
package func finding(_ message: String) -> Never {
    var text = "FUZZ FINDING: \(message)\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    abort()
}

/// Only the engine's typed errors are acceptable outcomes of bad bytes.
package func expectTyped(_ error: any Error, _ context: String) {
    if error is StorageError || error is ScrollbackError { return }
    finding("\(context): untyped error \(type(of: error)): \(error)")
}
