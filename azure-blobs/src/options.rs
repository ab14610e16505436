//! [`BlobRepositoryOptions`].

use std::sync::Arc;
use std::time::Duration as StdDuration;

use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions};
use dataprotection::clock::{Clock, SystemClock};
use time::{Duration, OffsetDateTime};

/// Options of a [`crate::BlobXmlRepository`], Azure SDK style: public fields and `Default`.
///
/// ```
/// use dataprotection_azure_blobs::BlobRepositoryOptions;
/// let options = BlobRepositoryOptions {
///     create_container_if_missing: true,
///     max_attempts: 20,
///     ..Default::default()
/// };
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct BlobRepositoryOptions {
    /// Options of the SDK pipeline: retry policy, extra per-call / per-try policies, transport.
    ///
    /// This retry policy is the only one for transient failures of single requests (408, 429,
    /// 5xx, connection errors); the repository adds none. The default retries 3 times within
    /// 15 s, far less than the SDK's own default (8 times within 60 s): core's convergence loop
    /// runs on top (see [`BlobRepositoryOptions::max_attempts`]) for conflicts and writes whose
    /// outcome is unknown, and an SDK retry of a conditional write whose first response was
    /// lost comes back as a spurious 412/409 anyway, which that loop resolves by re-reading.
    /// With [`RetryOptions::none`] a transient failure goes straight to that loop.
    ///
    /// The repository adds its SAS policy after your `per_call_policies`, so your
    /// `per_try_policies` see signed requests.
    pub client_options: ClientOptions,
    /// Overrides the storage service version (`x-ms-version`) the SDK sends.
    pub service_version: Option<String>,
    /// Create the container when the service says it does not exist (404 `ContainerNotFound`).
    ///
    /// Needs a credential that may create containers: an account SAS (`srt` containing `c`,
    /// permission `c`), a token with a data-plane role such as Storage Blob Data Contributor,
    /// or an account key (a connection string with `AccountKey=`). A blob- or container-scoped
    /// service SAS cannot create its container. Default: `false`, as in .NET.
    pub create_container_if_missing: bool,
    /// How many times core's convergence loop attempts one change (append, delete, replace):
    /// after a conflict (409/412), or a failure that leaves unknown whether the write happened
    /// (5xx, timeout, lost response), it re-reads the blob and tries again. Default 10.
    pub max_attempts: u32,
    /// Back-off before the second attempt; it doubles at every further attempt, up to
    /// [`BlobRepositoryOptions::max_backoff`], and each wait is randomised to 50–100 % of its
    /// value so that competing instances spread out. Default 50 ms.
    pub initial_backoff: StdDuration,
    /// Longest back-off between two attempts. Default 1 s.
    pub max_backoff: StdDuration,
    /// Validity of the SAS tokens minted from an account key (connection strings with
    /// `AccountKey=`). Default 1 hour.
    pub sas_validity: Duration,
    /// A SAS (minted, or from a [`crate::SasProvider`]) is replaced when it has less than this
    /// left. Default 10 minutes (so a 1-hour SAS is re-minted after 50 minutes).
    pub sas_renew_before: Duration,
    /// A fixed SAS (from a SAS URL or a connection string's `SharedAccessSignature`), which
    /// cannot be renewed, is reported with a warning log when it has less than this left.
    /// Default 7 days.
    pub sas_expiry_warning: Duration,
    /// The clock used for SAS expiry decisions (tests inject a manual one).
    pub clock: Arc<dyn Clock>,
    /// The largest blob read as a key ring document, in bytes (a key is 1–2 KB, so even a
    /// ring of thousands of keys is far below it). A larger blob is refused with
    /// [`crate::BlobError::DocumentTooLarge`] from its announced size, without downloading
    /// it. Default 64 MiB.
    pub max_document_size: u64,
}

impl Default for BlobRepositoryOptions {
    fn default() -> Self {
        BlobRepositoryOptions {
            client_options: ClientOptions {
                retry: RetryOptions::exponential(ExponentialRetryOptions {
                    initial_delay: azure_core::time::Duration::milliseconds(200),
                    max_retries: 3,
                    max_total_elapsed: azure_core::time::Duration::seconds(15),
                    max_delay: azure_core::time::Duration::seconds(2),
                }),
                ..ClientOptions::default()
            },
            service_version: None,
            create_container_if_missing: false,
            max_attempts: 10,
            initial_backoff: StdDuration::from_millis(50),
            max_backoff: StdDuration::from_secs(1),
            sas_validity: Duration::hours(1),
            sas_renew_before: Duration::minutes(10),
            sas_expiry_warning: Duration::days(7),
            clock: Arc::new(SystemClock),
            max_document_size: 64 * 1024 * 1024,
        }
    }
}

impl BlobRepositoryOptions {
    /// Whether a SAS expiring at `expiry` must be replaced at `now`: it has less than
    /// [`BlobRepositoryOptions::sas_renew_before`] left (or has expired).
    ///
    /// ```
    /// use dataprotection_azure_blobs::BlobRepositoryOptions;
    /// use time::{Duration, macros::datetime};
    /// let o = BlobRepositoryOptions::default();
    /// let minted = datetime!(2030-01-01 0:00 UTC);
    /// let expiry = minted + o.sas_validity;
    /// assert!(!o.sas_needs_renewal(expiry, minted + Duration::minutes(49)));
    /// assert!(o.sas_needs_renewal(expiry, minted + Duration::minutes(50)));
    /// ```
    pub fn sas_needs_renewal(&self, expiry: OffsetDateTime, now: OffsetDateTime) -> bool {
        renewal_due(expiry, self.sas_renew_before, now)
    }

    /// When a SAS expiring at `expiry` is replaced: `expiry - sas_renew_before`.
    pub fn sas_renewal_time(&self, expiry: OffsetDateTime) -> OffsetDateTime {
        expiry - self.sas_renew_before
    }
}

/// Whether a SAS expiring at `expiry` must be replaced at `now`, `renew_before` ahead.
pub(crate) fn renewal_due(
    expiry: OffsetDateTime,
    renew_before: Duration,
    now: OffsetDateTime,
) -> bool {
    now >= expiry - renew_before
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn renewal_schedule() {
        let o = BlobRepositoryOptions::default();
        let t0 = datetime!(2030-01-01 0:00 UTC);
        let expiry = t0 + o.sas_validity;
        assert_eq!(o.sas_renewal_time(expiry), t0 + Duration::minutes(50));
        assert!(!o.sas_needs_renewal(expiry, t0));
        assert!(!o.sas_needs_renewal(expiry, t0 + Duration::seconds(2999)));
        assert!(o.sas_needs_renewal(expiry, t0 + Duration::seconds(3000)));
        assert!(o.sas_needs_renewal(expiry, t0 + Duration::hours(5)));
    }
}
