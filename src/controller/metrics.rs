//! `/metrics` in Prometheus' text format, and `/healthz`. A replica that does not lead exports
//! only `k10_controller_leader 0`: the figures are the leader's.
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `k10_controller_leader` | | 1 on the replica that runs policies |
//! | `k10_policy_valid` | policy | 1 when the policy's spec validated |
//! | `k10_policy_paused` | policy | 1 when paused |
//! | `k10_policy_last_run_timestamp_seconds` | policy | end of the last run (Unix time) |
//! | `k10_policy_last_run_success` | policy | 1 when the last run succeeded |
//! | `k10_policy_last_run_duration_seconds` | policy | how long it took |
//! | `k10_policy_last_run_bytes` | policy | bytes it uploaded |
//! | `k10_profile_valid` | profile | 1 when the bucket checks passed |
//! | `k10_maintenance_last_run_timestamp_seconds` | | end of the last maintenance Job |
//! | `k10_maintenance_last_run_success` | | 1 when it succeeded |
//! | `k10_protection_horizon_days` | profile | how many days ahead the earliest lock k10 still needs ends |
//! | `k10_protection_period_days` | profile | the profile's protection period P |
//!
//! Alert when `k10_protection_horizon_days < k10_protection_period_days`: a restore point
//! could then expire within P of an attack.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One gauge's values by label value (`""` for a gauge without labels).
type Gauge = BTreeMap<String, f64>;

#[derive(Debug, Default)]
pub struct Metrics {
    gauges: Mutex<BTreeMap<&'static str, (&'static str, &'static str, Gauge)>>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// Sets `name{label=value}` (help text and label name fixed per metric).
    pub fn set(&self, name: &'static str, help: &'static str, label: &'static str, value_of_label: &str, value: f64) {
        let mut gauges = self.gauges.lock().expect("metrics lock");
        let entry = gauges.entry(name).or_insert((help, label, Gauge::new()));
        entry.2.insert(value_of_label.to_string(), value);
    }

    /// Drops every series of `name` whose label value is not in `keep` (deleted objects).
    pub fn retain(&self, name: &'static str, keep: &[String]) {
        if let Some(entry) = self.gauges.lock().expect("metrics lock").get_mut(name) {
            entry.2.retain(|k, _| keep.contains(k));
        }
    }

    /// Forgets everything but leadership (a replica that stops leading).
    pub fn clear(&self) {
        self.gauges.lock().expect("metrics lock").clear();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, (help, label, values)) in self.gauges.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (value_of_label, value) in values {
                if label.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let escaped = value_of_label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                    let _ = writeln!(out, "{name}{{{label}=\"{escaped}\"}} {value}");
                }
            }
        }
        out
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            // The request line and headers; a scrape sends no body.
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                match tokio::time::timeout(std::time::Duration::from_secs(10), socket.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => request.extend_from_slice(&buf[..n]),
                    _ => return,
                }
            }
            let line = String::from_utf8_lossy(&request).lines().next().unwrap_or_default().to_string();
            let path = line.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path.split('?').next().unwrap_or("/") {
                "/metrics" => ("200 OK", metrics.render()),
                "/healthz" | "/readyz" => ("200 OK", "ok\n".to_string()),
                _ => ("404 Not Found", "not found: try /metrics\n".to_string()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let m = Metrics::default();
        m.set("k10_policy_valid", "1 when valid", "policy", "a\"b", 1.0);
        m.set("k10_controller_leader", "1 on the leader", "", "", 0.0);
        m.set("k10_policy_valid", "1 when valid", "policy", "gone", 0.0);
        m.retain("k10_policy_valid", &["a\"b".to_string()]);
        assert_eq!(
            m.render(),
            "# HELP k10_controller_leader 1 on the leader\n# TYPE k10_controller_leader gauge\nk10_controller_leader 0\n\
             # HELP k10_policy_valid 1 when valid\n# TYPE k10_policy_valid gauge\nk10_policy_valid{policy=\"a\\\"b\"} 1\n"
        );
    }
}
