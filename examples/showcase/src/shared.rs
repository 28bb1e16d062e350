//! Where the showcase keeps its state: in this process (the embedded default), or, with
//! `REDIS_URL` set, in Redis, shared by every instance that uses the same Redis and key
//! prefix (`REDIS_PREFIX`, default `showcase:`). See the README's "Where the state lives"
//! for every key.
//!
//! [`Shared::connect`] runs once at start: it connects every store (an unreachable Redis is
//! a startup error that names the variable) and loads the secrets all instances must share
//! (the JWT key sets, the cookie key ring, the form and cursor secrets), created by the
//! first instance that finds none (`SET` if absent, [`auth_core::shared_secret`]), so that
//! no instance makes its own keys.

use auth_core::oauth::server::RedisGrantStore;
use auth_core::{Algorithm, Key, KeySet, RedisAttemptStore, RedisRefreshStore, RedisStore};
use rest_core::RedisIdempotencyStore;
use ws_core::{RedisPresence, RedisScaleOut};

/// The prefix of every key when `REDIS_PREFIX` is unset.
pub(crate) const DEFAULT_PREFIX: &str = "showcase:";

/// How long a chat instance's members stay listed on the others after its last presence
/// heartbeat (every 2 s): the bound on a dead instance's members lingering.
pub(crate) const CHAT_PRESENCE_TTL: std::time::Duration = std::time::Duration::from_secs(6);

/// Every Redis store and shared secret the mounted apps use.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    /// The Redis URL, for the proxy's rate limits (they connect on their own).
    pub(crate) url: String,
    /// `host:port` of the Redis, for the landing page (no password, no database).
    pub(crate) place: String,
    /// The key prefix.
    pub(crate) prefix: String,
    /// `/auth/`: sessions.
    pub(crate) auth_sessions: RedisStore,
    /// `/auth/`: the accounts.
    pub(crate) auth_users: auth_login::RedisUsers,
    /// `/auth/`: login throttling.
    pub(crate) auth_attempts: RedisAttemptStore,
    /// `/auth/`: the API tokens' key set.
    pub(crate) auth_keys: KeySet,
    /// `/oauth/`: sessions, throttling, codes and grants, refresh-token families.
    pub(crate) provider: oauth_provider::SharedStores,
    /// `/oauth-login/`: sessions, with the pending logins (state, PKCE verifier, nonce).
    pub(crate) oauth_login_sessions: RedisStore,
    /// `/oauth/`: the access tokens' key set.
    pub(crate) provider_keys: KeySet,
    /// `/oauth/`: the ID tokens' key set.
    pub(crate) provider_id_keys: KeySet,
    /// `/api/`: `Idempotency-Key`s and their responses.
    pub(crate) idempotency: RedisIdempotencyStore,
    /// `/api/`: the paging cursors' key.
    pub(crate) cursor_key: Vec<u8>,
    /// `/chat/`: room fan-out.
    pub(crate) chat: RedisScaleOut,
    /// `/chat/`: who is in which room, over the instances.
    pub(crate) chat_presence: RedisPresence,
    /// `/graphql/`: subscription events, over the instances.
    pub(crate) graphql_events: RedisScaleOut,
    /// `/cookies/`: the key ring, as `KeyRing::from_config` reads it.
    pub(crate) cookie_keys: String,
    /// `/cookies/`: the secret of its forms' CSRF tokens.
    pub(crate) cookie_csrf: Vec<u8>,
    /// `/auth/` and `/oauth/`: the login forms' CSRF secret, unless `LOGIN_CSRF_SECRET`
    /// configures one.
    pub(crate) login_csrf: Vec<u8>,
}

