//! `vpartimage`: read, verify and mount partimage images.
fn main() -> std::process::ExitCode {
    cli::main(reader::Format::Partimage)
}
