//! The one retry loop: read a snapshot, decide the change on what is stored
//! now, write it conditionally, and start over on a conflict or an unknown
//! outcome. Every [`VersionedRepository`] gets [`XmlRepository`] from here.

use async_trait::async_trait;

use super::versioned::{Snapshot, StorageError, Version, VersionedRepository, WriteCondition};
use super::{
    DeletionChooser, DeletionOrder, Replacement, ReplacementChooser, StorePrecondition,
    XmlRepository,
};
use crate::error::{Error, Result};
use crate::xml::{ClassifiedElement, Element, Format, RepositoryDocument};

/// What one attempt decided, from the document it read.
enum Decision<T> {
    /// Nothing (more) to write; the change is complete.
    Done(T),
    /// Write the edited document; `T` is the result once it is stored.
    Write(T),
}

/// What the failed attempts of one change amounted to.
#[derive(Default)]
struct Tally {
    /// Attempts that lost to another writer.
    conflicts: u32,
    /// Some write may have been applied without our knowing.
    unknown_outcome: bool,
    /// The last transient failure.
    last: Option<Error>,
}

/// Runs `decide` against fresh snapshots until its write is stored, it says
/// nothing is left to do, or the attempts run out. `decide` receives a copy
/// of the stored document to edit, and the result of the last write whose
/// outcome is unknown (it may have been applied).
async fn converge<R, T>(
    repo: &R,
    beside_damaged: bool,
    mut decide: impl FnMut(&mut RepositoryDocument, Option<&T>) -> Decision<T> + Send,
) -> Result<T>
where
    R: VersionedRepository + ?Sized,
    T: Send,
{
    let policy = repo.retry_policy();
    let attempts = policy.max_attempts.max(1);
    let mut tally = Tally::default();
    let mut unknown: Option<T> = None;
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(policy.backoff(attempt, rand::random::<f64>())).await;
        }
        let Snapshot {
            mut document,
            version,
            mut damaged,
        } = match repo.read().await {
            Ok(snapshot) => snapshot,
            Err(StorageError::Transient(e)) => {
                tracing::debug!(error = %e, attempt, "reading the key ring before a write failed; retrying");
                tally.last = Some(e);
                continue;
            }
            Err(StorageError::PreconditionFailed) => continue,
            Err(StorageError::Fatal(e)) => return Err(e),
        };
        if !damaged.is_empty() && !beside_damaged {
            return Err(damaged.swap_remove(0));
        }
        let result = match decide(&mut document, unknown.as_ref()) {
            Decision::Done(result) => return Ok(result),
            Decision::Write(result) => result,
        };
        let condition = match version {
            Some(version) => WriteCondition::Update(version),
            None => WriteCondition::Create,
        };
        match repo.write(&document, &condition).await {
            Ok(_) => return Ok(result),
            Err(StorageError::PreconditionFailed) => {
                tally.conflicts += 1;
                tracing::debug!(repository = %repo.description(), attempt, "write conflict; re-reading");
            }
            Err(StorageError::Transient(e)) => {
                tracing::warn!(
                    repository = %repo.description(),
                    attempt,
                    error = %e,
                    "the outcome of a write is unknown; re-reading before trying again"
                );
                tally.unknown_outcome = true;
                tally.last = Some(e);
                unknown = Some(result);
            }
            Err(StorageError::Fatal(e)) => return Err(e),
        }
    }
    Err(exhausted(&repo.description(), attempts, tally))
}

fn exhausted(repository: &str, attempts: u32, tally: Tally) -> Error {
    let Tally {
        conflicts,
        unknown_outcome,
        last,
    } = tally;
    let cause = last.as_ref().map(ToString::to_string).unwrap_or_default();
    let message = if unknown_outcome {
        format!(
            "{repository}: could not confirm the write after {attempts} attempts (the storage \
             or the network failed while writing, so the change may or may not have been \
             applied; the next read will show it): {cause}"
        )
    } else if conflicts > 0 && conflicts + 1 >= attempts {
        format!(
            "{repository}: gave up after {attempts} attempts: the key ring kept changing under \
             concurrent writers; raise the attempt limit if many instances write at once"
        )
    } else if conflicts == 0 {
        format!(
            "{repository}: nothing was written: the key ring could not be read in {attempts} \
             attempts: {cause}"
        )
    } else {
        format!("{repository}: gave up after {attempts} attempts; last error: {cause}")
    };
    Error::Repository {
        message,
        source: last.map(|e| Box::new(e) as _),
    }
}

/// The `id` of a `<key>` element, normalised for comparison.
fn key_id(e: &Element) -> Option<String> {
    if !e.is("key") {
        return None;
    }
    e.attr("id").map(|id| id.trim().to_ascii_lowercase())
}

/// Whether `element` (whose compact XML is `raw`) is already stored: a key
/// with the same id, or the same element. This is what makes an append
/// idempotent when an earlier attempt's response was lost.
fn already_stored(doc: &RepositoryDocument, element: &Element, raw: &str) -> bool {
    let id = key_id(element);
    doc.children().iter().any(|c| match &id {
        Some(id) => key_id(c.element()).as_ref() == Some(id),
        None => c.raw() == raw || c.element() == element,
    })
}

