//! The ABI glue shared by the wasm exports (`host`) and [`MemState`]: batch
//! decoding, one result per entry, query, migration and info. Not part of
//! the API: [`export!`] calls it.
//!
//! [`MemState`]: crate::MemState

use crate::mp::{self, Reader, Value, Writer};
use crate::{code, Entry, Error, Migration, Plugin, Record, State};

/// A state that also takes the results of a batch's entries: the host (in
/// wasm) or a MemState. `result` ends the current entry: its writes are kept
/// if `code` is 0, undone otherwise.
pub trait Host: State {
    fn begin(&mut self, e: &Entry);
    fn result(&mut self, code: u32, payload: &[u8]);
}

/// The code and payload an answer is reported with. An Error must carry a
/// code the ABI lets a plugin report (1-5, 9-255); any other is reported as
/// `internal`, so that an error is never taken for a success (code 0) or for
/// a host-assigned code.
pub fn outcome(r: Result<Vec<u8>, Error>) -> (u32, Vec<u8>) {
    match r {
        Ok(b) => (code::OK, b),
        Err(e) if e.code == 0 || e.code > 255 || (code::TRAP..=code::READ_ONLY).contains(&e.code) => {
            (code::INTERNAL, format!("error with invalid code {}: {}", e.code, e.message).into_bytes())
        }
        Err(e) => (e.code, e.message.into_bytes()),
    }
}

/// Runs a Batch (ABI.md section 1): `[[index, term, time, data, ...], ...]`,
/// one `result` per entry, in order. A batch that is not well-formed is an
/// error (the host never sends one; the wasm glue traps on it).
pub fn apply_batch<H: Host>(p: &dyn Plugin, h: &mut H, input: &[u8]) -> Result<(), mp::DecodeError> {
    let mut r = Reader::new(input);
    let n = r.array_len()?;
    for _ in 0..n {
        let fields = r.array_len()?;
        if fields < 4 {
            return Err(mp::DecodeError { offset: r.offset(), kind: mp::ErrorKind::Range("entry length") });
        }
        let index = r.uint()?;
        let term = r.uint()?;
        let time = r.sint()?;
        let data = r.bin_or_nil()?;
        for _ in 4..fields {
            r.skip()?; // a later minor version's fields
        }
        let e = Entry { index, term, time, data };
        h.begin(&e);
        let (c, out) = outcome(p.apply(h, &e));
        h.result(c, &out);
    }
    r.finish()
}

/// Runs a validation (`raftkv_validate`): code 0 accepts the command.
pub fn validate(p: &dyn Plugin, cmd: &[u8]) -> (u32, Vec<u8>) {
    outcome(p.validate(cmd).map(|()| Vec::new()))
}

/// Runs a query.
pub fn query(p: &dyn Plugin, st: &dyn State, q: &[u8]) -> (u32, Vec<u8>) {
    outcome(p.query(st, q))
}

/// Decodes the migration input `{"from_hash": str, "from_version": str,
/// "index": uint}` (other fields are ignored).
pub fn decode_migration(b: &[u8]) -> Result<Migration, Error> {
    let bad = |why: &str| Error::bad_request(format!("malformed migration input: {}", why));
    let v = mp::decode(b).map_err(|e| bad(&e.to_string()))?;
    if v.as_map().is_none() {
        return Err(bad("not a map"));
    }
    let s = |k: &str| match v.get(k) {
        None | Some(Value::Nil) => Ok(String::new()),
        Some(Value::Str(s)) => Ok(s.clone()),
        Some(_) => Err(bad(&format!("{} is not a string", k))),
    };
    let index = match v.get("index") {
        None => 0,
        Some(x) => x.as_u64().ok_or_else(|| bad("index is not an unsigned integer"))?,
    };
    Ok(Migration { from_hash: s("from_hash")?, from_version: s("from_version")?, index })
}

/// Runs a migration.
pub fn migrate(p: &dyn Plugin, st: &mut dyn State, e: &Entry, input: &[u8]) -> (u32, Vec<u8>) {
    outcome(decode_migration(input).and_then(|m| p.migrate(st, e, &m)).map(|()| Vec::new()))
}

/// The answer of `raftkv_info`: the plugin's Info as a MsgPack map, or an
/// error (which makes the host refuse the module) when the plugin's
/// has_migrate disagrees with the exports.
pub fn info(p: &dyn Plugin, exported_migrate: bool) -> (u32, Vec<u8>) {
    match (p.has_migrate(), exported_migrate) {
        (true, false) => {
            return outcome(Err(Error::internal(
                "the plugin has a migration but the module does not export raftkv_migrate: use export!(PLUGIN, migrate)",
            )))
        }
        (false, true) => {
            return outcome(Err(Error::internal(
                "the module exports raftkv_migrate but the plugin has no migration: use export!(PLUGIN)",
            )))
        }
        _ => {}
    }
    let i = p.info();
    let mut w = Writer::new();
    w.map(4).str("name").str(i.name).str("version").str(i.version).str("description").str(i.description);
    w.str("validate").bool(p.has_validate());
    (code::OK, w.into_bytes())
}

/// Decodes a `state_scan` answer: an array of Record `[key bin, value bin,
/// version uint]` (a nil value is empty; fields after these are ignored).
pub fn decode_records(b: &[u8]) -> Result<Vec<Record>, mp::DecodeError> {
    let mut r = Reader::new(b);
    let n = r.array_len()?;
    let mut out = Vec::with_capacity(n.min(b.len()));
    for _ in 0..n {
        let fields = r.array_len()?;
        if fields < 3 {
            return Err(mp::DecodeError { offset: r.offset(), kind: mp::ErrorKind::Range("record length") });
        }
        let key = r.bin_or_nil()?.to_vec();
        let value = r.bin_or_nil()?.to_vec();
        let version = r.uint()?;
        for _ in 3..fields {
            r.skip()?;
        }
        out.push(Record { key, value, version });
    }
    r.finish()?;
    Ok(out)
}
