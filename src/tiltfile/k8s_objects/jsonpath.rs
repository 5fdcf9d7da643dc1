//! A small JSONPath evaluator for the Kubernetes template dialect (`{.spec.image}`) that
//! `k8s_kind(image_json_path=)`, `k8s_kind(image_object=)` and `k8s_image_json_path` use to
//! find images in objects. It covers what image locators need: fields (`.a`, `['a']`),
//! indexes (`[0]`, `[-1]`), wildcards (`[*]`, `.*`), recursive descent (`..a`) and filters
//! (`[?(@.name=='x')]`), with the Kubernetes error texts for missing keys.

use serde_json::Value as Json;

/// One step of a path expression.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    /// `..name`: every descendant's `name` field.
    Descend(String),
    Index(i64),
    Wildcard,
    Filter(Filter),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    /// The path after `@`.
    left: Vec<Step>,
    op: Option<(CmpOp, Literal)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
}

/// A piece of a template: literal text, or a `{...}` expression.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Expr(Vec<Step>),
}

/// A parsed JSONPath template.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    source: String,
    nodes: Vec<Node>,
}

impl std::fmt::Display for JsonPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

impl JsonPath {
    /// Parses `source`; errors use the Kubernetes parser's wording.
    pub fn parse(source: &str) -> Result<JsonPath, String> {
        let mut nodes = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            match rest.find('{') {
                None => {
                    nodes.push(Node::Text(rest.to_owned()));
                    break;
                }
                Some(start) => {
                    if start > 0 {
                        nodes.push(Node::Text(rest[..start].to_owned()));
                    }
                    let after = &rest[start + 1..];
                    let end = find_action_end(after)
                        .ok_or_else(|| format!("unclosed action in {source}"))?;
                    nodes.push(Node::Expr(parse_expr(after[..end].trim())?));
                    rest = &after[end + 1..];
                }
            }
        }
        Ok(JsonPath {
            source: source.to_owned(),
            nodes,
        })
    }

    /// Every value the path selects in `root`, in document order.
    pub fn find<'a>(&self, root: &'a Json) -> Result<Vec<Found<'a>>, String> {
        let mut out = Vec::new();
        for node in &self.nodes {
            match node {
                Node::Text(t) => out.push(Found::Text(t.clone())),
                Node::Expr(steps) => {
                    out.extend(eval_steps(steps, vec![root])?.into_iter().map(Found::Value));
                }
            }
        }
        Ok(out)
    }

    /// The strings the path selects; any other matched type is an error.
    pub fn find_strings(&self, root: &Json) -> Result<Vec<String>, String> {
        let found = self
            .find(root)
            .map_err(|e| format!("Matching (json_path={:?}): {e}", self.source))?;
        found
            .into_iter()
            .map(|f| match f {
                Found::Text(t) => Ok(t),
                Found::Value(Json::String(s)) => Ok(s.clone()),
                Found::Value(other) => Err(format!(
                    "May only match strings (json_path={:?})\nGot Type: {}\nGot Value: {}",
                    self.source,
                    go_type_name(other),
                    other
                )),
            })
            .collect()
    }

    /// The objects the path selects; any other matched type is an error.
    pub fn find_maps<'a>(
        &self,
        root: &'a Json,
    ) -> Result<Vec<&'a serde_json::Map<String, Json>>, String> {
        let found = self
            .find(root)
            .map_err(|e| format!("Matching (json_path={:?}): {e}", self.source))?;
        found
            .into_iter()
            .map(|f| match f {
                Found::Value(Json::Object(m)) => Ok(m),
                Found::Value(other) => Err(format!(
                    "May only match maps (json_path={:?})\nGot Type: {}\nGot Value: {}",
                    self.source,
                    go_type_name(other),
                    other
                )),
                Found::Text(t) => Err(format!(
                    "May only match maps (json_path={:?})\nGot Type: string\nGot Value: {t}",
                    self.source
                )),
            })
            .collect()
    }
}

/// A match: a value inside the document, or literal template text.
#[derive(Debug, Clone, PartialEq)]
pub enum Found<'a> {
    Value(&'a Json),
    Text(String),
}

