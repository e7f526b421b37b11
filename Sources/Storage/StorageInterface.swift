// The vocabulary of the storage engine's interface. These declarations of the layers below
// appear in the engine's API (snapshots are page transactions, commits encode log batches,
// records have log positions, errors are storage errors, stores live on a file system), so
// Storage re-exports them, and only them: the layers above import ScrollbackStorage (and
// ScrollbackBTree for the trees), never the log, the pager or IO, whose handles stay private
// to the engine.
@_exported import class ScrollbackPager.PageTransaction
@_exported import struct ScrollbackPager.CommittedState
@_exported import struct ScrollbackLog.LogBatch
@_exported import typealias ScrollbackLog.LogPosition
@_exported import enum ScrollbackLog.LogPositions
@_exported import struct ScrollbackLog.LogOptions
@_exported import struct ScrollbackLog.RunKey
@_exported import struct ScrollbackLog.LogTailCache
@_exported import struct ScrollbackLog.LogPositionRemoved
@_exported import enum ScrollbackLog.RunCompression
@_exported import enum ScrollbackFormat.StorageError
@_exported import protocol ScrollbackIO.FileSystem
@_exported import enum ScrollbackIO.Path
@_exported import class ScrollbackIO.Lock
