//! rust-max: named high-water marks, a raftkv plugin in Rust.
//!
//! Each mark is a key → maximum register: `offer` raises a mark to a value
//! if it is higher than the mark's current maximum, and never lowers it, so
//! offers may arrive in any order and from any number of clients. Useful
//! for the highest sequence number a consumer has acknowledged, a player's
//! best score, the latest timestamp seen from a device.
//!
//! Commands and queries are MsgPack maps with an "op" field (JSON objects
//! over HTTP and the CLI); see README.md for the protocol.

use raftkv_sdk::mp::{self, Value, Writer};
use raftkv_sdk::{map, prefix_end, Entry, Error, Info, Request, Router, State};

/// Marks are stored under "m/" + name, as the MsgPack array [max, at].
const PREFIX: &[u8] = b"m/";
const MAX_NAME: usize = 255;
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

pub static PLUGIN: Router = Router {
    info: Info {
        name: "max",
        version: env!("CARGO_PKG_VERSION"),
        description: "named high-water marks (key -> max register), in Rust with the raftkv SDK",
    },
    commands: &[("offer", offer), ("reset", reset)],
    queries: &[("get", get), ("list", list)],
    migrate: None,
};

raftkv_sdk::export!(PLUGIN);

/// A mark: its maximum, the time of the entry that set it (Unix ns) and
/// that entry's index (the key's version).
struct Mark {
    max: i64,
    at: i64,
    version: u64,
}

fn name<'a>(req: &Request<'a>, field: &str) -> Result<&'a [u8], Error> {
    let k = req.bytes(field)?;
    if k.is_empty() || k.len() > MAX_NAME {
        return Err(Error::bad_request(format!("{} must be 1 to {} bytes", field, MAX_NAME)));
    }
    Ok(k)
}

fn storage_key(name: &[u8]) -> Vec<u8> {
    [PREFIX, name].concat()
}

/// A name as a str when it is UTF-8, else as a bin (JSON renders both as a
/// string, or {"$b64": ...} for bytes that are not UTF-8).
fn name_value(name: &[u8]) -> Value {
    match std::str::from_utf8(name) {
        Ok(s) => Value::from(s),
        Err(_) => Value::from(name),
    }
}

fn load(st: &dyn State, name: &[u8]) -> Result<Option<Mark>, Error> {
    let (v, version) = match st.get_versioned(&storage_key(name))? {
        Some(x) => x,
        None => return Ok(None),
    };
    decode_mark(&v, version).map(Some)
}

fn decode_mark(v: &[u8], version: u64) -> Result<Mark, Error> {
    let corrupt = || Error::internal(format!("stored mark {:?} is corrupt", v));
    let v = mp::decode(v).map_err(|_| corrupt())?;
    match v.as_array() {
        Some([max, at]) => Ok(Mark { max: max.as_i64().ok_or_else(corrupt)?, at: at.as_i64().ok_or_else(corrupt)?, version }),
        _ => Err(corrupt()),
    }
}

fn answer(name: &[u8], m: &Mark) -> Value {
    map! {"key" => name_value(name), "max" => m.max, "at" => m.at, "version" => m.version}
}

/// {"op":"offer","key":K,"value":N} → {"key","max","at","version","raised"}
fn offer(st: &mut dyn State, e: &Entry, req: &Request) -> Result<Value, Error> {
    req.only(&["key", "value"])?;
    let k = name(req, "key")?;
    let n = req.i64("value")?;
    let (m, raised) = match load(st, k)? {
        Some(m) if m.max >= n => (m, false),
        _ => {
            let mut w = Writer::new();
            w.array(2).int(n).int(e.time);
            st.set(&storage_key(k), w.bytes())?;
            (Mark { max: n, at: e.time, version: e.index }, true)
        }
    };
    let mut out = answer(k, &m);
    if let Value::Map(fields) = &mut out {
        fields.push(("raised".into(), raised.into()));
    }
    Ok(out)
}

/// {"op":"reset","key":K} → {"key","existed"}
fn reset(st: &mut dyn State, _e: &Entry, req: &Request) -> Result<Value, Error> {
    req.only(&["key"])?;
    let k = name(req, "key")?;
    let existed = st.delete(&storage_key(k))?;
    Ok(map! {"key" => name_value(k), "existed" => existed})
}

/// {"op":"get","key":K} → {"key","max","at","version"}, or not_found.
fn get(st: &dyn State, req: &Request) -> Result<Value, Error> {
    req.only(&["key"])?;
    let k = name(req, "key")?;
    match load(st, k)? {
        Some(m) => Ok(answer(k, &m)),
        None => Err(Error::not_found(format!("no mark {:?}", String::from_utf8_lossy(k)))),
    }
}

