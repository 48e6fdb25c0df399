//! The command line as people type it, rewritten into the one spelling argh
//! parses.
//!
//! argh takes `-v -c`, `-m DIR` and `--index-size N` only, and only UTF-8. Users
//! of the Python tool and of GNU tools also write `-vc`, `-mDIR`, `-i2048`,
//! `--mountpoint=DIR`, `--index_size=2048`, and Linux paths are bytes. This
//! module splits those forms into argh's, stands in a unique UTF-8 token for
//! each value that is not UTF-8 (see [`Argv::restore`]), and notices
//! `--version`/`-V`. Everything after `--` is positional, as it is.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The options a command knows, as argh spells them.
pub(crate) struct Spec {
    /// Short switches (`-v`), ASCII letters.
    pub(crate) short_switches: &'static [u8],
    /// Short options that take a value (`-m DIR`), ASCII letters.
    pub(crate) short_options: &'static [u8],
    /// Long switches without the `--`, with hyphens (`crc-check`).
    pub(crate) long_switches: &'static [&'static str],
    /// Long options that take a value, without the `--`, with hyphens.
    pub(crate) long_options: &'static [&'static str],
}

/// The arguments in argh's spelling.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Argv {
    /// What argh parses (without `argv[0]`).
    pub(crate) args: Vec<String>,
    /// `--version` or `-V` was given (before any `--`).
    pub(crate) version: bool,
    /// `-h` or `--help` was given (before any `--`): `args` is then just
    /// `--help`, as argh refuses arguments after it.
    help: bool,
    /// Each token in `args` that stands for a value that is not UTF-8.
    stand_ins: Vec<(String, OsString)>,
}

impl Argv {
    /// The value a parsed path stands for: the original bytes if argh was given
    /// a token for them, else the path itself.
    pub(crate) fn restore(&self, path: PathBuf) -> PathBuf {
        match self
            .stand_ins
            .iter()
            .find(|(token, _)| path.as_os_str() == OsStr::new(token))
        {
            Some((_, original)) => PathBuf::from(original),
            None => path,
        }
    }
}

/// Rewrites `args` (without `argv[0]`) for argh as described in the module
/// documentation. Unknown options are passed on for argh to name.
pub(crate) fn normalise(spec: &Spec, args: &[OsString]) -> Argv {
    let mut out = Rewriter {
        argv: Argv {
            args: Vec::with_capacity(args.len()),
            version: false,
            help: false,
            stand_ins: Vec::new(),
        },
        prefix: stand_in_prefix(args),
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            out.push("--".to_owned());
            for positional in rest.by_ref() {
                out.value(positional);
            }
        } else if let Some(long) = bytes.strip_prefix(b"--") {
            out.long(spec, arg, long, &mut rest);
        } else if bytes.len() > 1 && bytes[0] == b'-' {
            out.short_cluster(spec, arg, &bytes[1..], &mut rest);
        } else {
            out.value(arg);
        }
    }
    let mut argv = out.argv;
    if argv.help {
        argv.args = vec!["--help".to_owned()];
    }
    argv
}

/// A prefix for stand-in tokens that no UTF-8 argument contains, so that a token
/// can never be mistaken for a real argument.
fn stand_in_prefix(args: &[OsString]) -> String {
    (0u32..)
        .map(|n| format!("\u{FFFD}{n}:"))
        .find(|prefix| {
            !args
                .iter()
                .any(|a| a.to_str().is_some_and(|s| s.contains(prefix)))
        })
        .unwrap_or_default()
}

struct Rewriter {
    argv: Argv,
    prefix: String,
}

impl Rewriter {
    fn push(&mut self, arg: String) {
        self.argv.args.push(arg);
    }

    /// A positional or an option's value: as it is if UTF-8, else a stand-in.
    fn value(&mut self, value: &OsStr) {
        let arg = match value.to_str() {
            Some(s) => s.to_owned(),
            None => {
                let token = format!("{}{}", self.prefix, self.argv.stand_ins.len());
                self.argv.stand_ins.push((token.clone(), value.to_owned()));
                token
            }
        };
        self.push(arg);
    }

