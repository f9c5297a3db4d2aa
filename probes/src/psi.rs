//! `psi`: pressure stall information (Linux >= 4.20, `CONFIG_PSI`): the share of time tasks
//! were stalled waiting for CPU, memory or I/O, from `<proc>/pressure/{cpu,memory,io}` and
//! the `*.pressure` files of cgroup v2 groups (`kubepods` where present).
//!
//! One condition per resource (CPUStall, MemoryStall, IOStall): they call for different
//! actions (memory thrashing: evict or reboot; I/O stall: a sick or throttled disk; CPU: an
//! overcommitted node), need different thresholds, and each gets its own transition time
//! and event instead of one condition whose reason flips between resources. A kernel without
//! PSI (or booted with `psi=0`) writes none of them ("not applicable").

use std::path::{Path, PathBuf};

use crate::{blocking, CheckFuture, ConditionSpec, Finding, Findings, HostPaths, Outcome};

pub const CPU: ConditionSpec = ConditionSpec::new(
    "CPUStall",
    "NodeHasNoCPUStall",
    "node has no CPU pressure stall",
    "NodeHasCPUStall",
);
pub const MEMORY: ConditionSpec = ConditionSpec::new(
    "MemoryStall",
    "NodeHasNoMemoryStall",
    "node has no memory pressure stall",
    "NodeHasMemoryStall",
);
pub const IO: ConditionSpec = ConditionSpec::new(
    "IOStall",
    "NodeHasNoIOStall",
    "node has no I/O pressure stall",
    "NodeHasIOStall",
);

/// Which running average is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Window {
    Avg10,
    Avg60,
    Avg300,
}

impl Window {
    fn name(self) -> &'static str {
        match self {
            Window::Avg10 => "avg10",
            Window::Avg60 => "avg60",
            Window::Avg300 => "avg300",
        }
    }
}

/// A threshold flag's value: a percentage, or `None` for `off`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold(pub Option<f64>);

/// A threshold flag: a percentage in (0, 100], or `off`.
pub fn parse_threshold(s: &str) -> Result<Threshold, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(Threshold(None));
    }
    crate::parse_percent(s)
        .map(|v| Threshold(Some(v)))
        .map_err(|e| format!("{e} (or `off`)"))
}

crate::probe_settings! {
    /// Settings of the psi probe. Each threshold is a percentage of the window's time, or
    /// `off`; a resource with both thresholds off writes no condition.
    pub struct PsiConfig for "psi" ("PSI") {
        /// Running average judged: avg10, avg60 or avg300.
        #[arg(id = "psi-window", long = "psi-window", env = "NODEPROBE_PSI_WINDOW", value_enum, default_value = "avg60")]
        pub window: Window,
        /// CPUStall when "some" CPU pressure is above this (off by default: a busy node is
        /// not a sick one).
        #[arg(id = "psi-cpu-some", long = "psi-cpu-some", env = "NODEPROBE_PSI_CPU_SOME", default_value = "off", value_parser = parse_threshold)]
        pub cpu_some: Threshold,
        /// CPUStall when "full" CPU pressure is above this (cgroups only; the node's is 0).
        #[arg(id = "psi-cpu-full", long = "psi-cpu-full", env = "NODEPROBE_PSI_CPU_FULL", default_value = "off", value_parser = parse_threshold)]
        pub cpu_full: Threshold,
        /// MemoryStall when "some" memory pressure is above this.
        #[arg(id = "psi-memory-some", long = "psi-memory-some", env = "NODEPROBE_PSI_MEMORY_SOME", default_value = "50", value_parser = parse_threshold)]
        pub memory_some: Threshold,
        /// MemoryStall when "full" memory pressure is above this.
        #[arg(id = "psi-memory-full", long = "psi-memory-full", env = "NODEPROBE_PSI_MEMORY_FULL", default_value = "20", value_parser = parse_threshold)]
        pub memory_full: Threshold,
        /// IOStall when "some" I/O pressure is above this.
        #[arg(id = "psi-io-some", long = "psi-io-some", env = "NODEPROBE_PSI_IO_SOME", default_value = "off", value_parser = parse_threshold)]
        pub io_some: Threshold,
        /// IOStall when "full" I/O pressure is above this.
        #[arg(id = "psi-io-full", long = "psi-io-full", env = "NODEPROBE_PSI_IO_FULL", default_value = "30", value_parser = parse_threshold)]
        pub io_full: Threshold,
        /// cgroup v2 directories (host paths) whose pressure files are judged too; missing
        /// ones are skipped.
        #[arg(id = "psi-cgroups", long = "psi-cgroups", env = "NODEPROBE_PSI_CGROUPS", value_delimiter = ',', default_value = "/sys/fs/cgroup/kubepods.slice,/sys/fs/cgroup/kubepods")]
        pub cgroups: Vec<String>,
    }
    schedule: timeout "5s", interval "30s";
}