impl Shared {
    /// Connects every store to the Redis at `url`, under `prefix`, and loads (or, the
    /// first time, creates) the shared keys. Fails when Redis cannot be reached.
    pub(crate) async fn connect(url: &str, prefix: &str) -> Result<Self, String> {
        let place = place(url);
        let failed = |error: String| {
            format!(
                "REDIS_URL: cannot use the Redis at {place}: {error} (unset REDIS_URL to keep \
                 everything in this process)"
            )
        };
        let auth = |error: auth_core::Error| failed(error.to_string());
        let key = |name: &str| format!("{prefix}{name}");
        let secret = |name: &'static str| {
            let key = key(name);
            async move {
                auth_core::shared_secret(url, &key, random_hex)
                    .await
                    .map(String::into_bytes)
                    .map_err(auth)
            }
        };
        let key_set = |name: &'static str, kid: &'static str, alg: Algorithm| {
            let key = key(name);
            async move {
                let text = auth_core::shared_secret(url, &key, || Key::generate_config(kid, alg))
                    .await
                    .map_err(auth)?;
                KeySet::from_config(&text).map_err(auth)
            }
        };
        let auth_sessions = RedisStore::connect(url, &key("auth:"))
            .await
            .map_err(auth)?;
        let cookie_keys = auth_core::shared_secret(url, &key("cookies:keys"), || {
            Ok(cookie_jar::KeyRing::generate_config())
        })
        .await
        .map_err(auth)?;
        Ok(Self {
            url: url.to_owned(),
            place: place.clone(),
            prefix: prefix.to_owned(),
            auth_users: auth_login::RedisUsers::connect(url, &key("auth:users"))
                .await
                .map_err(failed)?,
            auth_attempts: RedisAttemptStore::connect(url, &key("auth:throttle:"))
                .await
                .map_err(auth)?,
            auth_keys: key_set("auth:jwt-keys", "showcase-auth-1", Algorithm::EdDSA).await?,
            provider: oauth_provider::SharedStores {
                sessions: RedisStore::connect(url, &key("oauth:"))
                    .await
                    .map_err(auth)?,
                attempts: RedisAttemptStore::connect(url, &key("oauth:throttle:"))
                    .await
                    .map_err(auth)?,
                grants: RedisGrantStore::connect(url, &key("oauth:grants:"))
                    .await
                    .map_err(auth)?,
                refresh: RedisRefreshStore::connect(url, &key("oauth:refresh:"))
                    .await
                    .map_err(auth)?,
            },
            oauth_login_sessions: RedisStore::connect(url, &key("oauth-login:"))
                .await
                .map_err(auth)?,
            provider_keys: key_set("oauth:jwt-keys", "showcase-oauth-1", Algorithm::ES256).await?,
            provider_id_keys: key_set(
                "oauth:id-token-keys",
                "showcase-oauth-id-1",
                Algorithm::RS256,
            )
            .await?,
            idempotency: RedisIdempotencyStore::connect(
                url,
                &key("api:"),
                rest_api::IDEMPOTENCY_TTL,
            )
            .await
            .map_err(|error| failed(error.to_string()))?,
            cursor_key: secret("api:cursor-key").await?,
            chat: RedisScaleOut::connect(url, &key("chat:"))
                .await
                .map_err(|error| failed(error.to_string()))?,
            chat_presence: RedisPresence::connect(url, &key("chat-presence:"), CHAT_PRESENCE_TTL)
                .await
                .map_err(|error| failed(error.to_string()))?,
            graphql_events: RedisScaleOut::connect(url, &key("graphql:"))
                .await
                .map_err(|error| failed(error.to_string()))?,
            cookie_keys,
            cookie_csrf: secret("cookies:csrf-secret").await?,
            login_csrf: secret("login-csrf-secret").await?,
            auth_sessions,
        })
    }
}

/// 32 random bytes in hex: a shared secret's first value.
fn random_hex() -> auth_core::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| auth_core::Error::Key(error.to_string()))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// `host:port` of a Redis URL (`redis://[user:password@]host:port[/db]`): what the landing
/// page may show, without the password.
pub(crate) fn place(url: &str) -> String {
    place_with(url, 6379)
}

