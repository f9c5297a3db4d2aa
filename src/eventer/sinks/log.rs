//! `log`: one JSON line per delivered Event on stdout (the Event as the API serves it).

use jiff::Timestamp;

use super::super::filter::Filter;
use super::super::fold::Message;
use super::super::uri::{Uri, UriError};
use super::{template_event, BuildError, Payload, Sink};

#[derive(Debug)]
pub struct Log {
    label: String,
    filter: Filter,
}

impl Log {
    /// `log:` with optional filter options (`log:?level=Warning`).
    pub fn from_uri(label: String, raw: &str) -> Result<Log, UriError> {
        let what = format!("sink {label}");
        let q = raw.split_once('?').map(|x| x.1).unwrap_or("");
        let u = Uri::parse(&format!("http://log/?{q}"), &what)?;
        Ok(Log {
            filter: super::super::filter::Filter::from_uri(&u, &what, None)?,
            label,
        })
    }
}

impl Sink for Log {
    fn label(&self) -> &str {
        &self.label
    }
    fn filter(&self) -> &Filter {
        &self.filter
    }
    fn build(&self, msg: &Message, now: Timestamp) -> Result<Payload, BuildError> {
        serde_json::to_string(&template_event(msg, now))
            .map(Payload::Line)
            .map_err(|e| BuildError(e.to_string()))
    }
}
