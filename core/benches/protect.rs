//! `protect`/`unprotect` through a provider versus two baselines, default
//! algorithm (AES-256-CBC + HMAC-SHA256):
//!
//! * `floor_protect/N`, `floor_unprotect/N`: the floor. The whole payload
//!   format (magic header and key id, 32 random bytes from the same source,
//!   one SP800-108 derivation of both subkeys, AES-256-CBC, HMAC-SHA256 over
//!   IV and ciphertext) with the same crates and the keyed state prepared once,
//!   as the library holds it: the KDF's HMAC-SHA512 is keyed with the master
//!   key once and cloned per call, the context header and the purpose part of
//!   the AAD are computed once. No key lookup, no clock, no ring snapshot.
//!   The goal: `protect/N` <= 1.05 x `floor_protect/N` and
//!   `unprotect/N` <= 1.05 x `floor_unprotect/N`.
//! * `raw/N`, `raw_open/N`: the same without framing but re-keying the KDF's
//!   HMAC on every call (kept for comparison with earlier runs; not a floor).
//!
//! * `cookie_{floor_protect,protect,floor_unprotect,unprotect}/N`:
//!   the same with ASP.NET Core's cookie authentication purposes, where the
//!   protector's bound key derivation (`AuthenticatedEncryptor::bind`)
//!   saves one SHA-512 compression per payload over that floor.
//!
//! `random/*` and `protect_thread_rng/*` are the evidence for the choice of
//! random source documented in `crypto::random`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dataprotection::DataProtectionProvider;
use dataprotection::crypto::OsRandom;
use dataprotection::crypto::{Algorithm, RandomSource, Secret, context_header};
use dataprotection::repository::{InMemoryXmlRepository, XmlRepository};
use dataprotection::xml::{KeyXml, read_descriptor};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha512};

const SIZES: [usize; 3] = [64, 1024, 16384];

/// The floor: the full payload format with everything that does not depend
/// on the payload prepared once, as the library prepares it per key and per
/// protector.
struct Floor {
    /// HMAC-SHA512 keyed with the master key (the KDF's PRF), cloned per call.
    prf: Hmac<Sha512>,
    /// Magic header and key id: the payload's first 20 bytes.
    header: [u8; 20],
    /// The purpose chain part of the AAD (after the 20 header bytes).
    purpose_tail: Vec<u8>,
    context_header: Vec<u8>,
    random: dataprotection::crypto::OsRandom,
}

impl Floor {
    /// SP800-108 CTR HMAC-SHA512 of 64 bytes (one PRF block):
    /// label = header || purposes, context = context header || key modifier.
    fn subkeys(&self, header: &[u8], key_modifier: &[u8]) -> [u8; 64] {
        let mut mac = self.prf.clone();
        mac.update(&1u32.to_be_bytes());
        mac.update(header);
        mac.update(&self.purpose_tail);
        mac.update(&[0]);
        mac.update(&self.context_header);
        mac.update(key_modifier);
        mac.update(&512u32.to_be_bytes());
        let mut out = [0u8; 64];
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }

