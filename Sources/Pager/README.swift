// The Pager layer. See ../../shared/architecture.md and spec/.
