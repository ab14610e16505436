//! Loading a key ring of 10, 100, 1,000 and 10,000 keys, and refreshing an
//! unchanged one.
//!
//! * `ring_load/memory/N`: a provider built over an in-memory repository
//!   holding N keys (interpretation, policy and the keys' encryptors: what
//!   every repository pays after reading).
//! * `ring_load/file_system/N`: the same from a directory of N key files as
//!   ASP.NET Core writes them (adds listing, sorting, reading and parsing:
//!   four system calls per file, and from a few hundred files on, one
//!   thread per 128 files, up to eight, reading, parsing and classifying at
//!   once).
//! * `ring_refresh_unchanged/{memory,file_system}/N`: a refresh of a ring
//!   that has not changed: the change check (`XmlRepository::changed_since`
//!   with the version the ring was read at) answering "unchanged", after
//!   which the provider reads and interprets nothing (a blob answers the
//!   same check with one conditional GET and a 304). The goal is
//!   <= 5 ms at any ring size. A directory cannot answer without a listing
//!   and a stat per file (its own modification time misses a file changed
//!   in place), done on several threads for a large one.
//! * `ring_refresh_changed/file_system/N`: a whole `provider.refresh()`
//!   after another process changed one key file (its modification time):
//!   the change check lists the directory, then the ring is read once.
//! * `ring_refresh_unchanged/provider/N`: a whole `provider.refresh()` of an
//!   unchanged in-memory ring: the change check, then the policy decided
//!   again on the keys already held (time may have moved), and a new
//!   snapshot sharing them.
//!
//! Keys are stored unencrypted (only the default key's encryptor is made at
//! load; the others' on first use) and dated one day apart, the newest
//! active; the goals are linear growth and <= 100 ms at 10,000 keys.
//! A load is timed without dropping the provider it built (`iter_batched`,
//! one load per batch, so each provider is dropped after its timing and the
//! next load reuses its memory): freeing a ring's element trees and wiping its
//! master keys is not loading (it happens when a ring is replaced, on the
//! thread that releases it last), and it is about a fifth of a 10,000-key
//! load.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration as StdDuration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dataprotection::DataProtectionProvider;
use dataprotection::crypto::{Algorithm, Secret};
use dataprotection::repository::{
    FileSystemXmlRepository, InMemoryXmlRepository, VersionedRepository, WriteCondition,
    XmlRepository,
};
use dataprotection::xml::{Format, KeyXml, RepositoryDocument, descriptor_element};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

/// `n` key elements, the newest created a day ago and valid for 90 days.
fn key_elements(n: usize) -> Vec<KeyXml> {
    let now = OffsetDateTime::now_utc();
    (0..n)
        .map(|i| {
            let created = now - Duration::days((n - i) as i64);
            let mut master = vec![0u8; 64];
            master[..8].copy_from_slice(&(i as u64).to_le_bytes());
            KeyXml {
                id: Uuid::new_v4(),
                creation_date: created,
                activation_date: created,
                expiration_date: created + Duration::days(90),
                descriptor: descriptor_element(Algorithm::default(), &Secret::new(master)),
            }
        })
        .collect()
}

/// One write of the whole document (appending key by key would re-read the
/// growing document each time: quadratic setup).
async fn memory_repository(keys: &[KeyXml]) -> Arc<dyn XmlRepository> {
    let repository = InMemoryXmlRepository::default();
    let mut document = RepositoryDocument::new();
    for key in keys {
        document.push_named(&key.to_element(), &key.friendly_name());
    }
    repository
        .write(&document, &WriteCondition::Create)
        .await
        .unwrap();
    Arc::new(repository)
}

/// Writes the files directly (as `FileSystemXmlRepository` writes them, but
/// without its per-file fsync, which would dominate the setup).
fn file_system_repository(keys: &[KeyXml], dir: &std::path::Path) -> Arc<dyn XmlRepository> {
    for key in keys {
        let path = dir.join(format!("{}.xml", key.friendly_name()));
        std::fs::write(path, key.to_element().to_document_bytes(Format::Indented)).unwrap();
    }
    Arc::new(FileSystemXmlRepository::new(dir))
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
    let mut group = c.benchmark_group("ring_load");
    group.sample_size(10);
    group.warm_up_time(StdDuration::from_secs(1));
    let dirs: Vec<_> = SIZES.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let mut repositories = Vec::new();
    for (size, dir) in SIZES.into_iter().zip(&dirs) {
        let keys = key_elements(size);
        let memory = runtime.block_on(memory_repository(&keys));
        let files = file_system_repository(&keys, dir.path());
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::new("memory", size), &memory, |b, r| {
            b.iter_batched(
                || r.clone(),
                |r| runtime.block_on(load(r)),
                BatchSize::PerIteration,
            )
        });
        group.bench_with_input(BenchmarkId::new("file_system", size), &files, |b, r| {
            b.iter_batched(
                || r.clone(),
                |r| runtime.block_on(load(r)),
                BatchSize::PerIteration,
            )
        });
        repositories.push((size, memory, files));
    }
    group.finish();

    // A refresh after a change: the listing says "changed" without reading
    // any file, then the ring is read and interpreted once.
    let mut group = c.benchmark_group("ring_refresh_changed");
    group.sample_size(10);
    group.warm_up_time(StdDuration::from_secs(1));
    for ((size, _, files), dir) in repositories.iter().zip(&dirs) {
        let provider = runtime.block_on(load(files.clone()));
        let touched = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "xml"))
            .unwrap();
        let file = std::fs::File::options().write(true).open(&touched).unwrap();
        let mut stamp = std::time::SystemTime::now();
        group.bench_function(BenchmarkId::new("file_system", size), |b| {
            b.iter(|| {
                stamp += StdDuration::from_secs(1);
                file.set_modified(stamp).unwrap();
                runtime.block_on(provider.refresh()).unwrap()
            })
        });
    }
    group.finish();

    // What a refresh of an unchanged ring costs: the provider's change check
    // asks the repository whether anything changed since the version its
    // ring was read at and, told "no", reads and interprets nothing.
    let mut group = c.benchmark_group("ring_refresh_unchanged");
    group.sample_size(10);
    group.warm_up_time(StdDuration::from_secs(1));
    for (size, memory, _) in &repositories {
        let provider = runtime.block_on(load(memory.clone()));
        group.bench_function(BenchmarkId::new("provider", size), |b| {
            b.iter(|| runtime.block_on(provider.refresh()).unwrap())
        });
    }
    for (size, memory, files) in repositories {
        for (name, repository) in [("memory", memory), ("file_system", files)] {
            let (_, version) = runtime
                .block_on(repository.get_all_elements_versioned())
                .unwrap();
            let version = version.expect("the repository reports versions");
            assert!(
                !runtime
                    .block_on(repository.changed_since(&version))
                    .unwrap()
            );
            group.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter(|| {
                    runtime
                        .block_on(repository.changed_since(&version))
                        .unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(ring_benches, benches);
criterion_main!(ring_benches);