/// {"op":"list"[,"prefix":P][,"after":K][,"limit":N]} →
/// {"marks":{K:max,...},"next":K|nil}: the marks whose name starts with P,
/// in name order, after K, at most N (default 100, at most 1000). "next"
/// is the last name returned when there are more: pass it as "after".
fn list(st: &dyn State, req: &Request) -> Result<Value, Error> {
    req.only(&["prefix", "after", "limit"])?;
    let prefix = req.opt_bytes("prefix")?.unwrap_or_default();
    if prefix.len() > MAX_NAME {
        return Err(Error::bad_request(format!("prefix must be at most {} bytes", MAX_NAME)));
    }
    let limit = req.opt_u64("limit")?.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Error::bad_request(format!("limit must be 1 to {}", MAX_LIMIT)));
    }
    let from = storage_key(prefix);
    let end = prefix_end(&from);
    let mut start = from.clone();
    if let Some(after) = req.opt_bytes("after")? {
        let after = [&storage_key(after)[..], &[0]].concat(); // the first key after it
        if after > start {
            start = after;
        }
    }
    let mut marks = Vec::new();
    let mut next = Value::Nil;
    for r in st.range(&start, &end) {
        let r = r?;
        let k = &r.key[PREFIX.len()..];
        if marks.len() as u64 == limit {
            next = marks.last().map(|(k, _): &(Value, Value)| k.clone()).unwrap_or(Value::Nil);
            break;
        }
        let m = decode_mark(&r.value, r.version)?;
        marks.push((name_value(k), Value::from(m.max)));
    }
    Ok(map! {"marks" => Value::Map(marks), "next" => next})
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftkv_sdk::{code, MemState};

    fn cmd(s: &mut MemState, v: Value) -> raftkv_sdk::Outcome {
        s.apply_value(&PLUGIN, &v)
    }

    #[test]
    fn offers_raise_and_never_lower() {
        let mut s = MemState::new();
        let t = |i: i64| 1_700_000_000_000_000_000 + (i - 1) * 1_000_000_000;
        let v = cmd(&mut s, map! {"op" => "offer", "key" => "seq", "value" => 10}).value();
        assert_eq!(v, map! {"key" => "seq", "max" => 10, "at" => t(1), "version" => 1, "raised" => true});
        let v = cmd(&mut s, map! {"op" => "offer", "key" => "seq", "value" => 7}).value();
        assert_eq!(v, map! {"key" => "seq", "max" => 10, "at" => t(1), "version" => 1, "raised" => false});
        let v = cmd(&mut s, map! {"op" => "offer", "key" => "seq", "value" => 10}).value();
        assert_eq!(v.get("raised"), Some(&Value::Bool(false)));
        let v = cmd(&mut s, map! {"op" => "offer", "key" => "seq", "value" => 11}).value();
        assert_eq!(v, map! {"key" => "seq", "max" => 11, "at" => t(4), "version" => 4, "raised" => true});
        // A new mark starts at any value, negative too.
        let v = cmd(&mut s, map! {"op" => "offer", "key" => vec![0xffu8], "value" => i64::MIN}).value();
        assert_eq!(v.get("max"), Some(&Value::Int(i64::MIN)));
        assert_eq!(v.get("key"), Some(&Value::Bin(vec![0xff])));
        let g = s.query_value(&PLUGIN, &map! {"op" => "get", "key" => "seq"}).value();
        assert_eq!(g, map! {"key" => "seq", "max" => 11, "at" => t(4), "version" => 4});
        assert_eq!(cmd(&mut s, map! {"op" => "reset", "key" => "seq"}).value(), map! {"key" => "seq", "existed" => true});
        let o = s.query_value(&PLUGIN, &map! {"op" => "get", "key" => "seq"});
        assert_eq!((o.code, o.message()), (code::NOT_FOUND, "no mark \"seq\""));
    }

    #[test]
    fn bad_requests() {
        let mut s = MemState::new();
        for (c, want) in [
            (map! {"op" => "offer", "key" => "a"}, "missing value"),
            (map! {"op" => "offer", "key" => "a", "value" => 1.5}, "value must be a signed 64-bit integer"),
            (map! {"op" => "offer", "key" => "", "value" => 1}, "key must be 1 to 255 bytes"),
            (map! {"op" => "offer", "key" => "a".repeat(256), "value" => 1}, "key must be 1 to 255 bytes"),
            (map! {"op" => "offer", "key" => "a", "value" => 1, "by" => 2}, "unknown field \"by\""),
            (map! {"op" => "get", "key" => "a"}, "unknown command op \"get\""),
        ] {
            let o = cmd(&mut s, c);
            assert_eq!((o.code, o.message()), (code::BAD_REQUEST, want));
        }
        assert!(s.is_empty());
    }

    #[test]
    fn list_pages() {
        let mut s = MemState::new();
        for i in 0..250 {
            assert!(cmd(&mut s, map! {"op" => "offer", "key" => format!("k{:03}", i), "value" => i}).is_ok());
        }
        assert!(cmd(&mut s, map! {"op" => "offer", "key" => "other", "value" => 1}).is_ok());
        let mut after = Value::Nil;
        let mut seen = 0;
        loop {
            let q = map! {"op" => "list", "prefix" => "k", "after" => after.clone(), "limit" => 100};
            let v = s.query_value(&PLUGIN, &q).value();
            for (k, m) in v.get("marks").unwrap().as_map().unwrap() {
                assert_eq!(k.as_str().unwrap(), format!("k{:03}", seen));
                assert_eq!(m.as_i64(), Some(seen));
                seen += 1;
            }
            after = v.get("next").unwrap().clone();
            if after.is_nil() {
                break;
            }
        }
        assert_eq!(seen, 250);
        let v = s.query_value(&PLUGIN, &map! {"op" => "list"}).value();
        assert_eq!(v.get("marks").unwrap().as_map().unwrap().len(), 100);
        assert_eq!(v.get("next"), Some(&Value::from("k099")));
        let o = s.query_value(&PLUGIN, &map! {"op" => "list", "limit" => 0});
        assert_eq!((o.code, o.message()), (code::BAD_REQUEST, "limit must be 1 to 1000"));
    }
}
