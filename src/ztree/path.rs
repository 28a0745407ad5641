//! Znode paths: ZooKeeper's validation rules and the small helpers the tree uses.
//! Pure.

use crate::wire::txn::MAX_PATH_BYTES;

/// Checks `path` against ZooKeeper's rules (`PathUtils.validatePath`): it starts with
/// `/`, has no trailing `/` (except the root itself), no empty segment, no `.` or `..`
/// segment, no NUL, control or otherwise unprintable character (U+0001..U+001F,
/// U+007F..U+009F, U+E000..U+F8FF, U+FFF0..U+FFFF), and is at most
/// [`MAX_PATH_BYTES`] bytes long.
///
/// # Errors
/// A sentence naming what is wrong with the path.
pub fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("path is empty".into());
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(format!(
            "path is {} bytes, over the limit of {MAX_PATH_BYTES}",
            path.len()
        ));
    }
    if !path.starts_with('/') {
        return Err(format!("path {path:?} does not start with '/'"));
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(format!("path {path:?} ends with '/'"));
    }
    for segment in path[1..].split('/') {
        validate_segment(segment).map_err(|why| format!("path {path:?}: {why}"))?;
    }
    Ok(())
}

/// Checks one path segment (a znode's name): non-empty, not `.` or `..`, no `/` and no
/// character ZooKeeper refuses.
///
/// # Errors
/// A sentence naming what is wrong with the segment.
pub fn validate_segment(segment: &str) -> Result<(), String> {
    if segment.is_empty() {
        return Err("empty segment".into());
    }
    if segment == "." || segment == ".." {
        return Err(format!("relative segment {segment:?}"));
    }
    if let Some(c) = segment.chars().find(|&c| c == '/' || is_refused_char(c)) {
        return Err(format!(
            "character {:?} (U+{:04X}) is not allowed",
            c, c as u32
        ));
    }
    Ok(())
}

fn is_refused_char(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{ffff}')
}

/// The parent of a valid non-root path (`"/a/b"` -> `"/a"`, `"/a"` -> `"/"`).
pub(crate) fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last segment of a valid non-root path (`"/a/b"` -> `"b"`).
pub(crate) fn name_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// The path of `name` under `parent`.
pub(crate) fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_zookeeper_style_paths() {
        for p in [
            "/",
            "/a",
            "/a/b",
            "/zooweeper/processes/9090",
            "/a.b/..c/x-0000000001",
            "/é",
        ] {
            assert_eq!(validate_path(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn refuses_malformed_paths_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("a/b", "does not start"),
            ("/a/", "ends with"),
            ("//a", "empty segment"),
            ("/a//b", "empty segment"),
            ("/a/./b", "relative"),
            ("/a/..", "relative"),
            ("/a\0b", "U+0000"),
            ("/a\nb", "U+000A"),
            ("/a\u{7f}", "U+007F"),
            ("/a\u{e000}", "U+E000"),
            ("/a\u{fff5}", "U+FFF5"),
        ];
        for (p, why) in cases {
            let err = validate_path(p).unwrap_err();
            assert!(err.contains(why), "{p:?}: {err}");
        }
    }

    #[test]
    fn refuses_paths_over_the_byte_limit() {
        let ok = format!("/{}", "a".repeat(MAX_PATH_BYTES - 1));
        assert_eq!(validate_path(&ok), Ok(()));
        let long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        assert!(validate_path(&long).unwrap_err().contains("over the limit"));
    }

    #[test]
    fn segments_refuse_slashes_and_dots() {
        assert!(validate_segment("9090").is_ok());
        assert!(validate_segment("").is_err());
        assert!(validate_segment("a/b").is_err());
        assert!(validate_segment("..").is_err());
        assert!(validate_segment("a\tb").is_err());
    }

    #[test]
    fn parent_name_and_join_split_paths() {
        assert_eq!(parent_of("/a"), "/");
        assert_eq!(parent_of("/a/b/c"), "/a/b");
        assert_eq!(name_of("/a/b/c"), "c");
        assert_eq!(name_of("/a"), "a");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a/b", "c"), "/a/b/c");
    }
}
