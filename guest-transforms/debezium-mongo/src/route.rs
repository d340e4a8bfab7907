//! Topic → namespace routing.

use crate::Config;
use smt_guest::Namespace;
use std::collections::BTreeMap;

/// A topic `<prefix>.<schema>.<table>` split into its parts (the prefix may
/// itself contain dots; a topic with fewer parts has an empty prefix/schema).
struct TopicParts<'a> {
    prefix: &'a str,
    schema: &'a str,
    table: &'a str,
}

fn split_topic(topic: &str) -> TopicParts<'_> {
    match topic.rsplit_once('.') {
        None => TopicParts {
            prefix: "",
            schema: "",
            table: topic,
        },
        Some((rest, table)) => match rest.rsplit_once('.') {
            None => TopicParts {
                prefix: "",
                schema: rest,
                table,
            },
            Some((prefix, schema)) => TopicParts {
                prefix,
                schema,
                table,
            },
        },
    }
}

const PLACEHOLDERS: [&str; 4] = ["{table}", "{schema}", "{prefix}", "{topic}"];

/// Checks that a collection template only uses known placeholders.
pub(crate) fn check_template(template: &str) -> Result<(), String> {
    if template.is_empty() {
        return Err("empty".into());
    }
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let tail = &rest[start..];
        let Some(end) = tail.find('}') else {
            return Err(format!("unclosed '{{' in {template:?}"));
        };
        let placeholder = &tail[..=end];
        if !PLACEHOLDERS.contains(&placeholder) {
            return Err(format!(
                "unknown placeholder {placeholder} in {template:?} (known: {})",
                PLACEHOLDERS.join(", ")
            ));
        }
        rest = &tail[end + 1..];
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub(crate) struct Router {
    database: Option<String>,
    template: String,
    /// `rename` values already split into (database, collection).
    rename: BTreeMap<String, (Option<String>, String)>,
}

impl Router {
    pub(crate) fn new(config: &Config) -> Result<Self, String> {
        let rename = config
            .rename
            .iter()
            .map(|(from, to)| {
                let target = match to.split_once('.') {
                    Some((db, coll)) => (Some(db.to_owned()), coll.to_owned()),
                    None => (config.database.clone(), to.clone()),
                };
                (from.clone(), target)
            })
            .collect();
        Ok(Router {
            database: config.database.clone(),
            template: config.collection.clone(),
            rename,
        })
    }

    /// The namespace of a topic's writes.
    pub(crate) fn namespace(&self, topic: &str) -> Namespace {
        let parts = split_topic(topic);
        if !self.rename.is_empty() {
            let schema_table = format!("{}.{}", parts.schema, parts.table);
            for k in [topic, schema_table.as_str(), parts.table] {
                if let Some((db, coll)) = self.rename.get(k) {
                    return Namespace {
                        database: db.clone(),
                        collection: coll.clone(),
                    };
                }
            }
        }
        let collection = if self.template == "{table}" {
            parts.table.to_owned()
        } else {
            self.template
                .replace("{table}", parts.table)
                .replace("{schema}", parts.schema)
                .replace("{prefix}", parts.prefix)
                .replace("{topic}", topic)
        };
        Namespace {
            database: self.database.clone(),
            collection,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(json: &str) -> Router {
        let c = Config::parse(json).unwrap();
        c.validate().unwrap();
        Router::new(&c).unwrap()
    }

    fn ns(db: Option<&str>, c: &str) -> Namespace {
        Namespace {
            database: db.map(str::to_owned),
            collection: c.to_owned(),
        }
    }

    #[test]
    fn default_is_table_in_pipeline_database() {
        let r = router("{}");
        assert_eq!(r.namespace("dbz.inventory.orders"), ns(None, "orders"));
        assert_eq!(
            r.namespace("my.dotted.prefix.inventory.orders"),
            ns(None, "orders")
        );
        assert_eq!(r.namespace("orders"), ns(None, "orders"));
    }

    #[test]
    fn template_and_database() {
        let r = router(r#"{"database": "sink", "collection": "{prefix}_{schema}_{table}"}"#);
        assert_eq!(
            r.namespace("dbz.inventory.orders"),
            ns(Some("sink"), "dbz_inventory_orders")
        );
        let r = router(r#"{"collection": "{topic}"}"#);
        assert_eq!(
            r.namespace("dbz.inventory.orders"),
            ns(None, "dbz.inventory.orders")
        );
    }

    #[test]
    fn rename_by_topic_schema_table_or_table() {
        let r = router(
            r#"{"database": "d", "rename": {"dbz.inventory.orders": "sales.orders_v2", "inventory.customers": "people", "products": "catalog.items"}}"#,
        );
        assert_eq!(
            r.namespace("dbz.inventory.orders"),
            ns(Some("sales"), "orders_v2")
        );
        assert_eq!(
            r.namespace("dbz.inventory.customers"),
            ns(Some("d"), "people")
        );
        assert_eq!(
            r.namespace("other.inventory.products"),
            ns(Some("catalog"), "items")
        );
        assert_eq!(
            r.namespace("dbz.inventory.audit_log"),
            ns(Some("d"), "audit_log")
        );
    }

    #[test]
    fn bad_templates() {
        assert!(check_template("{tabel}")
            .unwrap_err()
            .contains("unknown placeholder {tabel}"));
        assert!(check_template("x{").is_err());
        assert!(check_template("").is_err());
        assert!(check_template("fixed").is_ok());
    }
}
