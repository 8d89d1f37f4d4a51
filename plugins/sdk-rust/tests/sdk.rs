//! Tests of the SDK through a test plugin on a MemState: the router and its
//! errors, typed request fields, per-entry atomicity, traps, entry metadata,
//! paging ranges, limits, migrations and info, and the batch glue.

use raftkv_sdk::mp::{self, Value};
use raftkv_sdk::{code, map, rt, Entry, Error, Info, Migration, MemState, Plugin, Request, Router, State};

fn put(st: &mut dyn State, e: &Entry, req: &Request) -> Result<Value, Error> {
    req.only(&["key", "value"])?;
    st.set(req.bytes("key")?, req.bytes("value")?)?;
    Ok(map! {"version" => e.index})
}

fn del(st: &mut dyn State, _e: &Entry, req: &Request) -> Result<Value, Error> {
    Ok(map! {"existed" => st.delete(req.bytes("key")?)?})
}

/// Writes, then fails: the write must be undone.
fn fail_after_write(st: &mut dyn State, _e: &Entry, req: &Request) -> Result<Value, Error> {
    st.set(req.bytes("key")?, b"written")?;
    Err(Error::conflict("refused after writing"))
}

/// Writes, then panics (a trap in wasm): the write must be undone.
fn panic_after_write(st: &mut dyn State, _e: &Entry, req: &Request) -> Result<Value, Error> {
    st.set(req.bytes("key")?, b"written")?;
    panic!("boom");
}

fn bad_code(_st: &mut dyn State, _e: &Entry, req: &Request) -> Result<Value, Error> {
    Err(Error::new(req.u64("code")? as u32, "custom"))
}

fn meta(_st: &mut dyn State, e: &Entry, _req: &Request) -> Result<Value, Error> {
    Ok(map! {"index" => e.index, "term" => e.term, "time" => e.time, "seed" => e.seed(), "data" => e.data})
}

/// Writes keys k/00000 .. k/(n-1) (prefix "k/" unless given), with
/// values of `size` bytes if given.
fn fill(st: &mut dyn State, _e: &Entry, req: &Request) -> Result<Value, Error> {
    let prefix = req.opt_str("prefix")?.unwrap_or("k/");
    for i in 0..req.u64("n")? {
        let v = match req.opt_u64("size")? {
            Some(n) => vec![1; n as usize],
            None => i.to_be_bytes().to_vec(),
        };
        st.set(format!("{}{:05}", prefix, i).as_bytes(), &v)?;
    }
    Ok(Value::Nil)
}

/// Sets a raw key and value of the given sizes (limits).
fn sized(st: &mut dyn State, _e: &Entry, req: &Request) -> Result<Value, Error> {
    let k = vec![b'k'; req.u64("klen")? as usize];
    st.set(&k, &vec![0; req.u64("vlen")? as usize])?;
    Ok(Value::Nil)
}

fn get(st: &dyn State, req: &Request) -> Result<Value, Error> {
    match st.get_versioned(req.bytes("key")?)? {
        Some((v, ver)) => Ok(map! {"value" => v, "version" => ver}),
        None => Err(Error::not_found("no such key")),
    }
}

fn list(st: &dyn State, req: &Request) -> Result<Value, Error> {
    let prefix = req.opt_bytes("prefix")?.unwrap_or_default();
    let mut keys = Vec::new();
    for r in st.prefix(prefix) {
        keys.push(Value::Bin(r?.key));
    }
    Ok(Value::Array(keys))
}

fn scan_limit(st: &dyn State, req: &Request) -> Result<Value, Error> {
    Ok(Value::from(st.scan(b"", b"", req.u64("limit")? as u32)?.len()))
}

/// Echoes typed fields back, to test the getters.
fn types(_st: &dyn State, req: &Request) -> Result<Value, Error> {
    let inner = req.opt_map("m")?;
    Ok(map! {
        "s" => req.opt_str("s")?, "b" => req.opt_bytes("b")?, "i" => req.opt_i64("i")?,
        "u" => req.opt_u64("u")?, "f" => req.opt_f64("f")?, "t" => req.opt_bool("t")?,
        "a" => req.opt_array("a")?.map(|a| a.len()), "m" => match inner { Some(m) => Some(m.i64("x")?), None => None },
    })
}

