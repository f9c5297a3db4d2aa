//! NPD custom-plugin files (`probes::plugins::parse_and_map`): the mapping onto the native
//! probes behind `--config.custom-plugin-monitor` and `rules check`.
//!
//! * any bytes: mapped or refused with an error naming the file; an unknown-script error
//!   names a script one of the file's rules runs, and one no native probe replaces.
//! * a file that maps: every condition of its probe is mapped, in the probe's order; interval
//!   and timeout are positive; a file recognised by its script runs that script; the file
//!   re-serialised (`PluginFile` → JSON) maps to the same thing.
//! * files built from fuzzed parts (known and unknown scripts, native and other condition
//!   types and sources) keep the same properties, and a known script always wins.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodeprobe_fuzz::{string, word, Unstructured};
use probes::plugins::{self, MatchedBy, PluginError, PluginFile, PluginMapping, KNOWN_SCRIPTS};
use probes::registry::{decl, PROBES};
use serde_json::json;

const FILE: &str = "fuzz.json";

fn check_mapping(pf: &PluginFile, m: &PluginMapping) {
    assert_eq!(m.file, FILE);
    assert!(PROBES.contains(&m.probe), "{m:?}");
    let d = decl(m.probe).expect("declared probe");
    let natives: Vec<&str> = d.conditions.iter().map(|c| c.condition).collect();
    let mapped: Vec<&str> = m.conditions.iter().map(|c| c.native).collect();
    assert_eq!(mapped, natives, "{m:?}");
    assert!(!m.interval.is_zero() && !m.timeout.is_zero(), "{m:?}");
    assert!(!m.source.is_empty());
    if let MatchedBy::Script(s) = &m.matched_by {
        assert!(pf.rules.iter().any(|r| r.script() == s), "{m:?}");
        assert!(KNOWN_SCRIPTS.iter().any(|(k, p)| k == s && *p == m.probe));
    }
    // re-serialised, the file maps to the same thing
    let again = serde_json::to_vec(pf).expect("serialise");
    let pf2 = PluginFile::parse(FILE, &again).expect("a re-serialised file parses");
    assert_eq!(&pf2, pf);
    assert_eq!(plugins::map(FILE, &pf2).as_ref(), Ok(m));
    let _ = m.describe();
}

fn check_error(data: &[u8], e: &PluginError) {
    let text = e.to_string();
    assert!(text.starts_with(FILE), "{text}");
    if let PluginError::UnknownScript { script, .. } = e {
        assert!(text.contains(&format!("{script:?}")), "{text}");
        assert!(!KNOWN_SCRIPTS.iter().any(|(k, _)| k == script), "{text}");
        let pf = PluginFile::parse(FILE, data).expect("an unknown script is found after parsing");
        assert!(pf.rules.iter().any(|r| r.script() == script), "{text}");
    }
}

fn exercise(data: &[u8]) -> Option<PluginMapping> {
    let parsed = PluginFile::parse(FILE, data);
    let mapped = plugins::parse_and_map(FILE, data);
    match (&parsed, &mapped) {
        (Ok(pf), Ok(m)) => {
            check_mapping(pf, m);
            assert!(plugins::is_plugin_file(data));
        }
        (_, Err(e)) => check_error(data, e),
        (Err(e), Ok(m)) => panic!("mapped {m:?} but does not parse: {e}"),
    }
    mapped.ok()
}

fuzz_target!(|data: &[u8]| {
    // the bytes as a plugin file
    exercise(data);

    // a well-formed file from fuzzed parts
    let mut u = Unstructured::new(data);
    let native_types: Vec<&str> = probes::registry::DECLS
        .iter()
        .flat_map(|d| d.conditions.iter().map(|c| c.condition))
        .collect();
    let pick = |u: &mut Unstructured<'_>, known: &[&str]| -> String {
        if u.arbitrary::<bool>().unwrap_or(false) {
            known[u.choose_index(known.len()).unwrap_or(0)].to_string()
        } else {
            word(u, b"abcXYZ_.-/", 12)
        }
    };
    let scripts: Vec<&str> = KNOWN_SCRIPTS.iter().map(|(s, _)| *s).collect();
    let nconds = u.int_in_range(0..=3u8).unwrap_or(1);
    let conds: Vec<String> = (0..nconds).map(|_| pick(&mut u, &native_types)).collect();
    let nrules = u.int_in_range(1..=3u8).unwrap_or(1);
    let mut rules = Vec::new();
    for i in 0..nrules {
        let script = pick(&mut u, &scripts);
        let permanent = !conds.is_empty() && u.arbitrary::<bool>().unwrap_or(true);
        let mut r = json!({"type": if permanent { "permanent" } else { "temporary" },
            "reason": format!("R{i}{}", string(&mut u, 8)),
            "path": format!("/config/plugin/{script}")});
        if permanent {
            r["condition"] = json!(conds[u.choose_index(conds.len()).unwrap_or(0)]);
        }
        if u.arbitrary::<bool>().unwrap_or(false) {
            r["timeout"] = json!(format!("{}s", u.int_in_range(1..=30u8).unwrap_or(5)));
        }
        rules.push(r);
    }
    let sources: Vec<&str> = probes::registry::DECLS.iter().map(|d| d.source).collect();
    let file = json!({"plugin": "custom",
        "pluginConfig": {"invoke_interval": format!("{}s", u.int_in_range(1..=120u8).unwrap_or(30)),
                         "timeout": "30s", "max_output_length": 80, "concurrency": 3},
        "source": pick(&mut u, &sources),
        "conditions": conds.iter().map(|c| json!({"type": c, "reason": format!("{c}Ok"), "message": "ok"}))
            .collect::<Vec<_>>(),
        "rules": rules});
    let bytes = serde_json::to_vec(&file).expect("JSON");
    let known: Vec<&str> = file["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| {
            let s = plugins::script_name(r["path"].as_str().unwrap_or(""));
            KNOWN_SCRIPTS.iter().find(|(k, _)| *k == s).map(|(_, p)| *p)
        })
        .collect();
    match exercise(&bytes) {
        Some(m) => {
            // a known script wins over condition types and source
            if let Some(p) = known.first() {
                assert_eq!(m.probe, *p, "{m:?}");
            }
        }
        None => {
            let e = plugins::parse_and_map(FILE, &bytes).unwrap_err();
            if known.is_empty() {
                assert!(
                    !matches!(e, PluginError::MixedScripts { .. }),
                    "no known script, yet mixed: {e}"
                );
            }
        }
    }
});
