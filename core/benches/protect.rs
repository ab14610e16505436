//! `protect`/`unprotect` through a provider versus `raw`: the bare cost of the
//! format with the same crates and random source (32 random bytes, one
//! SP800-108 derivation of both subkeys, AES-256-CBC and HMAC-SHA256 over the
//! data; no framing, no key lookup). Default algorithm.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dataprotection::DataProtectionProvider;
use dataprotection::crypto::{Algorithm, RandomSource, Secret, context_header};
use dataprotection::repository::InMemoryXmlRepository;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha512};

const SIZES: [usize; 3] = [64, 1024, 16384];

/// The format without framing: what any implementation must at least do.
struct Raw {
    master: Vec<u8>,
    label: Vec<u8>,
    context_header: Vec<u8>,
    random: dataprotection::crypto::OsRandom,
}

impl Raw {
    fn subkeys(&self, key_modifier: &[u8]) -> [u8; 64] {
        let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(&self.master).unwrap();
        mac.update(&1u32.to_be_bytes());
        mac.update(&self.label);
        mac.update(&[0]);
        mac.update(&self.context_header);
        mac.update(key_modifier);
        mac.update(&512u32.to_be_bytes());
        let mut out = [0u8; 64];
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }

    fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut random = [0u8; 32];
        self.random.fill(&mut random).unwrap();
        let (key_modifier, iv) = random.split_at(16);
        let keys = self.subkeys(key_modifier);
        let ciphertext = cbc::Encryptor::<aes::Aes256>::new_from_slices(&keys[..32], iv)
            .unwrap()
            .encrypt_padded_vec::<Pkcs7>(plaintext);
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&keys[32..]).unwrap();
        mac.update(iv);
        mac.update(&ciphertext);
        let tag = mac.finalize().into_bytes();
        let mut out = Vec::with_capacity(32 + ciphertext.len() + 32);
        out.extend_from_slice(&random);
        out.extend_from_slice(&ciphertext);
        out.extend_from_slice(&tag);
        out
    }

    fn open(&self, body: &[u8]) -> Vec<u8> {
        let (key_modifier, rest) = body.split_at(16);
        let (iv, rest) = rest.split_at(16);
        let (ciphertext, tag) = rest.split_at(rest.len() - 32);
        let keys = self.subkeys(key_modifier);
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&keys[32..]).unwrap();
        mac.update(iv);
        mac.update(ciphertext);
        mac.verify_slice(tag).unwrap();
        cbc::Decryptor::<aes::Aes256>::new_from_slices(&keys[..32], iv)
            .unwrap()
            .decrypt_padded_vec::<Pkcs7>(ciphertext)
            .unwrap()
    }
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let provider = runtime.block_on(async {
        DataProtectionProvider::builder()
            .application_name("bench")
            .repository(Arc::new(InMemoryXmlRepository::new()))
            .build()
            .await
            .unwrap()
    });
    let _guard = runtime.enter();
    let protector = provider.create_protector("purpose");
    let key_id = provider.key_ring().unwrap().default_key_id().unwrap();
    let raw = Raw {
        master: vec![7u8; 64],
        label: dataprotection::payload::additional_authenticated_data(
            &key_id,
            &["bench", "purpose"],
        ),
        context_header: context_header(Algorithm::default()),
        random: dataprotection::crypto::OsRandom,
    };
    let encryptor = Algorithm::default().encryptor(&Secret::new(vec![7u8; 64]));

    let mut group = c.benchmark_group("protect");
    for size in SIZES {
        let data = vec![0x5Au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, d| {
            b.iter(|| protector.protect(black_box(d)).unwrap())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("unprotect");
    for size in SIZES {
        let payload = protector.protect(&vec![0x5Au8; size]).unwrap();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, p| {
            b.iter(|| protector.unprotect(black_box(p)).unwrap())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("raw");
    for size in SIZES {
        let data = vec![0x5Au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, d| {
            b.iter(|| raw.seal(black_box(d)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("raw_open");
    for size in SIZES {
        let body = raw.seal(&vec![0x5Au8; size]);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &body, |b, p| {
            b.iter(|| raw.open(black_box(p)))
        });
    }
    group.finish();

    // The encryptor alone, without the ring snapshot and payload framing:
    // compare with protect/64 to see what the key ring lookup costs.
    let aad = raw.label.clone();
    c.bench_function("encryptor/64", |b| {
        let data = vec![0x5Au8; 64];
        b.iter(|| encryptor.encrypt(black_box(&data), &aad).unwrap())
    });
}

criterion_group!(protect_benches, benches);
criterion_main!(protect_benches);
