//! `GET /metrics`: the whole showcase in the Prometheus text exposition format 0.0.4.
//!
//! Every request is counted by the mount that answered it (label `app`: the mount prefix,
//! `/` for the showcase's own pages), its method and its status class, with a latency
//! histogram (seconds until the response head is ready) and a gauge of requests in flight
//! (from arrival until the response body is sent or dropped). Next to them: what each app
//! can tell cheaply at scrape time (chat connections and rooms, GraphQL operations over
//! WebSocket, jobs by state, sessions and login outcomes), the process (start time, CPU
//! seconds, resident memory, open descriptors, from `/proc/self` on Linux) and a
//! `showcase_build_info` gauge.
//!
//! # Why no metrics crate
//!
//! The official Rust client, `prometheus-client`, was the first choice, and was left out
//! for the hot path: its `Histogram::observe` takes a write lock (a `parking_lot::RwLock`
//! around buckets, sum and count; its source carries a "consider using atomics" note), and
//! its labelled `Family::get_or_create` takes a read lock on a `HashMap` on every call.
//! Here the label sets are known when the showcase starts (mounts x methods x status
//! classes), so every series is a fixed slot in a flat array of `AtomicU64`: recording a
//! request is an index computation and two relaxed atomic adds (its latency bucket and the
//! latency sum), plus the in-flight increment and decrement; no lock, no allocation, no
//! map. What remains is the text encoder, which is short (below) and is checked by the
//! tests with a strict parser and, as a peer, by Prometheus's own `promtool check metrics`.
//!
//! The request counter and the histogram's `_count` are read from the same bucket slots, so
//! one scrape never shows them apart; a series appears once it has seen a request.

use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use http::{Method, Response};

/// The `Content-Type` of the exposition (text format 0.0.4).
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency bucket upper bounds, in seconds: 1 ms to 10 s, for pages that answer in
/// microseconds from memory up to argon2id logins and proxied requests (the last finite
/// bound is the proxy's request timeout).
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Slots per series: one per finite bound and one for `+Inf` alone.
const SLOTS: usize = BUCKETS.len() + 1;

/// The methods with a series of their own; any other is counted as `other`, so that a
/// client cannot grow the number of series.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
];

/// Status classes `1xx` to `5xx`.
const CLASSES: usize = 5;

/// Request metrics for a fixed set of apps; shared by every request (`Arc`).
#[derive(Debug)]
pub(crate) struct HttpMetrics {
    /// The `app` label of each app: its mount prefix, `/` (the last one) for the rest.
    apps: Vec<String>,
    /// Per app, method, class and slot: requests whose latency fell in that slot (not
    /// cumulative: one add per request; the cumulative form is summed at scrape time).
    buckets: Vec<AtomicU64>,
    /// Per app, method and class: the latency sum in nanoseconds.
    sums: Vec<AtomicU64>,
    /// Per app: requests in flight.
    in_flight: Vec<AtomicI64>,
    /// When the showcase started.
    started: SystemTime,
}