    /// `--name`, `--name=value`, `--name value`; `_` in a known name reads as `-`.
    fn long<'a>(
        &mut self,
        spec: &Spec,
        arg: &OsStr,
        long: &[u8],
        rest: &mut impl Iterator<Item = &'a OsString>,
    ) {
        let (name, attached) = match long.iter().position(|&b| b == b'=') {
            Some(eq) => (&long[..eq], Some(OsStr::from_bytes(&long[eq + 1..]))),
            None => (long, None),
        };
        let name = String::from_utf8_lossy(name).replace('_', "-");
        if name == "version" && attached.is_none() {
            self.argv.version = true;
        } else if name == "help" && attached.is_none() {
            self.argv.help = true;
        } else if spec.long_options.contains(&name.as_str()) {
            self.push(format!("--{name}"));
            if let Some(value) = attached.or_else(|| rest.next().map(OsString::as_os_str)) {
                self.value(value);
            }
        } else if spec.long_switches.contains(&name.as_str()) && attached.is_none() {
            self.push(format!("--{name}"));
        } else {
            // Unknown (or a switch given a value): argh names it as given.
            self.push(arg.to_string_lossy().into_owned());
        }
    }

    /// `-v`, `-vcq`, `-m DIR`, `-mDIR`, `-vi2048`, `-h`, `-V`.
    fn short_cluster<'a>(
        &mut self,
        spec: &Spec,
        arg: &OsStr,
        letters: &[u8],
        rest: &mut impl Iterator<Item = &'a OsString>,
    ) {
        for (i, &letter) in letters.iter().enumerate() {
            if letter == b'V' {
                self.argv.version = true;
            } else if letter == b'h' {
                self.argv.help = true;
            } else if spec.short_switches.contains(&letter) {
                self.push(format!("-{}", char::from(letter)));
            } else if spec.short_options.contains(&letter) {
                self.push(format!("-{}", char::from(letter)));
                let attached = &letters[i + 1..];
                if !attached.is_empty() {
                    self.value(OsStr::from_bytes(attached));
                } else if let Some(value) = rest.next() {
                    self.value(value);
                }
                return;
            } else if letter.is_ascii_alphanumeric() {
                self.push(format!("-{}", char::from(letter)));
            } else {
                // Not a cluster of letters (`-~x`, bytes): argh names it as given.
                self.push(arg.to_string_lossy().into_owned());
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec = Spec {
        short_switches: b"vcq",
        short_options: b"mi",
        long_switches: &["verbose", "crc-check"],
        long_options: &["mountpoint", "index-size"],
    };

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn argh_args(args: &[&str]) -> Vec<String> {
        let argv = normalise(&SPEC, &os(args));
        assert!(!argv.version);
        argv.args
    }

    #[test]
    fn argh_spelling_is_kept() {
        let args = ["-v", "-c", "-m", "d", "--index-size", "2048", "img"];
        assert_eq!(argh_args(&args), args);
    }

    #[test]
    fn clusters_are_split() {
        assert_eq!(argh_args(&["-vc", "img"]), ["-v", "-c", "img"]);
        assert_eq!(argh_args(&["-vcq"]), ["-v", "-c", "-q"]);
        // An unknown letter is passed on for argh to name.
        assert_eq!(argh_args(&["-vx"]), ["-v", "-x"]);
        assert_eq!(argh_args(&["-v+"]), ["-v", "-v+"]);
    }

    #[test]
    fn attached_values() {
        assert_eq!(argh_args(&["-mdir", "img"]), ["-m", "dir", "img"]);
        assert_eq!(argh_args(&["-i2048"]), ["-i", "2048"]);
        assert_eq!(argh_args(&["-vci2048"]), ["-v", "-c", "-i", "2048"]);
        assert_eq!(argh_args(&["-m", "-v"]), ["-m", "-v"]);
        assert_eq!(argh_args(&["-mv"]), ["-m", "v"]);
        assert_eq!(argh_args(&["--mountpoint=d"]), ["--mountpoint", "d"]);
        assert_eq!(argh_args(&["--mountpoint=a=b"]), ["--mountpoint", "a=b"]);
        assert_eq!(argh_args(&["--mountpoint="]), ["--mountpoint", ""]);
        assert_eq!(argh_args(&["--index-size=2048"]), ["--index-size", "2048"]);
        // A value missing at the end is argh's to report.
        assert_eq!(argh_args(&["-m"]), ["-m"]);
    }

    #[test]
    fn python_spellings() {
        assert_eq!(argh_args(&["--index_size=2048"]), ["--index-size", "2048"]);
        assert_eq!(argh_args(&["--index_size", "8"]), ["--index-size", "8"]);
        assert_eq!(argh_args(&["--crc_check"]), ["--crc-check"]);
        // Unknown names and switches given values stay as they were written.
        assert_eq!(argh_args(&["--no_such"]), ["--no_such"]);
        assert_eq!(argh_args(&["--verbose=1"]), ["--verbose=1"]);
    }

    #[test]
    fn double_dash_ends_options() {
        let args = ["-v", "--", "-x", "--version", "-V", "--mountpoint=d"];
        assert_eq!(argh_args(&args), args);
        assert_eq!(argh_args(&["-", "-v"]), ["-", "-v"]);
    }

    #[test]
    fn help_wins() {
        for args in [
            &["-h"][..],
            &["--help"],
            &["-vh", "img"],
            &["-h", "-v"],
            &["x", "--help"],
        ] {
            assert_eq!(argh_args(args), ["--help"], "{args:?}");
        }
        assert_eq!(argh_args(&["--", "-h"]), ["--", "-h"]);
        assert_eq!(argh_args(&["-mh"]), ["-m", "h"]);
    }

    #[test]
    fn version() {
        for args in [&["--version"][..], &["-V"], &["img", "-vV"]] {
            assert!(normalise(&SPEC, &os(args)).version, "{args:?}");
        }
        assert!(!normalise(&SPEC, &os(&["--", "-V"])).version);
        assert!(!normalise(&SPEC, &os(&["-mV"])).version);
    }

    #[test]
    fn values_that_are_not_utf8_stand_in_and_come_back() {
        let image = OsString::from(OsStr::from_bytes(b"img\xff.pc"));
        let dir = OsString::from(OsStr::from_bytes(b"d\xfe"));
        let mut attached = b"-m".to_vec();
        attached.extend(dir.as_bytes());
        for args in [
            vec![OsString::from("-m"), dir.clone(), image.clone()],
            vec![OsString::from(OsStr::from_bytes(&attached)), image.clone()],
            vec![
                OsString::from("-m"),
                dir.clone(),
                "--".into(),
                image.clone(),
            ],
        ] {
            let argv = normalise(&SPEC, &args);
            let (dir_token, image_token) = (&argv.args[1], argv.args.last().unwrap());
            assert_ne!(dir_token, image_token);
            assert_eq!(argv.restore(PathBuf::from(dir_token)), PathBuf::from(&dir));
            assert_eq!(
                argv.restore(PathBuf::from(image_token)),
                PathBuf::from(&image)
            );
            assert_eq!(argv.restore("other".into()), PathBuf::from("other"));
        }
    }

    #[test]
    fn a_stand_in_is_never_a_real_argument() {
        let real = "\u{FFFD}0:0".to_owned();
        let args = vec![
            OsString::from(&real),
            OsString::from(OsStr::from_bytes(b"\xff")),
        ];
        let argv = normalise(&SPEC, &args);
        assert_ne!(argv.args[1], real);
        assert_eq!(argv.restore(PathBuf::from(&real)), PathBuf::from(&real));
        assert_eq!(
            argv.restore(PathBuf::from(&argv.args[1])),
            PathBuf::from(&args[1])
        );
    }
}
