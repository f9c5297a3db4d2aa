//! README.md stays complete: every long flag (and alias) and every `NODEPROBE_*` environment
//! variable that `nodeprobe --help` and the subcommands' `--help` print is mentioned in the
//! README, and the two quick-start commands are there verbatim, each as a line of a fenced code
//! block (CI's `.ci/run` calls the second one).

use nodeprobe_integration::nodeprobe;

/// The help texts that declare flags: the agent's and every subcommand's.
const HELP: &[&[&str]] = &[
    &["--help"],
    &["rules", "--help"],
    &["rules", "check", "--help"],
    &["rules", "test", "--help"],
    &["watch-logs", "--help"],
    &["eventer", "--help"],
];

const QUICK_START: &[&str] = &[
    "cargo run --release -- --oneshot",
    "bash integration/run-tests.sh",
];

fn readme() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn is_flag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

/// The long flags a help text declares: the first `--name` of each option line
/// (`  -h, --help`, `      --oneshot`) and every `[alias: --name]`.
fn declared_flags(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in help.lines() {
        let t = line.trim_start();
        if t.starts_with('-') {
            if let Some(i) = t.find("--") {
                let name: String = t[i..]
                    .chars()
                    .enumerate()
                    .take_while(|&(n, c)| n < 2 || is_flag_char(c))
                    .map(|(_, c)| c)
                    .collect();
                if name.len() > 2 {
                    out.push(name);
                }
            }
        }
        // `[alias: --a]`, `[aliases: --a, --b]`
        let mut rest = line;
        while let Some(i) = rest.find("[alias") {
            let Some(end) = rest[i..].find(']') else {
                break;
            };
            let list = &rest[i..i + end];
            let list = list.split_once(": ").map_or("", |(_, l)| l);
            for name in list.split(", ").filter(|n| n.starts_with("--")) {
                out.push(name.chars().take_while(|&c| is_flag_char(c)).collect());
            }
            rest = &rest[i + end..];
        }
    }
    out
}

/// Every `NODEPROBE_*` name in a help text.
fn env_vars(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = help;
    while let Some(i) = rest.find("NODEPROBE_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        out.push(name);
        rest = &rest[i + "NODEPROBE_".len()..];
    }
    out
}

/// `text` contains `token` not followed by another name character (so `--port` is not
/// satisfied by `--port-foo`, nor `NODEPROBE_PORT` by `NODEPROBE_PORTS`). A trailing `.`
/// ends a sentence, so it does not extend a name here.
fn mentions(text: &str, token: &str) -> bool {
    text.match_indices(token).any(|(i, _)| {
        text[i + token.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    })
}

/// The lines inside fenced code blocks.
fn code_lines(md: &str) -> Vec<&str> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            inside = !inside;
        } else if inside {
            out.push(line.trim_end());
        }
    }
    out
}

#[test]
fn readme_names_every_flag_and_env_var() {
    let readme = readme();
    let mut flags = Vec::new();
    let mut envs = Vec::new();
    for args in HELP {
        let run = nodeprobe(args);
        assert_eq!(run.code, 0, "nodeprobe {args:?} failed: {}", run.stderr);
        flags.extend(declared_flags(&run.stdout));
        envs.extend(env_vars(&run.stdout));
    }
    flags.sort();
    flags.dedup();
    envs.sort();
    envs.dedup();
    // The parse found the help's real content, not nothing.
    for expected in [
        "--oneshot",
        "--config.system-log-monitor",
        "--rules",
        "--line",
        "--format",
    ] {
        assert!(
            flags.iter().any(|f| f == expected),
            "{expected} not parsed from the help texts: {flags:?}"
        );
    }
    assert!(
        envs.iter().any(|e| e == "NODEPROBE_WATCH_OUTPUT"),
        "{envs:?}"
    );
    let missing: Vec<&String> = flags
        .iter()
        .chain(envs.iter())
        .filter(|t| !mentions(&readme, t))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md does not mention {missing:?} (of {} flags and {} env vars)",
        flags.len(),
        envs.len()
    );
}

#[test]
fn readme_has_the_quick_start_commands_verbatim() {
    let readme = readme();
    let code = code_lines(&readme);
    for cmd in QUICK_START {
        assert!(
            code.contains(cmd),
            "README.md has no code block line `{cmd}`"
        );
    }
    assert!(
        readme.contains("`.ci/run`"),
        "README.md no longer says CI runs the test command"
    );
}

#[test]
fn mentions_respects_name_boundaries() {
    assert!(mentions("use `--port` here", "--port"));
    assert!(mentions("ends with --port.", "--port"));
    assert!(!mentions("only --port-range", "--port"));
    assert!(!mentions("NODEPROBE_PORTS", "NODEPROBE_PORT"));
    assert_eq!(
        declared_flags("      --foo <X>  help [alias: --bar.baz]\n  -h, --help  Print"),
        vec!["--foo", "--bar.baz", "--help"]
    );
}
