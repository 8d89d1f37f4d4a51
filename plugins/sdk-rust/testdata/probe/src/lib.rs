//! The SDK's probe plugin: one op per piece of glue to test on the real
//! runtime. Not an example.

use raftkv_sdk::{log, map, Entry, Error, Info, Level, Migration, Request, Router, State, Value};

pub static PROBE: Router = Router {
    info: Info { name: "probe", version: "0.1.0", description: "the Rust SDK's probe" },
    commands: &[
        ("put", put),
        ("fill", fill),
        ("fail_after_write", fail_after_write),
        ("panic_after_write", panic_after_write),
        ("error", error),
        ("meta", meta),
        ("log", log_op),
        ("grow", grow),
    ],
    queries: &[("get", get), ("count", count), ("scan", scan), ("error", error_query)],
    migrate: Some(migrate),
};

raftkv_sdk::export!(PROBE, migrate);

/// {key, size|value}: sets key to `value`, or to `size` bytes i%251.
fn put(st: &mut dyn State, _e: &Entry, req: &Request) -> Result<Value, Error> {
    let v = match req.opt_bytes("value")? {
        Some(v) => v.to_vec(),
        None => (0..req.u64("size")?).map(|i| (i % 251) as u8).collect(),
    };
    st.set(req.bytes("key")?, &v)?;
    Ok(Value::Nil)
}

/// {prefix, n, size}: n keys prefix+%06d with values of size bytes.
fn fill(st: &mut dyn State, _e: &Entry, req: &Request) -> Result<Value, Error> {
    let prefix = req.bytes("prefix")?;
    let v = vec![7u8; req.u64("size")? as usize];
    for i in 0..req.u64("n")? {
        st.set(&[prefix, format!("{:06}", i).as_bytes()].concat(), &v)?;
    }
    Ok(Value::Nil)
}

fn fail_after_write(st: &mut dyn State, _e: &Entry, req: &Request) -> Result<Value, Error> {
    st.set(req.bytes("key")?, b"written")?;
    Err(Error::conflict("refused after writing"))
}

fn panic_after_write(st: &mut dyn State, _e: &Entry, req: &Request) -> Result<Value, Error> {
    st.set(req.bytes("key")?, b"written")?;
    panic!("probe panics after writing {:?}", req.str("key")?);
}

/// {code, message}: an error result with that code.
fn error(_st: &mut dyn State, _e: &Entry, req: &Request) -> Result<Value, Error> {
    Err(Error::new(req.u64("code")? as u32, req.str("message")?))
}

fn error_query(_st: &dyn State, req: &Request) -> Result<Value, Error> {
    Err(Error::new(req.u64("code")? as u32, req.str("message")?))
}

fn meta(_st: &mut dyn State, e: &Entry, _req: &Request) -> Result<Value, Error> {
    Ok(map! {"index" => e.index, "term" => e.term, "time" => e.time, "seed" => e.seed(), "data" => e.data})
}

fn log_op(_st: &mut dyn State, _e: &Entry, req: &Request) -> Result<Value, Error> {
    log(Level::Warn, req.str("message")?);
    Ok(Value::Nil)
}

/// {mib}: allocates and touches mib MiB (to hit the memory cap).
fn grow(_st: &mut dyn State, _e: &Entry, req: &Request) -> Result<Value, Error> {
    let v = vec![1u8; (req.u64("mib")? as usize) << 20];
    Ok(Value::from(v.iter().map(|&b| b as u64).sum::<u64>()))
}

/// {key} → {value, version}
fn get(st: &dyn State, req: &Request) -> Result<Value, Error> {
    match st.get_versioned(req.bytes("key")?)? {
        Some((v, ver)) => Ok(map! {"value" => v, "version" => ver}),
        None => Err(Error::not_found("absent")),
    }
}

/// {prefix} → {keys, bytes, first, last}: a whole range through the SDK's
/// paging iterator.
fn count(st: &dyn State, req: &Request) -> Result<Value, Error> {
    let (mut keys, mut bytes) = (0u64, 0u64);
    let (mut first, mut last) = (Vec::new(), Vec::new());
    for r in st.prefix(req.bytes("prefix")?) {
        let r = r?;
        if keys == 0 {
            first = r.key.clone();
        }
        keys += 1;
        bytes += r.value.len() as u64;
        last = r.key;
    }
    Ok(map! {"keys" => keys, "bytes" => bytes, "first" => first, "last" => last})
}

/// {start, limit} → the number of records one scan from start returns.
fn scan(st: &dyn State, req: &Request) -> Result<Value, Error> {
    Ok(Value::from(st.scan(req.bytes("start")?, b"", req.u64("limit")? as u32)?.len()))
}

/// Writes "migrated" = [from_hash, from_version, index, entry index, term,
/// time]; refuses from_version "refuse" after writing.
fn migrate(st: &mut dyn State, e: &Entry, m: &Migration) -> Result<(), Error> {
    let v = Value::Array(vec![
        m.from_hash.clone().into(),
        m.from_version.clone().into(),
        m.index.into(),
        e.index.into(),
        e.term.into(),
        e.time.into(),
    ]);
    st.set(b"migrated", &v.to_bytes())?;
    if m.from_version == "refuse" {
        return Err(Error::new(99, "probe refuses to migrate"));
    }
    Ok(())
}
