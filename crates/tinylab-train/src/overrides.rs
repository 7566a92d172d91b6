//! `--set key.path=value` overrides applied to the raw TOML table before it is typed.

use toml::{Table, Value};

/// Parses the right-hand side as a TOML value (`3`, `1e-3`, `true`, `"x"`, `[1, 2]`), falling
/// back to a bare string (`softmax`) when it is not valid TOML.
pub fn parse_value(text: &str) -> Value {
    match format!("v = {text}").parse::<Table>() {
        Ok(mut t) => t.remove("v").unwrap_or(Value::String(text.into())),
        Err(_) => Value::String(text.to_string()),
    }
}

/// Applies one `key.path=value` assignment to `root`, creating intermediate tables.
/// A numeric segment indexes into an array of tables (`eval.1.seq_len=512`).
pub fn apply(root: &mut Table, assignment: &str) -> Result<(), String> {
    let (path, value) =
        assignment.split_once('=').ok_or_else(|| format!("`{assignment}`: expected key.path=value"))?;
    let keys: Vec<&str> = path.trim().split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(format!("`{path}`: empty key segment"));
    }
    let mut node = Value::Table(std::mem::take(root));
    let result = set_value(&mut node, &keys, parse_value(value.trim()), path);
    if let Value::Table(t) = node {
        *root = t;
    }
    result
}

fn set_value(node: &mut Value, keys: &[&str], value: Value, path: &str) -> Result<(), String> {
    let (key, rest) = (keys[0], &keys[1..]);
    let child = match node {
        Value::Table(t) if rest.is_empty() => {
            t.insert(key.to_string(), value);
            return Ok(());
        }
        Value::Table(t) => t.entry(key.to_string()).or_insert_with(|| Value::Table(Table::new())),
        Value::Array(a) => {
            let idx: usize =
                key.parse().map_err(|_| format!("`{path}`: `{key}` must be an index into the array"))?;
            let len = a.len();
            let slot =
                a.get_mut(idx).ok_or_else(|| format!("`{path}`: index {idx} out of range (len {len})"))?;
            if rest.is_empty() {
                *slot = value;
                return Ok(());
            }
            slot
        }
        _ => return Err(format!("`{path}`: `{key}` is inside a value that is not a table")),
    };
    set_value(child, rest, value, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_nested_values_and_array_entries() {
        let mut t: Table = "a = 1\n[model]\nd_model = 8\n[[eval]]\nname = \"x\"\n".parse().unwrap();
        apply(&mut t, "model.d_model=16").unwrap();
        apply(&mut t, "model.attention=linear").unwrap();
        apply(&mut t, "train.optimizer.lr=3e-3").unwrap();
        apply(&mut t, "eval.0.seq_len=256").unwrap();
        assert_eq!(t["model"]["d_model"].as_integer(), Some(16));
        assert_eq!(t["model"]["attention"].as_str(), Some("linear"));
        assert_eq!(t["train"]["optimizer"]["lr"].as_float(), Some(3e-3));
        assert_eq!(t["eval"][0]["seq_len"].as_integer(), Some(256));
        assert!(apply(&mut t, "eval.5.seq_len=1").is_err());
        assert!(apply(&mut t, "a.b=1").is_err());
        assert!(apply(&mut t, "novalue").is_err());
    }
}