impl HttpMetrics {
    /// Metrics for the apps mounted at `prefixes` (matched in this order, as the showcase
    /// dispatches) and `/` for every other path.
    pub(crate) fn new<'a>(prefixes: impl IntoIterator<Item = &'a str>) -> Self {
        let mut apps: Vec<String> = prefixes.into_iter().map(str::to_owned).collect();
        apps.push("/".to_owned());
        let series = apps.len() * METHODS.len() * CLASSES;
        Self {
            buckets: (0..series * SLOTS).map(|_| AtomicU64::new(0)).collect(),
            sums: (0..series).map(|_| AtomicU64::new(0)).collect(),
            in_flight: (0..apps.len()).map(|_| AtomicI64::new(0)).collect(),
            apps,
            started: SystemTime::now(),
        }
    }

    /// The index of the app that answers `path`: the first prefix it is at or below.
    fn app_of(&self, path: &str) -> usize {
        let last = self.apps.len() - 1;
        self.apps
            .iter()
            .take(last)
            .position(|prefix| serve::local_path(prefix, path).is_some())
            .unwrap_or(last)
    }

    /// Starts observing a request: counts it in flight until the returned value (or the
    /// response body it is moved into by [`Observation::finish`]) is dropped.
    pub(crate) fn start(self: &Arc<Self>, method: &Method, path: &str) -> Observation {
        let app = self.app_of(path);
        if let Some(gauge) = self.in_flight.get(app) {
            gauge.fetch_add(1, Ordering::Relaxed);
        }
        let method = match *method {
            Method::GET => 0,
            Method::HEAD => 1,
            Method::POST => 2,
            Method::PUT => 3,
            Method::PATCH => 4,
            Method::DELETE => 5,
            Method::OPTIONS => 6,
            _ => 7,
        };
        Observation {
            in_flight: InFlight {
                metrics: Arc::clone(self),
                app,
            },
            method,
            started: Instant::now(),
        }
    }

    /// Records one answered request.
    fn record(&self, app: usize, method: usize, status: u16, nanos: u64) {
        let class = usize::from(status / 100).clamp(1, CLASSES) - 1;
        let series = (app * METHODS.len() + method) * CLASSES + class;
        let seconds = nanos as f64 / 1e9;
        let slot = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        if let Some(bucket) = self.buckets.get(series * SLOTS + slot) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(sum) = self.sums.get(series) {
            sum.fetch_add(nanos, Ordering::Relaxed);
        }
    }

    /// The whole exposition: request metrics, then `apps`' gauges, the process and the
    /// build.
    pub(crate) fn render(&self, apps: &AppGauges) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_requests(&mut out);
        apps.render(&mut out);
        render_process(&mut out, self.started);
        family(
            &mut out,
            "showcase_build_info",
            "gauge",
            "The showcase's version and build profile; always 1.",
        );
        sample(
            &mut out,
            "showcase_build_info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                (
                    "profile",
                    if cfg!(debug_assertions) {
                        "debug"
                    } else {
                        "release"
                    },
                ),
            ],
            1,
        );
        out
    }

    fn render_requests(&self, out: &mut String) {
        // Read every slot once, so that the counter, the buckets and `_count` agree.
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|slot| slot.load(Ordering::Relaxed))
            .collect();
        let mut live = Vec::new();
        for (app, app_label) in self.apps.iter().enumerate() {
            for (method, method_label) in METHODS.iter().enumerate() {
                for class in 0..CLASSES {
                    let series = (app * METHODS.len() + method) * CLASSES + class;
                    let slots = counts
                        .get(series * SLOTS..(series + 1) * SLOTS)
                        .unwrap_or(&[]);
                    let total: u64 = slots.iter().sum();
                    if total > 0 {
                        let class_label = format!("{}xx", class + 1);
                        live.push((series, app_label, *method_label, class_label, slots, total));
                    }
                }
            }
        }
        family(
            out,
            "showcase_http_requests_total",
            "counter",
            "Requests answered, by mount (app), method and status class.",
        );
        for (_, app, method, class, _, total) in &live {
            let labels = [
                ("app", app.as_str()),
                ("method", *method),
                ("status_class", class.as_str()),
            ];
            sample(out, "showcase_http_requests_total", &labels, total);
        }
        family(
            out,
            "showcase_http_request_duration_seconds",
            "histogram",
            "Time from a request's arrival until its response head is ready, in seconds.",
        );
        for (series, app, method, class, slots, total) in &live {
            let labels = [
                ("app", app.as_str()),
                ("method", *method),
                ("status_class", class.as_str()),
            ];
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(slots.iter()) {
                cumulative += count;
                let le = bound.to_string();
                let mut with_le = labels.to_vec();
                with_le.push(("le", le.as_str()));
                sample(
                    out,
                    "showcase_http_request_duration_seconds_bucket",
                    &with_le,
                    cumulative,
                );
            }
            let mut with_le = labels.to_vec();
            with_le.push(("le", "+Inf"));
            sample(
                out,
                "showcase_http_request_duration_seconds_bucket",
                &with_le,
                total,
            );
            let nanos = self
                .sums
                .get(*series)
                .map_or(0, |sum| sum.load(Ordering::Relaxed));
            sample(
                out,
                "showcase_http_request_duration_seconds_sum",
                &labels,
                nanos as f64 / 1e9,
            );
            sample(
                out,
                "showcase_http_request_duration_seconds_count",
                &labels,
                total,
            );
        }
        family(
            out,
            "showcase_http_requests_in_flight",
            "gauge",
            "Requests received and not yet answered in full, by mount (app).",
        );
        for (app, gauge) in self.apps.iter().zip(&self.in_flight) {
            let value = gauge.load(Ordering::Relaxed).max(0);
            sample(
                out,
                "showcase_http_requests_in_flight",
                &[("app", app)],
                value,
            );
        }
    }
}