    fn protect(&self, plaintext: &[u8]) -> Vec<u8> {
        let padded = (plaintext.len() / 16 + 1) * 16;
        let mut out = vec![0u8; 20 + 32 + padded + 32];
        out[..20].copy_from_slice(&self.header);
        let (header, body) = out.split_at_mut(20);
        let (random, rest) = body.split_at_mut(32);
        self.random.fill(random).unwrap();
        let (key_modifier, iv) = random.split_at(16);
        let keys = self.subkeys(header, key_modifier);
        let (ciphertext, tag) = rest.split_at_mut(padded);
        cbc::Encryptor::<aes::Aes256>::new_from_slices(&keys[..32], iv)
            .unwrap()
            .encrypt_padded_b2b::<Pkcs7>(plaintext, ciphertext)
            .unwrap();
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&keys[32..]).unwrap();
        mac.update(iv);
        mac.update(ciphertext);
        tag.copy_from_slice(&mac.finalize().into_bytes());
        out
    }

    fn unprotect(&self, payload: &[u8]) -> Vec<u8> {
        let (header, body) = payload.split_at(20);
        assert_eq!(header[..4], [0x09, 0xF0, 0xC9, 0xF0]);
        let (key_modifier, rest) = body.split_at(16);
        let (iv, rest) = rest.split_at(16);
        let (ciphertext, tag) = rest.split_at(rest.len() - 32);
        let keys = self.subkeys(header, key_modifier);
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&keys[32..]).unwrap();
        mac.update(iv);
        mac.update(ciphertext);
        mac.verify_slice(tag).unwrap();
        // Copied, then decrypted in place: cheaper than zero-filling an
        // output buffer and decrypting into it.
        let mut out = ciphertext.to_vec();
        let len = cbc::Decryptor::<aes::Aes256>::new_from_slices(&keys[..32], iv)
            .unwrap()
            .decrypt_padded::<Pkcs7>(&mut out)
            .unwrap()
            .len();
        out.truncate(len);
        out
    }
}

/// A thread-local ChaCha12 generator seeded from the OS (`rand::rng()`), for
/// the random-source comparison only.
#[derive(Debug)]
struct ThreadRandom;

impl RandomSource for ThreadRandom {
    fn fill(&self, buf: &mut [u8]) -> dataprotection::Result<()> {
        use rand::Rng;
        rand::rng().fill_bytes(buf);
        Ok(())
    }
}

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

