/// The version of this library, as `Scrollback.version` (semantic versioning; the release tag
/// of the repository is this string). `scrollback --version` prints it.
///
/// Not the on-disk format's version: a store records its own format, and a newer library reads
/// every older format (or names the upgrade command).
public let version = "0.4.0"
