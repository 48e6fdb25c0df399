//! `vntfsclone`: read, verify and mount ntfsclone images.
fn main() -> std::process::ExitCode {
    cli::main(reader::Format::Ntfsclone)
}
