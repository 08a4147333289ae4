import CollabTransport

/// --ca-file and --insecure, which collab-join, collab-tap and collab-bench share.
extension ClientTLS {
    /// What a certificate failure tells people to do about it.
    static let hint = "use --ca-file or --insecure"

    /// Checks the CA file before anything connects, and says out loud that --insecure turns the
    /// server's authentication off. Returns the exit status to stop with (66: the CA file cannot
    /// be used), or nil.
    func prepare(_ diagnostics: Diagnostics) -> Int32? {
        do {
            try check()
        } catch {
            diagnostics.error(error.message)
            return ExitStatus.noInput.rawValue
        }
        if insecure {
            diagnostics.warning("--insecure: the server's certificate is not checked; the connection is encrypted but anyone could be at the other end")
        }
        return nil
    }
}
