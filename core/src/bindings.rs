//! A ring's default key bound to the purpose chains its protectors use.
//!
//! Every payload's SP800-108 input starts with a part that depends only on
//! the key, the payload header and the purposes; [`AuthenticatedEncryptor::bind`]
//! hashes that part once. The bindings live with the ring snapshot's default
//! key, so they are always those of the key a protector protects with: a
//! refresh, a rollover or a revocation brings a new snapshot with new
//! bindings, and there is nothing to invalidate. Protectors with the same
//! purposes share one binding (a protector made per request included).
//!
//! Reading a binding is a few plain loads and a comparison of purpose bytes,
//! with no atomic read-modify-write on the hot path.

use std::fmt;
use std::sync::OnceLock;

use crate::crypto::{AuthenticatedEncryptor, BoundEncryptor};
use crate::payload::HEADER_LEN;

/// Purpose chains bound per default key. An application uses a handful
/// (cookies, antiforgery, temp data, tokens...); any beyond this take the
/// unbound path, which gives the same payloads.
const SLOTS: usize = 16;

/// The default key's encryptor bound to up to [`SLOTS`] purpose chains, each
/// made on first use.
pub(crate) struct Bindings {
    slots: [OnceLock<Binding>; SLOTS],
}

struct Binding {
    /// The purpose chain's part of the AAD (after the payload header).
    tail: Box<[u8]>,
    /// `None` when the encryptor does not bind.
    bound: Option<Box<dyn BoundEncryptor>>,
}

impl Bindings {
    pub(crate) fn new() -> Self {
        Bindings {
            slots: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// `encryptor` bound to the AAD `header || tail`: the binding made
    /// earlier for `tail`, or one made now if a slot is free. `None` when
    /// every slot holds another purpose chain or the encryptor does not
    /// bind: then the caller passes the AAD.
    #[inline]
    pub(crate) fn bound(
        &self,
        encryptor: &dyn AuthenticatedEncryptor,
        header: &[u8; HEADER_LEN],
        tail: &[u8],
    ) -> Option<&dyn BoundEncryptor> {
        for slot in &self.slots {
            let binding = match slot.get() {
                Some(binding) => binding,
                // A free slot: bind (another thread may be binding another
                // purpose chain into it; then look on).
                None => slot.get_or_init(|| Binding {
                    tail: tail.into(),
                    bound: encryptor.bind(&[header, tail]),
                }),
            };
            if *binding.tail == *tail {
                return binding.bound.as_deref();
            }
        }
        None
    }
}

impl fmt::Debug for Bindings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let used = self.slots.iter().filter(|s| s.get().is_some()).count();
        f.debug_struct("Bindings").field("used", &used).finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crypto::{Algorithm, Secret};

    #[test]
    fn each_purpose_chain_gets_its_own_binding_until_the_slots_run_out() {
        let encryptor = Algorithm::default().encryptor(&Secret::new(vec![3; 64]));
        let header = [9u8; HEADER_LEN];
        let bindings = Bindings::new();
        let tails: Vec<Vec<u8>> = (0..SLOTS + 3).map(|i| vec![i as u8; 1 + i]).collect();
        for (i, tail) in tails.iter().enumerate() {
            let bound = bindings.bound(encryptor.as_ref(), &header, tail);
            assert_eq!(bound.is_some(), i < SLOTS, "purpose chain {i}");
            if let Some(bound) = bound {
                let body = bound.encrypt(b"x").unwrap();
                assert_eq!(encryptor.decrypt(&body, &[&header, tail]).unwrap(), b"x");
                // The same chain finds the same binding again.
                let again = bindings.bound(encryptor.as_ref(), &header, tail).unwrap();
                assert_eq!(again.decrypt(&body).unwrap(), b"x");
                // No other chain opens it.
                let other = &tails[(i + 1) % SLOTS];
                let other = bindings.bound(encryptor.as_ref(), &header, other).unwrap();
                assert!(other.decrypt(&body).is_err());
            }
        }
        assert_eq!(
            format!("{bindings:?}"),
            format!("Bindings {{ used: {SLOTS} }}")
        );
    }
}
