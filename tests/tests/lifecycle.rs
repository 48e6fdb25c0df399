//! The life of a mount in hostile surroundings: the daemon only ever unmounts
//! its own mount, never hangs, never reports success for a daemon that died,
//! prints nothing that runs when pasted, works for users without root, and logs
//! where a backgrounded daemon can be heard. Each test reproduces a failure of
//! an earlier build (run them against one with IMAGEBACKUP_TOOL_DIR).
//! Needs root, /dev/fuse, loop devices, fuse3 and util-linux; .ci/run runs these
//! with --include-ignored.

use imagebackup_tests::{daemon_pids, is_mounted, manifest, scratch_dir, tool_binary, wait_gone};
use reader::Format;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn ext2() -> PathBuf {
    fixtures().join("ext2-tiny.pc")
}

/// sha256 of the real restore of a committed fixture.
fn expected_sha256(image: &Path) -> String {
    manifest(&fixtures())
        .into_iter()
        .find(|c| c.image == image)
        .expect("fixture in manifest.tsv")
        .sha256
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `tool IMAGE -q -m DIR` (it returns once the daemon serves or failed).
fn mount_cmd(format: Format, image: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(tool_binary(format));
    cmd.arg(image).arg("-q").arg("-m").arg(dir);
    cmd
}

/// `fusermount3 -u DIR`, which must succeed.
fn fusermount_u(dir: &Path) {
    let out = run(Command::new("fusermount3").arg("-u").arg(dir));
    assert!(
        out.status.success(),
        "fusermount3 -u {}: {}",
        dir.display(),
        text(&out.stderr)
    );
}

fn kill(signal: &str, pid: u32) {
    let st = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success(), "kill -{signal} {pid}");
}

/// Lines of a child's pipe, as they come.
fn lines(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first line from `rx` containing `needle`, within 10 s.
fn expect_line(rx: &Receiver<String>, needle: &str, seen: &mut Vec<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(_) => panic!(
                "no line with {needle:?} within 10 s; got:\n{}",
                seen.iter()
                    .rev()
                    .take(20)
                    .rev()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }
}

/// What every test here starts with: the lock that keeps mount tests apart, a
/// scratch directory holding an empty mount point, and on the way out nothing
/// left mounted there (the scratch directory is kept when the test failed).
struct Scene {
    _serial: std::sync::MutexGuard<'static, ()>,
    scratch: PathBuf,
    dir: PathBuf,
}

impl Scene {
    fn new(name: &str, mount_point: &str) -> Self {
        let serial = imagebackup_tests::serial();
        let scratch = scratch_dir(name);
        let dir = scratch.join(mount_point);
        std::fs::create_dir_all(&dir).unwrap();
        Scene {
            _serial: serial,
            scratch,
            dir,
        }
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        imagebackup_tests::force_unmount(&self.dir);
        if !std::thread::panicking() {
            std::fs::remove_dir_all(&self.scratch).unwrap();
        }
    }
}

/// A tool serving in the foreground (`-d`): its log is its stderr, its exit
/// status is ours to see.
struct Foreground {
    child: Child,
    log: Receiver<String>,
    seen: Vec<String>,
    dir: PathBuf,
}

impl Foreground {
    fn start(image: &Path, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new(tool_binary(Format::Partclone))
            .arg(image)
            .arg("-d")
            .arg("-m")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = lines(child.stdout.take().unwrap());
        let log = lines(child.stderr.take().unwrap());
        // Constructed first, so that a failed start is cleaned up too.
        let fg = Foreground {
            child,
            log,
            seen: Vec::new(),
            dir: dir.to_owned(),
        };
        expect_line(&out, "Serving in the foreground", &mut Vec::new());
        fg
    }

    fn signal(&self, signal: &str) {
        kill(signal, self.child.id());
    }

    fn expect_log(&mut self, needle: &str) -> String {
        expect_line(&self.log, needle, &mut self.seen)
    }

    /// SIGTERM, which must unmount and end the tool with exit 0.
    fn stop(mut self) {
        self.signal("TERM");
        self.expect_log("was unmounted; exiting");
        assert_eq!(self.wait().code(), Some(0));
        assert!(!is_mounted(&self.dir));
    }

    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the tool did not exit within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        imagebackup_tests::force_unmount(&self.dir);
    }
}

