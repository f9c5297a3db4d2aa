//! The rule engine: NPD's log-buffer matching semantics, compiled once, with a prefilter.
//!
//! Semantics (anchors/npd-semantics.md §2.4): every pushed line goes into a ring of
//! `bufferSize` messages; a rule matches when `pattern\z` matches the ring joined with `\n`
//! (oldest first, never-filled slots as empty strings), i.e. the match must reach the end of
//! the newest line; the reported lines run from the one containing the match start through
//! the newest; the message is those lines joined with `\n`, plus `"; " + suffix` when the
//! rule has `patternGeneratedMessageSuffix`; the timestamp is the first matched line's.
//!
//! Deliberate difference (documented): the end anchor applies to the **whole** pattern,
//! `(?:pattern)\z`, not just to the last branch of a top-level alternation, so a rule like
//! `A|B` fires once for the line that matches instead of on every later line while the first
//! one is still in the buffer.
//!
//! Speed: a pattern that cannot match a `\n` and does not use a start-of-text anchor can
//! only match within the newest line, so all such rules are evaluated together by one
//! [`RegexSet`] over the newest line, behind a literal prefilter (the prefix or suffix
//! literals every match must contain). Only patterns that can span lines join the buffer.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use regex::{Regex, RegexSet};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Class, Hir, HirKind, Look};

use super::rules::RuleDecl;

/// A pattern that failed to compile: `index` is the rule's position in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub index: usize,
    pub cause: String,
}

/// Literal prefilter over the newest line.
#[derive(Debug, Clone)]
enum Prefilter {
    /// Some fast rule has no required literal: always run the set.
    Always,
    /// No fast rules at all.
    Never,
    /// At least one of these literals must occur for any fast rule to match.
    Literals(regex::bytes::Regex),
}

/// All rules of one monitor, compiled.
#[derive(Debug, Clone)]
pub struct RuleSet {
    suffixes: Vec<String>,
    buffer_size: usize,
    fast_set: Option<RegexSet>,
    fast_rules: Vec<usize>,
    prefilter: Prefilter,
    slow: Vec<(usize, Regex)>,
}

/// One log line as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub message: String,
    pub timestamp: SystemTime,
}

/// One rule that matched after a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    /// Index of the rule in the file.
    pub rule: usize,
    /// Matched lines joined with `\n` (+ `"; " + suffix`).
    pub message: String,
    /// Timestamp of the first matched line.
    pub timestamp: SystemTime,
    /// How many buffered lines the match covers.
    pub lines: usize,
}

fn parse_hir(pattern: &str) -> Result<Hir, String> {
    regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .map_err(|e| e.to_string())
}

/// `(?:pattern)\z`. A pattern in `(?x)` mode may end in a `# comment`, which would swallow
/// the `)\z` appended to its text; such a pattern is anchored through its parsed form.
fn anchored(pattern: &str, hir: &Hir) -> String {
    let has_comments = regex_syntax::ast::parse::Parser::new()
        .parse_with_comments(pattern)
        .is_ok_and(|w| !w.comments.is_empty());
    if has_comments {
        format!("(?:{hir})\\z")
    } else {
        format!("(?:{pattern})\\z")
    }
}

/// Whether `hir` can match a `\n` character anywhere.
fn can_match_newline(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => false,
        HirKind::Literal(lit) => lit.0.contains(&b'\n'),
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .any(|r| r.start() <= '\n' && '\n' <= r.end()),
        HirKind::Class(Class::Bytes(c)) => c
            .ranges()
            .iter()
            .any(|r| r.start() <= b'\n' && b'\n' <= r.end()),
        HirKind::Repetition(r) => can_match_newline(&r.sub),
        HirKind::Capture(c) => can_match_newline(&c.sub),
        HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().any(can_match_newline),
    }
}

