//! Golden YAML of every child for the minimal and the full CR.
//! `UPDATE_GOLDEN=1 cargo test -p claude-middleware-operator` rewrites them.

use serde::Serialize;

use super::testdata::{full, minimal, validated};
use super::{Children, render};

fn doc<T: Serialize>(out: &mut String, obj: &T) {
    out.push_str("---\n");
    out.push_str(&serde_norway::to_string(obj).expect("serialize child"));
}

fn children_yaml(cr: &crate::crd::ClaudeMiddleware, hash: Option<String>) -> String {
    // No `..`: a new kind of child gets its golden YAML too.
    let Children {
        deployment,
        service,
        network_policy,
        ingress,
        hpa,
        pdb,
        http_route,
        service_monitor,
    } = render(&validated(cr, hash));
    let mut out = String::new();
    doc(&mut out, &deployment);
    doc(&mut out, &service);
    if let Some(o) = &network_policy {
        doc(&mut out, o);
    }
    if let Some(o) = &ingress {
        doc(&mut out, o);
    }
    if let Some(o) = &hpa {
        doc(&mut out, o);
    }
    if let Some(o) = &pdb {
        doc(&mut out, o);
    }
    if let Some(o) = &http_route {
        doc(&mut out, o);
    }
    if let Some(o) = &service_monitor {
        doc(&mut out, o);
    }
    out
}

fn check(name: &str, actual: &str) {
    let path = format!(
        "{}/tests/golden/{name}.children.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden");
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    pretty_assertions::assert_eq!(
        expected,
        actual,
        "{path} differs; if the change is intended, rerun with UPDATE_GOLDEN=1"
    );
}

#[test]
fn golden_minimal() {
    check("minimal", &children_yaml(&minimal(), None));
}

#[test]
fn golden_full() {
    let hash = "sha256:5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";
    check("full", &children_yaml(&full(), Some(hash.into())));
}

/// Every field the fixture sets survives a round trip, so no fixture field is
/// silently ignored (misspelt or renamed).
#[test]
fn fixtures_have_no_unknown_fields() {
    fn subset(want: &serde_json::Value, got: &serde_json::Value, path: &str) {
        match (want, got) {
            (serde_json::Value::Object(w), serde_json::Value::Object(g)) => {
                for (k, v) in w {
                    let g = g
                        .get(k)
                        .unwrap_or_else(|| panic!("{path}.{k} is not a known field"));
                    subset(v, g, &format!("{path}.{k}"));
                }
            }
            (serde_json::Value::Array(w), serde_json::Value::Array(g)) => {
                for (i, (w, g)) in w.iter().zip(g).enumerate() {
                    subset(w, g, &format!("{path}[{i}]"));
                }
            }
            _ => {}
        }
    }
    for (raw, cr) in [
        (super::testdata::MINIMAL_CR, minimal()),
        (super::testdata::FULL_CR, full()),
    ] {
        let want: serde_json::Value = serde_norway::from_str(raw).expect("fixture");
        let got = serde_json::to_value(&cr).expect("json");
        subset(&want, &got, "");
    }
}