fn go_type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "<nil>",
        Json::Bool(_) => "bool",
        Json::Number(n) if n.is_f64() => "float64",
        Json::Number(_) => "int64",
        Json::String(_) => "string",
        Json::Array(_) => "[]interface {}",
        Json::Object(_) => "map[string]interface {}",
    }
}

/// Index of the `}` closing an action, skipping quoted strings.
fn find_action_end(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '}' => return Some(i),
            None => {}
        }
    }
    None
}

fn is_field_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '/'
}

/// A tiny cursor over the expression text.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.text[self.pos..].chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !f(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        &self.text[start..self.pos]
    }

    fn skip_spaces(&mut self) {
        self.take_while(char::is_whitespace);
    }
}

fn parse_expr(text: &str) -> Result<Vec<Step>, String> {
    let mut cur = Cursor { text, pos: 0 };
    match cur.peek() {
        None => return Ok(Vec::new()),
        Some('$') => {
            cur.bump();
        }
        Some(c) if c.is_alphabetic() => {
            let id = cur.take_while(|c| !c.is_whitespace() && c != ',' && c != '}');
            return Err(format!("unrecognized identifier {id}"));
        }
        _ => {}
    }
    let steps = parse_steps(&mut cur)?;
    cur.skip_spaces();
    if !cur.rest().is_empty() {
        return Err(format!("unrecognized character in action: {}", cur.rest()));
    }
    Ok(steps)
}

/// Parses steps until the end of the text or a character that ends a filter operand.
fn parse_steps(cur: &mut Cursor) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    loop {
        match cur.peek() {
            Some('.') => {
                cur.bump();
                if cur.peek() == Some('.') {
                    cur.bump();
                    let name = cur.take_while(is_field_char);
                    if name.is_empty() {
                        return Err("missing field name after ..".to_owned());
                    }
                    steps.push(Step::Descend(name.to_owned()));
                } else if cur.peek() == Some('*') {
                    cur.bump();
                    steps.push(Step::Wildcard);
                } else {
                    let name = cur.take_while(is_field_char);
                    if !name.is_empty() {
                        steps.push(Step::Field(name.to_owned()));
                    }
                }
            }
            Some('[') => {
                cur.bump();
                steps.push(parse_bracket(cur)?);
            }
            _ => return Ok(steps),
        }
    }
}

fn parse_quoted(cur: &mut Cursor) -> Result<String, String> {
    let Some(q) = cur.bump() else {
        return Err("unterminated quoted string".to_owned());
    };
    let mut out = String::new();
    loop {
        match cur.bump() {
            None => return Err("unterminated quoted string".to_owned()),
            Some('\\') => match cur.bump() {
                Some(c) => out.push(c),
                None => return Err("unterminated quoted string".to_owned()),
            },
            Some(c) if c == q => return Ok(out),
            Some(c) => out.push(c),
        }
    }
}

fn parse_bracket(cur: &mut Cursor) -> Result<Step, String> {
    cur.skip_spaces();
    let step = match cur.peek() {
        Some('*') => {
            cur.bump();
            Step::Wildcard
        }
        Some('\'') | Some('"') => Step::Field(parse_quoted(cur)?),
        Some('?') => {
            cur.bump();
            cur.skip_spaces();
            if cur.bump() != Some('(') {
                return Err("expected ( after ? in filter".to_owned());
            }
            cur.skip_spaces();
            if cur.bump() != Some('@') {
                return Err("filter must start with @".to_owned());
            }
            let left = parse_steps(cur)?;
            cur.skip_spaces();
            let op = if cur.peek() == Some(')') {
                None
            } else {
                let op = parse_op(cur)?;
                cur.skip_spaces();
                Some((op, parse_literal(cur)?))
            };
            cur.skip_spaces();
            if cur.bump() != Some(')') {
                return Err("unclosed filter expression".to_owned());
            }
            Step::Filter(Filter { left, op })
        }
        _ => {
            let num = cur.take_while(|c| c.is_ascii_digit() || c == '-');
            let index: i64 = num
                .parse()
                .map_err(|_| format!("invalid array index {:?}", num))?;
            Step::Index(index)
        }
    };
    cur.skip_spaces();
    if cur.bump() != Some(']') {
        return Err("unterminated array".to_owned());
    }
    Ok(step)
}

