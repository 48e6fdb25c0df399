//! The tree's inode numbers as FUSE node ids. FUSE's root is node 1 and node 0
//! means "none", while a tree's root may be any number (ext4's is 2). fuser
//! sends the node id as `st_ino` too, so the mapping keeps every other number
//! as it is: the root and inode 1 swap places, and inode 0 becomes
//! `u64::MAX`, which is therefore the one inode number a tree cannot serve.

/// The mapping for one tree, decided by its root.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeIds {
    root: u64,
}

/// FUSE's root node (`FUSE_ROOT_ID`).
const FUSE_ROOT: u64 = 1;
/// Where inode 0 goes (node 0 means "no node" to the kernel).
const ZERO_NODE: u64 = u64::MAX;

impl NodeIds {
    /// The mapping for a tree rooted at inode `root` (not `u64::MAX`).
    pub(crate) fn new(root: u64) -> Option<Self> {
        (root != ZERO_NODE).then_some(NodeIds { root })
    }

    /// The node id of inode `ino`; None for `u64::MAX`, which has none.
    pub(crate) fn node(self, ino: u64) -> Option<u64> {
        Some(if ino == self.root {
            FUSE_ROOT
        } else if ino == FUSE_ROOT {
            // The root's own number is free, unless the root is 0 (whose
            // number no node may have).
            if self.root == 0 { ZERO_NODE } else { self.root }
        } else if ino == 0 {
            ZERO_NODE
        } else if ino == ZERO_NODE {
            return None;
        } else {
            ino
        })
    }

    /// The inode number behind node id `node` (the inverse of [`node`](Self::node)).
    pub(crate) fn ino(self, node: u64) -> u64 {
        if node == FUSE_ROOT {
            self.root
        } else if node == ZERO_NODE {
            if self.root == 0 { FUSE_ROOT } else { 0 }
        } else if node == self.root {
            FUSE_ROOT
        } else {
            node
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_is_one_to_one_and_keeps_other_numbers() {
        for root in [0, 1, 2, 5, 11, u64::MAX - 1] {
            let ids = NodeIds::new(root).unwrap();
            assert_eq!(ids.node(root), Some(1), "root {root}");
            let mut seen = std::collections::HashSet::new();
            for ino in [0, 1, 2, 3, 5, 11, 12, 1 << 40, u64::MAX - 1] {
                let node = ids.node(ino).unwrap();
                assert_ne!(node, 0, "root {root}, inode {ino}");
                assert!(seen.insert(node), "root {root}: node {node} taken twice");
                assert_eq!(ids.ino(node), ino, "root {root}, inode {ino}");
                if ![0, 1, root].contains(&ino) {
                    assert_eq!(node, ino, "root {root}: other numbers stay");
                }
            }
            assert_eq!(ids.node(u64::MAX), None);
        }
        assert!(NodeIds::new(u64::MAX).is_none());
    }
}