/// Literals one of which every match of `hir` must contain (its prefix or suffix
/// literals, whichever set is finite and has the longer shortest member).
fn required_literals(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    let mut best: Option<(usize, Vec<Vec<u8>>)> = None;
    for kind in [ExtractKind::Prefix, ExtractKind::Suffix] {
        let seq = Extractor::new().kind(kind).extract(hir);
        let Some(lits) = seq.literals() else { continue };
        if lits.is_empty() || lits.len() > 64 || lits.iter().any(|l| l.as_bytes().is_empty()) {
            continue;
        }
        let min = lits.iter().map(|l| l.as_bytes().len()).min().unwrap_or(0);
        if best.as_ref().is_none_or(|(m, _)| min > *m) {
            best = Some((min, lits.iter().map(|l| l.as_bytes().to_vec()).collect()));
        }
    }
    best.map(|(_, v)| v)
}

impl RuleSet {
    /// Compile every rule's pattern once.
    pub fn compile(rules: &[RuleDecl], buffer_size: usize) -> Result<Self, CompileError> {
        let mut fast_patterns = Vec::new();
        let mut fast_rules = Vec::new();
        let mut literals: Vec<Vec<u8>> = Vec::new();
        let mut always = false;
        let mut slow = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            let err = |cause: String| CompileError { index, cause };
            let hir = parse_hir(&rule.pattern).map_err(err)?;
            let anchored = anchored(&rule.pattern, &hir);
            let single_line = !can_match_newline(&hir)
                && !hir.properties().look_set().contains(Look::Start)
                && buffer_size > 1;
            if single_line {
                match required_literals(&hir) {
                    Some(l) => literals.extend(l),
                    None => always = true,
                }
                fast_patterns.push(anchored);
                fast_rules.push(index);
            } else {
                // Fully compiled: catches size limits and anything the parser let by.
                let re = Regex::new(&anchored).map_err(|e| err(e.to_string()))?;
                slow.push((index, re));
            }
        }
        // The set compiles the fast rules once (compiling each on its own as well doubled
        // the cost of loading rules, which `--oneshot` pays on every run); only when the set
        // fails is each compiled on its own, to name the rule at fault.
        let fast_set = if fast_patterns.is_empty() {
            None
        } else {
            Some(RegexSet::new(&fast_patterns).map_err(|set_error| {
                fast_patterns
                    .iter()
                    .zip(&fast_rules)
                    .find_map(|(p, &index)| {
                        Regex::new(p).err().map(|e| CompileError {
                            index,
                            cause: e.to_string(),
                        })
                    })
                    .unwrap_or(CompileError {
                        index: fast_rules[0],
                        cause: set_error.to_string(),
                    })
            })?)
        };
        let prefilter = if fast_set.is_none() {
            Prefilter::Never
        } else if always || literals.is_empty() {
            Prefilter::Always
        } else {
            literals.sort();
            literals.dedup();
            let alts: Vec<String> = literals
                .iter()
                .map(|l| l.iter().map(|b| format!("\\x{b:02x}")).collect())
                .collect();
            match regex::bytes::Regex::new(&format!("(?-u:{})", alts.join("|"))) {
                Ok(re) => Prefilter::Literals(re),
                Err(_) => Prefilter::Always,
            }
        };
        Ok(RuleSet {
            suffixes: rules.iter().map(|r| r.message_suffix.clone()).collect(),
            buffer_size,
            fast_set,
            fast_rules,
            prefilter,
            slow,
        })
    }

    /// Number of rules that take the single-line fast path (for tests and `rules check`).
    pub fn fast_rule_count(&self) -> usize {
        self.fast_rules.len()
    }

    /// Number of rules that may span lines and join the buffer.
    pub fn multiline_rule_count(&self) -> usize {
        self.slow.len()
    }

    fn message(&self, rule: usize, lines: &str) -> String {
        match self.suffixes.get(rule).map(String::as_str) {
            Some(s) if !s.is_empty() => format!("{lines}; {s}"),
            _ => lines.to_string(),
        }
    }
}

/// NPD's log buffer with the rules it is matched against.
#[derive(Debug)]
pub struct LogBuffer {
    rules: Arc<RuleSet>,
    /// Oldest first; `None` is a never-filled slot (an empty string in the joined text).
    slots: VecDeque<Option<Line>>,
    joined: String,
    starts: Vec<usize>,
}

