//! Payload parsing and unprotect against the vector key ring: any input must
//! give a result or a typed error, never a panic.
#![no_main]

use std::sync::{Arc, LazyLock};

use dataprotection::repository::FileSystemXmlRepository;
use dataprotection::{DataProtectionProvider, DataProtector};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    _runtime: tokio::runtime::Runtime,
    protectors: Vec<DataProtector>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/vectors/keyring");
    let provider = runtime.block_on(async {
        DataProtectionProvider::builder()
            .repository(Arc::new(FileSystemXmlRepository::new(dir)))
            .auto_generate_keys(false)
            .build()
            .await
            .unwrap()
    });
    let protectors = vec![
        provider.create_protector_with_purposes(&["purpose1", "purpose2"]),
        provider.create_protector_with_purposes::<&str>(&[]),
        provider.create_protector_with_purposes(&["purpose1"]).to_time_limited_inner(),
    ];
    Fixture { _runtime: runtime, protectors }
});

trait Inner {
    fn to_time_limited_inner(&self) -> DataProtector;
}
impl Inner for DataProtector {
    fn to_time_limited_inner(&self) -> DataProtector {
        self.create_protector(dataprotection::TIME_LIMITED_PURPOSE)
    }
}

fuzz_target!(|data: &[u8]| {
    let fixture = &*FIXTURE;
    for p in &fixture.protectors {
        let _ = p.unprotect(data);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(bytes) = dataprotection::payload::decode_text(text) {
            let _ = fixture.protectors[0].unprotect(&bytes);
        }
    }
});