/// The three running averages of one line, in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Averages {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
}

impl Averages {
    fn get(&self, w: Window) -> f64 {
        match w {
            Window::Avg10 => self.avg10,
            Window::Avg60 => self.avg60,
            Window::Avg300 => self.avg300,
        }
    }
}

/// One pressure file: its `some` and (where present) `full` lines.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pressure {
    pub some: Averages,
    pub full: Option<Averages>,
}

/// Parse a pressure file (`some avg10=0.00 avg60=0.00 avg300=0.00 total=0` and `full …`).
pub fn parse_pressure(text: &str) -> Result<Pressure, String> {
    let mut some = None;
    let mut full = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_ascii_whitespace();
        let kind = words.next().unwrap_or_default();
        let (mut a10, mut a60, mut a300) = (None, None, None);
        for w in words {
            let Some((k, v)) = w.split_once('=') else {
                return Err(format!("{kind}: unexpected {w:?}"));
            };
            let num = || -> Result<f64, String> {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| format!("{kind} {k}: not a percentage: {v:?}"))
            };
            match k {
                "avg10" => a10 = Some(num()?),
                "avg60" => a60 = Some(num()?),
                "avg300" => a300 = Some(num()?),
                _ => {} // total=, and whatever later kernels add
            }
        }
        let (Some(avg10), Some(avg60), Some(avg300)) = (a10, a60, a300) else {
            return Err(format!("{kind}: missing avg10/avg60/avg300 in {line:?}"));
        };
        let avgs = Averages {
            avg10,
            avg60,
            avg300,
        };
        match kind {
            "some" => some = Some(avgs),
            "full" => full = Some(avgs),
            other => return Err(format!("unexpected line kind {other:?}")),
        }
    }
    Ok(Pressure {
        some: some.ok_or("no \"some\" line")?,
        full,
    })
}

/// A resource PSI covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Cpu,
    Memory,
    Io,
}

impl Resource {
    pub const ALL: [Resource; 3] = [Resource::Cpu, Resource::Memory, Resource::Io];

    pub fn file(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::Io => "io",
        }
    }

    pub fn spec(self) -> ConditionSpec {
        match self {
            Resource::Cpu => CPU,
            Resource::Memory => MEMORY,
            Resource::Io => IO,
        }
    }
}

/// Thresholds and window of one resource.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub some: Option<f64>,
    pub full: Option<f64>,
    pub window: Window,
}

/// Where one sample comes from (`node` or a cgroup path) and what was read there.
pub type Sample = (String, Result<Pressure, String>);

