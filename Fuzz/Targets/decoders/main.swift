import Glibc

if let directory = getenv("FUZZ_WRITE_SEEDS") {
    writeSeeds(to: String(cString: directory))
    exit(0)
}
var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzEntry))