/// Appends `element` unless it is already stored or `still_needed`, judged
/// on what is stored at each attempt, says no. Returns whether it is stored.
pub(crate) async fn append<R: VersionedRepository + ?Sized>(
    repo: &R,
    element: &Element,
    friendly_name: &str,
    still_needed: Option<StorePrecondition<'_>>,
) -> Result<bool> {
    let raw = element.to_xml(Format::Compact);
    // An unconditional append adds an element without rewriting the others,
    // so it may go beside elements that cannot be read (revoking a key must
    // work whatever the state of the ring).
    let beside_damaged = still_needed.is_none();
    converge(repo, beside_damaged, |doc, _| {
        if already_stored(doc, element, &raw) {
            tracing::debug!(repository = %repo.description(), "the element is already stored");
            return Decision::Done(true);
        }
        if let Some(still_needed) = still_needed
            && !still_needed(&doc.elements())
        {
            tracing::debug!(repository = %repo.description(), "the element is no longer needed; not writing it");
            return Decision::Done(false);
        }
        doc.push_named(element, friendly_name);
        Decision::Write(true)
    })
    .await
}

/// Deletes what `choose` selects, lowest order first, one conditional write
/// per order: a later order is only written once the earlier ones are
/// stored, and `choose` is re-run on fresh elements before each.
pub(crate) async fn delete<R: VersionedRepository + ?Sized>(
    repo: &R,
    choose: DeletionChooser<'_>,
) -> Result<usize> {
    let mut done_through: Option<DeletionOrder> = None;
    let mut deleted = 0;
    loop {
        let step = converge(
            repo,
            false,
            |doc: &mut RepositoryDocument, unknown: Option<&Option<(DeletionOrder, usize)>>| {
                let chosen = choose(&doc.elements());
                let of_order = |order: DeletionOrder| -> Vec<usize> {
                    chosen
                        .iter()
                        .filter(|d| d.order == order)
                        .map(|d| d.index)
                        .collect()
                };
                // An earlier attempt whose outcome is unknown did this order already.
                if let Some(Some((order, count))) = unknown
                    && of_order(*order).is_empty()
                {
                    return Decision::Done(Some((*order, *count)));
                }
                let next = chosen
                    .iter()
                    .map(|d| d.order)
                    .filter(|o| done_through.is_none_or(|done| *o > done))
                    .min();
                let Some(order) = next else {
                    return Decision::Done(None);
                };
                let count = doc.remove_indices(&of_order(order));
                Decision::Write(Some((order, count)))
            },
        )
        .await?;
        match step {
            Some((order, count)) => {
                deleted += count;
                done_through = Some(order);
            }
            None => break,
        }
    }
    if deleted > 0 {
        tracing::info!(repository = %repo.description(), elements = deleted, "deleted key ring elements");
    }
    Ok(deleted)
}

/// Replaces in place what `choose` selects, in one conditional write.
pub(crate) async fn replace<R: VersionedRepository + ?Sized>(
    repo: &R,
    choose: ReplacementChooser<'_>,
) -> Result<usize> {
    let replaced = converge(
        repo,
        false,
        |doc: &mut RepositoryDocument, unknown: Option<&usize>| {
            let mut chosen = 0usize;
            for Replacement { index, element } in choose(&doc.elements()) {
                if doc.replace(index, &element) {
                    chosen += 1;
                }
            }
            match (chosen, unknown) {
                // Nothing (left) to change; an attempt with an unknown outcome did it.
                (0, Some(pending)) => Decision::Done(*pending),
                (0, None) => Decision::Done(0),
                (n, _) => Decision::Write(n),
            }
        },
    )
    .await?;
    if replaced > 0 {
        tracing::info!(repository = %repo.description(), elements = replaced, "replaced key ring elements");
    }
    Ok(replaced)
}

#[async_trait]
impl<R: VersionedRepository + ?Sized> XmlRepository for R {
    async fn get_all_elements(&self) -> Result<Vec<Element>> {
        Ok(self.read().await?.into_whole()?.0.into_elements())
    }

    async fn get_all_elements_versioned(&self) -> Result<(Vec<Element>, Option<Version>)> {
        let (document, version) = self.read().await?.into_whole()?;
        Ok((document.into_elements(), version))
    }

    async fn get_all_classified_versioned(
        &self,
    ) -> Result<(Vec<ClassifiedElement>, Option<Version>)> {
        Ok(self.read_classified().await?)
    }

    async fn changed_since(&self, version: &Version) -> Result<bool> {
        Ok(self.has_changed_since(version).await?)
    }

    async fn store_element(&self, element: &Element, friendly_name: &str) -> Result<()> {
        append(self, element, friendly_name, None).await.map(|_| ())
    }

    async fn store_element_if(
        &self,
        element: &Element,
        friendly_name: &str,
        still_needed: StorePrecondition<'_>,
    ) -> Result<bool> {
        append(self, element, friendly_name, Some(still_needed)).await
    }

    async fn delete_elements(&self, choose: DeletionChooser<'_>) -> Result<usize> {
        delete(self, choose).await
    }

    async fn replace_elements(&self, choose: ReplacementChooser<'_>) -> Result<usize> {
        replace(self, choose).await
    }

    fn describe(&self) -> String {
        self.description()
    }
}