/// What the mounted apps tell at scrape time; `None` for what an app cannot tell (a store
/// that cannot count its sessions).
#[derive(Debug, Default)]
pub(crate) struct AppGauges {
    /// Chat WebSocket connections.
    pub(crate) chat_connections: Option<usize>,
    /// Chat rooms with at least one member.
    pub(crate) chat_rooms: Option<usize>,
    /// GraphQL operations running over WebSocket (subscriptions, mostly).
    pub(crate) graphql_ws_operations: Option<usize>,
    /// Jobs this instance knows, by state (`queued`, `running`, `retrying`, `succeeded`,
    /// `dead`).
    pub(crate) jobs: Vec<(&'static str, usize)>,
    /// Sessions in the login app's store.
    pub(crate) auth_sessions: Option<usize>,
    /// Login attempts by outcome (`success`, `failure`, `throttled`).
    pub(crate) auth_logins: Vec<(&'static str, u64)>,
}

impl AppGauges {
    fn render(&self, out: &mut String) {
        let gauges = [
            (
                "showcase_chat_connections",
                "Open chat WebSocket connections.",
                self.chat_connections,
            ),
            (
                "showcase_chat_rooms",
                "Chat rooms with at least one member.",
                self.chat_rooms,
            ),
            (
                "showcase_graphql_websocket_operations",
                "GraphQL operations (subscriptions) running over graphql-transport-ws.",
                self.graphql_ws_operations,
            ),
            (
                "showcase_auth_sessions",
                "Sessions held by the login app at /auth.",
                self.auth_sessions,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                family(out, name, "gauge", help);
                sample(out, name, &[], value);
            }
        }
        if !self.jobs.is_empty() {
            family(
                out,
                "showcase_jobs",
                "gauge",
                "Jobs of the task queue at /jobs that this instance knows, by state.",
            );
            for (state, count) in &self.jobs {
                sample(out, "showcase_jobs", &[("state", *state)], count);
            }
        }
        if !self.auth_logins.is_empty() {
            family(
                out,
                "showcase_auth_logins_total",
                "counter",
                "Login attempts at /auth by outcome: success, failure, throttled.",
            );
            for (outcome, count) in &self.auth_logins {
                sample(
                    out,
                    "showcase_auth_logins_total",
                    &[("outcome", *outcome)],
                    count,
                );
            }
        }
    }
}

/// The standard process metrics, where `/proc/self` has them (Linux); the start time
/// always.
fn render_process(out: &mut String, started: SystemTime) {
    let start = started
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64());
    family(
        out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch, in seconds.",
    );
    sample(out, "process_start_time_seconds", &[], start);
    if let Some(seconds) = cpu_seconds() {
        family(
            out,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
        );
        sample(out, "process_cpu_seconds_total", &[], seconds);
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for (field, name, help) in [
        (
            "VmRSS:",
            "process_resident_memory_bytes",
            "Resident memory size, in bytes.",
        ),
        (
            "VmSize:",
            "process_virtual_memory_bytes",
            "Virtual memory size, in bytes.",
        ),
    ] {
        if let Some(kib) = status_kib(&status, field) {
            family(out, name, "gauge", help);
            sample(out, name, &[], kib * 1024);
        }
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        family(out, "process_open_fds", "gauge", "Open file descriptors.");
        sample(out, "process_open_fds", &[], entries.count());
    }
}

/// `utime + stime` of `/proc/self/stat` (fields 14 and 15, counted after the command name,
/// which may hold spaces), in clock ticks of 1/100 s: `USER_HZ` is 100 on every Linux
/// architecture's user ABI.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / 100.0)
}

/// The value in KiB of a `/proc/self/status` line such as `VmRSS:   1234 kB`.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.get(field.len()..)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `# HELP` and `# TYPE` of a metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample line: `name{labels} value`, label values escaped as the format says
/// (backslash, double quote, line feed).
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, text)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            for c in text.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// One request being observed; [`Observation::finish`] records it.
#[derive(Debug)]
pub(crate) struct Observation {
    in_flight: InFlight,
    method: usize,
    started: Instant,
}