/// `host:port` of a URL whose port defaults to `port` (4222 for `nats://`), without the
/// credentials.
pub(crate) fn place_with(url: &str, port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.is_empty() {
        format!("127.0.0.1:{port}")
    } else if host.contains(':') && !host.ends_with(']') {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    }
}

/// The task queue at `/jobs/`: with `shared` (`REDIS_URL`), its job records,
/// `Idempotency-Key`s and inbox in that Redis and its broker Redis Streams; with `nats`
/// (`NATS_URL`), its broker NATS JetStream. Its keys and streams are named after the
/// showcase's key prefix (`showcase:` gives `showcase-jobs`), so that clusters and tests
/// on one Redis or NATS keep apart.
pub(crate) fn jobs_settings(shared: Option<&Shared>, nats: Option<&str>) -> task_queue::Settings {
    let mut settings = task_queue::Settings {
        base_path: "/jobs".to_owned(),
        prefix: jobs_prefix(shared.map_or(DEFAULT_PREFIX, |shared| shared.prefix.as_str())),
        ..task_queue::Settings::default()
    };
    if let Some(shared) = shared {
        settings.broker_url = Some(shared.url.clone());
        settings.inbox_url = Some(shared.url.clone());
        settings.state_url = Some(shared.url.clone());
    }
    if let Some(nats) = nats {
        settings.broker_url = Some(nats.to_owned());
    }
    settings
}

/// The message bridge at `/broker/`: browsers logged in at `/auth/`, the showcase's
/// origins, the task queue's API for its failing-job demonstration; its broker is NATS
/// JetStream with `nats` (`NATS_URL`), else Redis Streams with `shared` (`REDIS_URL`), else
/// embedded, under the key prefix made a name (`showcase-live`). Each instance binds a
/// queue of its own to the one topic, named by `BROKER_LIVE_INSTANCE` or else by its
/// address (`127-0-0-1-8080`): the instances of a cluster differ by it, and a restarted
/// one takes its queue back.
pub(crate) fn live_settings(
    auth: std::sync::Arc<auth_login::App<auth_login::SessionBackend>>,
    origins: Vec<String>,
    public: std::net::SocketAddr,
    shared: Option<&Shared>,
    nats: Option<&str>,
) -> broker_live::Settings {
    let mut settings = broker_live::Settings::new(auth);
    settings.base_path = "/broker".to_owned();
    settings.allowed_origins = origins;
    settings.login_url = "/auth/".to_owned();
    settings.jobs_url = Some("/jobs/jobs".to_owned());
    let name = token(shared.map_or(DEFAULT_PREFIX, |shared| shared.prefix.as_str()));
    settings.prefix = if name.is_empty() {
        "live".to_owned()
    } else {
        format!("{name}-live")
    };
    settings.instance = std::env::var("BROKER_LIVE_INSTANCE")
        .ok()
        .map(|instance| token(&instance))
        .filter(|instance| !instance.is_empty())
        .unwrap_or_else(|| token(&public.to_string()));
    settings.broker_url = nats
        .map(str::to_owned)
        .or_else(|| shared.map(|shared| shared.url.clone()));
    settings
}

/// What the landing page says the message bridge runs on.
pub(crate) fn live_engine(broker: &str, shared: Option<&Shared>, nats: Option<&str>) -> String {
    match (broker, nats, shared) {
        ("nats", Some(url), _) => format!(
            "NATS JetStream at {}",
            serve::page::escape(&place_with(url, 4222))
        ),
        ("redis", _, Some(shared)) => format!(
            "Redis Streams (Redis at {})",
            serve::page::escape(&shared.place)
        ),
        _ => "embedded broker (memory)".to_owned(),
    }
}

