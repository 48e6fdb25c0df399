//! `vclonezilla`: read, verify and mount Clonezilla image directories.
fn main() -> std::process::ExitCode {
    cli::main(cli::Tool::Clonezilla)
}
