//! Mounts an in-memory tree of 10,000 small files (100 directories of 100, plus
//! a few large ones) at the directory given, and serves it until unmounted:
//! for measuring `ls -lR`, `find` and `cp -a` through the mount by hand.
//!
//!     cargo run --release -p imagebackup-fuse --example memtree_mount -- DIR
//!
//! Prints `ready` once it serves. Numbers measured with it are in `fs.rs`
//! (on `readdirplus`).

#[path = "../tests/memtree/mod.rs"]
mod memtree;

use imagebackup_fuse as fuse;
use memtree::{MemTree, ROOT, pattern};

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .expect("usage: memtree_mount DIR");
    let dir = std::fs::canonicalize(dir).expect("the mount point must exist");
    let mut tree = MemTree::new();
    for d in 0..100u64 {
        let sub = tree.dir(ROOT, format!("dir-{d:03}"));
        for f in 0..100u64 {
            let len = ((d * 100 + f) * 37 % 8192) as usize;
            tree.file(sub, format!("file-{f:03}.txt"), pattern(d * 100 + f, len));
        }
    }
    for i in 0..4 {
        tree.file(
            ROOT,
            format!("large-{i}.bin"),
            pattern(1_000_000 + i, 16 << 20),
        );
    }
    let config = fuse::MountConfig {
        fs_name: "memtree".to_owned(),
        times: memtree::times_of(0),
        threads: 2,
        direct_io: false,
        access: fuse::Access::Owner,
    };
    let mounted = fuse::mount_tree(tree, &dir, &config, |_| {}).expect("mount");
    mounted
        .serve(|ready| match ready {
            Ok(()) => println!("ready"),
            Err(why) => eprintln!("{why}"),
        })
        .expect("serve");
}
