//! `vpartclone`: read, verify and mount partclone images.
fn main() -> std::process::ExitCode {
    cli::main(reader::Format::Partclone)
}
