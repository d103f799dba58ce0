//! The layering invariants of ARCHITECTURE.md, checked on the sources so they stay true:
//! only `src/io` imports GStreamer, only `src/infer` imports ONNX Runtime, the library
//! has no `anyhow` (typed errors; anyhow only in the binaries), and `imgproc` has no
//! import circle.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// Whether a code line (not a comment) names crate `needle` as a path root
/// (`needle::`, `use needle`, `needle as`), as a whole word.
fn uses(text: &str, needle: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start();
        if l.starts_with("//") {
            return false;
        }
        l.match_indices(needle).any(|(i, _)| {
            let before = l[..i].chars().next_back();
            let after = &l[i + needle.len()..];
            let word_start = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
            word_start
                && (after.starts_with("::")
                    || after.starts_with(" as ")
                    || (l[..i].ends_with("use ")
                        && (after.starts_with(';') || after.starts_with(':'))))
        })
    })
}

#[test]
fn only_io_imports_gstreamer() {
    let offenders: Vec<String> = sources()
        .into_iter()
        .filter(|(p, t)| !p.starts_with("src/io/") && uses(t, "gstreamer"))
        .map(|(p, _)| p)
        .collect();
    assert!(
        offenders.is_empty(),
        "gstreamer outside src/io: {offenders:?}"
    );
}

#[test]
fn only_infer_imports_ort() {
    let offenders: Vec<String> = sources()
        .into_iter()
        .filter(|(p, t)| !p.starts_with("src/infer/") && uses(t, "ort"))
        .map(|(p, _)| p)
        .collect();
    assert!(offenders.is_empty(), "ort outside src/infer: {offenders:?}");
}

#[test]
fn no_anyhow_in_the_library() {
    let offenders: Vec<String> = sources()
        .into_iter()
        .filter(|(p, t)| !p.starts_with("src/bin/") && uses(t, "anyhow"))
        .map(|(p, _)| p)
        .collect();
    assert!(offenders.is_empty(), "anyhow in the library: {offenders:?}");
}

#[test]
fn imgproc_has_no_import_circle() {
    // Edges between imgproc modules, from `use super::x` and `crate::imgproc::x`.
    let files = sources();
    let module = |p: &str| {
        p.strip_prefix("src/imgproc/")
            .map(|m| m.trim_end_matches(".rs").to_string())
    };
    let names: Vec<String> = files.iter().filter_map(|(p, _)| module(p)).collect();
    let mut edges = Vec::new();
    for (p, t) in &files {
        let Some(from) = module(p) else { continue };
        let code: String = t.split("#[cfg(test)]").next().unwrap_or("").to_string();
        for to in &names {
            if to != &from
                && (code.contains(&format!("super::{to}::"))
                    || code.contains(&format!("imgproc::{to}::")))
            {
                edges.push((from.clone(), to.clone()));
            }
        }
    }
    // Depth-first search for a cycle.
    fn visit(n: &str, edges: &[(String, String)], path: &mut Vec<String>) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            return Some(path[i..].to_vec());
        }
        path.push(n.to_string());
        for (a, b) in edges.iter().filter(|(a, _)| a == n) {
            let _ = a;
            if let Some(c) = visit(b, edges, path) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    for n in &names {
        let cycle = visit(n, &edges, &mut Vec::new());
        assert!(
            cycle.is_none(),
            "import circle in imgproc: {cycle:?} (edges {edges:?})"
        );
    }
}
