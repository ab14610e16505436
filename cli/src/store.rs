//! Names under which elements are stored.
//!
//! Replacing stored elements in place (what `rewrap` needs) is
//! [`dataprotection::repository::XmlRepository::replace_elements`], which the
//! directory, in-memory and blob repositories implement themselves.

use dataprotection::xml::Element;

/// The file-system friendly name for an element: `key-{id}`, the
/// revocation's name, or `{name}-{uuid}`.
pub fn friendly_name(element: &Element) -> String {
    use dataprotection::xml::StoredElement;
    match StoredElement::classify(element) {
        Ok(StoredElement::Key(k)) => k.friendly_name(),
        Ok(StoredElement::Revocation(r)) => r.friendly_name(),
        _ => {
            let name: String = element
                .local_name()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect();
            let name = if name.is_empty() { "element" } else { &name };
            format!("{name}-{}", uuid::Uuid::new_v4().hyphenated())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn friendly_names() {
        let e = Element::new("weird:thing");
        assert!(
            friendly_name(&e).starts_with("thing-") || friendly_name(&e).starts_with("weirdthing-")
        );
    }
}
