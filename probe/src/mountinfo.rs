//! The mount table as the calling process sees it: `/proc/self/mountinfo`.
//!
//! Every mount namespace has its own tree of mounts, and `/proc/self/mountinfo`
//! prints the tree of the namespace the reader is in, with paths relative to
//! its root (after `chroot` or `pivot_root`). One line per mount
//! (see proc_pid_mountinfo(5)):
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! (1)(2) (3)   (4)   (5)      (6)       (7)  (8) (9)   (10)        (11)
//! ```
//!
//! (1) mount ID, (2) parent ID, (3) major:minor, (4) root of the mount inside
//! its filesystem, (5) mount point, (6) per-mount options, (7) zero or more
//! optional fields such as `shared:1` (propagation), (8) the ` - ` separator,
//! (9) filesystem type, (10) source, (11) per-superblock options.
//! Because (7) has no fixed length, the line must be split at the separator.
//! Spaces, tabs, newlines and backslashes inside paths are written as octal
//! escapes (`\040`, `\011`, `\012`, `\134`).

use serde::Serialize;

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Mount {
    pub mount_id: u64,
    pub parent_id: u64,
    pub root: String,
    pub mount_point: String,
    pub options: String,
    pub fs_type: String,
    pub source: String,
    pub super_options: String,
}

/// Parses the whole text of a mountinfo file.
pub fn parse(text: &str) -> Result<Vec<Mount>, String> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Result<Mount, String> {
    let bad = |what: &str| format!("mountinfo line {line:?}: {what}");
    let (before, after) = line
        .split_once(" - ")
        .ok_or_else(|| bad("no \" - \" separator"))?;
    let mut pre = before.split(' ');
    let mut field = |name: &str| pre.next().ok_or_else(|| bad(&format!("missing {name}")));
    let mount_id = field("mount ID")?
        .parse()
        .map_err(|e| bad(&format!("mount ID: {e}")))?;
    let parent_id = field("parent ID")?
        .parse()
        .map_err(|e| bad(&format!("parent ID: {e}")))?;
    let _major_minor = field("major:minor")?;
    let root = unescape(field("root")?);
    let mount_point = unescape(field("mount point")?);
    let options = field("mount options")?.to_string();
    // What is left in `pre` are the optional fields; we do not report them.

    let mut post = after.split(' ');
    let fs_type = unescape(post.next().ok_or_else(|| bad("missing fs type"))?);
    let source = unescape(post.next().ok_or_else(|| bad("missing source"))?);
    let super_options = post.next().unwrap_or("").to_string();
    Ok(Mount {
        mount_id,
        parent_id,
        root,
        mount_point,
        options,
        fs_type,
        source,
        super_options,
    })
}

/// Undoes the kernel's `\ooo` octal escapes (it escapes space, tab, newline
/// and backslash with `seq_escape`). Anything that is not a valid escape is
/// kept as it is.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes.get(i + 1..i + 4);
        if let (b'\\', Some(digits)) = (bytes[i], digits) {
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_page_example() {
        let m = parse(
            "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n",
        )
        .expect("valid line");
        assert_eq!(
            m,
            vec![Mount {
                mount_id: 36,
                parent_id: 35,
                root: "/mnt1".into(),
                mount_point: "/mnt2".into(),
                options: "rw,noatime".into(),
                fs_type: "ext3".into(),
                source: "/dev/root".into(),
                super_options: "rw,errors=continue".into(),
            }]
        );
    }

    #[test]
    fn no_optional_fields_and_several() {
        let m = parse(
            "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
             23 1 0:22 / /sys rw shared:2 master:3 propagate_from:4 - sysfs sysfs rw\n",
        )
        .expect("valid lines");
        assert_eq!(m[0].fs_type, "proc");
        assert_eq!(m[1].mount_point, "/sys");
        assert_eq!(m[1].fs_type, "sysfs");
    }

    #[test]
    fn octal_escapes() {
        let m = parse("40 1 0:40 / /mnt/my\\040dir\\134x rw - tmpfs my\\011src rw\n")
            .expect("valid line");
        assert_eq!(m[0].mount_point, "/mnt/my dir\\x");
        assert_eq!(m[0].source, "my\tsrc");
        assert_eq!(unescape("trailing\\04"), "trailing\\04");
        assert_eq!(unescape("\\"), "\\");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse("not a mountinfo line").is_err());
        assert!(parse("x 1 0:1 / / rw - tmpfs t rw").is_err());
    }
}
