//! Where key XML is stored: the `XmlRepository` trait, the file-system and
//! in-memory repositories, and the zero-configuration default location.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod convergence;
mod default_location;
mod file_system;
mod memory;
mod regular_file;
mod versioned;

use std::fmt::Debug;

use async_trait::async_trait;

pub use default_location::{
    DefaultLocation, default_repository, default_repository_location,
    default_repository_location_from,
};
pub use file_system::FileSystemXmlRepository;
pub use memory::InMemoryXmlRepository;
pub use regular_file::UnsafeFileError;
pub use versioned::{
    RetryPolicy, Snapshot, StorageError, Version, VersionedRepository, WriteCondition,
};

use crate::error::{Error, Result};
use crate::xml::{ClassifiedElement, Element};

/// When an element is deleted relative to the others chosen with it: lower
/// orders first, each order in its own conditional write, stopping at the
/// first failure (a key's revocation is never deleted before the key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeletionOrder {
    /// Keys: deleted first.
    Key,
    /// Revocations of keys that are deleted or absent: after the keys.
    KeyRevocation,
    /// Revocations of all keys superseded by a later one: last.
    SupersededMassRevocation,
}

/// One stored element to delete: its index among the elements the chooser
/// received, and its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deletion {
    /// Index in the slice given to the chooser.
    pub index: usize,
    /// When it goes.
    pub order: DeletionOrder,
}

/// One stored element to replace in place: its index among the elements the
/// chooser received, and what replaces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replacement {
    /// Index in the slice given to the chooser.
    pub index: usize,
    /// The new element.
    pub element: Element,
}

/// Chooses, from every stored element (in document order), which to delete.
/// It may run more than once (after a conflict, and before each order), so
/// it must be a pure function of its input.
pub type DeletionChooser<'a> = &'a (dyn Fn(&[Element]) -> Vec<Deletion> + Send + Sync);

/// Chooses, from every stored element (in document order), which to replace
/// in place. See [`XmlRepository::replace_elements`].
pub type ReplacementChooser<'a> = &'a (dyn Fn(&[Element]) -> Vec<Replacement> + Send + Sync);

/// A deletion chooser from a decision per element (when the decision does
/// not depend on the other elements).
///
/// ```
/// use dataprotection::repository::{DeletionOrder, delete_where};
/// use dataprotection::xml::Element;
/// let choose = delete_where(|e| e.is("old").then_some(DeletionOrder::Key));
/// let chosen = choose(&[Element::new("new"), Element::new("old")]);
/// assert_eq!(chosen.len(), 1);
/// assert_eq!(chosen[0].index, 1);
/// ```
pub fn delete_where(
    order: impl Fn(&Element) -> Option<DeletionOrder> + Send + Sync,
) -> impl Fn(&[Element]) -> Vec<Deletion> + Send + Sync {
    move |elements| {
        elements
            .iter()
            .enumerate()
            .filter_map(|(index, e)| order(e).map(|order| Deletion { index, order }))
            .collect()
    }
}

/// A replacement chooser from a decision per element: `Some(new)` replaces
/// the element by `new`.
pub fn replace_where(
    new: impl Fn(&Element) -> Option<Element> + Send + Sync,
) -> impl Fn(&[Element]) -> Vec<Replacement> + Send + Sync {
    move |elements| {
        elements
            .iter()
            .enumerate()
            .filter_map(|(index, e)| new(e).map(|element| Replacement { index, element }))
            .collect()
    }
}

/// Decides, from the elements currently stored, whether an element is still
/// worth storing (used so that concurrent writers do not all add a key).
pub type StorePrecondition<'a> = &'a (dyn Fn(&[Element]) -> bool + Send + Sync);

