//! Decoding of the protobuf request bodies kubectl's built-in generators send
//! (`kubectl create namespace|configmap|secret|serviceaccount`): the `k8s\0` envelope around a
//! `runtime.Unknown`, then the object, for those four kinds only. Other kinds are refused with
//! 415 and a hint; responses are always JSON (clients accept that).

use base64::Engine;
use serde_json::{json, Map, Value};

/// How one protobuf field maps to JSON.
#[derive(Clone, Copy)]
enum Field {
    Str(&'static str),
    /// Bytes, shown base64 (as JSON shows `[]byte`).
    Bytes(&'static str),
    Int(&'static str),
    Bool(&'static str),
    Msg(&'static str, Schema),
    RepeatedStr(&'static str),
    RepeatedMsg(&'static str, Schema),
    MapStr(&'static str),
    MapBytes(&'static str),
    Time(&'static str),
}

type Schema = &'static [(u64, Field)];

const TYPE_META: Schema = &[(1, Field::Str("apiVersion")), (2, Field::Str("kind"))];
const UNKNOWN: Schema = &[
    (1, Field::Msg("typeMeta", TYPE_META)),
    (2, Field::Bytes("raw")),
];
const OWNER_REFERENCE: Schema = &[
    (1, Field::Str("kind")),
    (3, Field::Str("name")),
    (4, Field::Str("uid")),
    (5, Field::Str("apiVersion")),
    (6, Field::Bool("controller")),
    (7, Field::Bool("blockOwnerDeletion")),
];
const OBJECT_META: Schema = &[
    (1, Field::Str("name")),
    (2, Field::Str("generateName")),
    (3, Field::Str("namespace")),
    (5, Field::Str("uid")),
    (6, Field::Str("resourceVersion")),
    (7, Field::Int("generation")),
    (8, Field::Time("creationTimestamp")),
    (11, Field::MapStr("labels")),
    (12, Field::MapStr("annotations")),
    (13, Field::RepeatedMsg("ownerReferences", OWNER_REFERENCE)),
    (14, Field::RepeatedStr("finalizers")),
];
const CONFIG_MAP: Schema = &[
    (1, Field::Msg("metadata", OBJECT_META)),
    (2, Field::MapStr("data")),
    (3, Field::MapBytes("binaryData")),
    (4, Field::Bool("immutable")),
];
const SECRET: Schema = &[
    (1, Field::Msg("metadata", OBJECT_META)),
    (2, Field::MapBytes("data")),
    (3, Field::Str("type")),
    (4, Field::MapStr("stringData")),
    (5, Field::Bool("immutable")),
];
const NAMESPACE_SPEC: Schema = &[(1, Field::RepeatedStr("finalizers"))];
const NAMESPACE: Schema = &[
    (1, Field::Msg("metadata", OBJECT_META)),
    (2, Field::Msg("spec", NAMESPACE_SPEC)),
];
const OBJECT_REFERENCE: Schema = &[
    (1, Field::Str("kind")),
    (2, Field::Str("namespace")),
    (3, Field::Str("name")),
    (4, Field::Str("uid")),
    (5, Field::Str("apiVersion")),
];
const LOCAL_OBJECT_REFERENCE: Schema = &[(1, Field::Str("name"))];
const SERVICE_ACCOUNT: Schema = &[
    (1, Field::Msg("metadata", OBJECT_META)),
    (2, Field::RepeatedMsg("secrets", OBJECT_REFERENCE)),
    (
        3,
        Field::RepeatedMsg("imagePullSecrets", LOCAL_OBJECT_REFERENCE),
    ),
    (4, Field::Bool("automountServiceAccountToken")),
];

/// Decodes a `application/vnd.kubernetes.protobuf` body into the JSON form of the object.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let envelope = body
        .strip_prefix(b"k8s\0")
        .ok_or("protobuf body without the k8s envelope")?;
    let unknown = decode_message(envelope, UNKNOWN)?;
    let api_version = unknown["typeMeta"]["apiVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let kind = unknown["typeMeta"]["kind"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(unknown["raw"].as_str().unwrap_or(""))
        .map_err(|e| e.to_string())?;
    let schema = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        _ => {
            return Err(format!(
                "the stand-in decodes protobuf only for v1 Namespace, ConfigMap, Secret and ServiceAccount, not {api_version} {kind}; send JSON instead (e.g. `kubectl create ... --dry-run=client -o yaml | kubectl apply -f -`)"
            ))
        }
    };
    let mut obj = decode_message(&raw, schema)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".into())
}

fn read_len<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], String> {
    let len = read_varint(buf, pos)? as usize;
    let end = pos
        .checked_add(len)
        .filter(|e| *e <= buf.len())
        .ok_or("truncated field")?;
    let bytes = &buf[*pos..end];
    *pos = end;
    Ok(bytes)
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
}

/// A `map<string, X>` entry: key = 1, value = 2.
fn decode_entry(bytes: &[u8]) -> Result<(String, Vec<u8>), String> {
    let (mut key, mut value) = (String::new(), Vec::new());
    let mut pos = 0;
    while pos < bytes.len() {
        let tag = read_varint(bytes, &mut pos)?;
        if tag & 7 != 2 {
            return Err("unexpected map entry encoding".into());
        }
        let field = read_len(bytes, &mut pos)?;
        match tag >> 3 {
            1 => key = utf8(field)?,
            2 => value = field.to_vec(),
            _ => {}
        }
    }
    Ok((key, value))
}

fn decode_message(buf: &[u8], schema: Schema) -> Result<Value, String> {
    let mut out = Map::new();
    let mut pos = 0;
    while pos < buf.len() {
        let tag = read_varint(buf, &mut pos)?;
        let (number, wire) = (tag >> 3, tag & 7);
        let field = schema.iter().find(|(n, _)| *n == number).map(|(_, f)| *f);
        match wire {
            0 => {
                let v = read_varint(buf, &mut pos)?;
                match field {
                    Some(Field::Int(name)) if v != 0 => {
                        out.insert(name.into(), json!(v as i64));
                    }
                    Some(Field::Bool(name)) => {
                        out.insert(name.into(), json!(v != 0));
                    }
                    _ => {}
                }
            }
            1 => pos += 8,
            5 => pos += 4,
            2 => {
                let bytes = read_len(buf, &mut pos)?;
                let Some(field) = field else { continue };
                match field {
                    Field::Str(name) if !bytes.is_empty() => {
                        out.insert(name.into(), json!(utf8(bytes)?));
                    }
                    Field::Bytes(name) => {
                        out.insert(
                            name.into(),
                            json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
                        );
                    }
                    Field::Msg(name, inner) => {
                        out.insert(name.into(), decode_message(bytes, inner)?);
                    }
                    Field::RepeatedStr(name) => {
                        push(&mut out, name, json!(utf8(bytes)?));
                    }
                    Field::RepeatedMsg(name, inner) => {
                        push(&mut out, name, decode_message(bytes, inner)?);
                    }
                    Field::MapStr(name) | Field::MapBytes(name) => {
                        let (k, v) = decode_entry(bytes)?;
                        let value = match field {
                            Field::MapStr(_) => json!(utf8(&v)?),
                            _ => json!(base64::engine::general_purpose::STANDARD.encode(v)),
                        };
                        let map = out.entry(name).or_insert_with(|| json!({}));
                        map[k] = value;
                    }
                    Field::Time(name) => {
                        let t = decode_message(bytes, &[(1, Field::Int("seconds"))])?;
                        if let Some(secs) = t["seconds"].as_i64() {
                            if let Some(dt) = chrono::DateTime::from_timestamp(secs, 0) {
                                out.insert(
                                    name.into(),
                                    json!(dt.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                                );
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => return Err(format!("unsupported protobuf wire type {wire}")),
        }
        if pos > buf.len() {
            return Err("truncated field".into());
        }
    }
    Ok(Value::Object(out))
}

fn push(out: &mut Map<String, Value>, name: &str, value: Value) {
    match out.entry(name).or_insert_with(|| json!([])) {
        Value::Array(items) => items.push(value),
        other => *other = json!([value]),
    }
}
