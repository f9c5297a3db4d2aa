//! `spot`: spot/preemptible instance termination notices from the cloud's instance metadata.
//! Replaces `instance_expired_checker.sh` (Alibaba Cloud only; a syntax error made it emit an
//! empty Warning event every minute).
//!
//! | cloud | request | notice | no notice |
//! |---|---|---|---|
//! | Alibaba (`aliyun`) | `GET http://100.100.100.200/latest/meta-data/instance/spot/terminationtime` | 200, RFC 3339 time | 404 |
//! | AWS | `PUT /latest/api/token` (IMDSv2), then `GET http://169.254.169.254/latest/meta-data/spot/instance-action` | 200, `{"action","time"}` | 404 |
//! | Azure | `GET http://169.254.169.254/metadata/scheduledevents?api-version=2020-07-01`, `Metadata: true` | a `Preempt` event for this VM (`NotBefore`) | no such event (or 404) |
//! | GCP | `GET http://169.254.169.254/computeMetadata/v1/instance/preempted`, `Metadata-Flavor: Google` | `TRUE` | `FALSE` (or 404) |
//! | Tencent | `GET http://169.254.0.23/latest/meta-data/spot/termination-time` (`metadata.tencentyun.com`) | 200, `YYYY-MM-DD HH:MM:SS` in UTC+8 | 404 |
//!
//! Outcomes: no known cloud (DMI) or `--cloud none` → not applicable (no condition written);
//! no notice → `False`; a valid notice → `True` with the termination time (the agent emits the
//! `InstanceToBeTerminated` event once on the transition); an unreachable, slow (per-request
//! timeout) or non-404 error answer, or an answer that does not parse → `Unknown` with the
//! reason. A garbage answer is never taken as a notice.

use std::path::Path;
use std::time::Duration;

use crate::clients::metadata::{BaseUrl, MetadataClient, MetadataError, Response};
use crate::{blocking, single, CheckFuture, ConditionSpec, HostPaths, Outcome};

pub const CONDITION: ConditionSpec = ConditionSpec::new("InstanceExpired", "InstanceNotToBeTerminated", "instance is not going to be terminated", "InstanceToBeTerminated").with_problem_event("InstanceToBeTerminated");

/// Which cloud's metadata service to ask (`--cloud`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CloudSetting {
    /// Detect from DMI under the host root.
    #[default]
    Auto,
    /// Alibaba Cloud (alias: alibaba).
    #[value(alias = "alibaba")]
    Aliyun,
    /// Amazon EC2 (IMDSv2).
    Aws,
    /// Microsoft Azure (Scheduled Events).
    Azure,
    /// Google Compute Engine.
    Gcp,
    /// Tencent Cloud CVM.
    Tencent,
    /// Do not check (the condition is not written).
    None,
}

/// A cloud with a known termination-notice endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Aliyun,
    Aws,
    Azure,
    Gcp,
    Tencent,
}

impl Cloud {
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Aliyun => "aliyun",
            Cloud::Aws => "aws",
            Cloud::Azure => "azure",
            Cloud::Gcp => "gcp",
            Cloud::Tencent => "tencent",
        }
    }

    /// Base URL of the metadata service. Tencent documents the name `metadata.tencentyun.com`,
    /// which resolves to 169.254.0.23 inside Tencent Cloud; the address is used so the check
    /// does not depend on DNS.
    pub fn default_base(self) -> &'static str {
        match self {
            Cloud::Aliyun => "http://100.100.100.200",
            Cloud::Aws | Cloud::Azure | Cloud::Gcp => "http://169.254.169.254",
            Cloud::Tencent => "http://169.254.0.23",
        }
    }
}

pub const ALIYUN_PATH: &str = "/latest/meta-data/instance/spot/terminationtime";
pub const AWS_TOKEN_PATH: &str = "/latest/api/token";
pub const AWS_ACTION_PATH: &str = "/latest/meta-data/spot/instance-action";
pub const AZURE_EVENTS_PATH: &str = "/metadata/scheduledevents?api-version=2020-07-01";
pub const AZURE_NAME_PATH: &str =
    "/metadata/instance/compute/name?api-version=2021-02-01&format=text";
pub const GCP_PATH: &str = "/computeMetadata/v1/instance/preempted";
pub const TENCENT_PATH: &str = "/latest/meta-data/spot/termination-time";

/// Azure's fixed chassis asset tag, which tells an Azure VM from any other Hyper-V guest.
pub const AZURE_ASSET_TAG: &str = "7783-7084-3265-9085-8269-3286-77";