/// Judge one resource's samples (pure). The first sample is the node's.
pub fn evaluate(resource: Resource, samples: &[Sample], limits: Limits) -> Outcome {
    if limits.some.is_none() && limits.full.is_none() {
        return Outcome::not_applicable(format!(
            "no {} pressure threshold set",
            resource.file()
        ));
    }
    let w = limits.window.name();
    let res = resource.file();
    let mut over = Vec::new();
    let mut errors = Vec::new();
    let mut seen = Vec::new();
    for (scope, sample) in samples {
        let p = match sample {
            Ok(p) => p,
            Err(e) => {
                errors.push(format!("{scope}: {e}"));
                continue;
            }
        };
        let some = p.some.get(limits.window);
        let full = p.full.map(|f| f.get(limits.window));
        let mut line = format!("{scope} some {some:.2}%");
        if let Some(f) = full {
            line.push_str(&format!(" full {f:.2}%"));
        }
        seen.push(line);
        if let Some(t) = limits.some.filter(|t| some > *t) {
            over.push(format!("{res} some {w} {some:.2}% on {scope} (threshold {t}%)"));
        }
        if let (Some(t), Some(f)) = (limits.full, full) {
            if f > t {
                over.push(format!("{res} full {w} {f:.2}% on {scope} (threshold {t}%)"));
            }
        }
    }
    if !over.is_empty() {
        let mut msg = format!("{res} pressure stall: {}", over.join(", "));
        if !errors.is_empty() {
            msg.push_str(&format!("; could not read {}", errors.join(", ")));
        }
        return Outcome::problem(resource.spec().problem_reason, msg);
    }
    if !errors.is_empty() {
        return Outcome::unknown(format!(
            "cannot read {res} pressure of {}",
            errors.join(", ")
        ));
    }
    Outcome::ok_with(format!("{res} pressure ({w}): {}", seen.join("; ")))
}

/// What reading one pressure file gave.
enum Read {
    Pressure(Pressure),
    /// The file does not exist or the kernel has PSI disabled (`EOPNOTSUPP`).
    Absent,
    Error(String),
}

fn read_pressure(path: &Path) -> Read {
    match std::fs::read_to_string(path) {
        Ok(text) => match parse_pressure(&text) {
            Ok(p) => Read::Pressure(p),
            Err(e) => Read::Error(format!("{}: {e}", path.display())),
        },
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::EOPNOTSUPP) =>
        {
            Read::Absent
        }
        Err(e) => Read::Error(format!("read {}: {e}", path.display())),
    }
}

/// Read every resource at the node and in each cgroup (blocking). `None`: no PSI here.
fn sample_all(pressure_dir: &Path, cgroups: &[(String, PathBuf)]) -> Option<Vec<Vec<Sample>>> {
    let mut out = Vec::new();
    for r in Resource::ALL {
        let file = format!("{}.pressure", r.file());
        let node = match read_pressure(&pressure_dir.join(r.file())) {
            Read::Pressure(p) => Ok(p),
            Read::Absent => return None,
            Read::Error(e) => Err(e),
        };
        let mut samples = vec![("node".to_string(), node)];
        for (name, dir) in cgroups {
            match read_pressure(&dir.join(&file)) {
                Read::Pressure(p) => samples.push((name.clone(), Ok(p))),
                Read::Absent => {}
                Read::Error(e) => samples.push((name.clone(), Err(e))),
            }
        }
        out.push(samples);
    }
    Some(out)
}

pub struct PsiProbe {
    host: HostPaths,
    config: PsiConfig,
}

impl PsiProbe {
    pub fn new(host: HostPaths, config: PsiConfig) -> Self {
        PsiProbe { host, config }
    }

    fn limits(&self, r: Resource) -> Limits {
        let c = &self.config;
        let (some, full) = match r {
            Resource::Cpu => (c.cpu_some.0, c.cpu_full.0),
            Resource::Memory => (c.memory_some.0, c.memory_full.0),
            Resource::Io => (c.io_some.0, c.io_full.0),
        };
        Limits {
            some,
            full,
            window: c.window,
        }
    }
}

crate::probe_impl!(PsiConfig => PsiProbe, "psi-custom-plugin-monitor", [CPU, MEMORY, IO]);

