// The Storage layer. See ../../shared/architecture.md and spec/.