fn parse_endpoint(s: &str) -> Result<BaseUrl, String> {
    BaseUrl::parse(s).map_err(|e| e.to_string())
}

crate::probe_settings! {
    /// Settings of the spot probe.
    pub struct SpotConfig for "spot" ("SPOT") {
        /// Cloud whose termination notices to watch; auto detects it from DMI under the host root.
        #[arg(id = "cloud", long = "cloud", env = "NODEPROBE_CLOUD", value_enum, default_value_t = CloudSetting::Auto)]
        pub cloud: CloudSetting,
        /// Base URL of the metadata service instead of the cloud's own (tests, proxies).
        #[arg(id = "metadata-endpoint", long = "metadata-endpoint", env = "NODEPROBE_METADATA_ENDPOINT", value_parser = parse_endpoint)]
        pub metadata_endpoint: Option<BaseUrl>,
        /// Deadline of each metadata HTTP request (connect, send and the whole answer).
        #[arg(id = "spot-request-timeout", long = "spot-request-timeout", env = "NODEPROBE_SPOT_REQUEST_TIMEOUT", default_value = "5s", value_parser = crate::parse_duration)]
        pub request_timeout: Duration,
    }
    schedule: timeout "30s", interval "60s";
}

// === cloud detection ===

/// The DMI attributes cloud detection looks at (`/sys/class/dmi/id/*`), trimmed; empty when
/// absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dmi {
    pub sys_vendor: String,
    pub product_name: String,
    pub bios_vendor: String,
    pub bios_version: String,
    pub chassis_asset_tag: String,
}

impl Dmi {
    /// Read the attributes from `<sys>/class/dmi/id`; unreadable files count as empty.
    pub fn read(sys: &Path) -> Dmi {
        let dir = sys.join("class").join("dmi").join("id");
        let f = |name: &str| HostPaths::read_trimmed(&dir.join(name)).unwrap_or_default();
        Dmi {
            sys_vendor: f("sys_vendor"),
            product_name: f("product_name"),
            bios_vendor: f("bios_vendor"),
            bios_version: f("bios_version"),
            chassis_asset_tag: f("chassis_asset_tag"),
        }
    }

    fn describe(&self) -> String {
        if self == &Dmi::default() {
            return "no DMI attributes".to_string();
        }
        format!(
            "sys_vendor {:?}, product_name {:?}, bios_vendor {:?}",
            self.sys_vendor, self.product_name, self.bios_vendor
        )
    }
}

/// Which known cloud the DMI attributes belong to, if any (pure).
pub fn detect_cloud(dmi: &Dmi) -> Option<Cloud> {
    let vendor = dmi.sys_vendor.to_ascii_lowercase();
    let product = dmi.product_name.to_ascii_lowercase();
    let bios = dmi.bios_vendor.to_ascii_lowercase();
    let bios_version = dmi.bios_version.to_ascii_lowercase();
    if vendor.starts_with("alibaba cloud") || product.starts_with("alibaba cloud") {
        Some(Cloud::Aliyun)
    } else if vendor == "amazon ec2"
        || bios == "amazon ec2"
        // Xen-based instances: sys_vendor "Xen", bios_version "4.11.amazon".
        || (vendor == "xen" && bios_version.ends_with(".amazon"))
    {
        Some(Cloud::Aws)
    } else if vendor == "microsoft corporation" && dmi.chassis_asset_tag.trim() == AZURE_ASSET_TAG {
        Some(Cloud::Azure)
    } else if vendor == "google" || product == "google compute engine" || bios == "google" {
        Some(Cloud::Gcp)
    } else if vendor.starts_with("tencent cloud") {
        Some(Cloud::Tencent)
    } else {
        None
    }
}

// === time parsing (pure; calendar arithmetic is jiff's) ===

/// The latest Unix second with a four-digit year.
const MAX_UNIX: i64 = 253_402_300_799;

/// `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|±HH:MM|±HHMM]`; without a zone, `default_offset_secs`
/// applies. Returns Unix seconds (UTC), from 1970 to 9999.
pub fn parse_datetime(s: &str, default_offset_secs: i64) -> Option<i64> {
    use crate::timefmt::{civil, tz, Timestamp};
    let s = s.trim();
    if s.len() < 19 || !s.is_ascii() || !matches!(s.as_bytes()[10], b'T' | b't' | b' ') {
        return None;
    }
    let iso = format!("{}T{}", &s[..10], &s[11..]);
    let mut zone = &s[19..];
    if let Some(frac) = zone.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        zone = &frac[digits..];
    }
    let unix = if zone.is_empty() {
        // (jiff's civil parser would also take, and ignore, an offset: only without one)
        let dt: civil::DateTime = iso.parse().ok()?;
        let offset = tz::Offset::from_seconds(i32::try_from(default_offset_secs).ok()?).ok()?;
        offset.to_timestamp(dt).ok()?.as_second()
    } else {
        iso.parse::<Timestamp>().ok()?.as_second()
    };
    (0..=MAX_UNIX).contains(&unix).then_some(unix)
}

