//! Parsers of user text under random and mutated input. A short run (the default
//! proptest case count, 256 per property) is part of the test command; set
//! `PROPTEST_CASES=100000` for a long campaign.

use std::path::Path;

use std::fmt::{Debug, Display};
use std::str::FromStr;

use proptest::prelude::*;

use segsynth::content::{ContentKind, ContentSpec};
use segsynth::endpoint::{Preset, parse_input, parse_output, redact_url};
use segsynth::job::content_map;
use segsynth::model::Manifest;
use segsynth::options::{Batch, Device, EdgeBand, ModelEvery, OptionError, Pixels, Refine};

const PRESETS: [&str; 4] = [
    include_str!("../pipelines/file.toml"),
    include_str!("../pipelines/rtsp-out.toml"),
    include_str!("../pipelines/streams.toml"),
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

/// Values the typed options (`--edge`, `--model-every`, `--device`, `--pixels`, `--refine`)
/// take, to mutate.
const OPTION_VALUES: [&str; 17] = [
    "0.2,0.8", "0.1, 0.9", "0,1", "1,1", "0.5,0.5", "auto", "3", "1", "30", " 2 ", "cpu", "CUDA",
    "tensorrt", "native", "graph", "guided", "off",
];

/// A number, in the forms Rust's float and integer parsers take, near the ranges taken.
const NUMBER: &str = "[ ]?[+-]?[0-9]{0,2}(\\.[0-9]{0,9})?([eE][+-]?[0-9]{1,2})?[ ]?";

fn option_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        mutated(&OPTION_VALUES),
        (0..OPTION_VALUES.len(), 0u8..4).prop_map(|(i, how)| {
            let v = OPTION_VALUES[i];
            match how {
                0 => v.to_uppercase(),
                1 => format!("\t{v}\n"),
                2 => format!("{v}{v}"),
                _ => format!("{v},{v}"),
            }
        }),
        proptest::string::string_regex(&format!("{NUMBER}(,{NUMBER}){{0,2}}")).unwrap(),
        "(inf|-inf|NaN|nan|infinity|-0|\\+0|0x1|1_0|\\.|)(,(inf|NaN|-0|0|1|0\\.5|1\\.0000001|))?",
    ]
}

/// Text parsed as option `T` does not panic; a value taken prints as text that parses back
/// to it; a refusal names the option and quotes the text as given.
fn round_trips<T>(s: &str, option: &str) -> Result<(), TestCaseError>
where
    T: FromStr<Err = OptionError> + Display + PartialEq + Debug,
{
    match s.parse::<T>() {
        Ok(v) => prop_assert_eq!(v.to_string().parse::<T>(), Ok(v), "{:?}", s),
        Err(e) => {
            prop_assert_eq!(e.option, option);
            prop_assert_eq!(e.given.as_str(), s);
            prop_assert!(e.to_string().starts_with(option), "{}", e);
        }
    }
    Ok(())
}

/// `s` as a TOML basic string, which TOML reads back as `s`.
fn toml_string(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if c.is_control() => q.push_str(&format!("\\u{:04X}", c as u32)),
            c => q.push(c),
        }
    }
    q.push('"');
    q
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
        match spec.parse::<ContentSpec>() {
            Ok(parsed) => {
                prop_assert_eq!(parsed.to_string().parse::<ContentSpec>().ok(), Some(parsed.clone()));
                if let Err(e) = content_map(&classes, &[parsed]) {
                    prop_assert!(!e.to_string().is_empty());
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
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

    #[test]
    fn typed_options_never_panic_and_print_what_they_parse(s in option_text()) {
        round_trips::<EdgeBand>(&s, "edge")?;
        round_trips::<ModelEvery>(&s, "model-every")?;
        round_trips::<Device>(&s, "device")?;
        round_trips::<Pixels>(&s, "pixels")?;
        round_trips::<Refine>(&s, "refine")?;
        round_trips::<Batch>(&s, "batch")?;
        // A preset takes the same text as the command line, and refuses the same.
        let path = Path::new("fuzz.toml");
        let quoted = toml_string(&s);
        let preset = |key: &str| Preset::parse(&format!("{key} = {quoted}\n"), path).ok();
        prop_assert_eq!(preset("edge").map(|p| p.edge), s.parse::<EdgeBand>().ok().map(Some));
        prop_assert_eq!(
            preset("model_every").map(|p| p.model_every),
            s.parse::<ModelEvery>().ok().map(Some)
        );
        prop_assert_eq!(preset("device").map(|p| p.device), s.parse::<Device>().ok().map(Some));
        prop_assert_eq!(preset("pixels").map(|p| p.pixels), s.parse::<Pixels>().ok().map(Some));
        prop_assert_eq!(preset("refine").map(|p| p.refine), s.parse::<Refine>().ok().map(Some));
        prop_assert_eq!(preset("batch").map(|p| p.batch), s.parse::<Batch>().ok().map(Some));
        // The other forms presets take: `edge = [LO, HI]`, `model_every = N`.
        for doc in [format!("edge = [{s}]\n"), format!("model_every = {s}\n")] {
            if let Err(e) = Preset::parse(&doc, path) {
                prop_assert!(e.to_string().contains("fuzz.toml"));
            }
        }
    }
}
