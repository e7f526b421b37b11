// The Messaging layer: conversations, message ids, read markers, queries, compaction.