/// RFC 1123 (`Mon, 19 Sep 2016 18:29:47 GMT`), the format of Azure's `NotBefore`: UTC only.
pub fn parse_rfc1123(s: &str) -> Option<i64> {
    let s = s.trim();
    let utc = ["GMT", "UTC", "Z", "+0000"]
        .iter()
        .find_map(|z| s.strip_suffix(z).filter(|r| r.ends_with(' ')))?;
    let t = jiff::fmt::rfc2822::parse(&format!("{utc}+0000")).ok()?;
    // the same range as parse_datetime: a date before 1970 is garbage, not a notice
    let unix = t.timestamp().as_second();
    (0..=MAX_UNIX).contains(&unix).then_some(unix)
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_utc(unix: i64) -> String {
    crate::timefmt::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

// === answers (pure) ===

/// What the metadata service says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// No termination notice; the text says what was seen.
    None(String),
    /// A termination notice; `time` is the termination time in UTC when the cloud gives one.
    Terminating { time: Option<String>, what: String },
}

/// How a garbage or error answer is described (the probe reports it as Unknown).
pub type AnswerError = String;

/// At most `max` characters of outside text on one line (control characters as spaces),
/// `...` when cut.
fn one_line(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push_str("...");
    }
    out
}

fn body_excerpt(body: &str) -> String {
    let one_line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(60)
        .collect();
    if body.chars().count() > 60 {
        format!("{one_line:?}...")
    } else {
        format!("{one_line:?}")
    }
}

/// A JSON error, cut: serde quotes the offending value, which may be most of the body.
fn json_error(e: &serde_json::Error) -> String {
    one_line(&e.to_string(), 100)
}

/// Common status handling: 404 = no notice; other non-200 = error.
fn check_status(cloud: Cloud, r: &Response, what: &str) -> Result<bool, AnswerError> {
    match r.status {
        200 => Ok(true),
        404 => Ok(false),
        s => Err(format!(
            "{} metadata answered HTTP {s} to {what}: {}",
            cloud.name(),
            body_excerpt(&r.text())
        )),
    }
}

/// Alibaba Cloud `instance/spot/terminationtime`: an RFC 3339 UTC time.
pub fn parse_aliyun(r: &Response) -> Result<Notice, AnswerError> {
    if !check_status(Cloud::Aliyun, r, ALIYUN_PATH)? {
        return Ok(Notice::None("no termination time (HTTP 404)".into()));
    }
    let body = r.text();
    let t = parse_datetime(&body, 0).ok_or_else(|| {
        format!(
            "aliyun terminationtime is not a time: {}",
            body_excerpt(&body)
        )
    })?;
    Ok(Notice::Terminating {
        time: Some(format_utc(t)),
        what: "aliyun spot terminationtime".into(),
    })
}

/// Tencent Cloud `spot/termination-time`: `YYYY-MM-DD HH:MM:SS` in UTC+8 (the documented
/// zone); an explicit zone is honoured.
pub fn parse_tencent(r: &Response) -> Result<Notice, AnswerError> {
    if !check_status(Cloud::Tencent, r, TENCENT_PATH)? {
        return Ok(Notice::None("no termination time (HTTP 404)".into()));
    }
    let body = r.text();
    let t = parse_datetime(&body, 8 * 3600).ok_or_else(|| {
        format!(
            "tencent termination-time is not a time: {}",
            body_excerpt(&body)
        )
    })?;
    Ok(Notice::Terminating {
        time: Some(format_utc(t)),
        what: "tencent spot termination-time".into(),
    })
}

#[derive(serde::Deserialize)]
struct AwsAction {
    action: String,
    time: String,
}