fn migrate(st: &mut dyn State, e: &Entry, m: &Migration) -> Result<(), Error> {
    st.set(b"migrated", m.from_version.as_bytes())?;
    if m.from_version == "bad" {
        return Err(Error::new(70, "cannot migrate from bad"));
    }
    if m.index != e.index {
        return Err(Error::internal("index mismatch"));
    }
    Ok(())
}

static TEST: Router = Router {
    info: Info { name: "test", version: "0.0.1", description: "the SDK's test plugin" },
    commands: &[
        ("put", put),
        ("del", del),
        ("fail_after_write", fail_after_write),
        ("panic_after_write", panic_after_write),
        ("bad_code", bad_code),
        ("meta", meta),
        ("fill", fill),
        ("sized", sized),
    ],
    queries: &[("get", get), ("list", list), ("scan_limit", scan_limit), ("types", types)],
    migrate: Some(migrate),
};

fn cmd(s: &mut MemState, v: Value) -> raftkv_sdk::Outcome {
    s.apply_value(&TEST, &v)
}

fn query(s: &MemState, v: Value) -> raftkv_sdk::Outcome {
    s.query_value(&TEST, &v)
}

fn err(o: raftkv_sdk::Outcome) -> (u32, String) {
    (o.code, o.message().to_string())
}

#[test]
fn router_errors() {
    let mut s = MemState::new();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "malformed command: invalid msgpack: truncated at byte 0"),
        (vec![0xc1], "malformed command: invalid msgpack: reserved byte 0xc1 at byte 0"),
        (vec![0x81, 0xa2, b'o', b'p'], "malformed command: invalid msgpack: truncated at byte 4"),
        (vec![0x80, 0x80], "malformed command: invalid msgpack: 1 bytes after the value"),
        (b"put a".to_vec(), "malformed command: invalid msgpack: 4 bytes after the value"),
        (vec![0x92, 0x01, 0x02], "malformed command: expected a map, got array"),
        (vec![0xa3, b'p', b'u', b't'], "malformed command: expected a map, got str"),
        (map! {1 => "x"}.to_bytes(), "malformed command: field names must be strings"),
        (map! {"key" => "a"}.to_bytes(), "missing op"),
        (map! {"op" => Value::Nil}.to_bytes(), "missing op"),
        (map! {"op" => 1}.to_bytes(), "op must be a string"),
        (map! {"op" => "get", "key" => "a"}.to_bytes(), "unknown command op \"get\""),
        (map! {"op" => "PUT"}.to_bytes(), "unknown command op \"PUT\""),
        (map! {"op" => "put", "value" => "v"}.to_bytes(), "missing key"),
        (map! {"op" => "put", "key" => 5, "value" => "v"}.to_bytes(), "key must be a string"),
        (map! {"op" => "put", "key" => "a", "value" => "v", "extra" => 1}.to_bytes(), "unknown field \"extra\""),
    ];
    for (c, want) in cases {
        let o = s.apply(&TEST, &c);
        assert_eq!(err(o), (code::BAD_REQUEST, want.to_string()), "command {:x?}", c);
    }
    assert!(s.is_empty());
    let o = query(&s, map! {"op" => "put", "key" => "a"});
    assert_eq!(err(o), (code::BAD_REQUEST, "unknown query op \"put\"".to_string()));
    let o = s.query(&TEST, b"");
    assert_eq!(err(o), (code::BAD_REQUEST, "malformed query: invalid msgpack: truncated at byte 0".to_string()));
    let o = query(&s, map! {"op" => "get", "key" => "nope"});
    assert_eq!(err(o), (code::NOT_FOUND, "no such key".to_string()));
    // str and bin are both accepted as bytes; the last of repeated fields counts.
    assert!(cmd(&mut s, map! {"op" => "put", "key" => b"k".to_vec(), "value" => "1", "value" => "2"}).is_ok());
    let v = query(&s, map! {"op" => "get", "key" => "k"}).value();
    assert_eq!(v, map! {"value" => b"2".to_vec(), "version" => s.index()});
}

