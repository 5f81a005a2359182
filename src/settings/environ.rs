//! Reading the process environment as text, without ever panicking or echoing a value.

use std::ffi::OsString;

/// The environment as text. A variable pbiops reads whose name or value is not UTF-8 is an
/// error naming it (lossily, if its name is not UTF-8 either); any other such variable is
/// skipped, since pbiops never looks at it.
pub fn environment(
    vars: impl Iterator<Item = (OsString, OsString)>,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (name, value) in vars {
        match (name.into_string(), value.into_string()) {
            (Ok(name), Ok(value)) => out.push((name, value)),
            (Ok(name), Err(_)) if super::reads_variable(&name) => return Err(name),
            (Err(name), _) if name.to_string_lossy().starts_with("PBIOPS_") => {
                return Err(name.to_string_lossy().into_owned());
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn os(bytes: &[u8]) -> OsString {
        OsString::from_vec(bytes.to_vec())
    }

    #[test]
    fn a_non_utf8_variable_is_named_only_when_pbiops_reads_it() {
        let vars = vec![(os(b"HOME"), os(b"/root")), (os(b"LANG_X"), os(b"\xff"))];
        assert_eq!(environment(vars.into_iter()).map(|v| v.len()), Ok(1));
        let vars = vec![(os(b"PBIOPS_CLIENT_SECRET"), os(b"s3cr\xffet"))];
        assert_eq!(
            environment(vars.into_iter()),
            Err("PBIOPS_CLIENT_SECRET".to_string())
        );
        let vars = vec![(os(b"PBIOPS_\xffX"), os(b"v"))];
        assert!(environment(vars.into_iter()).is_err());
    }
}
