//! A key ring of 10, 100, 1,000 and 10,000 keys in one blob on Azurite
//! (started here, on 127.0.0.1, like every test that needs it):
//!
//! * `blob_ring_load/N`: a provider built over a new repository handle of
//!   the blob (nothing cached, as in a process starting): one GET of the
//!   whole document, then parsing, interpretation and policy (the provider
//!   is dropped outside the timing, as in `core/benches/ring.rs`).
//! * `blob_refresh_unchanged/N`: `provider.refresh()` of a ring whose blob
//!   has not changed: one conditional GET answered 304 (no body, nothing
//!   parsed), then the policy decided again on the keys already held. The
//!   issue's goal is <= 5 ms at any ring size.
//! * `blob_changed_since/N`: the repository's change check alone (the
//!   conditional GET).
//!
//! Keys are stored unencrypted and dated a day apart, the newest active, as
//! in `core/benches/ring.rs`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration as StdDuration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dataprotection::DataProtectionProvider;
use dataprotection::crypto::{Algorithm, Secret};
use dataprotection::repository::{VersionedRepository, WriteCondition, XmlRepository};
use dataprotection::xml::{KeyXml, RepositoryDocument, descriptor_element};
use dataprotection_azure_blobs::BlobXmlRepository;
use dataprotection_tests::azurite::Azurite;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

/// A blob holding `n` keys, written in one upload; its URL.
async fn blob_ring(azurite: &Azurite, n: usize) -> String {
    let (_, url) = azurite.fresh_blob("bench", "keys.xml").await.unwrap();
    let repository = open(url.as_str());
    let now = OffsetDateTime::now_utc();
    let mut document = RepositoryDocument::new();
    for i in 0..n {
        let created = now - Duration::days((n - i) as i64);
        let mut master = vec![0u8; 64];
        master[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let key = KeyXml {
            id: Uuid::new_v4(),
            creation_date: created,
            activation_date: created,
            expiration_date: created + Duration::days(90),
            descriptor: descriptor_element(Algorithm::default(), &Secret::new(master)),
        };
        document.push_named(&key.to_element(), &key.friendly_name());
    }
    repository
        .write(&document, &WriteCondition::Create)
        .await
        .unwrap();
    url.to_string()
}

/// A new handle of the blob at `url`: it has read nothing yet (a handle
/// keeps the document it read, to answer a refresh with a conditional GET).
fn open(url: &str) -> BlobXmlRepository {
    BlobXmlRepository::new(url, None, None).unwrap()
}

async fn load(repository: Arc<dyn XmlRepository>) -> DataProtectionProvider {
    DataProtectionProvider::builder()
        .application_name("bench")
        .repository(repository)
        .auto_generate_keys(false)
        .build()
        .await
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // A failure to start Azurite (no Node.js, no npm package) ends the bench
    // with its reason: never a silent skip.
    let azurite = Azurite::start().unwrap();
    let rings: Vec<_> = SIZES
        .iter()
        .map(|&n| (n, runtime.block_on(blob_ring(&azurite, n))))
        .collect();

    let mut group = c.benchmark_group("blob_ring_load");
    group.sample_size(10);
    group.warm_up_time(StdDuration::from_secs(1));
    for (n, url) in &rings {
        group.throughput(Throughput::Elements(*n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), url, |b, url| {
            b.iter_batched(
                || Arc::new(open(url)) as Arc<dyn XmlRepository>,
                |r| runtime.block_on(load(r)),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();

    let mut group = c.benchmark_group("blob_refresh_unchanged");
    group.sample_size(20);
    for (n, url) in &rings {
        let provider = runtime.block_on(load(Arc::new(open(url))));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| runtime.block_on(provider.refresh()).unwrap())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("blob_changed_since");
    group.sample_size(20);
    for (n, url) in &rings {
        let repository = open(url);
        let (_, version) = runtime
            .block_on(repository.get_all_elements_versioned())
            .unwrap();
        let version = version.expect("a blob has an ETag");
        assert!(
            !runtime
                .block_on(repository.changed_since(&version))
                .unwrap()
        );
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                runtime
                    .block_on(repository.changed_since(&version))
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(blob_benches, benches);
criterion_main!(blob_benches);
