//! Data encodings: `decode_json`/`encode_json`, `decode_yaml(_stream)`/`encode_yaml(_stream)`,
//! `read_json`/`read_yaml`/`read_yaml_stream`, and the Starlark <-> JSON conversions they share.

use serde_json::Value as Json;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::dict::{AllocDict, DictRef};
use starlark::values::float::StarlarkFloat;
use starlark::values::list::{AllocList, ListRef};
use starlark::values::tuple::TupleRef;
use starlark::values::{Heap, UnpackValue, Value, ValueLike};

use super::files::read_recorded;
use crate::tiltfile::values::{Blob, builtin_error, str_or_blob};
use crate::tiltfile::yaml::{parse_yaml, parse_yaml_stream, to_yaml_sorted};

pub fn register(b: &mut GlobalsBuilder) {
    encoding_builtins(b);
}

/// Converts a Starlark value to JSON; only dict (string keys), list, str, int, float, bool and
/// None are allowed, as in Tilt.
pub fn value_to_json(v: Value) -> Result<Json, String> {
    if v.is_none() {
        return Ok(Json::Null);
    }
    if let Some(b) = v.unpack_bool() {
        return Ok(Json::Bool(b));
    }
    if let Some(s) = str_or_blob(v) {
        return Ok(Json::String(s));
    }
    if let Ok(Some(i)) = i64::unpack_value(v) {
        return Ok(Json::from(i));
    }
    if let Some(f) = v.downcast_ref::<StarlarkFloat>() {
        return serde_json::Number::from_f64(f.0)
            .map(Json::Number)
            .ok_or_else(|| format!("cannot encode non-finite float {}", f.0));
    }
    if let Some(list) = ListRef::from_value(v) {
        return list
            .content()
            .iter()
            .map(|x| value_to_json(*x))
            .collect::<Result<Vec<_>, _>>()
            .map(Json::Array);
    }
    if let Some(dict) = DictRef::from_value(v) {
        let mut map = serde_json::Map::new();
        for (k, val) in dict.iter() {
            let key = k.unpack_str().ok_or_else(|| {
                format!(
                    "only string keys are supported in maps; got key of type {}",
                    k.get_type()
                )
            })?;
            map.insert(key.to_owned(), value_to_json(val)?);
        }
        return Ok(Json::Object(map));
    }
    if TupleRef::from_value(v).is_some() {
        return Err("unsupported type starlark.Tuple".to_owned());
    }
    Err(format!("unsupported type {}", v.get_type()))
}

/// Converts JSON to a Starlark value (objects become dicts, arrays lists, null None).
pub fn json_to_value<'v>(heap: Heap<'v>, j: &Json) -> Value<'v> {
    match j {
        Json::Null => Value::new_none(),
        Json::Bool(b) => Value::new_bool(*b),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => heap.alloc(i),
            (None, Some(f)) => heap.alloc(f),
            (None, None) => heap.alloc(n.to_string()),
        },
        Json::String(s) => heap.alloc(s.as_str()),
        Json::Array(items) => heap.alloc(AllocList(items.iter().map(|x| json_to_value(heap, x)))),
        Json::Object(map) => heap.alloc(AllocDict(
            map.iter()
                .map(|(k, v)| (k.as_str(), json_to_value(heap, v))),
        )),
    }
}

fn text_arg(function: &str, param: &str, v: Value) -> starlark::Result<String> {
    str_or_blob(v).ok_or_else(|| {
        crate::tiltfile::values::arg_error(
            function,
            param,
            format!("expected string or blob, got {}", v.get_type()),
        )
    })
}