fn parse_op(cur: &mut Cursor) -> Result<CmpOp, String> {
    let two: String = [cur.peek(), cur.peek_at(1)].iter().flatten().collect();
    let (op, len) = match two.as_str() {
        "==" => (CmpOp::Eq, 2),
        "!=" => (CmpOp::Ne, 2),
        "<=" => (CmpOp::Le, 2),
        ">=" => (CmpOp::Ge, 2),
        _ => match cur.peek() {
            Some('<') => (CmpOp::Lt, 1),
            Some('>') => (CmpOp::Gt, 1),
            _ => return Err(format!("unrecognized filter operator in {}", cur.rest())),
        },
    };
    for _ in 0..len {
        cur.bump();
    }
    Ok(op)
}

fn parse_literal(cur: &mut Cursor) -> Result<Literal, String> {
    match cur.peek() {
        Some('\'') | Some('"') => Ok(Literal::Str(parse_quoted(cur)?)),
        _ => {
            let word = cur.take_while(|c| !c.is_whitespace() && c != ')');
            match word {
                "true" => Ok(Literal::Bool(true)),
                "false" => Ok(Literal::Bool(false)),
                _ => word
                    .parse::<f64>()
                    .map(Literal::Num)
                    .map_err(|_| format!("unrecognized filter operand {word:?}")),
            }
        }
    }
}

fn eval_steps<'a>(steps: &[Step], mut input: Vec<&'a Json>) -> Result<Vec<&'a Json>, String> {
    for step in steps {
        input = eval_step(step, input)?;
    }
    Ok(input)
}

fn eval_step<'a>(step: &Step, input: Vec<&'a Json>) -> Result<Vec<&'a Json>, String> {
    let mut out = Vec::new();
    match step {
        Step::Field(name) => {
            if input.is_empty() {
                return Ok(out);
            }
            for v in &input {
                if let Json::Object(m) = v
                    && let Some(x) = m.get(name)
                    && !x.is_null()
                {
                    out.push(x);
                }
            }
            if out.is_empty() {
                return Err(format!("{name} is not found"));
            }
        }
        Step::Descend(name) => {
            for v in input {
                collect_descendants(v, name, &mut out);
            }
        }
        Step::Index(i) => {
            for v in input {
                let Json::Array(items) = v else {
                    return Err(format!("{v} is not array or slice"));
                };
                let len = items.len() as i64;
                let idx = if *i < 0 { len + i } else { *i };
                if idx < 0 || idx >= len {
                    return Err(format!(
                        "array index out of bounds: index {i}, length {len}"
                    ));
                }
                out.push(&items[idx as usize]);
            }
        }
        Step::Wildcard => {
            for v in input {
                match v {
                    Json::Array(items) => out.extend(items.iter()),
                    Json::Object(m) => out.extend(m.values()),
                    _ => {}
                }
            }
        }
        Step::Filter(filter) => {
            for v in input {
                let items: Vec<&Json> = match v {
                    Json::Array(items) => items.iter().collect(),
                    _ => return Err(format!("{v} is not array or slice and cannot be filtered")),
                };
                for item in items {
                    if filter_matches(filter, item)? {
                        out.push(item);
                    }
                }
            }
        }
    }
    Ok(out)
}

fn collect_descendants<'a>(v: &'a Json, name: &str, out: &mut Vec<&'a Json>) {
    match v {
        Json::Object(m) => {
            if let Some(x) = m.get(name) {
                out.push(x);
            }
            for x in m.values() {
                collect_descendants(x, name, out);
            }
        }
        Json::Array(items) => {
            for x in items {
                collect_descendants(x, name, out);
            }
        }
        _ => {}
    }
}

fn filter_matches(filter: &Filter, item: &Json) -> Result<bool, String> {
    // Missing keys inside a filter just mean "no match", as in Kubernetes.
    let lefts = eval_steps(&filter.left, vec![item]).unwrap_or_default();
    let Some((op, lit)) = &filter.op else {
        return Ok(!lefts.is_empty());
    };
    Ok(lefts.iter().any(|l| compare(l, *op, lit)))
}

