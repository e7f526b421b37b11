// Tests of the Pager layer.
import Testing