impl LogBuffer {
    pub fn new(rules: Arc<RuleSet>) -> Self {
        let n = rules.buffer_size.max(1);
        LogBuffer {
            rules,
            slots: std::iter::repeat_n(None, n).collect(),
            joined: String::new(),
            starts: Vec::with_capacity(n),
        }
    }

    /// Push the newest line and return every rule that matches now, in rule order.
    pub fn push(&mut self, line: Line) -> Vec<RuleMatch> {
        self.slots.pop_front();
        self.slots.push_back(Some(line));
        let rules = Arc::clone(&self.rules);
        let mut out = Vec::new();
        let Some(Some(newest)) = self.slots.back() else {
            return out;
        };
        if let Some(set) = &rules.fast_set {
            let candidate = match &rules.prefilter {
                Prefilter::Always => true,
                Prefilter::Never => false,
                Prefilter::Literals(re) => re.is_match(newest.message.as_bytes()),
            };
            if candidate {
                for i in set.matches(&newest.message).iter() {
                    let rule = rules.fast_rules[i];
                    out.push(RuleMatch {
                        rule,
                        message: rules.message(rule, &newest.message),
                        timestamp: newest.timestamp,
                        lines: 1,
                    });
                }
            }
        }
        if !rules.slow.is_empty() {
            self.join();
            for (rule, re) in &rules.slow {
                if let Some(m) = re.find(&self.joined) {
                    if let Some(found) = self.matched_from(m.start(), *rule) {
                        out.push(found);
                    }
                }
            }
            out.sort_by_key(|m| m.rule);
        }
        out
    }

    fn join(&mut self) {
        self.joined.clear();
        self.starts.clear();
        for (i, slot) in self.slots.iter().enumerate() {
            if i > 0 {
                self.joined.push('\n');
            }
            self.starts.push(self.joined.len());
            if let Some(l) = slot {
                self.joined.push_str(&l.message);
            }
        }
    }

