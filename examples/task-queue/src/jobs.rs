//! Jobs: what a client asks for (a kind and a payload), what a worker does with each kind,
//! and the record of every job's state and attempts that `GET /jobs/{id}` shows.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use broker_core::{DeadLetter, Disposition, MessageId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The kinds of job workers know, for error messages and the page.
pub const KINDS: [&str; 4] = ["echo", "sleep", "flaky", "fail"];

/// The longest `sleep` job.
pub const MAX_SLEEP_MS: u64 = 60_000;

/// A job as a client sends it (`POST /jobs`) and as it travels in a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    /// One of [`KINDS`].
    pub kind: String,
    /// The kind's parameters.
    #[serde(default)]
    pub payload: Value,
}

/// A job's parameters, checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Work {
    /// Succeeds with its payload as the result.
    Echo(Value),
    /// Succeeds after sleeping `ms` milliseconds.
    Sleep { ms: u64 },
    /// Fails its first `fail_times` attempts (counted over the job's life, re-drives
    /// included), then succeeds.
    Flaky { fail_times: u32 },
    /// Always fails, with `reason`.
    Fail { reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SleepParams {
    ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlakyParams {
    fail_times: u32,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FailParams {
    #[serde(default)]
    reason: Option<String>,
}

/// Why a job's parameters are refused: a JSON pointer and a reason (a 422 problem).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Invalid {
    pub(crate) pointer: String,
    pub(crate) reason: String,
}

fn params<T: serde::de::DeserializeOwned + Default>(payload: &Value) -> Result<T, Invalid> {
    if payload.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(payload.clone()).map_err(|e| Invalid {
        pointer: "/payload".to_owned(),
        reason: e.to_string(),
    })
}

fn required<T: serde::de::DeserializeOwned>(payload: &Value) -> Result<T, Invalid> {
    serde_json::from_value(payload.clone()).map_err(|e| Invalid {
        pointer: "/payload".to_owned(),
        reason: e.to_string(),
    })
}

impl NewJob {
    /// The work this job asks for, or why it cannot be done.
    pub(crate) fn work(&self) -> Result<Work, Invalid> {
        match self.kind.as_str() {
            "echo" => Ok(Work::Echo(self.payload.clone())),
            "sleep" => {
                let SleepParams { ms } = required(&self.payload)?;
                if ms > MAX_SLEEP_MS {
                    return Err(Invalid {
                        pointer: "/payload/ms".to_owned(),
                        reason: format!("at most {MAX_SLEEP_MS}"),
                    });
                }
                Ok(Work::Sleep { ms })
            }
            "flaky" => {
                let FlakyParams { fail_times } = required(&self.payload)?;
                Ok(Work::Flaky { fail_times })
            }
            "fail" => {
                let FailParams { reason } = params(&self.payload)?;
                let reason = reason.unwrap_or_else(|| "told to fail".to_owned());
                Ok(Work::Fail {
                    reason: reason
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(200)
                        .collect(),
                })
            }
            _ => Err(Invalid {
                pointer: "/kind".to_owned(),
                reason: format!("unknown job kind; one of {}", KINDS.join(", ")),
            }),
        }
    }
}

impl Work {
    /// Does the work on the job's `attempt`-th attempt (1-based, over its life): the
    /// result, or why it failed.
    pub(crate) async fn run(&self, attempt: u32) -> Result<Value, String> {
        match self {
            Work::Echo(payload) => Ok(payload.clone()),
            Work::Sleep { ms } => {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                Ok(json!({ "slept_ms": ms }))
            }
            Work::Flaky { fail_times } if attempt <= *fail_times => Err(format!(
                "flaky: attempt {attempt} fails (told to fail the first {fail_times})"
            )),
            Work::Flaky { .. } => Ok(json!({ "succeeded_on_attempt": attempt })),
            Work::Fail { reason } => Err(reason.clone()),
        }
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker has it.
    Running,
    /// Its last attempt failed; it is delivered again after the backoff.
    Retrying,
    /// Done.
    Succeeded,
    /// Out of attempts: in the dead letters until re-driven.
    Dead,
}

impl JobState {
    /// Its name in JSON (`queued`, `running`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
        }
    }

    /// The state named `name`, as [`JobState::as_str`] writes it.
    pub fn parse(name: &str) -> Option<Self> {
        [
            JobState::Queued,
            JobState::Running,
            JobState::Retrying,
            JobState::Succeeded,
            JobState::Dead,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
    }
}

/// One delivery of a job to a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    /// Counted over the job's life (re-drives included), from 1.
    pub attempt: u32,
    /// The broker's delivery count since the job was (re-)queued.
    pub delivery: u32,
    /// The worker that ran it.
    pub worker: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// `running`, `succeeded` or `failed`.
    pub outcome: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A job's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// The message id (UUIDv7).
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Its parameters.
    pub payload: Value,
    /// Where it is.
    pub state: JobState,
    /// Attempts so far, re-drives included.
    pub attempts: u32,
    /// Deliveries of an already finished job that the inbox kept from running again.
    pub duplicate_deliveries: u32,
    /// When it was enqueued (RFC 3339).
    pub created_at: String,
    /// When its state last changed (RFC 3339).
    pub updated_at: String,
    /// The result of the successful attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The last failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// How long until the next attempt, while retrying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    /// Why it was dead-lettered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_reason: Option<String>,
    /// Every attempt, oldest first (the last 20).
    pub history: Vec<Attempt>,
}

const MAX_HISTORY: usize = 20;

/// RFC 3339 with milliseconds, UTC.
pub(crate) fn timestamp(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    let t = t
        .replace_nanosecond(u32::from(t.millisecond()) * 1_000_000)
        .unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Job {
    pub(crate) fn new(id: MessageId, job: &NewJob, now: SystemTime) -> Self {
        let at = timestamp(now);
        Self {
            id: id.to_string(),
            kind: job.kind.clone(),
            payload: job.payload.clone(),
            state: JobState::Queued,
            attempts: 0,
            duplicate_deliveries: 0,
            created_at: at.clone(),
            updated_at: at,
            result: None,
            last_error: None,
            retry_in_ms: None,
            dead_reason: None,
            history: Vec::new(),
        }
    }

    /// A worker starts delivery `delivery`: returns the attempt number over the job's life.
    pub(crate) fn start(&mut self, delivery: u32, worker: &str, now: SystemTime) -> u32 {
        // A job this record did not see from the start: count the broker's deliveries.
        self.attempts = (self.attempts + 1).max(delivery);
        self.state = JobState::Running;
        self.retry_in_ms = None;
        if self.history.len() >= MAX_HISTORY {
            self.history.remove(0);
        }
        self.history.push(Attempt {
            attempt: self.attempts,
            delivery,
            worker: worker.to_owned(),
            started_at: timestamp(now),
            outcome: "running".to_owned(),
            error: None,
        });
        self.attempts
    }

    pub(crate) fn succeed(&mut self, result: &Value) {
        self.state = JobState::Succeeded;
        self.result = Some(result.clone());
        self.dead_reason = None;
        if let Some(last) = self.history.last_mut() {
            last.outcome = "succeeded".to_owned();
        }
    }

    /// The attempt failed with `error`, and the broker did `disposition` with it.
    pub(crate) fn fail(&mut self, error: &str, disposition: &Disposition) {
        self.last_error = Some(error.to_owned());
        if let Some(last) = self.history.last_mut() {
            last.outcome = "failed".to_owned();
            last.error = Some(error.to_owned());
        }
        match disposition {
            Disposition::Retry { delay } => {
                self.state = JobState::Retrying;
                self.retry_in_ms = Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
            }
            Disposition::DeadLetter { reason } => {
                self.state = JobState::Dead;
                self.dead_reason = Some(reason.clone());
            }
            _ => {}
        }
    }

    /// The inbox found the job already done: this delivery had no effect.
    pub(crate) fn duplicate(&mut self) {
        self.duplicate_deliveries += 1;
        self.state = JobState::Succeeded;
    }

    /// A dead letter this record may not have seen die.
    pub(crate) fn die(&mut self, letter: &DeadLetter) {
        if self.state != JobState::Dead {
            self.state = JobState::Dead;
            self.dead_reason = Some(letter.reason.clone());
        }
    }

    /// Re-driven: queued again. The record is updated after the broker moved the letter,
    /// so a worker may already have started it (or finished it); only a record still dead
    /// becomes queued, so that a finished job is not shown as queued forever.
    pub(crate) fn requeue(&mut self) {
        if self.state == JobState::Dead {
            self.state = JobState::Queued;
            self.dead_reason = None;
        }
    }
}

/// The records of the jobs this process has seen, newest kept: at most `capacity`, the
/// oldest finished ones dropped first. With a shared store (`crate::state`), this is the
/// process's own view, which `App::job_counts` reports.
#[derive(Debug)]
pub(crate) struct JobStore {
    jobs: Mutex<BTreeMap<MessageId, Job>>,
    capacity: usize,
}

impl JobStore {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            jobs: Mutex::new(BTreeMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<MessageId, Job>> {
        // Every update below completes before it can panic: a poisoned map is consistent.
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn make_room(&self, jobs: &mut BTreeMap<MessageId, Job>) {
        while jobs.len() >= self.capacity {
            // Ids are time-ordered: the first finished one is the oldest.
            let oldest = jobs
                .iter()
                .find(|(_, job)| matches!(job.state, JobState::Succeeded | JobState::Dead))
                .or_else(|| jobs.iter().next())
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => jobs.remove(&id),
                None => break,
            };
        }
    }

    /// Records a job that was just enqueued.
    pub(crate) fn insert(&self, id: MessageId, job: &NewJob, now: SystemTime) -> Job {
        let record = Job::new(id, job, now);
        self.put(id, record.clone());
        record
    }

    /// Keeps `record` as the job's record (a copy of the shared one).
    pub(crate) fn put(&self, id: MessageId, record: Job) {
        let mut jobs = self.lock();
        if !jobs.contains_key(&id) {
            self.make_room(&mut jobs);
        }
        jobs.insert(id, record);
    }

    /// Forgets a job whose publication failed.
    pub(crate) fn remove(&self, id: MessageId) {
        self.lock().remove(&id);
    }

    pub(crate) fn get(&self, id: MessageId) -> Option<Job> {
        self.lock().get(&id).cloned()
    }

    /// The newest `max` jobs, newest first, and the count of every state.
    pub(crate) fn recent(&self, max: usize) -> (Vec<Job>, BTreeMap<&'static str, usize>) {
        let jobs = self.lock();
        let counts = count(jobs.values().map(|job| job.state));
        (jobs.values().rev().take(max).cloned().collect(), counts)
    }

    /// Applies `f` to the job's record, creating it from `job` if this process has not
    /// seen it (another instance enqueued it; with `job` `None`, a job not seen is left
    /// alone and `None` returned); returns what `f` returned.
    pub(crate) fn update<T>(
        &self,
        id: MessageId,
        job: Option<&NewJob>,
        now: SystemTime,
        f: impl FnOnce(&mut Job) -> T,
    ) -> Option<T> {
        let mut jobs = self.lock();
        if !jobs.contains_key(&id) {
            job?;
            self.make_room(&mut jobs);
        }
        let record = match job {
            Some(job) => jobs.entry(id).or_insert_with(|| Job::new(id, job, now)),
            None => jobs.get_mut(&id)?,
        };
        let out = f(record);
        record.updated_at = timestamp(now);
        Some(out)
    }
}

/// How many of `states` are in each state (a state none is in is left out).
pub(crate) fn count(states: impl Iterator<Item = JobState>) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for state in states {
        *counts.entry(state.as_str()).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn job(kind: &str, payload: Value) -> NewJob {
        NewJob {
            kind: kind.to_owned(),
            payload,
        }
    }

    #[tokio::test]
    async fn kinds_check_their_parameters_and_flaky_counts_attempts() {
        assert_eq!(
            job("flaky", json!({"fail_times": 2})).work(),
            Ok(Work::Flaky { fail_times: 2 })
        );
        let refused = job("flaky", json!({"fail_times": "x"})).work().unwrap_err();
        assert_eq!(refused.pointer, "/payload");
        assert_eq!(
            job("nope", Value::Null).work().unwrap_err().pointer,
            "/kind"
        );
        assert_eq!(
            job("sleep", json!({"ms": MAX_SLEEP_MS + 1}))
                .work()
                .unwrap_err()
                .pointer,
            "/payload/ms"
        );
        assert!(job("sleep", Value::Null).work().is_err());
        let fail = job("fail", Value::Null).work().unwrap();
        assert_eq!(fail.run(9).await, Err("told to fail".to_owned()));
        let flaky = Work::Flaky { fail_times: 2 };
        assert!(flaky.run(2).await.is_err());
        assert_eq!(flaky.run(3).await, Ok(json!({"succeeded_on_attempt": 3})));
    }

    #[test]
    fn the_store_keeps_the_newest_and_drops_finished_jobs_first() {
        let store = JobStore::new(2);
        let now = SystemTime::now();
        let (a, b, c) = (MessageId::new(), MessageId::new(), MessageId::new());
        let echo = job("echo", Value::Null);
        store.insert(a, &echo, now);
        store.insert(b, &echo, now);
        store.update(b, Some(&echo), now, |job| job.start(1, "w", now));
        store.update(b, None, now, |job| job.succeed(&Value::Null));
        store.insert(c, &echo, now);
        // b finished, so it went first although a is older.
        assert!(store.get(b).is_none());
        assert_eq!(store.get(a).unwrap().state, JobState::Queued);
        let (recent, counts) = store.recent(10);
        assert_eq!(recent.first().unwrap().id, c.to_string());
        assert_eq!(counts.get("queued"), Some(&2));
    }

    /// The re-drive records "queued" after the broker moved the letter: a worker that
    /// already took the job (or finished it) keeps its state.
    #[test]
    fn a_redrive_recorded_late_does_not_undo_the_workers_state() {
        let now = SystemTime::now();
        let flaky = job("flaky", json!({"fail_times": 1}));
        let mut record = Job::new(MessageId::new(), &flaky, now);
        record.start(1, "w", now);
        record.fail(
            "told to fail",
            &Disposition::DeadLetter {
                reason: "out of attempts".to_owned(),
            },
        );
        assert_eq!(record.state, JobState::Dead);
        let mut raced = record.clone();
        record.requeue();
        assert_eq!(record.state, JobState::Queued);
        assert_eq!(record.dead_reason, None);
        // The worker ran the re-driven job before the re-drive's own update.
        raced.start(2, "w", now);
        raced.succeed(&json!({"succeeded_on_attempt": 2}));
        raced.requeue();
        assert_eq!(raced.state, JobState::Succeeded);
    }
}