/// AWS `spot/instance-action`: `{"action": "terminate|stop|hibernate", "time": RFC 3339}`.
pub fn parse_aws(r: &Response) -> Result<Notice, AnswerError> {
    if !check_status(Cloud::Aws, r, AWS_ACTION_PATH)? {
        return Ok(Notice::None("no spot instance-action (HTTP 404)".into()));
    }
    let body = r.text();
    let a: AwsAction = serde_json::from_str(&body).map_err(|e| {
        format!(
            "aws instance-action is not the documented JSON ({}): {}",
            json_error(&e),
            body_excerpt(&body)
        )
    })?;
    if !matches!(a.action.as_str(), "terminate" | "stop" | "hibernate") {
        return Err(format!(
            "aws instance-action has unknown action {}",
            body_excerpt(&a.action)
        ));
    }
    let t = parse_datetime(&a.time, 0).ok_or_else(|| {
        format!(
            "aws instance-action time is not a time: {}",
            body_excerpt(&a.time)
        )
    })?;
    Ok(Notice::Terminating {
        time: Some(format_utc(t)),
        what: format!("aws spot instance-action {}", a.action),
    })
}

#[derive(serde::Deserialize)]
struct AzureDoc {
    #[serde(rename = "Events")]
    events: Vec<AzureEvent>,
}

#[derive(serde::Deserialize)]
struct AzureEvent {
    #[serde(rename = "EventType", default)]
    event_type: String,
    #[serde(rename = "Resources", default)]
    resources: Vec<String>,
    #[serde(rename = "NotBefore", default)]
    not_before: String,
    #[serde(rename = "EventStatus", default)]
    status: String,
}

/// Azure Scheduled Events: the `Preempt` events, before filtering by VM name.
/// Returns `(resources, not_before)` of each Preempt event, or the no-notice text.
pub fn parse_azure_events(r: &Response) -> Result<Vec<(Vec<String>, String)>, AnswerError> {
    if !check_status(Cloud::Azure, r, AZURE_EVENTS_PATH)? {
        return Ok(Vec::new());
    }
    let body = r.text();
    let doc: AzureDoc = serde_json::from_str(&body).map_err(|e| {
        format!(
            "azure scheduled events are not the documented JSON ({}): {}",
            json_error(&e),
            body_excerpt(&body)
        )
    })?;
    Ok(doc
        .events
        .into_iter()
        .filter(|e| e.event_type == "Preempt" && e.status != "Completed")
        .map(|e| (e.resources, e.not_before))
        .collect())
}

/// Decide on Azure Preempt events for the VM named `vm` (an event with no resources applies
/// to every VM).
pub fn azure_notice(events: &[(Vec<String>, String)], vm: &str) -> Result<Notice, AnswerError> {
    let mine = events
        .iter()
        .find(|(res, _)| res.is_empty() || res.iter().any(|r| r.eq_ignore_ascii_case(vm)));
    let Some((_, not_before)) = mine else {
        return Ok(Notice::None(if events.is_empty() {
            "no Preempt scheduled event".into()
        } else {
            format!(
                "{} Preempt event(s) for other VMs, none for {}",
                events.len(),
                one_line(vm, 64)
            )
        }));
    };
    let time = if not_before.trim().is_empty() {
        None
    } else {
        Some(format_utc(parse_rfc1123(not_before).ok_or_else(|| {
            format!(
                "azure Preempt NotBefore is not a time: {}",
                body_excerpt(not_before)
            )
        })?))
    };
    Ok(Notice::Terminating {
        time,
        what: "azure Preempt scheduled event".into(),
    })
}

/// GCP `instance/preempted`: `TRUE` or `FALSE`.
pub fn parse_gcp(r: &Response) -> Result<Notice, AnswerError> {
    if !check_status(Cloud::Gcp, r, GCP_PATH)? {
        return Ok(Notice::None(
            "instance/preempted not served (HTTP 404)".into(),
        ));
    }
    match r.text().as_str() {
        "FALSE" => Ok(Notice::None("instance/preempted is FALSE".into())),
        "TRUE" => Ok(Notice::Terminating {
            time: None,
            what: "gcp instance/preempted is TRUE".into(),
        }),
        other => Err(format!(
            "gcp instance/preempted is neither TRUE nor FALSE: {}",
            body_excerpt(other)
        )),
    }
}

/// Turn a decided notice into the condition outcome (pure).
pub fn outcome(cloud: Cloud, notice: Result<Notice, AnswerError>) -> Outcome {
    match notice {
        Ok(Notice::None(what)) => Outcome::ok_with(format!("{}: {what}", cloud.name())),
        Ok(Notice::Terminating { time, what }) => Outcome::problem(
            CONDITION.problem_reason,
            match time {
                Some(t) => format!("instance is going to be terminated at {t} ({what})"),
                None => format!("instance is going to be terminated now ({what})"),
            },
        ),
        Err(e) => Outcome::unknown(e),
    }
}

