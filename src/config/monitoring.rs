//! `[monitoring]`: the opt-in observability add-on (issue 13): Prometheus, Alertmanager,
//! Grafana, node-exporter and kube-state-metrics in a `monitoring` namespace, and the JMX
//! exporter agent on Kafka and Cassandra. Its defaults have their home here (sized for the
//! default 1+3 t3.large cluster: README "Monitoring" has the resource cost). Validation only:
//! it must not render manifests or know how the password is made (`monitoring`, `ops`).

use std::time::Duration;

use serde::Serialize;

use super::duration::{Refused, at_least, format_duration};
use super::error::ConfigError;
use super::field::Ctx;
use super::raw::{RawMonitoring, S};

/// Off until the resource cost is proven on a real cluster: about 1 CPU and 2.5 GiB
/// requested over the cluster, plus a 20 GiB volume.
pub const DEFAULT_ENABLED: bool = false;
/// How long Prometheus keeps samples: two weeks, to compare a day with the same day last week.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(15 * 86_400);
/// Prometheus's volume. At ~1 500 series per node and ~3 000 per JVM (Kafka and Cassandra with
/// the JMX exporter) a default stack makes ~25 000 series; at ~2 bytes per sample every 30 s
/// that is ~150 MiB a day, so 15 days fit in 20 GiB with room for a busier cluster.
pub const DEFAULT_STORAGE_GB: u32 = 20;
/// Shorter retention makes the "a week ago" panels and the rate windows of the alerts useless.
const MIN_RETENTION: Duration = Duration::from_secs(2 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonitoringSpec {
    /// Prometheus's `--storage.tsdb.retention.time`.
    #[serde(with = "secs")]
    pub retention: Duration,
    /// Prometheus's PersistentVolumeClaim, in GiB.
    pub storage_gb: u32,
    /// Where Alertmanager posts firing alerts (its webhook receiver); none: alerts are only
    /// seen in Grafana, Alertmanager and `tagstack status`. They may carry a token: rendered
    /// into a Secret, never printed.
    #[serde(skip)]
    pub alert_webhooks: Vec<String>,
}

impl MonitoringSpec {
    /// `--storage.tsdb.retention.time`, in Prometheus's duration syntax (whole hours).
    pub fn retention_flag(&self) -> String {
        format!("{}h", self.retention.as_secs() / 3600)
    }

    /// `--storage.tsdb.retention.size`: 85% of the volume, so the oldest blocks go before
    /// the disk fills (the write-ahead log and compaction need the rest).
    pub fn retention_size_flag(&self) -> String {
        format!("{}MB", u64::from(self.storage_gb) * 1024 * 85 / 100)
    }
}

mod secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

/// `None` when the section is absent or `enabled = false`.
pub(super) fn monitoring(cx: &Ctx, raw: Option<&S<RawMonitoring>>) -> Result<Option<MonitoringSpec>, ConfigError> {
    let Some(section) = raw else { return Ok(None) };
    let m = section.get_ref();
    if !m.enabled.as_ref().map_or(DEFAULT_ENABLED, |e| *e.get_ref()) {
        return Ok(None);
    }
    let retention = match &m.retention {
        None => DEFAULT_RETENTION,
        Some(v) => match at_least(v.get_ref(), MIN_RETENTION) {
            // Prometheus is given whole hours.
            Ok(d) if d.as_secs() % 3600 == 0 => d,
            Ok(_) | Err(Refused::Malformed) => {
                return cx.err(
                    v.span(),
                    "monitoring.retention",
                    format!("{:?} is not a number of hours or days", v.get_ref()),
                    "write e.g. \"15d\" or \"36h\" (the default is \"15d\")",
                );
            }
            Err(Refused::TooShort) => {
                return cx.err(
                    v.span(),
                    "monitoring.retention",
                    format!("{:?} is shorter than {}", v.get_ref(), format_duration(MIN_RETENTION)),
                    "the alerts' rate windows and the dashboards need hours of history; write e.g. \"15d\"",
                );
            }
        },
    };
    let storage_gb = match &m.storage_gb {
        None => DEFAULT_STORAGE_GB,
        Some(v) if (1..=16384).contains(v.get_ref()) => u32::try_from(*v.get_ref()).unwrap_or(DEFAULT_STORAGE_GB),
        Some(v) => {
            return cx.err(
                v.span(),
                "monitoring.storage_gb",
                format!("{} is out of range", v.get_ref()),
                &format!("use 1 to 16384 (GiB of Prometheus's volume; the default is {DEFAULT_STORAGE_GB})"),
            );
        }
    };
    let mut alert_webhooks = Vec::new();
    for (i, url) in m.alert_webhooks.iter().flat_map(|l| l.get_ref().iter()).enumerate() {
        let key = format!("monitoring.alert_webhooks[{i}]");
        let text = url.get_ref();
        let host = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://"));
        if host.is_none_or(|h| h.is_empty() || h.starts_with('/') || h.contains(char::is_whitespace)) {
            // The value may hold a token: the message does not repeat it.
            return cx.err(
                url.span(),
                &key,
                "is not an http(s) URL".into(),
                "write the receiver's full URL, e.g. \"https://hooks.example.com/alerts\"",
            );
        }
        if alert_webhooks.contains(text) {
            return cx.err(url.span(), &key, "is listed twice".into(), "remove the duplicate");
        }
        alert_webhooks.push(text.clone());
    }
    Ok(Some(MonitoringSpec { retention, storage_gb, alert_webhooks }))
}
