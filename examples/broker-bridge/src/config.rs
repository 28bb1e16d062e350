//! The TOML configuration: `[bridge]` settings and `[[route]]` tables (see `bridge.toml`).

use std::time::Duration;

use broker_core::Route;
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    #[serde(default)]
    pub(crate) bridge: BridgeSettings,
    #[serde(rename = "route", default)]
    pub(crate) routes: Vec<RouteConfig>,
}

/// `[bridge]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct BridgeSettings {
    /// The consumer name at the sources; keep it across restarts.
    pub(crate) consumer: String,
    /// How long a drain may take after Ctrl-C or SIGTERM.
    pub(crate) shutdown_grace_ms: u64,
}

impl Default for BridgeSettings {
    fn default() -> Self {
        Self {
            consumer: "bridge".into(),
            shutdown_grace_ms: 10_000,
        }
    }
}

/// One `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteConfig {
    /// The source broker's URL.
    pub(crate) from: String,
    /// Prefix of the names on the source broker.
    #[serde(default)]
    pub(crate) from_prefix: String,
    /// The source queue.
    pub(crate) queue: String,
    /// Subject patterns bound to the source queue.
    #[serde(default)]
    pub(crate) subjects: Vec<String>,
    /// The destination broker's URL.
    pub(crate) to: String,
    /// Prefix of the names on the destination broker.
    #[serde(default)]
    pub(crate) to_prefix: String,
    /// The destination queue (a name or a template such as `room-{1}`).
    pub(crate) to_queue: Option<String>,
    /// Or the destination topic.
    pub(crate) to_topic: Option<String>,
    pub(crate) batch: Option<usize>,
    pub(crate) lanes: Option<usize>,
    /// The source queue's ack wait.
    pub(crate) ack_wait_ms: Option<u64>,
    /// A header whose UUID becomes the forwarded message's id.
    pub(crate) id_header: Option<String>,
}

impl Config {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        if config.routes.is_empty() {
            return Err("no [[route]]".into());
        }
        for (i, route) in config.routes.iter().enumerate() {
            let n = i + 1;
            match (&route.to_queue, &route.to_topic) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => {
                    return Err(format!(
                        "route {n}: give exactly one of to_queue and to_topic"
                    ));
                }
            }
            if route.batch == Some(0) || route.lanes == Some(0) {
                return Err(format!("route {n}: batch and lanes must be at least 1"));
            }
        }
        Ok(config)
    }
}

impl RouteConfig {
    pub(crate) fn source_endpoint(&self) -> (String, String) {
        (self.from.clone(), self.from_prefix.clone())
    }

    pub(crate) fn target_endpoint(&self) -> (String, String) {
        (self.to.clone(), self.to_prefix.clone())
    }

    pub(crate) fn target_name(&self) -> String {
        match (&self.to_queue, &self.to_topic) {
            (Some(queue), _) => queue.clone(),
            (None, Some(topic)) => format!("topic {topic}"),
            (None, None) => String::new(),
        }
    }

    pub(crate) fn to_route(&self) -> Route {
        let mut route = match (&self.to_queue, &self.to_topic) {
            (Some(queue), _) => Route::to_queue(&self.queue, queue),
            (None, topic) => Route::to_topic(&self.queue, topic.as_deref().unwrap_or_default()),
        };
        for subject in &self.subjects {
            route = route.subject(subject);
        }
        if let Some(ms) = self.ack_wait_ms {
            let config = route
                .get_source_config()
                .clone()
                .ack_wait(Duration::from_millis(ms));
            route = route.source_config(config);
        }
        if let Some(header) = &self.id_header {
            route = route.id_header(header);
        }
        route
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn the_sample_parses_and_mistakes_are_named() {
        let sample = include_str!("../bridge.toml");
        let config = Config::parse(sample).unwrap();
        assert_eq!(config.routes.len(), 2);
        assert_eq!(config.routes[0].to_route().subjects(), ["sensors.*.temp"]);
        let both =
            "[[route]]\nfrom='embedded'\nqueue='a'\nto='embedded'\nto_queue='b'\nto_topic='c'\n";
        assert!(Config::parse(both).unwrap_err().contains("exactly one"));
        assert!(Config::parse("").unwrap_err().contains("no [[route]]"));
        assert!(Config::parse("[[route]]\nfrom='x'\n").is_err());
        let typo = "[bridge]\nconsumr='x'\n";
        assert!(Config::parse(typo).unwrap_err().contains("consumr"));
    }
}
