//! MemState: an in-memory State with the host's semantics, for testing a
//! plugin natively with `cargo test`. It is not compiled for wasm32.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::mp::{self, Value, Writer};
use crate::{code, rt, Entry, Error, Plugin, Record, State, MAX_KEY_SIZE, MAX_SCAN_BYTES, MAX_SCAN_LIMIT, MAX_VALUE_SIZE};

/// The result of one entry, query, migration or info call: a code and its
/// payload (the answer when `code` is 0, a UTF-8 message otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub code: u32,
    pub data: Vec<u8>,
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        self.code == code::OK
    }

    /// The answer decoded as MsgPack. Panics (failing the test) if the code
    /// is not 0 or the answer is not one MsgPack value.
    pub fn value(&self) -> Value {
        assert!(self.is_ok(), "result code {}: {}", self.code, self.message());
        mp::decode(&self.data).unwrap_or_else(|e| panic!("answer {:?} is not MsgPack: {}", self.data, e))
    }

    /// The payload as text (the message of an error).
    pub fn message(&self) -> &str {
        std::str::from_utf8(&self.data).unwrap_or("<not UTF-8>")
    }
}

/// An in-memory [`State`] that behaves as the host's: ordered keys with
/// versions (the index of the entry that last wrote them), the ABI's size
/// limits and errors, and per-entry atomicity — [`apply`](MemState::apply)
/// runs a command through the same batch decoding and result reporting as
/// the wasm module and undoes the entry's writes when it fails or panics (a
/// panic becomes code 6, `trap`, as the host reports a trap). Entries are
/// numbered automatically: index 1, 2, ... in term 1, one second apart.
#[derive(Clone, Debug, Default)]
pub struct MemState {
    data: BTreeMap<Vec<u8>, (Vec<u8>, u64)>,
    index: u64,
    term: u64,
    time: i64,
    undo: Vec<(Vec<u8>, Option<(Vec<u8>, u64)>)>,
    outcomes: Vec<Outcome>,
}

/// The time of entry 1 (2023-11-14T22:13:20Z); each later entry is a second
/// later.
pub const BASE_TIME: i64 = 1_700_000_000_000_000_000;

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("panic: {}", s)
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("panic: {}", s)
    } else {
        "panic".to_string()
    }
}

impl MemState {
    pub fn new() -> MemState {
        MemState::default()
    }

    /// The index of the last entry applied (or migration run).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Every record, in key order.
    pub fn dump(&self) -> Vec<Record> {
        self.data.iter().map(|(k, (v, ver))| Record { key: k.clone(), value: v.clone(), version: *ver }).collect()
    }

    /// The next entry's metadata.
    fn next_entry(&self) -> (u64, u64, i64) {
        let index = self.index + 1;
        (index, self.term.max(1), BASE_TIME + (index as i64 - 1) * 1_000_000_000)
    }

    /// Applies one command as the next entry.
    pub fn apply(&mut self, p: &dyn Plugin, cmd: &[u8]) -> Outcome {
        self.apply_batch(p, &[cmd]).pop().expect("one outcome per entry")
    }

    /// Applies a command given as a MsgPack value.
    pub fn apply_value(&mut self, p: &dyn Plugin, cmd: &Value) -> Outcome {
        self.apply(p, &cmd.to_bytes())
    }