#[starlark_module]
fn encoding_builtins(builder: &mut GlobalsBuilder) {
    fn decode_json<'v>(json: Value<'v>, heap: Heap<'v>) -> starlark::Result<Value<'v>> {
        let text = text_arg("decode_json", "json", json)?;
        let parsed: Json =
            serde_json::from_str(&text).map_err(|e| builtin_error("decode_json", e))?;
        Ok(json_to_value(heap, &parsed))
    }

    fn encode_json<'v>(obj: Value<'v>) -> starlark::Result<Blob> {
        let j = value_to_json(obj).map_err(|e| builtin_error("encode_json", e))?;
        let text = serde_json::to_string_pretty(&j).map_err(|e| builtin_error("encode_json", e))?;
        Ok(Blob(format!("{text}\n")))
    }

    fn decode_yaml<'v>(yaml: Value<'v>, heap: Heap<'v>) -> starlark::Result<Value<'v>> {
        let text = text_arg("decode_yaml", "yaml", yaml)?;
        let parsed = parse_yaml(&text).map_err(|e| builtin_error("decode_yaml", e))?;
        Ok(json_to_value(heap, &parsed))
    }

    fn decode_yaml_stream<'v>(yaml: Value<'v>, heap: Heap<'v>) -> starlark::Result<Value<'v>> {
        let text = text_arg("decode_yaml_stream", "yaml", yaml)?;
        let docs = parse_yaml_stream(&text).map_err(|e| builtin_error("decode_yaml_stream", e))?;
        Ok(heap.alloc(AllocList(docs.iter().map(|d| json_to_value(heap, d)))))
    }

    fn encode_yaml<'v>(obj: Value<'v>) -> starlark::Result<Blob> {
        let j = value_to_json(obj).map_err(|e| builtin_error("encode_yaml", e))?;
        Ok(Blob(
            to_yaml_sorted(&j).map_err(|e| builtin_error("encode_yaml", e))?,
        ))
    }

    fn encode_yaml_stream<'v>(objs: Value<'v>) -> starlark::Result<Blob> {
        let items = crate::tiltfile::values::sequence_items(objs).ok_or_else(|| {
            builtin_error(
                "encode_yaml_stream",
                format!("expected a list, got {}", objs.get_type()),
            )
        })?;
        let mut out = Vec::new();
        for item in items {
            let j = value_to_json(item).map_err(|e| builtin_error("encode_yaml_stream", e))?;
            out.push(to_yaml_sorted(&j).map_err(|e| builtin_error("encode_yaml_stream", e))?);
        }
        Ok(Blob(out.join("---\n")))
    }

    fn read_json<'v>(
        paths: &str,
        default: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        match read_recorded(eval, paths)? {
            Some(text) => {
                let parsed: Json = serde_json::from_str(&text).map_err(|e| {
                    builtin_error("read_json", format!("error parsing JSON from {paths}: {e}"))
                })?;
                Ok(json_to_value(eval.heap(), &parsed))
            }
            None => default
                .ok_or_else(|| builtin_error("read_json", format!("file not found: {paths}"))),
        }
    }

    fn read_yaml<'v>(
        paths: &str,
        default: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        match read_recorded(eval, paths)? {
            Some(text) => {
                let parsed = parse_yaml(&text).map_err(|e| {
                    builtin_error("read_yaml", format!("error parsing YAML from {paths}: {e}"))
                })?;
                Ok(json_to_value(eval.heap(), &parsed))
            }
            None => default
                .ok_or_else(|| builtin_error("read_yaml", format!("file not found: {paths}"))),
        }
    }

    fn read_yaml_stream<'v>(
        paths: &str,
        default: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        match read_recorded(eval, paths)? {
            Some(text) => {
                let docs = parse_yaml_stream(&text).map_err(|e| {
                    builtin_error(
                        "read_yaml_stream",
                        format!("error parsing YAML from {paths}: {e}"),
                    )
                })?;
                let heap = eval.heap();
                Ok(heap.alloc(AllocList(docs.iter().map(|d| json_to_value(heap, d)))))
            }
            None => default.ok_or_else(|| {
                builtin_error("read_yaml_stream", format!("file not found: {paths}"))
            }),
        }
    }
}
