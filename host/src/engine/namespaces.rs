//! `mongodb.allowed-namespaces`: where a transform may write (and, through
//! an aggregate's `$lookup`/`$unionWith`, read). Checked for every operation
//! of every record by the instance that produced it, so a transform cannot
//! touch another application's data; a violation is that record's error
//! (`forbidden-namespace`), handled by the route's error policy.

use crate::writeop::{Namespace, WriteOp};

/// The allowed namespaces of `smt run`.
#[derive(Debug, Clone)]
pub struct NamespacePolicy {
    /// The database of operations that name none (`mongodb.database`).
    default_database: String,
    /// (database or `*`, collection or `None` for any).
    allowed: Vec<(String, Option<String>)>,
}

impl NamespacePolicy {
    /// `patterns`: `db` (any collection of it), `db.coll`, `db.*`, or `*`
    /// (anything). None given: the default database only.
    pub fn new(default_database: &str, patterns: &[String]) -> Self {
        let allowed = if patterns.is_empty() {
            vec![(default_database.to_owned(), None)]
        } else {
            patterns
                .iter()
                .map(|p| match p.split_once('.') {
                    Some((db, "*")) => (db.to_owned(), None),
                    Some((db, coll)) => (db.to_owned(), Some(coll.to_owned())),
                    None => (p.clone(), None),
                })
                .collect()
        };
        NamespacePolicy {
            default_database: default_database.to_owned(),
            allowed,
        }
    }

    pub fn allows(&self, ns: &Namespace) -> bool {
        let db = ns.database.as_deref().unwrap_or(&self.default_database);
        self.allowed.iter().any(|(adb, acoll)| {
            (adb == "*" || adb == db) && acoll.as_ref().is_none_or(|c| *c == ns.collection)
        })
    }

    /// Why `ops` may not run, naming the first operation and namespace refused.
    pub fn check(&self, ops: &[WriteOp]) -> Result<(), String> {
        for (i, op) in ops.iter().enumerate() {
            if let Some(ns) = op.namespaces().into_iter().find(|ns| !self.allows(ns)) {
                return Err(format!(
                    "operation {i} ({}) touches {}.{}, which mongodb.allowed-namespaces does not allow",
                    op.kind(),
                    ns.database.as_deref().unwrap_or(&self.default_database),
                    ns.collection
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(db: Option<&str>, coll: &str) -> Namespace {
        Namespace {
            database: db.map(str::to_owned),
            collection: coll.to_owned(),
        }
    }

    #[test]
    fn the_default_is_the_configured_database_only() {
        let p = NamespacePolicy::new("app", &[]);
        assert!(p.allows(&ns(None, "c")));
        assert!(p.allows(&ns(Some("app"), "c")));
        assert!(!p.allows(&ns(Some("admin"), "c")));
    }

    #[test]
    fn patterns_name_databases_collections_or_everything() {
        let p = NamespacePolicy::new(
            "app",
            &["app.people".into(), "audit".into(), "logs.*".into()],
        );
        assert!(p.allows(&ns(None, "people")));
        assert!(!p.allows(&ns(None, "other")));
        assert!(p.allows(&ns(Some("audit"), "x")));
        assert!(p.allows(&ns(Some("logs"), "y")));
        assert!(!p.allows(&ns(Some("admin"), "people")));
        assert!(NamespacePolicy::new("app", &["*".into()]).allows(&ns(Some("admin"), "x")));
    }
}
