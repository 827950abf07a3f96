//! The README's proxy environment reference states every setting with the
//! default the proxy really uses: a default changed here, or a setting added
//! without documenting it, fails this test.

use cmw_contract::parse_duration;
use cmw_contract::settings::all;

#[test]
fn readme_documents_every_setting_with_its_default() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md at the repository root");
    for (env, default) in all() {
        let row_start = format!("| `{env}` | ");
        let row = readme
            .lines()
            .find(|line| line.starts_with(&row_start))
            .unwrap_or_else(|| panic!("README.md has no row for {env}"));
        let documented = row[row_start.len()..]
            .split(" |")
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('`');
        match default {
            None => assert!(
                matches!(documented, "empty" | "unset"),
                "{env} has no default, README says {documented:?}"
            ),
            Some(default) => assert!(
                same_value(&default, documented),
                "{env} defaults to {default}, README says {documented:?}"
            ),
        }
    }
}

/// Equal as text, or as durations (`300` and `5m`).
fn same_value(default: &str, documented: &str) -> bool {
    default == documented
        || matches!(
            (parse_duration(default), parse_duration(documented)),
            (Ok(a), Ok(b)) if a == b
        )
}
