import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Scrollback

/// `scrollback`: operate, inspect, import and script a Scrollback store.
struct RootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scrollback",
        abstract: "Operate, inspect, import and script a Scrollback message store.",
        discussion: """
            A store is a directory. Commands that only read or maintain a store refuse a path \
            that holds no store; generate, import and exec create one when the directory is \
            missing or empty.

            On a live store (one that a service or another command writes): stats, query, \
            verify, export, backup, dump and exec --read-only open it read-only, change \
            nothing, and see every write acknowledged before they started. generate, import, \
            exec, checkpoint and compact write: a store has one writer at a time, so they \
            refuse a store another process writes, with one line naming the holder (exit 1).

            Exit status: 0 on success, 1 on a runtime error (or a problem found by verify), \
            2 on bad usage. Errors are printed on stderr, one line each.
            """,
        version: Scrollback.version,
        subcommands: [
            Generate.self, Import.self, Export.self, Query.self, Exec.self, Stats.self, Verify.self,
            Checkpoint.self, SearchIndexCommand.self, Compact.self, Backup.self, Upgrade.self, Dump.self, Watch.self, Replicate.self,
        ])
}

@main
enum Entry {
    static func main() {
        let status = run(Array(CommandLine.arguments.dropFirst()))
        Output.standardOutput.flush()
        exit(status)
    }

    /// Parses and runs one command line; returns the exit status (0, 1 or 2).
    static func run(_ arguments: [String]) -> Int32 {
        var command: any ParsableCommand
        do {
            command = try RootCommand.parseAsRoot(arguments)
        } catch {
            return report(error)
        }
        do {
            try command.run()
            return 0
        } catch {
            Output.standardOutput.flush()
            return report(error)
        }
    }

    /// Prints an error (one line on stderr) or the help text (stdout) and picks the status.
    static func report(_ error: any Error) -> Int32 {
        switch error {
        case let status as ExitStatus:
            return status.code
        case let error as CLIError:
            printError("scrollback: error: \(error.description)")
            return 1
        case let error as ScrollbackError:
            printError("scrollback: error: \(error.description)")
            return 1
        default:
            break
        }
        let code = RootCommand.exitCode(for: error)
        if code == .success {
            // --help, help, --version.
            Output.standardOutput.write(RootCommand.fullMessage(for: error))
            Output.standardOutput.write("\n")
            return 0
        }
        if code == .validationFailure {
            let message = RootCommand.message(for: error).split(whereSeparator: \.isNewline).joined(separator: " ")
            let full = RootCommand.fullMessage(for: error)
            var hint = ""
            if let start = full.firstRange(of: "See '"), let end = full[start.upperBound...].firstRange(of: "'") {
                hint = " (see '\(full[start.upperBound..<end.lowerBound])')"
            }
            printError("scrollback: usage error: \(message)\(hint)")
            return 2
        }
        if let exit = error as? ExitCode {
            return exit.rawValue == 0 ? 0 : 1
        }
        printError("scrollback: error: \(RootCommand.message(for: error))")
        return 1
    }
}

/// `--progress` / `--no-progress`; default: a bar when stderr is a terminal.
struct ProgressOptions: ParsableArguments {
    @Flag(inversion: .prefixedNo, help: "Draw a progress bar on stderr (default: only when stderr is a terminal).")
    var progress: Bool?
}
