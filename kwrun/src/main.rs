fn main() -> std::process::ExitCode {
    kwrun::cli::main()
}
