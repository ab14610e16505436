//! An in-memory repository: keys die with the process.

use std::sync::Mutex;

use async_trait::async_trait;

use super::{DeletionChooser, StorePrecondition, XmlRepository};
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

    fn describe(&self) -> String {
        "in-memory repository (ephemeral)".into()
    }
}
