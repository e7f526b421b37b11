import FuzzSupport
import Glibc

runFuzzer(fuzzOne)