    /// NPD's reverse walk: from the newest line back, adding `len + 1` per line, until the
    /// bytes from the match start to the end are covered. Never-filled slots stop the walk.
    fn matched_from(&self, start: usize, rule: usize) -> Option<RuleMatch> {
        let need = self.joined.len() - start;
        let mut total = 0;
        let mut first = self.slots.len();
        for (i, slot) in self.slots.iter().enumerate().rev() {
            let Some(l) = slot else { break };
            first = i;
            total += l.message.len() + 1;
            if total >= need {
                break;
            }
        }
        let lines: Vec<&Line> = self
            .slots
            .range(first..)
            .filter_map(|s| s.as_ref())
            .collect();
        let oldest = lines.first()?;
        let text = lines
            .iter()
            .map(|l| l.message.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        Some(RuleMatch {
            rule,
            message: self.rules.message(rule, &text),
            timestamp: oldest.timestamp,
            lines: lines.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::rules::RuleType;
    use std::time::Duration;

    fn rule(pattern: &str) -> RuleDecl {
        RuleDecl {
            kind: RuleType::Temporary,
            condition: String::new(),
            reason: "R".into(),
            pattern: pattern.into(),
            message_suffix: String::new(),
        }
    }

    #[test]
    fn a_pattern_too_big_to_compile_names_its_rule() {
        // parses, but the compiled program exceeds the regex size limit
        let big = r"(?:\w{1000}){20}";
        for (rules, at) in [
            (vec![rule("fine"), rule(big), rule("also fine")], 1),
            (vec![rule(big)], 0),
        ] {
            let e = RuleSet::compile(&rules, 10).unwrap_err();
            assert_eq!(e.index, at, "{e:?}");
            assert!(e.cause.contains("size limit"), "{e:?}");
        }
        // the same pattern as a multi-line rule (buffer of 1: no fast path)
        let e = RuleSet::compile(&[rule("x"), rule(big)], 1).unwrap_err();
        assert_eq!(e.index, 1);
    }

    fn buffer(patterns: &[&str], size: usize) -> LogBuffer {
        let rules: Vec<RuleDecl> = patterns.iter().map(|p| rule(p)).collect();
        LogBuffer::new(Arc::new(RuleSet::compile(&rules, size).unwrap()))
    }

    fn at(secs: u64, msg: &str) -> Line {
        Line {
            message: msg.into(),
            timestamp: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        }
    }

    fn messages(b: &mut LogBuffer, lines: &[&str]) -> Vec<Vec<String>> {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                b.push(at(i as u64, l))
                    .into_iter()
                    .map(|m| m.message)
                    .collect()
            })
            .collect()
    }

    /// The cases of NPD's `log_buffer_test.go` (single-line, multi-line, buffer
    /// overflow, partial match must not fire), with NPD's expected messages.
    #[test]
    fn npd_log_buffer_cases() {
        // [max=1] single line only
        let mut b = buffer(&["1\n2"], 1);
        assert_eq!(
            messages(&mut b, &["1", "2"]),
            vec![vec![], vec![]] as Vec<Vec<String>>
        );
        // [max=10] multi-line pattern over adjacent lines
        let mut b = buffer(&["1\n2\n3"], 10);
        assert_eq!(
            messages(&mut b, &["1", "2", "3"]),
            vec![vec![], vec![], vec!["1\n2\n3".to_string()]]
        );
        // lines pushed later do not re-match (must end at the newest line)
        let mut b = buffer(&["2"], 10);
        assert_eq!(
            messages(&mut b, &["1", "2", "3"]),
            vec![vec![], vec!["2".to_string()], vec![]]
        );
        // buffer overflow: the first line fell out
        let mut b = buffer(&["1\n2\n3"], 2);
        assert_eq!(
            messages(&mut b, &["1", "2", "3"]),
            vec![vec![], vec![], vec![]] as Vec<Vec<String>>
        );
        // partial first line: the whole first matched line is reported
        let mut b = buffer(&["a\nb"], 10);
        assert_eq!(
            messages(&mut b, &["xa", "b"]),
            vec![vec![], vec!["xa\nb".to_string()]]
        );
        // `.*` spanning several lines through an explicit \n
        let mut b = buffer(&["start[^\\n]*\n.*\nend"], 10);
        assert_eq!(
            messages(&mut b, &["start 1", "mid", "end"]),
            vec![vec![], vec![], vec!["start 1\nmid\nend".to_string()]]
        );
    }

    /// Found with the rule_file fuzz target's property (a pattern the regex crate accepts
    /// loads): a `(?x)` pattern ending in a comment was refused ("unclosed group").
    #[test]
    fn extended_mode_comments_do_not_swallow_the_anchor() {
        let mut b = buffer(&["(?x) task \\s* hung  # a comment", "a(?x)b # c\nd"], 10);
        assert_eq!(
            messages(&mut b, &["taskhung", "x task hung", "abd"]),
            vec![
                vec!["taskhung".to_string()],
                vec!["x task hung".to_string()],
                vec!["abd".to_string()]
            ]
        );
        // still anchored at the end of the newest line
        assert_eq!(
            messages(&mut b, &["taskhung!"]),
            vec![vec![]] as Vec<Vec<String>>
        );
    }

    /// NPD's `TestMatch` cases (`log_buffer_test.go`, buffer of 4): the lines each pattern
    /// reports after all logs are pushed.
    #[test]
    fn npd_test_match_cases() {
        type Expect<'a> = &'a [(&'a str, &'a [&'a str])];
        let cases: &[(&[&str], Expect)] = &[
            (
                &["a1", "b2"],
                &[
                    ("a1", &[]),
                    ("b1", &[]),
                    ("b2", &["b2"]),
                    ("\\w{2}", &["b2"]),
                    ("a1\nb2", &["a1", "b2"]),
                    ("a1b2", &[]),
                ],
            ),
            (
                &["a1", "b2", "c3", "d4", "e5"],
                &[
                    ("(?s)a1.+", &[]),
                    ("[a-z]\\d\n[a-z]\\d", &["d4", "e5"]),
                    ("[a-z]\\d", &["e5"]),
                ],
            ),
        ];
        for (logs, exprs) in cases {
            for (expr, want) in *exprs {
                let mut b = buffer(&[expr], 4);
                let mut last = Vec::new();
                for (i, l) in logs.iter().enumerate() {
                    last = b.push(at(i as u64, l));
                }
                let got: Vec<String> = last
                    .first()
                    .map(|m| m.message.split('\n').map(String::from).collect())
                    .unwrap_or_default();
                assert_eq!(got, *want, "pattern {expr:?} over {logs:?}");
                if let Some(m) = last.first() {
                    assert_eq!(m.lines, want.len());
                }
            }
        }
    }

    #[test]
    fn timestamp_is_the_first_matched_line_and_suffix_is_appended() {
        let mut rules = vec![rule("Kill process \\d+ .*\nKilled process \\d+ .*")];
        rules[0].message_suffix = "see docs".into();
        let mut b = LogBuffer::new(Arc::new(RuleSet::compile(&rules, 10).unwrap()));
        assert!(b
            .push(at(5, "Kill process 1 (a) score 1 or sacrifice child"))
            .is_empty());
        let m = b.push(at(6, "Killed process 1 (a) total-vm:1kB"));
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].message,
            "Kill process 1 (a) score 1 or sacrifice child\nKilled process 1 (a) total-vm:1kB; see docs"
        );
        assert_eq!(
            m[0].timestamp,
            SystemTime::UNIX_EPOCH + Duration::from_secs(5)
        );
        assert_eq!(m[0].lines, 2);
    }

    /// The seed PodOOMKilling `A|B` pattern: NPD binds `\z` to B only and re-fires on later
    /// lines; we anchor the whole pattern and fire exactly once.
    #[test]
    fn alternation_fires_once() {
        let p = "(Task in /kubepods/(.+) killed as a result of limit of .*)|(oom-kill:.*,oom_memcg=/kubepods/(.+),task_memcg=.*)";
        let mut b = buffer(&[p], 10);
        let fired: Vec<usize> = [
            "noise 1",
            "Task in /kubepods/burstable/podx/c killed as a result of limit of /kubepods/burstable/podx",
            "noise 2",
            "noise 3",
        ]
        .iter()
        .enumerate()
        .map(|(i, l)| b.push(at(i as u64, l)).len())
        .collect();
        assert_eq!(fired, vec![0, 1, 0, 0]);
    }

    #[test]
    fn routing_fast_and_multiline() {
        let set = RuleSet::compile(
            &[
                rule("a.*b"),
                rule("a\\nb"),
                rule("a\\sb"),
                rule("(?s)a.b"),
                rule("^abc"),
                rule("\\w+: neighbor table overflow!"),
            ],
            10,
        )
        .unwrap();
        assert_eq!(set.fast_rule_count(), 2);
        assert_eq!(set.multiline_rule_count(), 4);
        // `^` is start of the joined text in NPD: never matches once the buffer has >1 slot
        let mut b = buffer(&["^abc"], 3);
        assert!(b.push(at(0, "abc")).is_empty());
        // results come back in rule order across both paths
        let mut b = buffer(&["x\\sy", "y", "y$"], 10);
        b.push(at(0, "x"));
        let r: Vec<usize> = b.push(at(1, "y")).iter().map(|m| m.rule).collect();
        assert_eq!(r, vec![0, 1, 2]);
    }

    #[test]
    fn prefilter_never_hides_a_match() {
        let pats = [
            "task \\S+:\\w+ blocked for more than \\w+ seconds\\.",
            "\\w+: neighbor table overflow!",
            "(?i)remounting filesystem read-only",
            "EXT4-fs error .*",
        ];
        let mut b = buffer(&pats, 10);
        for (line, want) in [
            (
                "INFO: task kworker/1:2:123 blocked for more than 120 seconds.",
                1,
            ),
            ("eth0: neighbor table overflow!", 1),
            ("EXT4-fs (sda1): REMOUNTING FILESYSTEM READ-ONLY", 1),
            ("EXT4-fs error (device sda1): x", 1),
            ("nothing to see", 0),
            ("neighbor table overflow! trailing", 0),
        ] {
            assert_eq!(b.push(at(0, line)).len(), want, "{line}");
        }
    }
}
