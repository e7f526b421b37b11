// The Log layer. See ../../shared/architecture.md and spec/.