/// GraphQL's `bookAdded` events between instances, and what the landing page says of
/// them: with `nats` (`NATS_URL`), NATS core pub/sub on the subject
/// `{prefix}.graphql.bookAdded` (the key prefix made a subject token, as [`jobs_prefix`]
/// makes it a stream name); else with `shared` (`REDIS_URL`), Redis pub/sub; else none.
pub(crate) async fn graphql_events(
    shared: Option<&Shared>,
    nats: Option<&str>,
) -> Result<(Option<graphql::Events>, String), String> {
    if let Some(url) = nats {
        let prefix = shared.map_or(DEFAULT_PREFIX, |shared| shared.prefix.as_str());
        let name = token(prefix);
        let name = if name.is_empty() {
            "showcase"
        } else {
            name.as_str()
        };
        let subject = format!("{name}.graphql.bookAdded");
        let place = place_with(url, 4222);
        let events = graphql::NatsEvents::connect(url, &subject)
            .await
            .map_err(|error| {
                format!(
                    "NATS_URL: cannot use the NATS at {place}: {error} (unset NATS_URL to \
                     keep the task queue and GraphQL's events off NATS)"
                )
            })?;
        let engine = format!("NATS at {} (core pub/sub)", serve::page::escape(&place));
        return Ok((Some(graphql::Events::Nats(events)), engine));
    }
    Ok(match shared {
        Some(shared) => (
            Some(graphql::Events::Redis(shared.graphql_events.clone())),
            format!("Redis at {}", serve::page::escape(&shared.place)),
        ),
        None => (None, "memory".to_owned()),
    })
}

/// `A-Z a-z 0-9 - _` only (what broker-core takes in a stream name), then `-jobs`.
fn jobs_prefix(prefix: &str) -> String {
    let name = token(prefix);
    if name.is_empty() {
        "jobs".to_owned()
    } else {
        format!("{name}-jobs")
    }
}

/// The key prefix with every character outside `A-Z a-z 0-9 - _` made `-` and the `-` at
/// its ends trimmed: a stream name's part, a subject's token (empty when nothing is left).
fn token(prefix: &str) -> String {
    let name: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.trim_matches('-').to_owned()
}

/// What the landing page says the task queue runs on, from its broker (`embedded`,
/// `redis`, `nats`) and where its records are (`memory`, `redis`).
pub(crate) fn jobs_engine(
    broker: &str,
    state: &str,
    shared: Option<&Shared>,
    nats: Option<&str>,
) -> String {
    let redis = shared.map(|shared| format!("Redis at {}", serve::page::escape(&shared.place)));
    let broker = match (broker, nats, &redis) {
        ("nats", Some(url), _) => format!(
            "NATS JetStream at {}",
            serve::page::escape(&place_with(url, 4222))
        ),
        ("redis", _, Some(redis)) => format!("Redis Streams ({redis})"),
        _ => "embedded broker (memory)".to_owned(),
    };
    let records = match (state, &redis) {
        ("redis", Some(redis)) => redis.clone(),
        _ => "memory".to_owned(),
    };
    format!("{broker}; job records, keys and inbox: {records}")
}