/// An external unmount ends the session; the old daemon, exiting, must not take
/// down the new mount at the same path. (Deterministic: the old daemon is
/// stopped until the new mount is up.)
#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn an_exiting_daemon_leaves_a_new_mount_at_its_path_alone() {
    let scene = Scene::new("life-remount", "d");
    let dir = scene.dir.clone();
    let out = run(&mut mount_cmd(Format::Partclone, &ext2(), &dir));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let old = daemon_pids(&dir)[0];
    kill("STOP", old);
    fusermount_u(&dir);
    let out = run(&mut mount_cmd(Format::Partclone, &ext2(), &dir));
    assert!(out.status.success(), "{}", text(&out.stderr));
    kill("CONT", old);
    imagebackup_tests::wait_pid_gone(old);
    assert!(is_mounted(&dir), "the old daemon unmounted the new mount");
    let file = dir.join("ext2-tiny.pc");
    assert_eq!(
        imagebackup_tests::file_sha256(&file),
        expected_sha256(&ext2())
    );
    fusermount_u(&dir);
    wait_gone(&dir);
}

/// The same race as it happens: mount, unmount from outside, mount again at
/// once, 200 times; no mount may be lost.
#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn two_hundred_remounts_lose_no_mount() {
    let scene = Scene::new("life-loop", "d");
    let dir = scene.dir.clone();
    for round in 0..200 {
        let out = run(&mut mount_cmd(Format::Partclone, &ext2(), &dir));
        assert!(out.status.success(), "round {round}: {}", text(&out.stderr));
        let listed: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(listed, ["ext2-tiny.pc"], "round {round}: mount lost");
        let out = run(Command::new("fusermount3").arg("-u").arg(&dir));
        assert!(
            out.status.success(),
            "round {round}: fusermount3 -u: {}",
            text(&out.stderr)
        );
    }
    wait_gone(&dir);
}

/// SIGTERM with the virtual partition loop-mounted on top of it: the daemon
/// leaves the user's loop mount alone and keeps serving; once that is gone, the
/// next signal unmounts and the tool exits 0.
#[test]
#[ignore = "needs root, /dev/fuse and loop devices; .ci/run runs it"]
fn a_signal_never_unmounts_a_loop_mount_on_top() {
    let scene = Scene::new("life-covered", "d");
    let dir = scene.dir.clone();
    let mut fg = Foreground::start(&ext2(), &dir);
    let file = dir.join("ext2-tiny.pc");
    let out = run(Command::new("mount")
        .args(["-o", "loop,ro"])
        .arg(&file)
        .arg(&dir));
    assert!(out.status.success(), "loop mount: {}", text(&out.stderr));
    let covered = std::fs::read_dir(&dir).unwrap().count();
    fg.signal("TERM");
    fg.expect_log("not unmounting");
    let still = std::fs::read_dir(&dir).unwrap().count();
    let out = run(Command::new("umount").arg("-d").arg(&dir));
    assert!(
        out.status.success(),
        "umount of the loop mount: {}",
        text(&out.stderr)
    );
    // The loop device lets go of the file asynchronously: until it has, the
    // file is busy and a signal is (rightly) refused.
    imagebackup_tests::wait_loop_released(&file);
    assert_eq!(still, covered, "the loop mount on top was touched");
    assert!(covered > 1, "the loop mount shows the ext2 root");
    assert_eq!(
        imagebackup_tests::file_sha256(&file),
        expected_sha256(&ext2()),
        "still serving after the signal"
    );
    fg.stop();
}

/// Signals while the file is open: each one is tried (and logged), none ends
/// the serving; once the file is closed, the next one unmounts, exit 0.
#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn every_signal_retries_while_the_file_is_busy() {
    let scene = Scene::new("life-busy", "d");
    let dir = scene.dir.clone();
    let mut fg = Foreground::start(&ext2(), &dir);
    let file = std::fs::File::open(dir.join("ext2-tiny.pc")).unwrap();
    for signal in ["TERM", "INT", "HUP", "TERM"] {
        fg.signal(signal);
        fg.expect_log("is busy");
        let mut buf = [0u8; 4096];
        file.read_exact_at(&mut buf, 0).expect("still serving");
    }
    drop(file);
    fg.stop();
}

