// Tests of the BTree layer.
import Testing