fn request_error(cloud: Cloud, e: MetadataError) -> AnswerError {
    format!("{} metadata: {e}", cloud.name())
}

/// Ask `cloud`'s metadata service (I/O).
pub async fn query(cloud: Cloud, client: &MetadataClient) -> Result<Notice, AnswerError> {
    let err = |e| request_error(cloud, e);
    match cloud {
        Cloud::Aliyun => parse_aliyun(&client.get(ALIYUN_PATH, &[]).await.map_err(err)?),
        Cloud::Tencent => parse_tencent(&client.get(TENCENT_PATH, &[]).await.map_err(err)?),
        Cloud::Gcp => parse_gcp(
            &client
                .get(GCP_PATH, &[("Metadata-Flavor", "Google")])
                .await
                .map_err(err)?,
        ),
        Cloud::Aws => {
            let tok = client
                .put(
                    AWS_TOKEN_PATH,
                    &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
                )
                .await
                .map_err(err)?;
            let token = tok.text();
            if tok.status != 200 || token.is_empty() || token.contains(['\r', '\n']) {
                return Err(format!(
                    "aws metadata: IMDSv2 token request answered HTTP {} {}",
                    tok.status,
                    body_excerpt(&token)
                ));
            }
            parse_aws(
                &client
                    .get(AWS_ACTION_PATH, &[("X-aws-ec2-metadata-token", &token)])
                    .await
                    .map_err(err)?,
            )
        }
        Cloud::Azure => {
            let h = [("Metadata", "true")];
            let events =
                parse_azure_events(&client.get(AZURE_EVENTS_PATH, &h).await.map_err(err)?)?;
            if events.is_empty() {
                return azure_notice(&events, "");
            }
            // Scheduled events list every VM of the availability/scale set: keep ours.
            let name = client.get(AZURE_NAME_PATH, &h).await.map_err(err)?;
            let vm = name.text();
            if name.status != 200 || vm.is_empty() {
                return Err(format!(
                    "azure metadata: cannot read this VM's name (HTTP {}) to match a Preempt event",
                    name.status
                ));
            }
            azure_notice(&events, &vm)
        }
    }
}

pub struct SpotProbe {
    host: HostPaths,
    config: SpotConfig,
}

impl SpotProbe {
    pub fn new(host: HostPaths, config: SpotConfig) -> Self {
        SpotProbe { host, config }
    }
}

crate::probe_impl!(SpotConfig => SpotProbe, "instance_termination_custom_checker", [CONDITION]);

