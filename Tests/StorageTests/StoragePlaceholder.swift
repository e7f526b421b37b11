// Tests of the Storage layer.
import Testing
