//! Parsers of user text under random and mutated input. A short run (the default
//! proptest case count, 256 per property) is part of the test command; set
//! `PROPTEST_CASES=100000` for a long campaign.

use std::path::Path;

use proptest::prelude::*;

use segsynth::content::{ContentKind, build_map};
use segsynth::endpoint::{Preset, parse_input, parse_output, redact_url};
use segsynth::model::Manifest;

const PRESETS: [&str; 3] = [
    include_str!("../pipelines/file.toml"),
    include_str!("../pipelines/rtsp-out.toml"),
    include_str!("../pipelines/webcam-overlay.toml"),
];
const MANIFESTS: [&str; 3] = [
    include_str!("../models/selfie.toml"),
    include_str!("../models/gan/foliage.toml"),
    include_str!("../tests/data/seg3_nchw_logits.toml"),
];

/// A valid document with one edit: a byte flipped, a span deleted or duplicated, or cut short.
fn mutated(docs: &'static [&'static str]) -> impl Strategy<Value = String> {
    (
        0..docs.len(),
        any::<usize>(),
        any::<usize>(),
        0u8..4,
        any::<u8>(),
    )
        .prop_map(move |(d, at, len, kind, byte)| {
            let mut b = docs[d].as_bytes().to_vec();
            let at = at % b.len().max(1);
            let end = (at + len % 32).min(b.len());
            match kind {
                0 => b[at] = byte,
                1 => {
                    b.drain(at..end);
                }
                2 => {
                    let dup = b[at..end].to_vec();
                    b.splice(at..at, dup);
                }
                _ => b.truncate(at),
            }
            String::from_utf8_lossy(&b).into_owned()
        })
}

fn uri() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "(rtsp|rtsp-publish|v4l2|test|display|file|http)(:|://)[a-zA-Z0-9:@/.%\\[\\]_-]{0,40}",
        "rtsp://[a-z]{0,8}(:[^@/]{0,8})?@?[0-9.]{0,15}(:[0-9]{0,7})?(/[a-z]{0,6})?",
    ]
}

proptest! {
    #[test]
    fn presets_never_panic(text in prop_oneof![mutated(&PRESETS), any::<String>()]) {
        if let Err(e) = Preset::parse(&text, Path::new("fuzz.toml")) {
            prop_assert!(e.to_string().contains("fuzz.toml"));
        }
    }

    #[test]
    fn manifests_never_panic(text in prop_oneof![mutated(&MANIFESTS), any::<String>()]) {
        if let Err(e) = Manifest::parse(&text, Path::new("models/fuzz.toml")) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn content_specs_never_panic(
        spec in prop_oneof![any::<String>(), "(blur|color|image|mask|gan)(:[#0-9a-fA-F]{0,9})?", "[a-z]{0,8}=(blur:[0-9]{0,25}|color:#[0-9a-f]{0,8})"],
        classes in proptest::collection::vec("[a-z,]{0,10}", 0..3),
    ) {
        let _ = ContentKind::parse(&spec);
        if let Err(e) = build_map(&classes, std::slice::from_ref(&spec)) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn uris_never_panic_and_never_show_a_password(s in uri()) {
        let _ = parse_input(&s);
        let _ = parse_output(&s);
        let shown = redact_url(&s);
        if let Some(rest) = s.split_once("://").map(|(_, r)| r) {
            let authority = rest.split('/').next().unwrap_or("");
            if let Some((userinfo, _)) = authority.rsplit_once('@')
                && let Some((_, pass)) = userinfo.split_once(':')
                    && pass.len() >= 3 {
                        prop_assert!(!shown.contains(&format!(":{pass}@")), "{shown}");
                    }
        }
    }
}