impl PsiProbe {
    /// One check (what `Probe::check` runs).
    fn check_once(&self) -> CheckFuture<'_> {
        let pressure_dir = self.host.proc().join("pressure");
        let cgroups: Vec<(String, PathBuf)> = self
            .config
            .cgroups
            .iter()
            .filter(|c| !c.trim().is_empty())
            .map(|c| (c.clone(), self.host.path(c)))
            .collect();
        let limits: Vec<Limits> = Resource::ALL.iter().map(|r| self.limits(*r)).collect();
        let dir_text = pressure_dir.display().to_string();
        Box::pin(async move {
            let read = blocking(move || sample_all(&pressure_dir, &cgroups)).await;
            let findings: Findings = Resource::ALL
                .iter()
                .zip(limits)
                .map(|(r, l)| Finding {
                    spec: r.spec(),
                    outcome: match &read {
                        Err(e) => Outcome::unknown(e.clone()),
                        Ok(None) => Outcome::not_applicable(format!(
                            "the kernel has no pressure stall information ({dir_text} absent or PSI disabled)"
                        )),
                        Ok(Some(all)) => evaluate(*r, &all[*r as usize], l),
                    },
                })
                .collect();
            findings
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Probe;

    const MEM: &str = "some avg10=3.32 avg60=1.10 avg300=0.53 total=4144918\nfull avg10=0.00 avg60=0.00 avg300=0.13 total=1666761\n";

    fn limits(some: Option<f64>, full: Option<f64>) -> Limits {
        Limits {
            some,
            full,
            window: Window::Avg60,
        }
    }

    #[test]
    fn parses_real_files() {
        let p = parse_pressure(MEM).unwrap();
        assert_eq!(p.some.avg10, 3.32);
        assert_eq!(p.some.avg60, 1.10);
        assert_eq!(p.full.unwrap().avg300, 0.13);
        // kernels before 5.13 have no full line for cpu
        let cpu = parse_pressure("some avg10=92.01 avg60=90.71 avg300=55.04 total=249517828\n")
            .unwrap();
        assert_eq!(cpu.full, None);
        assert_eq!(cpu.some.avg60, 90.71);
    }

    #[test]
    fn garbled_files_are_errors() {
        assert!(parse_pressure("").unwrap_err().contains("no \"some\""));
        assert!(parse_pressure("some avg10=x avg60=1 avg300=1")
            .unwrap_err()
            .contains("avg10"));
        assert!(parse_pressure("some avg10=1 avg300=1")
            .unwrap_err()
            .contains("missing"));
        assert!(parse_pressure("some avg10=1 avg60=1 avg300=1\nhalf avg10=1 avg60=1 avg300=1")
            .is_err());
        assert!(parse_pressure("some avg10=NaN avg60=1 avg300=1").is_err());
        assert!(parse_pressure("some avg10=1 avg60 avg300=1").is_err());
    }

    fn node(text: &str) -> Sample {
        ("node".into(), parse_pressure(text))
    }

    #[test]
    fn full_over_threshold_is_a_problem_naming_the_scope() {
        let heavy = "some avg10=70 avg60=60.5 avg300=10 total=1\nfull avg10=40 avg60=25.25 avg300=5 total=1\n";
        let out = evaluate(
            Resource::Memory,
            &[
                node(MEM),
                ("/sys/fs/cgroup/kubepods.slice".into(), parse_pressure(heavy)),
            ],
            limits(Some(50.0), Some(20.0)),
        );
        assert_eq!(
            out,
            Outcome::problem(
                "NodeHasMemoryStall",
                "memory pressure stall: memory some avg60 60.50% on /sys/fs/cgroup/kubepods.slice (threshold 50%), memory full avg60 25.25% on /sys/fs/cgroup/kubepods.slice (threshold 20%)"
            )
        );
    }

    #[test]
    fn below_thresholds_is_ok_with_the_figures() {
        let out = evaluate(Resource::Memory, &[node(MEM)], limits(Some(50.0), Some(20.0)));
        assert_eq!(
            out,
            Outcome::ok_with("memory pressure (avg60): node some 1.10% full 0.00%")
        );
    }

    #[test]
    fn window_selects_the_average() {
        let mut l = limits(Some(2.0), None);
        assert!(matches!(
            evaluate(Resource::Io, &[node(MEM)], l),
            Outcome::Ok { .. }
        ));
        l.window = Window::Avg10;
        assert!(matches!(
            evaluate(Resource::Io, &[node(MEM)], l),
            Outcome::Problem { .. }
        ));
    }

    #[test]
    fn thresholds_off_means_no_condition() {
        assert!(matches!(
            evaluate(Resource::Cpu, &[node(MEM)], limits(None, None)),
            Outcome::NotApplicable { .. }
        ));
        assert_eq!(parse_threshold("off"), Ok(Threshold(None)));
        assert_eq!(parse_threshold("OFF"), Ok(Threshold(None)));
        assert_eq!(parse_threshold("20"), Ok(Threshold(Some(20.0))));
        assert!(parse_threshold("0").unwrap_err().contains("or `off`"));
    }

    #[test]
    fn unreadable_cgroup_is_unknown_unless_a_problem() {
        let bad: Sample = ("/cg".into(), Err("read /cg/io.pressure: denied".into()));
        assert_eq!(
            evaluate(Resource::Io, &[node(MEM), bad.clone()], limits(None, Some(30.0))),
            Outcome::unknown("cannot read io pressure of /cg: read /cg/io.pressure: denied")
        );
        match evaluate(Resource::Io, &[node(MEM), bad], limits(Some(1.0), None)) {
            Outcome::Problem { message, .. } => {
                assert!(message.ends_with("; could not read /cg: read /cg/io.pressure: denied"))
            }
            other => panic!("{other:?}"),
        }
    }

    fn host(with_psi: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if with_psi {
            let p = dir.path().join("proc/pressure");
            std::fs::create_dir_all(&p).unwrap();
            for r in ["cpu", "io"] {
                std::fs::write(p.join(r), MEM).unwrap();
            }
            std::fs::write(
                p.join("memory"),
                "some avg10=0 avg60=0 avg300=0 total=0\nfull avg10=0 avg60=33 avg300=0 total=0\n",
            )
            .unwrap();
            let cg = dir.path().join("sys/fs/cgroup/kubepods");
            std::fs::create_dir_all(&cg).unwrap();
            std::fs::write(cg.join("io.pressure"), "some avg10=0 avg60=0 avg300=0 total=0\nfull avg10=0 avg60=31 avg300=0 total=0\n").unwrap();
        }
        dir
    }

    #[tokio::test]
    async fn fixture_host_root() {
        let dir = host(true);
        let probe = PsiProbe::new(HostPaths::new(dir.path()), Default::default());
        let f = probe.check().await;
        assert_eq!(
            f.iter().map(|f| f.spec.condition).collect::<Vec<_>>(),
            ["CPUStall", "MemoryStall", "IOStall"]
        );
        assert!(matches!(f[0].outcome, Outcome::NotApplicable { .. }), "{f:?}");
        match (&f[1].outcome, &f[2].outcome) {
            (Outcome::Problem { message: m, .. }, Outcome::Problem { message: i, .. }) => {
                assert!(m.contains("memory full avg60 33.00% on node"), "{m}");
                assert!(
                    i.contains("io full avg60 31.00% on /sys/fs/cgroup/kubepods (threshold 30%)"),
                    "{i}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn no_psi_is_not_applicable() {
        let dir = host(false);
        let probe = PsiProbe::new(HostPaths::new(dir.path()), Default::default());
        for f in probe.check().await {
            match f.outcome {
                Outcome::NotApplicable { why } => {
                    assert!(why.contains("no pressure stall information"), "{why}")
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
