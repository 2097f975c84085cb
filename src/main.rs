fn main() {
    // Die quietly on a closed pipe (`ascrepro ... | head`), as command-line tools do.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(ascrepro::cli::main());
}