// raftkv_validate: the Router refuses, from the bytes alone, every command
// that apply would refuse before reaching a handler, with the same error,
// and accepts the others (their fields are the handler's to check).
#[test]
fn router_validates() {
    let mut s = MemState::new();
    let refused: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xc1],
        vec![0x80, 0x80],
        vec![0x92, 0x01, 0x02],
        map! {1 => "x"}.to_bytes(),
        map! {"key" => "a"}.to_bytes(),
        map! {"op" => 1}.to_bytes(),
        map! {"op" => "get", "key" => "a"}.to_bytes(),
        map! {"op" => "PUT"}.to_bytes(),
    ];
    for c in &refused {
        let v = MemState::validate(&TEST, c);
        let a = s.apply(&TEST, c);
        assert_eq!(v.code, code::BAD_REQUEST, "validate {:x?}", c);
        assert_eq!(err(v), err(a), "validate and apply disagree on {:x?}", c);
    }
    for c in [map! {"op" => "put", "key" => "a", "value" => "v"}, map! {"op" => "put"}, map! {"op" => "del", "key" => "a"}] {
        let o = MemState::validate(&TEST, &c.to_bytes());
        assert!(o.is_ok(), "{:?}: {}", c, o.message());
    }
    assert!(s.is_empty(), "validation wrote nothing");
    // The default: a plugin without validate accepts everything.
    assert!(MemState::validate(&Echo, &[0xc1]).is_ok());
}

#[test]
fn typed_fields() {
    let s = MemState::new();
    let v = query(
        &s,
        map! {"op" => "types", "s" => "x", "b" => vec![0u8, 0xff], "i" => -5, "u" => u64::MAX, "f" => 3, "t" => true,
        "a" => Value::Array(vec![Value::Nil; 3]), "m" => map! {"x" => 9}},
    )
    .value();
    assert_eq!(
        v,
        map! {"s" => "x", "b" => vec![0u8, 0xff], "i" => -5, "u" => u64::MAX, "f" => 3.0, "t" => true, "a" => 3, "m" => 9}
    );
    // Absent and nil fields are None.
    let v = query(&s, map! {"op" => "types", "s" => Value::Nil}).value();
    assert_eq!(v.get("s"), Some(&Value::Nil));
    let cases = vec![
        (map! {"op" => "types", "s" => vec![1u8]}, "s must be a string"),
        (map! {"op" => "types", "b" => 1}, "b must be a string"),
        (map! {"op" => "types", "i" => u64::MAX}, "i must be a signed 64-bit integer"),
        (map! {"op" => "types", "i" => 1.5}, "i must be a signed 64-bit integer"),
        (map! {"op" => "types", "u" => -1}, "u must be an unsigned 64-bit integer"),
        (map! {"op" => "types", "f" => "1"}, "f must be a number"),
        (map! {"op" => "types", "t" => 1}, "t must be a boolean"),
        (map! {"op" => "types", "a" => map! {}}, "a must be an array"),
        (map! {"op" => "types", "m" => 1}, "m: expected a map, got int"),
        (map! {"op" => "types", "m" => map! {}}, "missing x"),
    ];
    for (q, want) in cases {
        assert_eq!(err(query(&s, q.clone())), (code::BAD_REQUEST, want.to_string()), "{:?}", q);
    }
}

// A failing or panicking command changes nothing, and the entries after it
// apply; versions are the writing entry's index.
#[test]
fn atomicity_and_traps() {
    let mut s = MemState::new();
    let outs = s.apply_batch(
        &TEST,
        &[
            &map! {"op" => "put", "key" => "a", "value" => "1"}.to_bytes(),
            &map! {"op" => "fail_after_write", "key" => "a"}.to_bytes(),
            &map! {"op" => "panic_after_write", "key" => "b"}.to_bytes(),
            &map! {"op" => "put", "key" => "c", "value" => "3"}.to_bytes(),
        ],
    );
    assert_eq!(outs[0].value(), map! {"version" => 1});
    assert_eq!(err(outs[1].clone()), (code::CONFLICT, "refused after writing".to_string()));
    assert_eq!(err(outs[2].clone()), (code::TRAP, "panic: boom".to_string()));
    assert_eq!(outs[3].value(), map! {"version" => 4});
    let recs = s.dump();
    let got: Vec<(&[u8], &[u8], u64)> = recs.iter().map(|r| (&r.key[..], &r.value[..], r.version)).collect();
    assert_eq!(got, vec![(&b"a"[..], &b"1"[..], 1), (&b"c"[..], &b"3"[..], 4)]);
    assert_eq!(cmd(&mut s, map! {"op" => "del", "key" => "a"}).value(), map! {"existed" => true});
    assert_eq!(cmd(&mut s, map! {"op" => "del", "key" => "a"}).value(), map! {"existed" => false});
}

