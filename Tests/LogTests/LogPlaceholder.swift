// Tests of the Log layer.
import Testing
