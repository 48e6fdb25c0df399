//! Test support shared by the reader's own tests and the workspace's `tests`
//! crate, which turns it on with the `testing` feature. Not part of the API:
//! nothing here reads images.

/// A plain xorshift64 generator (shifts 13, 7, 17): the one seeded generator of
/// test data, offsets and lengths. The same seed gives the same sequence
/// everywhere, which some assertions depend on.
#[derive(Clone, Debug)]
pub struct XorShift(pub u64);

impl XorShift {
    /// The next value (the new state). The seed must not be 0.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// The next value reduced below `n` (0 when `n` is 0 or 1).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
