// The BTree layer. See ../../shared/architecture.md and spec/.