/// Storage for key ring elements (ASP.NET Core's `IXmlRepository`): what the
/// key manager and the provider use.
///
/// Every [`VersionedRepository`] implements it through core's one retry loop
/// (idempotent appends, preconditions re-evaluated on every attempt, ordered
/// deletion, in-place replacement); to add a backend, implement
/// [`VersionedRepository`] rather than this trait. Implementing it directly
/// is for wrappers (fault injection in tests, decorators).
///
/// Implementations must never drop or rewrite elements they did not write,
/// including ones they cannot interpret, and must report a failed read as an
/// error rather than as an empty ring.
#[async_trait]
pub trait XmlRepository: Debug + Send + Sync {
    /// Every stored top-level element.
    async fn get_all_elements(&self) -> Result<Vec<Element>>;

    /// Every stored element and the version they were read at (`None` when
    /// the repository has no versions; then [`XmlRepository::changed_since`]
    /// is never asked).
    async fn get_all_elements_versioned(&self) -> Result<(Vec<Element>, Option<Version>)> {
        Ok((self.get_all_elements().await?, None))
    }

    /// Every stored element classified ([`ClassifiedElement::of`]) in
    /// document order, and the version they were read at: what loading a
    /// ring needs. The default classifies what
    /// [`XmlRepository::get_all_elements_versioned`] returns; a backend that
    /// parses element by element (a directory of files) classifies each
    /// where it parsed it, while it is still in cache, and keeps nothing
    /// else of the stored text.
    async fn get_all_classified_versioned(
        &self,
    ) -> Result<(Vec<ClassifiedElement>, Option<Version>)> {
        let (elements, version) = self.get_all_elements_versioned().await?;
        Ok((ClassifiedElement::all(elements), version))
    }

    /// Whether the stored elements changed since `version` was read: the
    /// cheap check behind fast revocation (a conditional GET, a directory
    /// listing). The default says "changed".
    async fn changed_since(&self, version: &Version) -> Result<bool> {
        let _ = version;
        Ok(true)
    }

    /// Stores an element. `friendly_name` is a hint (`key-{id}`,
    /// `revocation-…`) that file-based repositories use as a file name.
    async fn store_element(&self, element: &Element, friendly_name: &str) -> Result<()>;

    /// Stores `element` only if `still_needed` holds for the elements stored
    /// at the moment of writing; returns whether it stored it. Repositories
    /// with conditional writes re-evaluate the precondition after every
    /// conflict, which is what makes concurrent key creation converge.
    async fn store_element_if(
        &self,
        element: &Element,
        friendly_name: &str,
        still_needed: StorePrecondition<'_>,
    ) -> Result<bool> {
        let current = self.get_all_elements().await?;
        if !still_needed(&current) {
            return Ok(false);
        }
        self.store_element(element, friendly_name).await?;
        Ok(true)
    }

    /// Deletes the elements `choose` selects; returns how many were deleted.
    async fn delete_elements(&self, choose: DeletionChooser<'_>) -> Result<usize> {
        let _ = choose;
        Err(Error::NotSupported(format!(
            "{self:?} cannot delete elements"
        )))
    }

    /// Replaces stored elements in place; returns how many were replaced.
    ///
    /// `choose` receives every stored element, in document order, and
    /// returns the [`Replacement`]s: which index to replace by what, at the
    /// same position; every other element is kept. This is how a key is
    /// re-encrypted at rest without changing its id.
    ///
    /// Implementations guarantee that:
    ///
    /// * every element not chosen is kept untouched (byte for byte where the
    ///   storage keeps bytes), and the order of the elements is kept;
    /// * a replaced element is never absent, and never present twice, at any
    ///   moment: a concurrent reader sees either the old or the new element;
    /// * concurrent writers are not lost: after a conflict the elements are
    ///   read again and `choose` is called again on them, so it may run more
    ///   than once and must be a pure function of its input.
    ///
    /// The default implementation returns [`Error::NotSupported`]; callers
    /// that must support such repositories can fall back to storing the new
    /// element and then deleting the old one.
    async fn replace_elements(&self, choose: ReplacementChooser<'_>) -> Result<usize> {
        let _ = choose;
        Err(Error::NotSupported(format!(
            "{self:?} cannot replace elements in place"
        )))
    }

    /// A description for logs and messages (never containing a secret).
    fn describe(&self) -> String;
}