/// The group `name/N` for each size N: `run` on `input` of N bytes of
/// plaintext (the plaintext itself, or a payload protecting it).
fn sized<R>(
    c: &mut Criterion,
    name: &str,
    sizes: &[usize],
    input: impl Fn(&[u8]) -> Vec<u8>,
    run: impl Fn(&[u8]) -> R,
) {
    let mut group = c.benchmark_group(name);
    for &size in sizes {
        let data = input(&vec![0x5Au8; size]);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, d| {
            b.iter(|| run(black_box(d)))
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let repository = Arc::new(InMemoryXmlRepository::new());
    let provider = runtime.block_on(async {
        DataProtectionProvider::builder()
            .application_name("bench")
            .repository(repository.clone())
            .build()
            .await
            .unwrap()
    });
    let _guard = runtime.enter();
    let protector = provider.create_protector("purpose");
    let key_id = provider.key_ring().unwrap().default_key_id().unwrap();
    // The default key's master key, read back from the repository.
    let elements = runtime.block_on(repository.get_all_elements()).unwrap();
    let master_key = read_descriptor(&KeyXml::from_element(&elements[0]).unwrap().descriptor)
        .unwrap()
        .master_key;
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

    // The floor, with the provider's default key and purpose chain, so that
    // payloads are byte-compatible both ways (checked below).
    let mut header = [0u8; 20];
    header[..4].copy_from_slice(&dataprotection::payload::MAGIC_HEADER);
    header[4..].copy_from_slice(&dataprotection::payload::key_id_bytes(&key_id));
    let floor = Floor {
        prf: <Hmac<Sha512> as KeyInit>::new_from_slice(master_key.expose()).unwrap(),
        header,
        purpose_tail: dataprotection::payload::PurposeTail::new(&["bench", "purpose"])
            .as_bytes()
            .to_vec(),
        context_header: context_header(Algorithm::default()),
        random: dataprotection::crypto::OsRandom,
    };
    let check = floor.protect(b"floor");
    assert_eq!(protector.unprotect(&check).unwrap(), b"floor");
    assert_eq!(floor.unprotect(&protector.protect(b"lib").unwrap()), b"lib");

    // Each size's floor and library run back to back, so that a drift of the
    // machine's speed (other tenants, clock frequency) between groups run
    // minutes apart does not enter their ratio.
    let plaintext = |d: &[u8]| d.to_vec();
    let floor_protected = |d: &[u8]| floor.protect(d);
    let protected = |d: &[u8]| protector.protect(d).unwrap();
    for size in SIZES {
        let size = &[size];
        sized(c, "floor_protect", size, plaintext, floor_protected);
        sized(c, "protect", size, plaintext, protected);
        sized(c, "floor_unprotect", size, floor_protected, |p| {
            floor.unprotect(p)
        });
        sized(c, "unprotect", size, protected, |p| {
            protector.unprotect(p).unwrap()
        });
    }
    sized(c, "raw", &SIZES, plaintext, |d| raw.seal(d));
    sized(c, "raw_open", &SIZES, |d| raw.seal(d), |p| raw.open(p));

    // ASP.NET Core's cookie authentication purposes: long enough that the
    // fixed part of the key derivation's input (header, purposes, context
    // header) passes SHA-512's 128-byte block. A protector hashes that part
    // once per default key (`AuthenticatedEncryptor::bind`); the floor, as
    // the issue defines it, hashes it per payload.
    let long_purposes = [
        "Microsoft.AspNetCore.Authentication.Cookies.CookieAuthenticationMiddleware",
        "Cookies",
        "v2",
    ];
    let mut cookie_protector = provider.create_protector(long_purposes[0]);
    for purpose in &long_purposes[1..] {
        cookie_protector = cookie_protector.create_protector(*purpose);
    }
    let cookie_floor = Floor {
        prf: floor.prf.clone(),
        header,
        // The provider's application name comes first, as for `floor`.
        purpose_tail: dataprotection::payload::PurposeTail::new(
            &[&["bench"][..], &long_purposes[..]].concat(),
        )
        .as_bytes()
        .to_vec(),
        context_header: context_header(Algorithm::default()),
        random: dataprotection::crypto::OsRandom,
    };
    let check = cookie_floor.protect(b"floor");
    assert_eq!(cookie_protector.unprotect(&check).unwrap(), b"floor");
    let floor_protected = |d: &[u8]| cookie_floor.protect(d);
    let protected = |d: &[u8]| cookie_protector.protect(d).unwrap();
    for size in [64, 1024] {
        let size = &[size];
        sized(c, "cookie_floor_protect", size, plaintext, floor_protected);
        sized(c, "cookie_protect", size, plaintext, protected);
        sized(c, "cookie_floor_unprotect", size, floor_protected, |p| {
            cookie_floor.unprotect(p)
        });
        sized(c, "cookie_unprotect", size, protected, |p| {
            cookie_protector.unprotect(p).unwrap()
        });
    }

    // The encryptor alone, without the ring snapshot and payload framing:
    // compare with protect/64 to see what the key ring lookup costs.
    let aad = raw.label.clone();
    c.bench_function("encryptor/64", |b| {
        let data = vec![0x5Au8; 64];
        b.iter(|| encryptor.encrypt(black_box(&data), &aad).unwrap())
    });
}

/// Evidence for the random-source decision (see `dataprotection::crypto::OsRandom`):
/// what 32 random bytes cost from the OS and from a thread-local ChaCha12,
/// and what protect/64 costs with each.
fn random_sources(c: &mut Criterion) {
    let mut group = c.benchmark_group("random");
    let mut buf = [0u8; 32];
    group.bench_function("os/32", |b| {
        b.iter(|| OsRandom.fill(black_box(&mut buf)).unwrap())
    });
    group.bench_function("thread_rng/32", |b| {
        b.iter(|| ThreadRandom.fill(black_box(&mut buf)).unwrap())
    });
    group.finish();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let provider = runtime.block_on(async {
        DataProtectionProvider::builder()
            .application_name("bench")
            .repository(Arc::new(InMemoryXmlRepository::new()))
            .random(Arc::new(ThreadRandom))
            .build()
            .await
            .unwrap()
    });
    let _guard = runtime.enter();
    let protector = provider.create_protector("purpose");
    let data = vec![0x5Au8; 64];
    c.bench_function("protect_thread_rng/64", |b| {
        b.iter(|| protector.protect(black_box(&data)).unwrap())
    });
}

criterion_group!(protect_benches, benches, random_sources);
criterion_main!(protect_benches);
