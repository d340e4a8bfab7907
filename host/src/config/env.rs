//! `SMT_<SECTION>__<KEY>[__<KEY>…]=value` overrides, applied to the TOML tree
//! before it is deserialized (the rules are in the module doc of `config`).

use serde::Deserialize;

/// Applies `SMT_A__B__C=value` to the TOML tree. Returns the key path as
/// serde_path_to_error prints it (`a.b.c`, `routes[0].x`).
pub(super) fn apply_override(
    root: &mut toml::Value,
    rest: &str,
    raw: &str,
) -> Result<String, String> {
    let raw_segments: Vec<&str> = rest.split("__").collect();
    if raw_segments.iter().any(|s| s.is_empty()) {
        return Err("empty key segment in the variable name".into());
    }
    let mut segments = Vec::new();
    let mut verbatim = false;
    for s in &raw_segments {
        let lower = s.to_ascii_lowercase();
        if verbatim {
            segments.push(lower.replace('_', "."));
        } else {
            let key = lower.replace('_', "-");
            verbatim = key == "properties" || key == "options";
            segments.push(key);
        }
    }
    let parsed = parse_env_value(raw);
    let mut node = root;
    let mut path = String::new();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if let toml::Value::Array(items) = node {
            let idx: usize = seg
                .parse()
                .map_err(|_| format!("`{seg}` is not an array index"))?;
            path.push_str(&format!("[{idx}]"));
            let len = items.len();
            let item = items
                .get_mut(idx)
                .ok_or_else(|| format!("index {idx} is past the {len} entries of the array"))?;
            if last {
                *item = parsed.clone();
                return Ok(path);
            }
            node = item;
            continue;
        }
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(seg);
        let table = node
            .as_table_mut()
            .ok_or_else(|| format!("`{path}` does not name a table"))?;
        if last {
            // A map of string options keeps strings, and so does a secret:
            // a numeric- or date-looking token is still a token, and a
            // type error would echo it.
            let value = if verbatim || super::secret::is_secret_key(seg) {
                toml::Value::String(raw.to_owned())
            } else {
                parsed.clone()
            };
            table.insert(seg.clone(), value);
            return Ok(path);
        }
        node = table
            .entry(seg.clone())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
    Ok(path)
}

fn parse_env_value(raw: &str) -> toml::Value {
    #[derive(Deserialize)]
    struct V {
        v: toml::Value,
    }
    toml::from_str::<V>(&format!("v = {raw}"))
        .map(|v| v.v)
        .unwrap_or_else(|_| toml::Value::String(raw.to_owned()))
}
