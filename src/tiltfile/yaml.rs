//! YAML as Tilt reads and writes it: multi-document streams parsed into JSON values (key
//! order kept), and serialisation with sorted keys. Shared by the encoding builtins and the
//! Kubernetes object handling.

use serde::Deserialize;
use serde_json::Value as Json;

/// Parses every YAML document in `text` (empty documents skipped).
pub fn parse_yaml_stream(text: &str) -> Result<Vec<Json>, String> {
    let mut docs = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(text) {
        let value = Json::deserialize(doc).map_err(|e| e.to_string())?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Parses one YAML document (null when empty).
pub fn parse_yaml(text: &str) -> Result<Json, String> {
    let mut docs = yaml_serde::Deserializer::from_str(text);
    match docs.next() {
        Some(doc) => Json::deserialize(doc).map_err(|e| e.to_string()),
        None => Ok(Json::Null),
    }
}

/// Serialises one value as YAML with keys sorted, as Tilt's `encode_yaml` does.
pub fn to_yaml_sorted(value: &Json) -> Result<String, String> {
    yaml_serde::to_string(&to_yaml_value(&sort_keys(value))).map_err(|e| e.to_string())
}

/// JSON to a YAML tree (numbers stay numbers whatever serde_json's number representation).
fn to_yaml_value(value: &Json) -> yaml_serde::Value {
    use yaml_serde::Value as Y;
    match value {
        Json::Null => Y::Null,
        Json::Bool(b) => Y::Bool(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Y::Number(i.into()),
            (None, Some(u), _) => Y::Number(u.into()),
            (None, None, Some(f)) => Y::Number(f.into()),
            _ => Y::String(n.to_string()),
        },
        Json::String(s) => Y::String(s.clone()),
        Json::Array(items) => Y::Sequence(items.iter().map(to_yaml_value).collect()),
        Json::Object(map) => Y::Mapping(
            map.iter()
                .map(|(k, v)| (Y::String(k.clone()), to_yaml_value(v)))
                .collect(),
        ),
    }
}

fn sort_keys(value: &Json) -> Json {
    match value {
        Json::Object(map) => {
            let mut entries: Vec<(&String, &Json)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Json::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sort_keys(v)))
                    .collect(),
            )
        }
        Json::Array(items) => Json::Array(items.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_stream_skips_empty_documents() {
        let docs = parse_yaml_stream("a: 1\n---\n---\nb: [x]\n").unwrap();
        assert_eq!(
            docs,
            vec![serde_json::json!({"a": 1}), serde_json::json!({"b": ["x"]})]
        );
    }

    #[test]
    fn encode_yaml_sorts_keys() {
        let v = serde_json::json!({"b": 1, "a": {"d": 2, "c": 3}});
        assert_eq!(to_yaml_sorted(&v).unwrap(), "a:\n  c: 3\n  d: 2\nb: 1\n");
    }
}
