// The libFuzzer entry: `main` hands the command line to libFuzzer's driver with
// `fuzzOne` (LLVMFuzzerTestOneInput) as the callback. Identical in every target.
import Glibc
import Scrollback
import ScrollbackFormat

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzEntry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    fuzzOne(bytes)
    return 0
}

/// A finding: print and abort so libFuzzer saves the input as crash-<sha1>.
func finding(_ message: String) -> Never {
    var text = "FUZZ FINDING: \(message)\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    abort()
}

/// Only the engine's typed errors are acceptable outcomes of bad bytes.
func expectTyped(_ error: any Error, _ context: String) {
    if error is StorageError || error is ScrollbackError { return }
    finding("\(context): untyped error \(type(of: error)): \(error)")
}
