//! Label and field selectors.

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// Splits at commas that are not inside parentheses.
fn split_terms(s: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    terms.push(current);
    terms
        .into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// Parses `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, comma-joined.
pub fn parse_label_selector(s: &str) -> Result<Vec<Requirement>, String> {
    let mut out = Vec::new();
    for term in split_terms(s) {
        out.push(parse_term(&term).ok_or_else(|| {
            format!("unable to parse requirement: found '{term}', expected: a valid label selector")
        })?);
    }
    Ok(out)
}

fn parse_term(term: &str) -> Option<Requirement> {
    if let Some(key) = term.strip_prefix('!') {
        let key = key.trim();
        return valid_key(key).then(|| Requirement::NotExists(key.to_string()));
    }
    if let Some(open) = term.find('(') {
        let close = term.rfind(')')?;
        if close != term.len() - 1 || close < open {
            return None;
        }
        let head = term[..open].trim_end();
        let values: Vec<String> = term[open + 1..close]
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        let (key, op) = head.rsplit_once(char::is_whitespace)?;
        let key = key.trim();
        if !valid_key(key) {
            return None;
        }
        return match op {
            "in" => Some(Requirement::In(key.into(), values)),
            "notin" => Some(Requirement::NotIn(key.into(), values)),
            _ => None,
        };
    }
    for (op, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = term.split_once(op) {
            let (key, value) = (key.trim(), value.trim());
            if !valid_key(key) {
                return None;
            }
            return Some(if negate {
                Requirement::NotEquals(key.into(), value.into())
            } else {
                Requirement::Equals(key.into(), value.into())
            });
        }
    }
    valid_key(term).then(|| Requirement::Exists(term.to_string()))
}

/// Whether `labels` (a JSON map, or null) satisfies every requirement.
pub fn labels_match(reqs: &[Requirement], labels: Option<&Value>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    reqs.iter().all(|r| match r {
        Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
        Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
        Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Requirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Requirement::Exists(k) => get(k).is_some(),
        Requirement::NotExists(k) => get(k).is_none(),
    })
}

/// One requirement of a field selector: a dotted path, equal or not equal to a value.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldRequirement {
    pub path: String,
    pub value: String,
    pub negate: bool,
}

/// Parses `a.b=v`, `a.b==v`, `a.b!=v`, comma-joined.
pub fn parse_field_selector(s: &str) -> Result<Vec<FieldRequirement>, String> {
    let mut out = Vec::new();
    for term in split_terms(s) {
        let parsed = [("!=", true), ("==", false), ("=", false)]
            .iter()
            .find_map(|(op, negate)| {
                term.split_once(op).map(|(p, v)| FieldRequirement {
                    path: p.trim().to_string(),
                    value: v.trim().to_string(),
                    negate: *negate,
                })
            });
        match parsed {
            Some(r) if !r.path.is_empty() => out.push(r),
            _ => {
                return Err(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                ))
            }
        }
    }
    Ok(out)
}

/// Whether `obj` satisfies every field requirement (a missing field reads as "").
pub fn fields_match(reqs: &[FieldRequirement], obj: &Value) -> bool {
    reqs.iter().all(|r| {
        let mut cur = Some(obj);
        for part in r.path.split('.') {
            cur = cur.and_then(|v| v.get(part));
        }
        let actual = match cur {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        (actual == r.value) != r.negate
    })
}
