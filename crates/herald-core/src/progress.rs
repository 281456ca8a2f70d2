//! Progress of long operations (file imports, report generation), reported to the user who
//! started them.
//!
//! The pattern: the request that starts a job returns a job id at once; the job then sends
//! `job_progress` events to that user while it runs, and a last one with `done` or `failed`.
//! Every tab of the user sees the bar move, and a tab that reconnects catches up through the
//! normal resume. The TypeScript client's `useProgress(jobId)` hook renders exactly this shape:
//!
//! ```json
//! {"jobId": "import-42", "percent": 40, "stage": "validating rows", "status": "running"}
//! ```
//!
//! Over HTTP it is an ordinary publish:
//! `POST /publish {"user": "u1", "event": "job_progress", "data": {...}}`.
//!
//! ```no_run
//! # async fn demo(herald: herald_core::Herald) -> Result<(), herald_core::PublishError> {
//! use herald_core::{JobProgress, Progress};
//! let job = JobProgress::new(herald.clone(), "user_123", "import-42");
//! job.update(Progress::running(10.0).stage("uploading")).await?;
//! job.update(Progress::running(60.0).stage("validating rows").message("1800 of 3000 rows")).await?;
//! job.done().await?;
//! # Ok(()) }
//! ```

use serde::Serialize;

use crate::herald::{Herald, PublishError};
use crate::id::EventId;

/// The event name progress is published under.
pub const PROGRESS_EVENT: &str = "job_progress";

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Running,
    Done,
    Failed,
}

/// One progress report. Fields left `None` keep the client's previous value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    /// 0 to 100 (clamped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    pub status: JobStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Progress {
    pub fn running(percent: f64) -> Self {
        Self {
            percent: Some(percent.clamp(0.0, 100.0)),
            stage: None,
            status: JobStatus::Running,
            message: None,
            error: None,
        }
    }

    pub fn done() -> Self {
        Self {
            percent: Some(100.0),
            status: JobStatus::Done,
            ..Self::running(100.0)
        }
    }

    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            percent: None,
            status: JobStatus::Failed,
            error: Some(error.into()),
            ..Self::running(0.0)
        }
    }

    pub fn stage(mut self, stage: impl Into<String>) -> Self {
        self.stage = Some(stage.into());
        self
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
}

/// The wire shape: the report plus the job id.
#[derive(Serialize)]
struct ProgressEvent<'a> {
    #[serde(rename = "jobId")]
    job_id: &'a str,
    #[serde(flatten)]
    progress: &'a Progress,
}

impl Herald {
    /// Sends one progress report for `job_id` to all of `user`'s streams.
    pub async fn report_progress(
        &self,
        user: &str,
        job_id: &str,
        progress: &Progress,
    ) -> Result<EventId, PublishError> {
        let event = ProgressEvent { job_id, progress };
        self.send_to_user(user, PROGRESS_EVENT, &event).await
    }
}

/// A job's reporter: remembers the hub, the user and the job id.
#[derive(Clone)]
pub struct JobProgress {
    herald: Herald,
    user: String,
    job_id: String,
}

impl JobProgress {
    pub fn new(herald: Herald, user: impl Into<String>, job_id: impl Into<String>) -> Self {
        Self {
            herald,
            user: user.into(),
            job_id: job_id.into(),
        }
    }

    pub async fn update(&self, progress: Progress) -> Result<EventId, PublishError> {
        self.herald
            .report_progress(&self.user, &self.job_id, &progress)
            .await
    }

    pub async fn done(&self) -> Result<EventId, PublishError> {
        self.update(Progress::done()).await
    }

    pub async fn failed(&self, error: impl Into<String>) -> Result<EventId, PublishError> {
        self.update(Progress::failed(error)).await
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use herald_proto::{Item, Parser};

    use super::*;
    use crate::hub::{HubConfig, SubscribeRequest};

    #[tokio::test]
    async fn reports_reach_the_user_in_the_shape_use_progress_reads() {
        let herald = Herald::in_memory(HubConfig::default());
        let mut stream = herald
            .subscribe(SubscribeRequest {
                user: Some("u1".into()),
                ..Default::default()
            })
            .await
            .expect("subscribe");
        let job = JobProgress::new(herald.clone(), "u1", "import-42");
        job.update(
            Progress::running(140.0)
                .stage("validating")
                .message("3 of 3"),
        )
        .await
        .expect("update");
        job.failed("row 7 is not a date").await.expect("failed");

        let mut parser = Parser::new();
        let mut events = Vec::new();
        while events.len() < 2 {
            let bytes = stream.next().await.expect("stream open");
            parser.feed(&bytes).expect("parse");
            events.extend(parser.drain().filter_map(|item| match item {
                Item::Event(e) => Some(e),
                _ => None,
            }));
        }
        assert!(events.iter().all(|e| e.event_type == PROGRESS_EVENT));
        let first: serde_json::Value = serde_json::from_str(&events[0].data).expect("json");
        assert_eq!(
            first,
            serde_json::json!({"jobId": "import-42", "percent": 100.0, "stage": "validating",
                "status": "running", "message": "3 of 3"})
        );
        let last: serde_json::Value = serde_json::from_str(&events[1].data).expect("json");
        assert_eq!(
            last,
            serde_json::json!({"jobId": "import-42", "status": "failed", "error": "row 7 is not a date"})
        );
    }
}