    /// Applies commands as consecutive entries, one outcome each.
    pub fn apply_batch(&mut self, p: &dyn Plugin, cmds: &[&[u8]]) -> Vec<Outcome> {
        let mut out = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let (index, term, time) = self.next_entry();
            out.push(self.apply_entry(p, &Entry { index, term, time, data: cmd }));
        }
        out
    }

    /// Applies one entry with the given metadata (its index becomes the
    /// state's index), encoded as the host encodes a batch.
    pub fn apply_entry(&mut self, p: &dyn Plugin, e: &Entry) -> Outcome {
        let mut w = Writer::new();
        w.array(1).array(4).uint(e.index).uint(e.term).int(e.time).bin(e.data);
        let batch = w.into_bytes();
        self.outcomes.clear();
        let r = catch_unwind(AssertUnwindSafe(|| rt::apply_batch(p, self, &batch)));
        match r {
            Ok(Ok(())) => {}
            Ok(Err(err)) => panic!("MemState encoded a batch the SDK cannot read: {}", err),
            Err(panic) => {
                self.rollback();
                self.outcomes.push(Outcome { code: code::TRAP, data: panic_message(panic).into_bytes() });
            }
        }
        self.index = e.index;
        self.term = e.term;
        self.time = e.time;
        assert_eq!(self.outcomes.len(), 1, "one result per entry");
        self.outcomes.pop().unwrap()
    }

    /// Runs a query (read-only, like on a node).
    pub fn query(&self, p: &dyn Plugin, q: &[u8]) -> Outcome {
        match catch_unwind(AssertUnwindSafe(|| rt::query(p, self, q))) {
            Ok((code, data)) => Outcome { code, data },
            Err(panic) => Outcome { code: code::TRAP, data: panic_message(panic).into_bytes() },
        }
    }

    /// Runs a query given as a MsgPack value.
    pub fn query_value(&self, p: &dyn Plugin, q: &Value) -> Outcome {
        self.query(p, &q.to_bytes())
    }

    /// Runs p's migration as the deploy of p at the next index, replacing a
    /// module with the given hash and version; an error undoes its writes.
    pub fn migrate(&mut self, p: &dyn Plugin, from_hash: &str, from_version: &str) -> Outcome {
        let (index, term, time) = self.next_entry();
        let input = crate::map! {"from_hash" => from_hash, "from_version" => from_version, "index" => index}.to_bytes();
        let e = Entry { index, term, time, data: &[] };
        rt::Host::begin(self, &e);
        let r = catch_unwind(AssertUnwindSafe(|| rt::migrate(p, self, &e, &input)));
        let out = match r {
            Ok((code, data)) => Outcome { code, data },
            Err(panic) => Outcome { code: code::TRAP, data: panic_message(panic).into_bytes() },
        };
        if out.is_ok() {
            self.undo.clear();
        } else {
            self.rollback();
        }
        out
    }

    /// What the module's raftkv_validate answers for the command `cmd`
    /// (code 0: accepted). It sees no state.
    pub fn validate(p: &dyn Plugin, cmd: &[u8]) -> Outcome {
        match catch_unwind(AssertUnwindSafe(|| rt::validate(p, cmd))) {
            Ok((code, data)) => Outcome { code, data },
            Err(panic) => Outcome { code: code::TRAP, data: panic_message(panic).into_bytes() },
        }
    }

    /// What the module's raftkv_info reports when it exports
    /// raftkv_migrate iff `exports_migrate`.
    pub fn info(p: &dyn Plugin, exports_migrate: bool) -> Outcome {
        let (code, data) = rt::info(p, exports_migrate);
        Outcome { code, data }
    }

    fn rollback(&mut self) {
        while let Some((k, old)) = self.undo.pop() {
            match old {
                Some(v) => self.data.insert(k, v),
                None => self.data.remove(&k),
            };
        }
    }

    fn record(&mut self, key: &[u8], old: Option<(Vec<u8>, u64)>) {
        self.undo.push((key.to_vec(), old));
    }

    fn write_check(key: &[u8], vlen: usize) -> Result<(), Error> {
        if key.is_empty() {
            return Err(Error::from_rc(-5));
        }
        if key.len() > MAX_KEY_SIZE || vlen > MAX_VALUE_SIZE {
            return Err(Error::from_rc(-2));
        }
        Ok(())
    }
}

impl rt::Host for MemState {
    fn begin(&mut self, e: &Entry) {
        self.index = e.index;
        self.term = e.term;
        self.time = e.time;
        self.undo.clear();
    }

    fn result(&mut self, code: u32, payload: &[u8]) {
        if code == code::OK {
            self.undo.clear();
        } else {
            self.rollback();
        }
        self.outcomes.push(Outcome { code, data: payload.to_vec() });
    }
}

impl State for MemState {
    fn get_versioned(&self, key: &[u8]) -> Result<Option<(Vec<u8>, u64)>, Error> {
        if key.len() > MAX_KEY_SIZE {
            return Err(Error::from_rc(-2));
        }
        Ok(self.data.get(key).cloned())
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        MemState::write_check(key, value.len())?;
        let old = self.data.insert(key.to_vec(), (value.to_vec(), self.index));
        self.record(key, old);
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool, Error> {
        MemState::write_check(key, 0)?;
        let old = self.data.remove(key);
        let existed = old.is_some();
        if existed {
            self.record(key, old);
        }
        Ok(existed)
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: u32) -> Result<Vec<Record>, Error> {
        if limit < 1 || limit > MAX_SCAN_LIMIT {
            return Err(Error::from_rc(-5));
        }
        if start.len() > MAX_KEY_SIZE || end.len() > MAX_KEY_SIZE {
            return Err(Error::from_rc(-2));
        }
        if !end.is_empty() && start >= end {
            return Ok(Vec::new());
        }
        let upper = if end.is_empty() { Bound::Unbounded } else { Bound::Excluded(end) };
        let recs: Vec<Record> = self
            .data
            .range::<[u8], _>((Bound::Included(start), upper))
            .take(limit as usize)
            .map(|(k, (v, ver))| Record { key: k.clone(), value: v.clone(), version: *ver })
            .collect();
        // The size of the host's answer, [[key bin, value bin, version uint], ...].
        let mut w = Writer::new();
        w.array(recs.len());
        let mut n = w.bytes().len() as u64;
        let bin = |l: usize| l as u64 + if l < 256 { 2 } else if l < 65536 { 3 } else { 5 };
        for r in &recs {
            n += 1 + bin(r.key.len()) + bin(r.value.len());
            n += Writer::new().uint(r.version).bytes().len() as u64;
        }
        if n > MAX_SCAN_BYTES as u64 {
            return Err(crate::scan_too_large(n));
        }
        Ok(recs)
    }
}
