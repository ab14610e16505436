//! Key XML: the element tree, dates, and the `<key>`, descriptor,
//! `<revocation>`, `<encryptedSecret>` and `<repository>` documents.

mod date;
mod dom;
mod key;
mod repository;

pub use date::{format_date, from_ticks, parse_date, to_ticks};
pub use dom::{Attribute, Element, Format, Node};
pub(crate) use key::normalize_type_name;
pub use key::{
    ClassifiedElement, DATA_PROTECTION_NS, Descriptor, DescriptorKind, KeyXml, RevocationTarget,
    RevocationXml, StoredElement, contains_encrypted_secret, descriptor_element,
    master_key_element, read_descriptor, read_descriptor_algorithm, read_master_key,
};
pub use repository::{RepositoryChild, RepositoryDocument};