// An error must never pass for a success or a host-assigned code.
#[test]
fn invalid_error_codes() {
    let mut s = MemState::new();
    for (c, want) in [(0u64, code::INTERNAL), (6, code::INTERNAL), (8, code::INTERNAL), (256, code::INTERNAL), (5, 5), (9, 9), (64, 64), (255, 255)] {
        let o = cmd(&mut s, map! {"op" => "bad_code", "code" => c});
        assert_eq!(o.code, want, "code {}: {}", c, o.message());
        if want == code::INTERNAL && c != 5 {
            assert_eq!(o.message(), format!("error with invalid code {}: custom", c));
        }
    }
}

#[test]
fn entry_metadata() {
    let mut s = MemState::new();
    let e = Entry { index: 41, term: 7, time: -3, data: &map! {"op" => "meta"}.to_bytes() };
    let v = s.apply_entry(&TEST, &e).value();
    let seed = Entry { index: 41, term: 7, ..Default::default() }.seed();
    assert_eq!(v, map! {"index" => 41, "term" => 7, "time" => -3, "seed" => seed, "data" => e.data});
    // Auto-numbered entries continue from the last index.
    let v = cmd(&mut s, map! {"op" => "meta"}).value();
    assert_eq!(v.get("index"), Some(&Value::Int(42)));
    assert_eq!(v.get("time"), Some(&Value::Int(1_700_000_000_000_000_000 + 41_000_000_000)));
}

// range pages through state_scan with the key after the last one; a
// prefix ending in 0xff bytes bounds the range correctly.
#[test]
fn ranges_page() {
    let mut s = MemState::new();
    assert!(cmd(&mut s, map! {"op" => "fill", "n" => 2500}).is_ok());
    for k in [&b"k"[..], b"k\xff", b"k\xff\xff", b"k\xff0", b"l", b"\xff"] {
        assert!(cmd(&mut s, map! {"op" => "put", "key" => k, "value" => ""}).is_ok());
    }
    let keys = |p: &[u8]| -> Vec<Vec<u8>> {
        let v = query(&s, map! {"op" => "list", "prefix" => p}).value();
        v.as_array().unwrap().iter().map(|k| k.as_bytes().unwrap().to_vec()).collect()
    };
    let all = keys(b"k/");
    assert_eq!(all.len(), 2500);
    for (i, k) in all.iter().enumerate() {
        assert_eq!(k, format!("k/{:05}", i).as_bytes());
    }
    assert_eq!(keys(b"").len(), 2506);
    assert_eq!(keys(b"k\xff"), vec![b"k\xff".to_vec(), b"k\xff0".to_vec(), b"k\xff\xff".to_vec()]);
    assert_eq!(keys(b"\xff"), vec![b"\xff".to_vec()]);
    assert_eq!(keys(b"m"), Vec::<Vec<u8>>::new());
}

// A range over values too large for a page of PAGE records asks for fewer
// (a scan of as many is too_large) and still visits every key once.
#[test]
fn ranges_of_large_values() {
    let mut s = MemState::new();
    assert!(cmd(&mut s, map! {"op" => "fill", "prefix" => "b/", "n" => 40, "size" => 300_000}).is_ok());
    assert!(cmd(&mut s, map! {"op" => "fill", "prefix" => "c/", "n" => 1500, "size" => 10}).is_ok());
    let o = query(&s, map! {"op" => "scan_limit", "limit" => 1000});
    assert_eq!(o.code, code::TOO_LARGE, "{}", o.message());
    assert!(o.message().starts_with("scan answer too large: "), "{}", o.message());
    let v = query(&s, map! {"op" => "list", "prefix" => ""}).value();
    let keys: Vec<String> = v.as_array().unwrap().iter().map(|k| String::from_utf8(k.as_bytes().unwrap().to_vec()).unwrap()).collect();
    let want: Vec<String> = (0..40).map(|i| format!("b/{:05}", i)).chain((0..1500).map(|i| format!("c/{:05}", i))).collect();
    assert_eq!(keys, want);
}