impl SpotProbe {
    /// One check (what `Probe::check` runs).
    fn check_once(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let cloud = match self.config.cloud {
                CloudSetting::None => {
                    return single(
                        CONDITION,
                        Outcome::not_applicable("spot termination check disabled (--cloud none)"),
                    )
                }
                CloudSetting::Aliyun => Cloud::Aliyun,
                CloudSetting::Aws => Cloud::Aws,
                CloudSetting::Azure => Cloud::Azure,
                CloudSetting::Gcp => Cloud::Gcp,
                CloudSetting::Tencent => Cloud::Tencent,
                CloudSetting::Auto => {
                    let sys = self.host.sys();
                    let dmi = match blocking(move || Dmi::read(&sys)).await {
                        Ok(d) => d,
                        Err(e) => return single(CONDITION, Outcome::unknown(e)),
                    };
                    match detect_cloud(&dmi) {
                        Some(c) => c,
                        None => {
                            return single(
                                CONDITION,
                                Outcome::not_applicable(format!(
                                    "not in a known cloud ({}; set --cloud to force one)",
                                    dmi.describe()
                                )),
                            )
                        }
                    }
                }
            };
            let base = match &self.config.metadata_endpoint {
                Some(b) => b.clone(),
                None => match BaseUrl::parse(cloud.default_base()) {
                    Ok(b) => b,
                    Err(e) => return single(CONDITION, Outcome::unknown(e.to_string())),
                },
            };
            let client = MetadataClient::new(base, self.config.request_timeout);
            single(CONDITION, outcome(cloud, query(cloud, &client).await))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Probe;
    use bytes::Bytes;

    fn resp(status: u16, body: &str) -> Response {
        Response {
            status,
            body: Bytes::from(body.to_string()),
        }
    }

    fn dmi(vendor: &str, product: &str, bios: &str, tag: &str) -> Dmi {
        Dmi {
            sys_vendor: vendor.into(),
            product_name: product.into(),
            bios_vendor: bios.into(),
            bios_version: String::new(),
            chassis_asset_tag: tag.into(),
        }
    }

    #[test]
    fn detects_clouds_from_real_dmi_strings() {
        let cases = [
            (
                dmi("Alibaba Cloud", "Alibaba Cloud ECS", "SeaBIOS", ""),
                Some(Cloud::Aliyun),
            ),
            (
                dmi("Amazon EC2", "m5.large", "Amazon EC2", "Amazon EC2"),
                Some(Cloud::Aws),
            ),
            (
                dmi(
                    "Microsoft Corporation",
                    "Virtual Machine",
                    "Microsoft Corporation",
                    AZURE_ASSET_TAG,
                ),
                Some(Cloud::Azure),
            ),
            (
                dmi("Google", "Google Compute Engine", "Google", ""),
                Some(Cloud::Gcp),
            ),
            (
                dmi("Tencent Cloud", "CVM", "SeaBIOS", ""),
                Some(Cloud::Tencent),
            ),
            // Plain Hyper-V (no Azure asset tag), QEMU, bare metal, no DMI at all.
            (
                dmi(
                    "Microsoft Corporation",
                    "Virtual Machine",
                    "Microsoft Corporation",
                    "0000-0001",
                ),
                None,
            ),
            (
                dmi("QEMU", "Standard PC (Q35 + ICH9, 2009)", "SeaBIOS", ""),
                None,
            ),
            (dmi("Dell Inc.", "PowerEdge R740", "Dell Inc.", ""), None),
            (Dmi::default(), None),
        ];
        for (d, want) in cases {
            assert_eq!(detect_cloud(&d), want, "{d:?}");
        }
        let xen_aws = Dmi {
            sys_vendor: "Xen".into(),
            product_name: "HVM domU".into(),
            bios_vendor: "Xen".into(),
            bios_version: "4.11.amazon".into(),
            chassis_asset_tag: String::new(),
        };
        assert_eq!(detect_cloud(&xen_aws), Some(Cloud::Aws));
    }

    #[test]
    fn dmi_is_read_from_the_host_root() {
        let dir = tempfile::tempdir().unwrap();
        let id = dir.path().join("sys/class/dmi/id");
        std::fs::create_dir_all(&id).unwrap();
        std::fs::write(id.join("sys_vendor"), "Google\n").unwrap();
        std::fs::write(id.join("product_name"), "Google Compute Engine\n").unwrap();
        let d = Dmi::read(&dir.path().join("sys"));
        assert_eq!(d.sys_vendor, "Google");
        assert_eq!(d.chassis_asset_tag, "");
        assert_eq!(detect_cloud(&d), Some(Cloud::Gcp));
        assert_eq!(Dmi::read(&dir.path().join("nope")), Dmi::default());
    }

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z", 0), Some(0));
        assert_eq!(parse_datetime("2015-01-05T18:02:00Z", 0), Some(1420480920));
        assert_eq!(
            parse_datetime("2015-01-05T18:02:00.123Z", 0),
            Some(1420480920)
        );
        assert_eq!(
            parse_datetime("2015-01-05T20:02:00+02:00", 0),
            Some(1420480920)
        );
        assert_eq!(
            parse_datetime("2015-01-05T13:02:00-0500", 0),
            Some(1420480920)
        );
        // Tencent: no zone, UTC+8.
        assert_eq!(
            parse_datetime("2018-08-18 12:05:33", 8 * 3600).map(format_utc),
            Some("2018-08-18T04:05:33Z".into())
        );
        assert_eq!(
            parse_datetime("2024-02-29T00:00:00Z", 0).map(format_utc),
            Some("2024-02-29T00:00:00Z".into())
        );
        for bad in [
            "",
            "tomorrow",
            "2023-02-29T00:00:00Z",
            "2015-13-05T18:02:00Z",
            "2015-01-05T24:02:00Z",
            "2015-01-05X18:02:00Z",
            "2015-01-05T18:02:00Q",
            "2015-01-05T18:02:00+2",
            "2015-01-05T18:02:00.Z",
            "２０15-01-05T18:02:00Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_datetime(bad, 0), None, "{bad}");
        }
        assert_eq!(
            parse_rfc1123("Mon, 19 Sep 2016 18:29:47 GMT").map(format_utc),
            Some("2016-09-19T18:29:47Z".into())
        );
        assert_eq!(
            parse_rfc1123("19 Sep 2016 18:29:47 GMT").map(format_utc),
            Some("2016-09-19T18:29:47Z".into())
        );
        // seconds are optional in RFC 2822 (jiff's parser)
        assert_eq!(parse_rfc1123("Mon, 19 Sep 2016 18:29 UTC"), Some(1474309740));
        // found by fuzzing (metadata_answer): a year before 1970 is no notice time
        assert_eq!(parse_rfc1123("Fri, 27 Nov 0635 09:30:00 GMT"), None);
        for bad in [
            "",
            "Mon, 19 Foo 2016 18:29:47 GMT",
            "Mon, 19 Sep 2016 18:29:47 CEST",
        ] {
            assert_eq!(parse_rfc1123(bad), None, "{bad}");
        }
        assert_eq!(format_utc(951782400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(4102444799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn parsers_never_panic_on_garbage() {
        let alphabet = b"0123456789-:TZ+. ,GMTSepMon\xff";
        for bytes in crate::testing::arbitrary(0x2545_F491_4F6C_DD1D, alphabet, 32, 20_000) {
            let s = String::from_utf8_lossy(&bytes);
            let _ = parse_datetime(&s, 0);
            let _ = parse_rfc1123(&s);
            let _ = BaseUrl::parse(&format!("http://{s}"));
            let _ = parse_aws(&resp(200, &s));
        }
    }

    #[test]
    fn aliyun_answers() {
        assert_eq!(
            parse_aliyun(&resp(404, "")),
            Ok(Notice::None("no termination time (HTTP 404)".into()))
        );
        let out = outcome(
            Cloud::Aliyun,
            parse_aliyun(&resp(200, "2015-01-05T18:02:00Z\n")),
        );
        assert_eq!(
            out,
            Outcome::problem(
                "InstanceToBeTerminated",
                "instance is going to be terminated at 2015-01-05T18:02:00Z (aliyun spot terminationtime)"
            )
        );
        let e = parse_aliyun(&resp(200, "soon")).unwrap_err();
        assert!(e.contains("not a time") && e.contains("\"soon\""), "{e}");
        let e = parse_aliyun(&resp(500, "oops")).unwrap_err();
        assert!(e.contains("HTTP 500"), "{e}");
        assert!(matches!(
            outcome(Cloud::Aliyun, parse_aliyun(&resp(403, ""))),
            Outcome::Unknown { .. }
        ));
    }

    #[test]
    fn tencent_answers_are_utc_plus_8() {
        assert_eq!(
            parse_tencent(&resp(200, "2018-08-18 12:05:33")),
            Ok(Notice::Terminating {
                time: Some("2018-08-18T04:05:33Z".into()),
                what: "tencent spot termination-time".into()
            })
        );
        assert!(matches!(parse_tencent(&resp(404, "")), Ok(Notice::None(_))));
        assert!(parse_tencent(&resp(200, "")).is_err());
    }

    #[test]
    fn aws_answers() {
        assert_eq!(
            parse_aws(&resp(
                200,
                r#"{"action": "terminate", "time": "2017-09-18T08:22:00Z"}"#
            )),
            Ok(Notice::Terminating {
                time: Some("2017-09-18T08:22:00Z".into()),
                what: "aws spot instance-action terminate".into()
            })
        );
        assert!(matches!(
            parse_aws(&resp(
                200,
                r#"{"action":"stop","time":"2017-09-18T08:22:00Z"}"#
            )),
            Ok(Notice::Terminating { .. })
        ));
        assert!(matches!(parse_aws(&resp(404, "")), Ok(Notice::None(_))));
        for bad in [
            "{not json",
            r#"{"action":"terminate"}"#,
            r#"{"action":"dance","time":"2017-09-18T08:22:00Z"}"#,
            r#"{"action":"terminate","time":"later"}"#,
        ] {
            assert!(parse_aws(&resp(200, bad)).is_err(), "{bad}");
        }
        assert!(parse_aws(&resp(401, "")).unwrap_err().contains("HTTP 401"));
    }

    const AZURE: &str = r#"{"DocumentIncarnation": 3, "Events": [
        {"EventId": "A", "EventType": "Freeze", "ResourceType": "VirtualMachine", "Resources": ["vm-1"], "EventStatus": "Scheduled", "NotBefore": "Mon, 19 Sep 2016 18:00:00 GMT"},
        {"EventId": "B", "EventType": "Preempt", "ResourceType": "VirtualMachine", "Resources": ["vm-2"], "EventStatus": "Scheduled", "NotBefore": "Mon, 19 Sep 2016 18:10:00 GMT"},
        {"EventId": "C", "EventType": "Preempt", "ResourceType": "VirtualMachine", "Resources": ["vm-1"], "EventStatus": "Scheduled", "NotBefore": "Mon, 19 Sep 2016 18:29:47 GMT"}
    ]}"#;

    #[test]
    fn azure_answers() {
        let events = parse_azure_events(&resp(200, AZURE)).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(
            azure_notice(&events, "vm-1"),
            Ok(Notice::Terminating {
                time: Some("2016-09-19T18:29:47Z".into()),
                what: "azure Preempt scheduled event".into()
            })
        );
        assert_eq!(
            azure_notice(&events, "vm-3"),
            Ok(Notice::None(
                "2 Preempt event(s) for other VMs, none for vm-3".into()
            ))
        );
        let empty =
            parse_azure_events(&resp(200, r#"{"DocumentIncarnation":0,"Events":[]}"#)).unwrap();
        assert_eq!(
            azure_notice(&empty, ""),
            Ok(Notice::None("no Preempt scheduled event".into()))
        );
        assert!(parse_azure_events(&resp(404, "")).unwrap().is_empty());
        assert!(parse_azure_events(&resp(200, "<html>")).is_err());
        assert!(parse_azure_events(&resp(200, r#"{"DocumentIncarnation":0}"#)).is_err());
        let no_time = vec![(vec![], String::new())];
        assert!(matches!(
            azure_notice(&no_time, "x"),
            Ok(Notice::Terminating { time: None, .. })
        ));
        let bad_time = vec![(vec!["x".to_string()], "whenever".to_string())];
        assert!(azure_notice(&bad_time, "x").is_err());
    }

    #[test]
    fn gcp_answers() {
        assert!(matches!(
            parse_gcp(&resp(200, "FALSE")),
            Ok(Notice::None(_))
        ));
        assert_eq!(
            outcome(Cloud::Gcp, parse_gcp(&resp(200, "TRUE"))),
            Outcome::problem(
                "InstanceToBeTerminated",
                "instance is going to be terminated now (gcp instance/preempted is TRUE)"
            )
        );
        assert!(parse_gcp(&resp(200, "MAYBE")).is_err());
        assert!(matches!(parse_gcp(&resp(404, "")), Ok(Notice::None(_))));
    }

    #[test]
    fn garbage_is_excerpted_on_one_line() {
        let e = parse_aliyun(&resp(200, &format!("a\nb{}", "x".repeat(100)))).unwrap_err();
        assert!(!e.contains('\n') && e.contains("..."), "{e}");
    }

    /// Found by fuzzing (metadata_answer): serde quoted a long JSON string value in full,
    /// and an unknown action or NotBefore was quoted whole; every report is now bounded.
    #[test]
    fn long_values_in_json_answers_are_cut() {
        let long = "\u{e7be}".repeat(5000);
        for body in [
            format!("{{\"action\": 1, \"time\": \"{long}\"}}"),
            format!("\"{long}\""),
            format!("{{\"action\": \"{long}\", \"time\": \"x\"}}"),
            format!("{{\"action\": \"stop\", \"time\": \"{long}\"}}"),
        ] {
            let e = parse_aws(&resp(200, &body)).unwrap_err();
            assert!(
                e.len() < 2048 && !e.contains('\n'),
                "{} bytes: {e}",
                e.len()
            );
        }
        let e = parse_azure_events(&resp(200, &format!("{{\"Events\": \"{long}\"}}"))).unwrap_err();
        assert!(e.len() < 2048, "{} bytes: {e}", e.len());
        let e = azure_notice(&[(vec![], long.clone())], "vm").unwrap_err();
        assert!(e.len() < 2048, "{} bytes: {e}", e.len());
        // the VM name comes from the metadata service too
        let other = vec![(vec!["other".to_string()], String::new())];
        let Ok(Notice::None(n)) = azure_notice(&other, &format!("\0{long}")) else {
            panic!()
        };
        assert!(
            n.len() < 2048 && !n.contains('\0'),
            "{} bytes: {n}",
            n.len()
        );
    }

    #[tokio::test]
    async fn no_cloud_is_not_applicable_and_none_disables() {
        let dir = tempfile::tempdir().unwrap();
        let p = SpotProbe::new(HostPaths::new(dir.path()), SpotConfig::default());
        let f = p.check().await;
        assert!(
            matches!(&f[0].outcome, Outcome::NotApplicable { why } if why.contains("not in a known cloud")),
            "{f:?}"
        );
        let p = SpotProbe::new(
            HostPaths::new(dir.path()),
            SpotConfig {
                cloud: CloudSetting::None,
                ..SpotConfig::default()
            },
        );
        assert!(matches!(
            &p.check().await[0].outcome,
            Outcome::NotApplicable { .. }
        ));
    }
}