/// `D/`, `D/.`, `D//`, `link/`, `D/../D` (tab completion adds the slash) name D:
/// the tool resolves them before mounting, so nothing walks into the mount
/// before it is served.
#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn mount_points_with_trailing_slashes_and_links_do_not_hang() {
    let scene = Scene::new("life-slash", "d");
    let (scratch, dir) = (scene.scratch.clone(), scene.dir.clone());
    std::os::unix::fs::symlink(&dir, scratch.join("link")).unwrap();
    let d = dir.display();
    for spelling in [
        format!("{d}/"),
        format!("{d}/."),
        format!("{d}//"),
        format!("{}/link/", scratch.display()),
        format!("{d}/../d"),
    ] {
        let mut child = mount_cmd(Format::Partclone, &ext2(), Path::new(&spelling))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let _ = Command::new("umount").arg("-l").arg(&dir).status();
                panic!("{spelling}: the tool hangs");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(status.success(), "{spelling}: {err}");
        assert!(dir.join("ext2-tiny.pc").is_file(), "{spelling}");
        fusermount_u(&dir);
        wait_gone(&dir);
    }
}

/// sha256 of a file in 4 KiB reads (small requests: little for the daemon to
/// allocate).
fn sha256_small_reads(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = [0u8; 4096];
    let mut offset = 0;
    loop {
        let n = f.read_at(&mut buf, offset)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Under every address-space limit from too small to enough, the tool either
/// exits 0 with a live daemon serving the right bytes, or exits 1 leaving no
/// mount. Never "serving" for a daemon that died, never a dead mount.
#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn a_daemon_that_dies_starting_leaves_no_mount_and_no_success() {
    let scene = Scene::new("life-oom", "d");
    let dir = scene.dir.clone();
    let tool = tool_binary(Format::Partclone);
    let want = expected_sha256(&ext2());
    let (mut ok, mut failed) = (0, 0);
    for mib in (8..=160).step_by(4) {
        let limit = format!("ulimit -v {}; exec \"$0\" \"$@\"", mib * 1024);
        let out = run(Command::new("timeout")
            .args(["60", "sh", "-c", &limit])
            .arg(&tool)
            .args([
                ext2().as_os_str(),
                "-q".as_ref(),
                "-m".as_ref(),
                dir.as_os_str(),
            ]));
        let mounted = is_mounted(&dir);
        let err = text(&out.stderr);
        // Below some limit the program cannot start at all: the loader fails
        // (127), or the process dies before `main` (SIGSEGV while the runtime
        // maps its stack; where exactly depends on the binary's layout). Then
        // even `--version`, which does nothing, fails at the same limit, and
        // nothing of ours ran.
        let starts = run(Command::new("sh")
            .args(["-c", &limit])
            .arg(&tool)
            .arg("--version"))
        .status
        .success();
        if !starts {
            assert!(!mounted, "{mib} MiB: {err}");
            assert!(
                out.status.code() != Some(0),
                "{mib} MiB: exit 0 where `--version` cannot start"
            );
            continue;
        }
        match out.status.code() {
            Some(0) => {
                ok += 1;
                assert!(mounted, "{mib} MiB: exit 0 but nothing is mounted");
                assert!(
                    !daemon_pids(&dir).is_empty(),
                    "{mib} MiB: exit 0 but no daemon"
                );
                let got = sha256_small_reads(&dir.join("ext2-tiny.pc"))
                    .unwrap_or_else(|e| panic!("{mib} MiB: exit 0 but reads fail: {e}"));
                assert_eq!(got, want, "{mib} MiB");
                fusermount_u(&dir);
                wait_gone(&dir);
            }
            Some(1) => {
                failed += 1;
                assert!(!mounted, "{mib} MiB: exit 1 left a mount behind: {err}");
                assert!(
                    err.starts_with("vpartclone: error: ") && err.lines().count() == 1,
                    "{mib} MiB: {err}"
                );
            }
            other => panic!("{mib} MiB: exit {other:?}: {}", text(&out.stderr)),
        }
    }
    assert!(
        ok > 0 && failed > 0,
        "the limits did not span failure and success: {ok} ok, {failed} failed"
    );
}

/// `-c -m`: verify first, and mount only an image that passes.
#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn crc_check_with_mount_verifies_first() {
    let scene = Scene::new("life-cm", "d");
    let (scratch, dir) = (scene.scratch.clone(), scene.dir.clone());
    let mut bytes = std::fs::read(ext2()).unwrap();
    let at = bytes.len() - 3000;
    bytes[at] ^= 0x40;
    let bad = scratch.join("bad.pc");
    std::fs::write(&bad, &bytes).unwrap();
    let out = run(mount_cmd(Format::Partclone, &bad, &dir).arg("-c"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("FAILED"),
        "{}",
        text(&out.stdout)
    );
    assert!(!is_mounted(&dir), "a damaged image was mounted");
    let out = run(mount_cmd(Format::Partclone, &ext2(), &dir).arg("-c"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("Verifying"),
        "{}",
        text(&out.stdout)
    );
    assert!(is_mounted(&dir));
    fusermount_u(&dir);
    wait_gone(&dir);
}

/// The command on the line after `intro`.
fn command_after(stdout: &str, intro: &str) -> String {
    let mut lines = stdout.lines();
    lines
        .find(|l| l.contains(intro))
        .unwrap_or_else(|| panic!("no {intro:?} in:\n{stdout}"));
    lines.next().expect("command line").trim().to_owned()
}

/// An image named to run commands, in directories with spaces: every printed
/// command runs as printed, and runs nothing else.
#[test]
#[ignore = "needs root, /dev/fuse and loop devices; .ci/run runs it"]
fn printed_commands_are_quoted_and_run_as_printed() {
    let scene = Scene::new("life-quote", "mount $(touch PWNED3) point");
    let (scratch, dir) = (scene.scratch.clone(), scene.dir.clone());
    let images = scratch.join("my images");
    std::fs::create_dir_all(&images).unwrap();
    let image = images.join("x$(touch PWNED);`touch PWNED2`'q'.pc");
    std::fs::copy(ext2(), &image).unwrap();
    let out = run(mount_cmd(Format::Partclone, &image, &dir).current_dir(&scratch));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let sh = |cmd: &str| {
        let out = run(Command::new("sh").arg("-c").arg(cmd).current_dir(&scratch));
        assert!(
            out.status.success(),
            "`{cmd}` failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    };
    sh(&command_after(&stdout, "checked with this command:"));
    sh(&command_after(&stdout, "read-only filesystem at"));
    assert!(
        std::fs::read_dir(&dir).unwrap().count() > 1,
        "loop mount shows the ext2 root"
    );
    sh(&command_after(&stdout, "to end it:"));
    wait_gone(&dir);
    for pwned in ["PWNED", "PWNED2", "PWNED3"] {
        assert!(
            !scratch.join(pwned).exists(),
            "{pwned} was created by a printed command"
        );
    }
}

/// Puts things back when a test that changes the machine ends, even by panic.
struct Restore(Vec<Box<dyn FnMut()>>);

impl Drop for Restore {
    fn drop(&mut self) {
        for undo in self.0.iter_mut().rev() {
            undo();
        }
    }
}

/// `runuser -u nobody -- ARGS`.
fn as_nobody(args: &[&std::ffi::OsStr]) -> Output {
    run(Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .args(args)
        .current_dir("/"))
}

/// A user other than root: without user_allow_other the mount is the user's
/// alone and the hints say so and offer what works without root; with it root
/// may open the file; an inaccessible /dev/fuse is named as such.
#[test]
#[ignore = "needs root, /dev/fuse, fuse3 and a nobody user; .ci/run runs it"]
fn a_user_gets_an_owner_only_mount_and_hints_that_work() {
    let scene = Scene::new("life-user", "d");
    let (scratch, dir) = (scene.scratch.clone(), scene.dir.clone());
    std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tool = scratch.join("vpartclone");
    std::fs::copy(tool_binary(Format::Partclone), &tool).unwrap();
    let image = scratch.join("ext2-tiny.pc");
    std::fs::copy(ext2(), &image).unwrap();
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(
        run(Command::new("chown").arg("nobody").arg(&dir))
            .status
            .success()
    );
    let mount = || {
        as_nobody(&[
            tool.as_os_str(),
            image.as_os_str(),
            "-q".as_ref(),
            "-m".as_ref(),
            dir.as_os_str(),
        ])
    };
    let unmount = || {
        let out = as_nobody(&["fusermount3".as_ref(), "-u".as_ref(), dir.as_os_str()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        wait_gone(&dir);
    };
    let want = expected_sha256(&ext2());
    let file = dir.join("ext2-tiny.pc");

    let fuse_mode = std::fs::metadata("/dev/fuse").unwrap().permissions().mode() & 0o7777;
    let conf = std::fs::read("/etc/fuse.conf").ok();
    let _restore = Restore(vec![
        Box::new(move || {
            let _ =
                std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(fuse_mode));
        }),
        Box::new(move || match &conf {
            Some(c) => std::fs::write("/etc/fuse.conf", c).unwrap(),
            None => {
                let _ = std::fs::remove_file("/etc/fuse.conf");
            }
        }),
    ]);
    let set_conf = |allow: bool| {
        let mut c = std::fs::read_to_string("/etc/fuse.conf").unwrap_or_default();
        c = c
            .lines()
            .filter(|l| l.trim() != "user_allow_other")
            .map(|l| format!("{l}\n"))
            .collect();
        if allow {
            c.push_str("user_allow_other\n");
        }
        std::fs::write("/etc/fuse.conf", c).unwrap();
    };

    std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = mount();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("/dev/fuse is not open to this user"),
        "{}",
        text(&out.stderr)
    );
    assert!(!is_mounted(&dir));

    std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o666)).unwrap();
    set_conf(false);
    let out = mount();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("add the line user_allow_other to /etc/fuse.conf"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("read-only filesystem at"),
        "root cannot open the file, so no loop mount is offered: {stdout}"
    );
    let err = std::fs::File::open(&file).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(13), "root must get EACCES: {err}");
    let out = as_nobody(&["sha256sum".as_ref(), file.as_os_str()]);
    assert!(
        text(&out.stdout).starts_with(&want),
        "{}",
        text(&out.stderr)
    );
    let reader = command_after(&stdout, "its files can be read with:");
    let reader = reader.split("   (").next().unwrap();
    let out = as_nobody(&["sh".as_ref(), "-c".as_ref(), reader.as_ref()]);
    assert!(
        out.status.success() && text(&out.stdout).contains("lost+found"),
        "`{reader}`: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    unmount();

    set_conf(true);
    let out = mount();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("sudo mount"), "{stdout}");
    assert_eq!(
        imagebackup_tests::file_sha256(&file),
        want,
        "root may open it now"
    );
    let pid = daemon_pids(&dir)[0];
    let out = as_nobody(&["kill".as_ref(), "-TERM".as_ref(), pid.to_string().as_ref()]);
    assert!(out.status.success());
    wait_gone(&dir);
}

/// A backgrounded daemon's errors and its decisions on signals reach the
/// system log, tagged with the tool's name.
#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn the_background_daemon_logs_to_the_system_log() {
    let scene = Scene::new("life-log", "d");
    let (scratch, dir) = (scene.scratch.clone(), scene.dir.clone());
    let socket_path = scratch.join("log.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let full = std::fs::read(fixtures().join("ext2-tiny-bmnone.pc")).unwrap();
    let image = scratch.join("cut.pc");
    std::fs::write(&image, &full[..full.len() / 2]).unwrap();
    let out =
        run(mount_cmd(Format::Partclone, &image, &dir).env("IMAGEBACKUP_LOG_SOCKET", &socket_path));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = std::fs::File::open(dir.join("cut.pc")).unwrap();
    let size = file.metadata().unwrap().len();
    let mut buf = [0u8; 4096];
    let err = file.read_exact_at(&mut buf, size - 4096).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(5));
    drop(file);
    let pid = daemon_pids(&dir)[0];
    let mut got = Vec::new();
    let mut recv = |needle: &str| loop {
        let mut msg = [0u8; 4096];
        let n = socket
            .recv(&mut msg)
            .unwrap_or_else(|e| panic!("no log line with {needle:?} ({e}); got {got:?}"));
        let line = text(&msg[..n]);
        if line.contains(needle) {
            return line;
        }
        got.push(line);
    };
    let line = recv("failed");
    assert!(
        line.starts_with(&format!("<27>vpartclone[{pid}]: ")),
        "{line}"
    );
    kill("TERM", pid);
    let line = recv("was unmounted; exiting");
    assert!(line.starts_with("<30>vpartclone["), "{line}");
    wait_gone(&dir);
}
