//! Shared by the container-framing targets: how an input is cut into pieces.

/// Derives from the input's last bytes (so mutations move them) where to cut
/// it into pieces (as a split set), an offset to apply a rule at, and how
/// many bytes a streaming reader gets per read.
pub fn split(data: &[u8]) -> (Vec<usize>, usize, usize) {
    let len = data.len();
    let pick = |k: usize| -> usize {
        let b = data.get(len.wrapping_sub(k + 1)).copied().unwrap_or(0);
        (usize::from(b) * 257 + k * 31) % (len + 1)
    };
    let mut cuts = vec![pick(0), pick(1)];
    cuts.sort_unstable();
    let feed = [1, 3, 7, 4096, usize::MAX][pick(3) % 5];
    (cuts, pick(2), feed)
}