fn compare(left: &Json, op: CmpOp, right: &Literal) -> bool {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (left, right) {
        (Json::String(a), Literal::Str(b)) => Some(a.as_str().cmp(b.as_str())),
        (Json::Number(a), Literal::Num(b)) => a.as_f64().and_then(|a| a.partial_cmp(b)),
        (Json::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    };
    match (op, ord) {
        (CmpOp::Eq, Some(o)) => o == Ordering::Equal,
        (CmpOp::Ne, Some(o)) => o != Ordering::Equal,
        (CmpOp::Ne, None) => true,
        (CmpOp::Lt, Some(o)) => o == Ordering::Less,
        (CmpOp::Le, Some(o)) => o != Ordering::Greater,
        (CmpOp::Gt, Some(o)) => o == Ordering::Greater,
        (CmpOp::Ge, Some(o)) => o != Ordering::Less,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(path: &str, v: &Json) -> Result<Vec<String>, String> {
        JsonPath::parse(path)?.find_strings(v)
    }

    #[test]
    fn simple_field() {
        let v = json!({"spec": {"image": "a/b:1"}});
        assert_eq!(strings("{.spec.image}", &v).unwrap(), vec!["a/b:1"]);
        assert_eq!(strings("{$.spec.image}", &v).unwrap(), vec!["a/b:1"]);
        assert_eq!(strings("{.spec['image']}", &v).unwrap(), vec!["a/b:1"]);
    }

    #[test]
    fn wildcard_and_index() {
        let v = json!({"spec": {"containers": [{"image": "x"}, {"image": "y"}]}});
        assert_eq!(
            strings("{.spec.containers[*].image}", &v).unwrap(),
            vec!["x", "y"]
        );
        assert_eq!(
            strings("{.spec.containers[1].image}", &v).unwrap(),
            vec!["y"]
        );
        assert_eq!(
            strings("{.spec.containers[-1].image}", &v).unwrap(),
            vec!["y"]
        );
        let err = strings("{.spec.containers[5].image}", &v).unwrap_err();
        assert!(
            err.contains("array index out of bounds: index 5, length 2"),
            "{err}"
        );
    }

    #[test]
    fn wildcard_over_empty_list_is_empty() {
        let v = json!({"spec": {"containers": []}});
        assert!(
            strings("{.spec.containers[*].image}", &v)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn missing_key_is_an_error() {
        let v = json!({"spec": {}});
        let err = strings("{.foobar}", &v).unwrap_err();
        assert_eq!(
            err,
            "Matching (json_path=\"{.foobar}\"): foobar is not found"
        );
    }

    #[test]
    fn filters() {
        let v = json!({"spec": {"template": {"spec": {"containers": [
            {"env": [{"name": "A", "value": "a"}, {"name": "FETCHER_IMAGE", "value": "gcr.io/f"}]},
            {"env": [{"name": "B", "value": "b"}]}
        ]}}}});
        let p = "{.spec.template.spec.containers[*].env[?(@.name=='FETCHER_IMAGE')].value}";
        assert_eq!(strings(p, &v).unwrap(), vec!["gcr.io/f"]);
        let p = "{.spec.template.spec.containers[*].env[?(@.name!=\"A\")].value}";
        assert_eq!(strings(p, &v).unwrap(), vec!["gcr.io/f", "b"]);
    }

    #[test]
    fn recursive_descent() {
        let v = json!({"a": {"image": "x", "b": [{"image": "y"}]}});
        assert_eq!(strings("{..image}", &v).unwrap(), vec!["x", "y"]);
    }

    #[test]
    fn unrecognized_identifier() {
        let err = JsonPath::parse("{foobar()}").unwrap_err();
        assert_eq!(err, "unrecognized identifier foobar()");
    }

    #[test]
    fn non_strings_are_rejected() {
        let v = json!({"spec": {"image": {"repo": "x"}}});
        let err = strings("{.spec.image}", &v).unwrap_err();
        assert!(err.starts_with("May only match strings"), "{err}");
        let maps = JsonPath::parse("{.spec.image}").unwrap();
        assert_eq!(maps.find_maps(&v).unwrap().len(), 1);
    }

    #[test]
    fn text_outside_braces_is_literal() {
        let v = json!({});
        assert_eq!(strings("plain", &v).unwrap(), vec!["plain"]);
    }
}