impl Observation {
    /// Records the response's status and the time to its head, and keeps the request in
    /// flight until the response body ends or is dropped.
    pub(crate) fn finish(self, response: Response<serve::Body>) -> Response<serve::Body> {
        let nanos = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let app = self.in_flight.app;
        self.in_flight
            .metrics
            .record(app, self.method, response.status().as_u16(), nanos);
        let in_flight = self.in_flight;
        response.map(|inner| {
            serve::boxed(Tracked {
                inner,
                _in_flight: in_flight,
            })
        })
    }
}

/// Counts one request in flight while it lives.
#[derive(Debug)]
struct InFlight {
    metrics: Arc<HttpMetrics>,
    app: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(gauge) = self.metrics.in_flight.get(self.app) {
            gauge.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A response body that keeps its request in flight until it is dropped.
#[derive(Debug)]
struct Tracked {
    inner: serve::Body,
    /// Held for its `Drop`.
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = serve::BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn label_values_and_help_are_escaped_as_the_format_says() {
        let metrics = HttpMetrics::new(["/a\"b\\c\nd"]);
        metrics.record(0, 0, 200, 1_000);
        let text = metrics.render(&AppGauges::default());
        assert!(
            text.contains(
                "showcase_http_requests_total{app=\"/a\\\"b\\\\c\\nd\",method=\"GET\",status_class=\"2xx\"} 1\n"
            ),
            "{text}"
        );
        let mut help = String::new();
        family(&mut help, "x", "gauge", "back\\slash\nnew line");
        assert_eq!(help, "# HELP x back\\\\slash\\nnew line\n# TYPE x gauge\n");
    }

    #[test]
    fn a_latency_lands_in_its_bucket_and_every_bucket_above_it() {
        let metrics = HttpMetrics::new(["/api"]);
        // 3 ms: above 2.5 ms, within 5 ms; 20 s: only +Inf.
        metrics.record(0, 2, 201, 3_000_000);
        metrics.record(0, 2, 201, 20_000_000_000);
        let text = metrics.render(&AppGauges::default());
        let bucket = |le: &str| {
            format!(
                "showcase_http_request_duration_seconds_bucket{{app=\"/api\",method=\"POST\",status_class=\"2xx\",le=\"{le}\"}}"
            )
        };
        assert!(
            text.contains(&format!("{} 0\n", bucket("0.0025"))),
            "{text}"
        );
        assert!(text.contains(&format!("{} 1\n", bucket("0.005"))), "{text}");
        assert!(text.contains(&format!("{} 1\n", bucket("10"))), "{text}");
        assert!(text.contains(&format!("{} 2\n", bucket("+Inf"))), "{text}");
        assert!(text.contains(
            "showcase_http_request_duration_seconds_sum{app=\"/api\",method=\"POST\",status_class=\"2xx\"} 20.003\n"
        ), "{text}");
        // Series that saw no request are left out; every app has its in-flight gauge.
        assert!(!text.contains("method=\"GET\""), "{text}");
        assert!(text.contains("showcase_http_requests_in_flight{app=\"/\"} 0\n"));
    }

    #[test]
    fn paths_are_counted_by_the_first_mount_they_are_at_or_below() {
        let metrics = HttpMetrics::new(["/oauth", "/oauth-login"]);
        assert_eq!(metrics.app_of("/oauth/authorize"), 0);
        assert_eq!(metrics.app_of("/oauth-login/"), 1);
        assert_eq!(metrics.app_of("/oauthx"), 2);
        assert_eq!(metrics.app_of("/"), 2);
    }

    #[test]
    fn a_request_is_in_flight_until_its_response_body_is_dropped() {
        let metrics = Arc::new(HttpMetrics::new(["/api"]));
        let observation = metrics.start(&Method::GET, "/api/users");
        assert_eq!(metrics.in_flight[0].load(Ordering::Relaxed), 1);
        let response = observation.finish(Response::new(serve::full("x")));
        assert_eq!(metrics.in_flight[0].load(Ordering::Relaxed), 1);
        drop(response);
        assert_eq!(metrics.in_flight[0].load(Ordering::Relaxed), 0);
        // A request whose handler is dropped before it answers leaves flight too.
        drop(metrics.start(&Method::from_bytes(b"BREW").unwrap(), "/x"));
        assert_eq!(metrics.in_flight[1].load(Ordering::Relaxed), 0);
    }
}