// MemState answers as the host does at the ABI's limits.
#[test]
fn limits() {
    let mut s = MemState::new();
    let sized = |s: &mut MemState, klen: usize, vlen: usize| err(cmd(s, map! {"op" => "sized", "klen" => klen, "vlen" => vlen}));
    assert_eq!(sized(&mut s, 4096, 1 << 20).0, code::OK);
    assert_eq!(sized(&mut s, 4097, 1).0, code::TOO_LARGE);
    assert_eq!(sized(&mut s, 1, (1 << 20) + 1).0, code::TOO_LARGE);
    assert_eq!(sized(&mut s, 0, 1).0, code::BAD_REQUEST);
    assert_eq!(s.len(), 1);
    assert_eq!(err(query(&s, map! {"op" => "scan_limit", "limit" => 0})).0, code::BAD_REQUEST);
    assert_eq!(err(query(&s, map! {"op" => "scan_limit", "limit" => 10001})).0, code::BAD_REQUEST);
    assert_eq!(query(&s, map! {"op" => "scan_limit", "limit" => 10000}).value(), Value::Int(1));
    let long = vec![b'k'; 4097];
    assert_eq!(err(query(&s, map! {"op" => "get", "key" => long})).0, code::TOO_LARGE);
}

#[test]
fn migrations_and_info() {
    let mut s = MemState::new();
    assert!(cmd(&mut s, map! {"op" => "put", "key" => "a", "value" => "1"}).is_ok());
    let o = s.migrate(&TEST, "ab12", "1.0.0");
    assert!(o.is_ok(), "{}", o.message());
    assert_eq!(s.get_versioned(b"migrated").unwrap(), Some((b"1.0.0".to_vec(), 2)));
    let o = s.migrate(&TEST, "ab12", "bad");
    assert_eq!(err(o), (70, "cannot migrate from bad".to_string()));
    assert_eq!(s.get(b"migrated").unwrap(), Some(b"1.0.0".to_vec()), "a failed migration's writes are undone");

    let info = MemState::info(&TEST, true).value();
    assert_eq!(info, map! {"name" => "test", "version" => "0.0.1", "description" => "the SDK's test plugin", "validate" => true});
    let o = MemState::info(&TEST, false);
    assert_eq!(o.code, code::INTERNAL);
    assert!(o.message().contains("export!(PLUGIN, migrate)"), "{}", o.message());
    static PLAIN: Router = Router { info: Info { name: "", version: "", description: "" }, commands: &[], queries: &[], migrate: None };
    assert_eq!(MemState::info(&PLAIN, false).value(), map! {"name" => "", "version" => "", "description" => "", "validate" => true});
    // A plugin that is not a Router has no validate unless it says so.
    assert_eq!(MemState::info(&Echo, false).value(), map! {"name" => "", "version" => "", "description" => "", "validate" => false});
    assert_eq!(MemState::info(&PLAIN, true).code, code::INTERNAL);

    // The migration input is decoded strictly.
    assert_eq!(rt::decode_migration(&map! {"from_hash" => "h", "from_version" => "v", "index" => 3, "new" => 1}.to_bytes()),
        Ok(Migration { from_hash: "h".into(), from_version: "v".into(), index: 3 }));
    for bad in [vec![0xc1], Value::Nil.to_bytes(), map! {"index" => -1}.to_bytes(), map! {"from_hash" => 1}.to_bytes()] {
        let e = rt::decode_migration(&bad).unwrap_err();
        assert_eq!(e.code, code::BAD_REQUEST);
        assert!(e.message.starts_with("malformed migration input: "), "{}", e.message);
    }
}

/// A Host that records results, to drive rt::apply_batch directly.
#[derive(Default)]
struct Rec {
    mem: MemState,
    begun: Vec<u64>,
    results: Vec<(u32, Vec<u8>)>,
}

impl State for Rec {
    fn get_versioned(&self, key: &[u8]) -> Result<Option<(Vec<u8>, u64)>, Error> {
        self.mem.get_versioned(key)
    }
    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.mem.set(key, value)
    }
    fn delete(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.mem.delete(key)
    }
    fn scan(&self, start: &[u8], end: &[u8], limit: u32) -> Result<Vec<raftkv_sdk::Record>, Error> {
        self.mem.scan(start, end, limit)
    }
}

impl rt::Host for Rec {
    fn begin(&mut self, e: &Entry) {
        self.begun.push(e.index);
    }
    fn result(&mut self, code: u32, payload: &[u8]) {
        self.results.push((code, payload.to_vec()));
    }
}

