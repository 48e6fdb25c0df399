//! Numbers as people read them, for messages: the reader's errors and the tools' output.

/// Groups digits by thousands, as the tools print byte counts and offsets.
///
/// ```
/// assert_eq!(imagebackup_reader::thousands(52428800), "52,428,800");
/// assert_eq!(imagebackup_reader::thousands(999), "999");
/// ```
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
