//! An in-memory repository: keys die with the process.

use std::sync::Mutex;

use async_trait::async_trait;

use super::{DeletionChooser, ReplacementChooser, StorePrecondition, XmlRepository};
use crate::error::Result;
use crate::xml::Element;

/// Keeps elements in memory only. Every payload protected with its keys
/// becomes unreadable when the process exits, so creating one logs a warning.
#[derive(Debug, Default)]
pub struct InMemoryXmlRepository {
    elements: Mutex<Vec<Element>>,
}

impl InMemoryXmlRepository {
    /// An empty repository (logs a warning that keys are ephemeral).
    pub fn new() -> Self {
        tracing::warn!(
            "using an in-memory key repository: keys will be lost when the process exits, \
             and payloads protected with them will become unreadable"
        );
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Element>> {
        self.elements.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl XmlRepository for InMemoryXmlRepository {
    async fn get_all_elements(&self) -> Result<Vec<Element>> {
        Ok(self.lock().clone())
    }

    async fn store_element(&self, element: &Element, _friendly_name: &str) -> Result<()> {
        self.lock().push(element.clone());
        Ok(())
    }

    async fn store_element_if(
        &self,
        element: &Element,
        _friendly_name: &str,
        still_needed: StorePrecondition<'_>,
    ) -> Result<bool> {
        let mut elements = self.lock();
        if !still_needed(&elements) {
            return Ok(false);
        }
        elements.push(element.clone());
        Ok(true)
    }

    async fn delete_elements(&self, choose: DeletionChooser<'_>) -> Result<usize> {
        let mut elements = self.lock();
        let orders = choose(&elements);
        let before = elements.len();
        let mut i = 0;
        elements.retain(|_| {
            let keep = orders.get(i).copied().flatten().is_none();
            i += 1;
            keep
        });
        Ok(before - elements.len())
    }

    async fn replace_elements(&self, choose: ReplacementChooser<'_>) -> Result<usize> {
        let mut elements = self.lock();
        let replacements = choose(&elements);
        let mut replaced = 0;
        for (slot, new) in elements.iter_mut().zip(replacements) {
            if let Some(new) = new {
                *slot = new;
                replaced += 1;
            }
        }
        Ok(replaced)
    }

    fn describe(&self) -> String {
        "in-memory repository (ephemeral)".into()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn replaces_in_place() {
        let repo = InMemoryXmlRepository::default();
        for name in ["a", "b", "c"] {
            repo.store_element(&Element::new(name), name).await.unwrap();
        }
        let choose = |elements: &[Element]| {
            elements
                .iter()
                .map(|e| e.is("b").then(|| Element::new("b").with_attr("v", "2")))
                .collect()
        };
        assert_eq!(repo.replace_elements(&choose).await.unwrap(), 1);
        let all = repo.get_all_elements().await.unwrap();
        assert_eq!(
            all,
            vec![
                Element::new("a"),
                Element::new("b").with_attr("v", "2"),
                Element::new("c")
            ]
        );
        let none = |elements: &[Element]| vec![None; elements.len()];
        assert_eq!(repo.replace_elements(&none).await.unwrap(), 0);
    }
}
