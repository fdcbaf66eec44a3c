//! What a policy set can tell apart: the entity ids its policies name and the attributes
//! they may read. Cedar has no operator that turns an entity id into a string, so two
//! requests that differ only by a consistent renaming of ids no policy names (and of no
//! attribute a policy reads) get the same decision; the impact analysis relies on it.

use super::Policies;

impl Policies {
    /// The id of every entity literal (any type) in the scope or conditions of any policy of
    /// the set, sorted and deduplicated.
    pub(crate) fn named_entity_ids(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .inner
            .set
            .policies()
            .flat_map(|p| p.entity_literals())
            .map(|u| u.id().unescaped().to_owned())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether some policy of the set may read the attribute `attr` of an entity or a
    /// record. Conservative: true when the name appears as a string anywhere in a policy's
    /// JSON form (or when that form cannot be made).
    pub(crate) fn may_read_attribute(&self, attr: &str) -> bool {
        let quoted = format!("\"{attr}\"");
        self.inner.set.policies().any(|p| match p.to_json() {
            Ok(v) => v.to_string().contains(&quoted),
            Err(_) => true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_ids_come_from_scopes_and_conditions_and_reads_are_found() {
        let p = Policies::default_set()
            .and_then(|p| {
                p.with_sources(&[(
                    "n.cedar",
                    "@id(\"n\")\nforbid (principal == User::\"a@b.io\", action, resource)\nwhen { resource in Org::\"acme\" };\n",
                )])
            })
            .unwrap();
        let ids = p.named_entity_ids();
        assert!(ids.contains(&"a@b.io".to_owned()) && ids.contains(&"acme".to_owned()));
        assert!(!p.may_read_attribute("email"));
        let q = Policies::default_set()
            .and_then(|p| {
                p.with_sources(&[(
                    "e.cedar",
                    "@id(\"e\")\nforbid (principal, action, resource)\nwhen { principal has email && principal.email like \"*@x.io\" };\n",
                )])
            })
            .unwrap();
        assert!(q.may_read_attribute("email"));
    }
}
