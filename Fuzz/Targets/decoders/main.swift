import FuzzSupport
import Glibc

if let directory = getenv("FUZZ_WRITE_SEEDS") {
    writeSeeds(to: String(cString: directory))
    exit(0)
}
runFuzzer(fuzzOne)
