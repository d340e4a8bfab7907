//! Capped exponential backoff for transient errors.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// 0: retry forever.
    pub max_retries: u32,
}

/// Why a retry loop ended without success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiveUp {
    /// The worker was told to stop (revoke or shutdown): nothing is acknowledged.
    Stopped,
    /// `max-retries` reached; the message is the last error.
    Exhausted(String),
    /// An error that retrying cannot fix (a write concern the server cannot
    /// satisfy, a record too large for the dead-letter topic): stop.
    Permanent(String),
}

impl Backoff {
    pub fn from_config(p: &crate::config::PipelineConfig) -> Self {
        Backoff {
            initial: Duration::from_millis(p.retry_backoff_ms),
            max: Duration::from_millis(p.retry_backoff_max_ms),
            max_retries: p.max_retries,
        }
    }

    /// The delay before retry number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Waits before retry `attempt`, or says why not to retry.
    pub async fn wait(
        &self,
        attempt: u32,
        error: &str,
        stop: &CancellationToken,
    ) -> Result<(), GiveUp> {
        if self.max_retries != 0 && attempt > self.max_retries {
            return Err(GiveUp::Exhausted(error.to_owned()));
        }
        tokio::select! {
            _ = tokio::time::sleep(self.delay(attempt)) => Ok(()),
            _ = stop.cancelled() => Err(GiveUp::Stopped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_retries: 0,
        };
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(4), Duration::from_millis(800));
        assert_eq!(b.delay(5), Duration::from_secs(1));
        assert_eq!(b.delay(500), Duration::from_secs(1));
    }
}
