// Shared test support: seeded randomness, reference models and fault file systems used by
// the tests of every layer. Not part of the engine.
