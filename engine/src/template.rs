//! The subset of Go's text/template that `docker inspect -f` users type:
//! `{{.State.Pid}}`, `{{json .Mounts}}`, `{{range .Config.Env}}{{.}} {{end}}`,
//! `{{index .Config.Labels "key"}}`, and `{{.Name}}` mixed with plain text.
//!
//! Values print the way Go prints them: strings bare, `map[k:v]` for
//! objects, `[a b]` for arrays, `<no value>` for a missing field.

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    /// `{{expr}}`
    Expr(Expr),
    /// `{{range expr}}body{{end}}`
    Range(Expr, Vec<Node>),
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    /// `.A.B` (empty path: `.`)
    Field(Vec<String>),
    /// `json EXPR`
    Json(Box<Expr>),
    /// `index EXPR "key"` or `index EXPR 0`
    Index(Box<Expr>, String),
    /// A quoted string literal.
    Str(String),
}

/// Render `template` against `data`.
pub fn render(template: &str, data: &Value) -> Result<String> {
    let tokens = lex(template)?;
    let mut pos = 0;
    let nodes = parse(&tokens, &mut pos, false)?;
    let mut out = String::new();
    exec(&nodes, data, &mut out)?;
    Ok(out)
}

enum Token {
    Text(String),
    Action(String),
}

fn lex(t: &str) -> Result<Vec<Token>> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Token::Text(rest[..start].to_string()));
        }
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| anyhow!("template: unclosed action in {t:?}"))?;
        let inner = rest[start + 2..start + end]
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        out.push(Token::Action(inner.to_string()));
        rest = &rest[start + end + 2..];
    }
    if !rest.is_empty() {
        out.push(Token::Text(rest.to_string()));
    }
    Ok(out)
}

fn parse(tokens: &[Token], pos: &mut usize, in_range: bool) -> Result<Vec<Node>> {
    let mut nodes = Vec::new();
    while *pos < tokens.len() {
        match &tokens[*pos] {
            Token::Text(s) => nodes.push(Node::Text(s.clone())),
            Token::Action(a) if a == "end" => {
                if !in_range {
                    bail!("template: unexpected {{{{end}}}}");
                }
                return Ok(nodes);
            }
            Token::Action(a) => {
                if let Some(arg) = a.strip_prefix("range ") {
                    let e = parse_expr(arg.trim())?;
                    *pos += 1;
                    let body = parse(tokens, pos, true)?;
                    if *pos >= tokens.len() {
                        bail!("template: {{{{range}}}} without {{{{end}}}}");
                    }
                    nodes.push(Node::Range(e, body));
                } else {
                    nodes.push(Node::Expr(parse_expr(a)?));
                }
            }
        }
        *pos += 1;
    }
    if in_range {
        bail!("template: {{{{range}}}} without {{{{end}}}}");
    }
    Ok(nodes)
}

fn parse_expr(s: &str) -> Result<Expr> {
    let words = split_words(s)?;
    match words.as_slice() {
        [w] if w.starts_with('.') => Ok(field(w)),
        [w] if w.starts_with('"') => Ok(Expr::Str(w.trim_matches('"').to_string())),
        [f, arg] if f == "json" => Ok(Expr::Json(Box::new(parse_expr(arg)?))),
        [f, arg, key] if f == "index" => Ok(Expr::Index(
            Box::new(parse_expr(arg)?),
            key.trim_matches('"').to_string(),
        )),
        _ => bail!(
            "template: unsupported action {{{{{s}}}}} (supported: .Field, json, index, range)"
        ),
    }
}

fn split_words(s: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ' ' | '\t' if !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if quoted {
        bail!("template: unterminated string in {s:?}");
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    Ok(words)
}

fn field(w: &str) -> Expr {
    Expr::Field(
        w.split('.')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

fn eval<'a>(e: &Expr, data: &'a Value) -> Result<Value> {
    Ok(match e {
        Expr::Field(path) => {
            let mut v: &'a Value = data;
            for p in path {
                match v.get(p) {
                    Some(next) => v = next,
                    None => return Ok(Value::Null),
                }
            }
            v.clone()
        }
        Expr::Json(inner) => Value::String(serde_json::to_string(&eval(inner, data)?)?),
        Expr::Index(inner, key) => {
            let v = eval(inner, data)?;
            match (&v, key.parse::<usize>()) {
                (Value::Array(a), Ok(i)) => a
                    .get(i)
                    .cloned()
                    .ok_or_else(|| anyhow!("template: index {i} out of range"))?,
                _ => v.get(key).cloned().unwrap_or(Value::Null),
            }
        }
        Expr::Str(s) => Value::String(s.clone()),
    })
}

fn exec(nodes: &[Node], data: &Value, out: &mut String) -> Result<()> {
    for n in nodes {
        match n {
            Node::Text(s) => out.push_str(s),
            Node::Expr(e) => out.push_str(&go_print(&eval(e, data)?)),
            Node::Range(e, body) => match eval(e, data)? {
                Value::Array(items) => {
                    for item in &items {
                        exec(body, item, out)?;
                    }
                }
                Value::Object(map) => {
                    for v in map.values() {
                        exec(body, v, out)?;
                    }
                }
                Value::Null => {}
                other => bail!("template: range over {other}, which is not a list or map"),
            },
        }
    }
    Ok(())
}

/// Print a value as Go's fmt `%v` does.
fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut items: Vec<_> = m.iter().collect();
            items.sort_by(|a, b| a.0.cmp(b.0));
            format!(
                "map[{}]",
                items
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", go_print(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Value {
        json!({
            "Name": "/web",
            "State": {"Pid": 1234, "Running": true, "Status": "running"},
            "Config": {"Env": ["A=1", "B=2"], "Labels": {"app": "x", "tier": "db"}},
            "Mounts": [],
        })
    }

    #[test]
    fn fields_json_range_and_index() {
        let d = data();
        assert_eq!(render("{{.State.Pid}}", &d).unwrap(), "1234");
        assert_eq!(
            render("{{ .State.Running }} {{.Name}}", &d).unwrap(),
            "true /web"
        );
        assert_eq!(render("{{json .Mounts}}", &d).unwrap(), "[]");
        assert_eq!(
            render("{{json .Config.Labels}}", &d).unwrap(),
            r#"{"app":"x","tier":"db"}"#
        );
        assert_eq!(
            render("{{range .Config.Env}}{{.}};{{end}}", &d).unwrap(),
            "A=1;B=2;"
        );
        assert_eq!(
            render(r#"{{index .Config.Labels "tier"}}"#, &d).unwrap(),
            "db"
        );
        assert_eq!(
            render("{{.Config.Labels}}", &d).unwrap(),
            "map[app:x tier:db]"
        );
        assert_eq!(render("{{.Config.Env}}", &d).unwrap(), "[A=1 B=2]");
        assert_eq!(render("{{.Nope}}", &d).unwrap(), "<no value>");
    }

    #[test]
    fn bad_templates_are_errors() {
        assert!(render("{{.State", &data()).is_err());
        assert!(render("{{range .Config.Env}}x", &data()).is_err());
        assert!(render("{{printf \"%s\" .Name}}", &data()).is_err());
    }
}
