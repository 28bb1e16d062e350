//! The workers: each fetches a batch of deliveries, runs every job of it through the inbox,
//! then settles the batch (one settlement per message, after the last job of the batch).
//!
//! Settling after the batch is what a worker does to save round trips, and it is the case
//! the inbox is for: a worker that dies mid-batch has done some jobs without acknowledging
//! them. Their messages come back to another worker after the ack wait; the inbox says
//! they are done, so that worker acknowledges them without running them again.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use broker_core::{Broker as _, Claim, Delivery, Json, Settlement};

use crate::Core;
use crate::jobs::NewJob;

/// How long one fetch waits for messages, so that a stopping worker notices soon.
const POLL: Duration = Duration::from_millis(250);
/// The pause after a broker error before fetching again.
const ERROR_PAUSE: Duration = Duration::from_millis(500);

/// What running one delivery came to.
enum Outcome {
    /// The job ran and its effect happened.
    Succeeded(serde_json::Value),
    /// The job ran and failed.
    Failed(String),
    /// The inbox says it already ran: acknowledge without running it.
    Duplicate,
    /// Another worker holds the job's lease: deliver again later.
    Busy,
    /// The inbox could not be asked: deliver again later, do not risk a second effect.
    InboxDown(String),
    /// The message is not a job this worker can run.
    Poison(String),
}

/// One worker's loop, until the app stops.
pub(crate) async fn run(core: Arc<Core>, name: String) {
    while !core.stopping.load(Ordering::Acquire) {
        let batch = match core
            .broker
            .fetch(&core.queue, &name, core.settings.batch, POLL)
            .await
        {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(worker = %name, %error, "fetch failed");
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        let mut outcomes = Vec::with_capacity(batch.len());
        for delivery in &batch {
            outcomes.push(process(&core, &name, delivery).await);
        }
        for (delivery, (job, outcome)) in batch.iter().zip(outcomes) {
            settle(&core, delivery, job, outcome).await;
        }
    }
    core.running.fetch_sub(1, Ordering::AcqRel);
}

/// Runs one delivery's job through the inbox.
async fn process(core: &Core, worker: &str, delivery: &Delivery) -> (Option<NewJob>, Outcome) {
    let envelope = &delivery.envelope;
    let id = envelope.id();
    let job: NewJob = match envelope.decode(&Json) {
        Ok(job) => job,
        Err(error) => return (None, Outcome::Poison(format!("not a job: {error}"))),
    };
    let work = match job.work() {
        Ok(work) => work,
        Err(invalid) => {
            let reason = format!("{}: {}", invalid.pointer, invalid.reason);
            return (Some(job), Outcome::Poison(reason));
        }
    };
    let token = match &core.inbox {
        None => None,
        Some(inbox) => match inbox.claim(id, core.lease()).await {
            Ok(Claim::Acquired(token)) => Some(token),
            Ok(Claim::Done) => return (Some(job), Outcome::Duplicate),
            Ok(_) => return (Some(job), Outcome::Busy),
            Err(error) => return (Some(job), Outcome::InboxDown(error.to_string())),
        },
    };
    let now = SystemTime::now();
    let attempt = match core
        .jobs
        .update(id, Some(&job), now, |record| {
            record.start(envelope.attempt(), worker, now)
        })
        .await
    {
        Ok(Some(attempt)) => attempt,
        Ok(None) | Err(_) => {
            // The record cannot be read: count the broker's deliveries since the last
            // (re-)queue, and run the job all the same.
            tracing::warn!(%id, "job record not updated at its start");
            envelope.attempt()
        }
    };
    let outcome = match work.run(attempt).await {
        Ok(result) => {
            core.effect(&id.to_string(), &job.kind);
            if let (Some(inbox), Some(token)) = (&core.inbox, &token)
                && let Err(error) = inbox.complete(id, token, core.settings.inbox_keep).await
            {
                // The effect happened; a redelivery may repeat it. Nothing better to do
                // than say so.
                tracing::error!(%id, %error, "the inbox did not record a finished job");
            }
            Outcome::Succeeded(result)
        }
        Err(error) => {
            if let (Some(inbox), Some(token)) = (&core.inbox, &token)
                && let Err(e) = inbox.release(id, token).await
            {
                tracing::warn!(%id, error = %e, "could not release the inbox lease");
            }
            Outcome::Failed(error)
        }
    };
    (Some(job), outcome)
}

/// Settles one delivery and records what happened.
async fn settle(core: &Core, delivery: &Delivery, job: Option<NewJob>, outcome: Outcome) {
    let id = delivery.envelope.id();
    let settlement = match &outcome {
        Outcome::Succeeded(_) | Outcome::Duplicate => Settlement::Ack,
        Outcome::Failed(_) => Settlement::nack(),
        // The lease holder has finished or its lease has expired after one more ack wait.
        Outcome::Busy => Settlement::nack_after(core.settings.ack_wait),
        Outcome::InboxDown(_) => Settlement::nack_after(ERROR_PAUSE * 4),
        Outcome::Poison(reason) => Settlement::reject(reason.clone()),
    };
    let disposition = match core.broker.settle(delivery, settlement).await {
        Ok(disposition) => disposition,
        Err(error) => {
            // Not settled: the broker delivers it again after the ack wait, and the inbox
            // keeps a finished job from running twice.
            tracing::warn!(%id, %error, "settlement failed");
            return;
        }
    };
    let Some(job) = job else {
        return;
    };
    let now = SystemTime::now();
    let recorded = match outcome {
        Outcome::Succeeded(result) => {
            core.jobs
                .update(id, Some(&job), now, |record| record.succeed(&result))
                .await
        }
        Outcome::Duplicate => {
            core.jobs
                .update(id, Some(&job), now, crate::jobs::Job::duplicate)
                .await
        }
        Outcome::Failed(error) | Outcome::Poison(error) => {
            core.jobs
                .update(id, Some(&job), now, |record| {
                    record.fail(&error, &disposition)
                })
                .await
        }
        Outcome::InboxDown(error) => {
            tracing::warn!(%id, %error, "inbox unavailable; the job waits");
            Ok(None)
        }
        Outcome::Busy => Ok(None),
    };
    if let Err(error) = recorded {
        tracing::warn!(%id, %error, "job record not updated");
    }
}

impl Core {
    /// The job's effect beyond its own record: a line `ID KIND` appended to the effects
    /// log, when one is configured (tests count these lines; one `write` of a short line to
    /// a file opened for appending is atomic among processes).
    fn effect(&self, id: &str, kind: &str) {
        let Some(path) = &self.settings.effects_log else {
            return;
        };
        let line = format!("{id} {kind}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(error) = written {
            tracing::error!(path = %path.display(), %error, "could not write the effects log");
        }
    }
}