/// The engine each piece of state runs on, for the landing page: a small table, its own
/// section so that other sections of the page merge around it.
/// `database` is the REST API's engine (`"SQLite"` or `"PostgreSQL"`), which follows
/// `DATABASE_URL` rather than `REDIS_URL`.
/// `jobs` is the task queue's line ([`jobs_engine`]).
/// `graphql` is the engine of GraphQL's subscription events ([`graphql_events`]).
/// `live` is the message bridge's broker ([`live_engine`]).
pub(crate) fn engines_section(
    shared: Option<&Shared>,
    database: &str,
    jobs: &str,
    graphql: &str,
    live: &str,
) -> String {
    let engine = match shared {
        Some(shared) => format!("Redis at {}", serve::page::escape(&shared.place)),
        None => "memory".to_owned(),
    };
    let pieces = [
        ("sessions", "/auth/, /oauth/, /oauth-login/"),
        ("accounts", "/auth/"),
        ("login throttling", "/auth/, /oauth/"),
        ("OAuth codes, grants, refresh-token families", "/oauth/"),
        ("JWT signing keys", "/auth/, /oauth/"),
        ("cookie key ring", "/cookies/"),
        ("Idempotency-Key responses", "/api/"),
        ("chat room fan-out and presence", "/chat/"),
        ("rate limit of /proxy/origin/limited", "/proxy/"),
    ];
    let mut rows = format!(
        "<tr><td>REST API rows</td><td><code>/api/</code></td><td class=\"engine\">{}</td></tr>",
        serve::page::escape(database)
    );
    for (piece, mount) in pieces {
        rows.push_str(&format!(
            "<tr><td>{piece}</td><td><code>{mount}</code></td><td class=\"engine\">{engine}</td></tr>"
        ));
    }
    rows.push_str(&format!(
        "<tr id=\"engine-graphql\"><td>GraphQL subscription events</td><td><code>/graphql/\
         </code></td><td class=\"engine\">{graphql}</td></tr>"
    ));
    rows.push_str(&format!(
        "<tr id=\"engine-jobs\"><td>task queue: broker, job records, Idempotency-Keys, \
         inbox</td><td><code>/jobs/</code></td><td class=\"engine\">{jobs}</td></tr>"
    ));
    rows.push_str(&format!(
        "<tr id=\"engine-broker\"><td>browser messages (publish, subscribe)</td><td>\
         <code>/broker/</code></td><td class=\"engine\">{live}</td></tr>"
    ));
    let how = match shared {
        Some(_) => "<code>REDIS_URL</code> is set: every instance on this Redis shares it.",
        None => {
            "Embedded: this process only. Set <code>REDIS_URL</code> to share it between \
             instances."
        }
    };
    format!(
        "<section id=\"engines\"><h2>Where the state lives</h2><p>{how} The REST \
         API's rows are in PostgreSQL when <code>DATABASE_URL</code> is set, else in \
         SQLite; the task queue's broker is NATS JetStream when <code>NATS_URL</code> is \
         set, else Redis Streams with <code>REDIS_URL</code>, else embedded, and GraphQL's \
         subscription events cross instances over NATS when <code>NATS_URL</code> is set, \
         else over Redis; the other examples' state stays in this process.</p>\
         <table><thead><tr><th>state</th><th>used by</th><th>engine</th></tr></thead>\
         <tbody>{rows}</tbody></table></section>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_the_redis_without_its_password() {
        assert_eq!(place("redis://127.0.0.1:6379"), "127.0.0.1:6379");
        assert_eq!(
            place("redis://:hunter2@cache.local:6380/2"),
            "cache.local:6380"
        );
        assert_eq!(place("redis://cache.local"), "cache.local:6379");
        assert_eq!(place("rediss://u:p@[::1]:7000/0"), "[::1]:7000");
        let jobs = jobs_engine("embedded", "memory", None, None);
        let page = engines_section(None, "SQLite", &jobs, "memory", "embedded broker (memory)");
        assert!(
            page.contains("<tr id=\"engine-graphql\"><td>GraphQL subscription events</td>"),
            "{page}"
        );
        assert!(page.contains("<td class=\"engine\">memory</td>"), "{page}");
        assert!(
            page.contains(
                "<td class=\"engine\">embedded broker (memory); job records, keys and inbox: \
                 memory</td>"
            ),
            "{page}"
        );
        assert_eq!(
            place_with("nats://u:p@broker.local", 4222),
            "broker.local:4222"
        );
    }

    #[test]
    fn the_task_queue_is_named_after_the_key_prefix() {
        assert_eq!(jobs_prefix("showcase:"), "showcase-jobs");
        assert_eq!(jobs_prefix("t:a b:1:"), "t-a-b-1-jobs");
        assert_eq!(jobs_prefix("::"), "jobs");
        let settings = jobs_settings(None, Some("nats://127.0.0.1:4222"));
        assert_eq!(
            settings.broker_url.as_deref(),
            Some("nats://127.0.0.1:4222")
        );
        assert_eq!(settings.state_url, None);
        assert_eq!(settings.prefix, "showcase-jobs");
    }
}
