//! Fast revocation, against a real Azurite: a running provider refuses a key within its change
//! check interval after `dpkeys keys revoke`, not at the next 24-hour refresh. The test measures
//! the propagation time and the requests an idle instance sends (printed; timings are not
//! asserted).
#![allow(clippy::unwrap_used)]

mod ops_common;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use dataprotection::{DataProtectionProvider, Error};
use dataprotection_azure_blobs::{BlobRepositoryOptions, BlobXmlRepository};
use dataprotection_tests::azurite::CountRequests;
use ops_common::{blob_ring, blocking, dpkeys};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_a_running_provider_within_the_check_interval() {
    const INTERVAL: StdDuration = StdDuration::from_secs(1);
    // How long to wait for what the interval makes happen within seconds,
    // on a loaded 2-core CI machine: a deadline for a hang, never a timing.
    const PATIENCE: StdDuration = StdDuration::from_secs(120);
    let (_, url) = blob_ring().await;
    let requests = Arc::new(CountRequests::default());
    let options = BlobRepositoryOptions {
        client_options: CountRequests::client_options(&requests),
        ..Default::default()
    };
    let repository = BlobXmlRepository::new(url.as_str(), None, Some(options)).unwrap();
    let provider = DataProtectionProvider::builder()
        .application_name("revocation-test")
        .repository(Arc::new(repository))
        .change_check_interval(Some(INTERVAL))
        .build()
        .await
        .unwrap();
    let protector = provider.create_protector("p");
    let payload = protector.protect(b"secret").unwrap();
    let key_id = provider.key_ring().unwrap().default_key_id().unwrap();

    // Idle: only the change checks go out (one conditional GET each, answered 304).
    let idle = StdDuration::from_secs(5);
    let before = requests.total();
    tokio::time::sleep(idle).await;
    let idle_requests = requests.total() - before;
    // On a loaded machine the first check may come late: wait for it (a
    // generous deadline, not a timing).
    let deadline = Instant::now() + PATIENCE;
    while requests.total() == before {
        assert!(Instant::now() < deadline, "the change check never ran");
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    assert_eq!(protector.unprotect(&payload).unwrap(), b"secret");

    let revoked_at = Instant::now();
    blocking(move || {
        let revoke = ["--blob-url", &url, "keys", "revoke", &key_id.to_string()];
        dpkeys(&revoke, &[], None).code(0);
    })
    .await;
    let cli_done = revoked_at.elapsed();

    // The provider refuses the key without anyone calling refresh.
    let deadline = Instant::now() + PATIENCE;
    let refused = loop {
        match protector.unprotect(&payload) {
            Err(Error::KeyRevoked { key_id: id }) => {
                assert_eq!(id, key_id);
                break revoked_at.elapsed();
            }
            Ok(_) => {
                assert!(
                    Instant::now() < deadline,
                    "the running provider never saw the revocation"
                );
                tokio::time::sleep(StdDuration::from_millis(50)).await;
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    };
    let per_hour_at = |interval: f64| 3600.0 / interval;
    eprintln!(
        "revocation propagation: dpkeys keys revoke took {cli_done:?}; the provider refused the \
         key {refused:?} after the command started (change check interval {INTERVAL:?}); \
         idle requests: {idle_requests} in {idle:?} (= {:.0}/hour at this interval, {:.0}/hour \
         at the default 60 s interval)",
        idle_requests as f64 * 3600.0 / idle.as_secs_f64(),
        per_hour_at(60.0)
    );
    // A new default key is chosen at the reload (the revoked one can no longer protect).
    assert_ne!(provider.key_ring().unwrap().default_key_id(), Some(key_id));
}