/// Echoes the entry's data and index.
struct Echo;
impl Plugin for Echo {
    fn apply(&self, _st: &mut dyn State, e: &Entry) -> Result<Vec<u8>, Error> {
        Ok([&e.index.to_be_bytes()[..], e.data].concat())
    }
    fn query(&self, _st: &dyn State, q: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(q.to_vec())
    }
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

// The batch: the ABI's golden encoding, extra trailing entry fields, nil
// data; malformed batches are errors (the wasm glue traps on them).
#[test]
fn batches() {
    let golden = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../abi/testdata/batch.golden")).unwrap();
    let mut h = Rec::default();
    rt::apply_batch(&Echo, &mut h, &hex(&golden)).unwrap();
    assert_eq!(h.begun, vec![1, 300]);
    assert_eq!(h.results, vec![(0, [&1u64.to_be_bytes()[..], b"hello"].concat()), (0, 300u64.to_be_bytes().to_vec())]);

    // [[5, 1, 0, nil, "extra", [1, 2]], [6, 1, 0, bin "x"]]
    let b = hex("92 96 05 01 00 c0 a5 6578747261 92 01 02  94 06 01 00 c4 01 78");
    let mut h = Rec::default();
    rt::apply_batch(&Echo, &mut h, &b).unwrap();
    assert_eq!(h.results, vec![(0, 5u64.to_be_bytes().to_vec()), (0, [&6u64.to_be_bytes()[..], b"x"].concat())]);

    for bad in [
        "",                     // empty
        "91 93 01 01 00",       // an entry of 3 fields
        "91 94 ff 01 00 c0",    // a negative index
        "91 94 01 01 00 a1 78", // str data
        "91 94 01 01 cf ffffffffffffffff c0", // time over i64
        "92 94 01 01 00 c0",    // a missing entry
        "91 94 01 01 00 c0 00", // trailing bytes
        "81 00 00",             // not an array
    ] {
        let mut h = Rec::default();
        assert!(rt::apply_batch(&Echo, &mut h, &hex(bad)).is_err(), "batch {} accepted", bad);
    }
}

#[test]
fn records() {
    let golden = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../abi/testdata/records.golden")).unwrap();
    let recs = rt::decode_records(&hex(&golden)).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!((recs[0].key.as_slice(), recs[0].value.as_slice(), recs[0].version), (&b"a"[..], &b"1"[..], 7));
    assert_eq!((recs[1].key.as_slice(), recs[1].value.as_slice(), recs[1].version), (&[0u8, 0xff][..], &b""[..], 1 << 40));
    for bad in ["91 92 c4 01 61 c0", "91 93 a1 61 c0 01", "92 93 c4 01 61 c0 01", "90 00"] {
        assert!(rt::decode_records(&hex(bad)).is_err(), "{}", bad);
    }
}

// Random and mutated inputs always get a result, never a panic (a trap in
// wasm): every one is a bad request or, by chance, a valid command.
#[test]
fn garbage_commands() {
    let mut s = MemState::new();
    let seeds = [
        map! {"op" => "put", "key" => "g", "value" => vec![1u8, 2]}.to_bytes(),
        map! {"op" => "types", "m" => map! {"x" => 1}, "a" => Value::Array(vec![])}.to_bytes(),
        hex("dfffffffff"),
        hex("ddffffffff"),
    ];
    let mut x: u64 = 12345;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut codes = std::collections::BTreeMap::new();
    for i in 0..5000 {
        let mut b = seeds[i % seeds.len()].clone();
        match rnd() % 3 {
            0 => b.truncate(rnd() as usize % (b.len() + 1)),
            1 => {
                let n = b.len();
                b[rnd() as usize % n] ^= 1 << (rnd() % 8);
            }
            _ => b = (0..rnd() % 40).map(|_| rnd() as u8).collect(),
        }
        let o = s.apply(&TEST, &b);
        let q = s.query(&TEST, &b);
        for o in [o, q] {
            assert!(o.code != code::TRAP, "input {:x?}: {}", b, o.message());
            *codes.entry(o.code).or_insert(0) += 1;
        }
    }
    assert!(codes[&code::BAD_REQUEST] > 9000, "{:?}", codes);
}

// A value's encoding round-trips through a command and a query.
#[test]
fn values_round_trip() {
    let mut s = MemState::new();
    let v = map! {"n" => Value::Array(vec![1.5.into(), (-1).into(), Value::Nil, Value::Ext(3, vec![1])])};
    assert!(cmd(&mut s, map! {"op" => "put", "key" => "v", "value" => v.to_bytes()}).is_ok());
    let got = query(&s, map! {"op" => "get", "key" => "v"}).value();
    assert_eq!(mp::decode(got.get("value").unwrap().as_bytes().unwrap()).unwrap(), v);
}
