//! The wasm side of the ABI: the host function imports, the State they
//! implement, and the bodies of the exports that [`export!`] defines. Not
//! part of the API.
//!
//! Every export runs on one host thread, one call at a time, and the module
//! is single-threaded: the buffers below are plain statics.

use crate::{rt, Entry, Error, Plugin, Record, State, MAX_KEY_SIZE, MAX_SCAN_BYTES};

#[link(wasm_import_module = "raftkv")]
extern "C" {
    fn state_get(kptr: *const u8, klen: usize, vptr: *mut u8, vcap: usize, verptr: *mut u64) -> i64;
    fn state_set(kptr: *const u8, klen: usize, vptr: *const u8, vlen: usize) -> i32;
    fn state_delete(kptr: *const u8, klen: usize) -> i32;
    fn state_scan(
        sptr: *const u8,
        slen: usize,
        eptr: *const u8,
        elen: usize,
        limit: u32,
        bufptr: *mut u8,
        bufcap: usize,
    ) -> i64;
    fn result(code: u32, ptr: *const u8, len: usize);
    #[link_name = "log"]
    fn host_log(level: i32, ptr: *const u8, len: usize);
    fn entry_index() -> i64;
    fn entry_term() -> i64;
    fn entry_time() -> i64;
}

/// The input buffer handed out by raftkv_alloc for inputs larger than
/// FIXED: one buffer, grown to the largest input seen, rounded up to 64 KiB.
static mut INPUT: Vec<u8> = Vec::new();
/// The reusable input buffer offered by raftkv_input_buffer (ABI v1.2): the
/// host writes every input that fits here without calling raftkv_alloc. A
/// static, so it never moves and is never freed.
static mut FIXED: [u8; FIXED_SIZE] = [0; FIXED_SIZE];
const FIXED_SIZE: usize = 64 << 10;
/// The buffer state_get and state_scan answers are copied into.
static mut ANSWER: Vec<u8> = Vec::new();

/// Buffers larger than this are freed at the end of a call.
const KEEP: usize = 2 << 20;

fn answer_buf(n: usize) -> &'static mut Vec<u8> {
    // SAFETY: single-threaded module; the reference does not outlive the
    // state call that uses it.
    let b = unsafe { &mut *std::ptr::addr_of_mut!(ANSWER) };
    if b.len() < n {
        *b = Vec::new();
        *b = vec![0; n];
    }
    b
}

fn trim() {
    unsafe {
        if (*std::ptr::addr_of!(ANSWER)).len() > KEEP {
            ANSWER = Vec::new();
        }
        if (*std::ptr::addr_of!(INPUT)).len() > KEEP + (128 << 10) {
            INPUT = Vec::new();
        }
    }
}

fn install_panic_hook() {
    static mut DONE: bool = false;
    unsafe {
        if !DONE {
            DONE = true;
            // A panic aborts the module (a trap, which the host reports as
            // code 6); the hook puts its message and place in the node's log.
            std::panic::set_hook(Box::new(|info| log(3, &format!("panic: {}", info))));
        }
    }
}

/// raftkv_alloc: a pointer to `size` writable bytes. Allocation failure
/// aborts (a trap), as the ABI allows. No host calls.
pub fn alloc(size: usize) -> *mut u8 {
    if size <= FIXED_SIZE {
        // A host before ABI v1.2, which does not ask for the input buffer:
        // the same buffer.
        return unsafe { std::ptr::addr_of_mut!(FIXED) as *mut u8 };
    }
    // SAFETY: single-threaded.
    let b = unsafe { &mut *std::ptr::addr_of_mut!(INPUT) };
    if size > b.len() {
        *b = Vec::new();
        *b = vec![0; (size + 0xffff) & !0xffff];
    }
    b.as_mut_ptr()
}

/// raftkv_input_buffer (ABI v1.2): FIXED, as capacity << 32 | pointer.
pub fn input_buffer() -> u64 {
    let p = unsafe { std::ptr::addr_of!(FIXED) as usize };
    (FIXED_SIZE as u64) << 32 | p as u64
}

/// The `len` bytes at `ptr`, which must lie in FIXED or in raftkv_alloc's
/// buffer (the host writes the input there); anything else traps.
fn input(ptr: *const u8, len: usize) -> &'static [u8] {
    if len == 0 {
        return &[];
    }
    let fixed: &'static [u8] = unsafe { &*std::ptr::addr_of!(FIXED) };
    if let Some(b) = within(fixed, ptr, len) {
        return b;
    }
    let b: &'static [u8] = unsafe { &*std::ptr::addr_of!(INPUT) };
    match within(b, ptr, len) {
        Some(b) => b,
        None => panic!(
            "input [{:#x}, +{}) is outside the input buffer [{:#x}, +{}) and the raftkv_alloc buffer [{:#x}, +{})",
            ptr as usize, len, fixed.as_ptr() as usize, fixed.len(), b.as_ptr() as usize, b.len()
        ),
    }
}

/// `b`'s `len` bytes at `ptr`, if they lie in `b`.
fn within(b: &'static [u8], ptr: *const u8, len: usize) -> Option<&'static [u8]> {
    let base = b.as_ptr() as usize;
    let p = ptr as usize;
    if b.is_empty() || p < base || p - base > b.len() || len > b.len() - (p - base) {
        return None;
    }
    Some(&b[p - base..p - base + len])
}

fn report(code: u32, payload: &[u8]) {
    unsafe { result(code, payload.as_ptr(), payload.len()) }
}

/// raftkv_apply.
pub fn apply(p: &dyn Plugin, ptr: *const u8, len: usize) {
    install_panic_hook();
    if let Err(e) = rt::apply_batch(p, &mut HostState, input(ptr, len)) {
        panic!("malformed batch from the host: {}", e);
    }
    trim();
}

/// raftkv_query.
pub fn query(p: &dyn Plugin, ptr: *const u8, len: usize) {
    install_panic_hook();
    let (c, out) = rt::query(p, &HostState, input(ptr, len));
    report(c, &out);
    trim();
}

/// raftkv_validate: state functions trap (the host's rule), so the
/// plugin's validate sees only the command.
pub fn validate(p: &dyn Plugin, ptr: *const u8, len: usize) {
    install_panic_hook();
    let (c, out) = rt::validate(p, input(ptr, len));
    report(c, &out);
    trim();
}

/// raftkv_migrate.
pub fn migrate(p: &dyn Plugin, ptr: *const u8, len: usize) {
    install_panic_hook();
    let e = current_entry();
    let (c, out) = rt::migrate(p, &mut HostState, &e, input(ptr, len));
    report(c, &out);
    trim();
}

/// raftkv_info.
pub fn info(p: &dyn Plugin, exported_migrate: bool) {
    install_panic_hook();
    let (c, out) = rt::info(p, exported_migrate);
    report(c, &out);
}

/// The entry being applied, from the host (the deploy entry during a
/// migration; zeros during a query).
pub fn current_entry() -> Entry<'static> {
    unsafe { Entry { index: entry_index() as u64, term: entry_term() as u64, time: entry_time(), data: &[] } }
}

pub fn log(level: i32, msg: &str) {
    unsafe { host_log(level, msg.as_ptr(), msg.len()) }
}

/// The State of the host functions.
pub struct HostState;

impl rt::Host for HostState {
    fn begin(&mut self, _e: &Entry) {}

    fn result(&mut self, code: u32, payload: &[u8]) {
        report(code, payload)
    }
}

fn key_check(key: &[u8]) -> Result<(), Error> {
    if key.len() > MAX_KEY_SIZE {
        return Err(Error::too_large(format!("key of {} bytes is over the {}-byte limit", key.len(), MAX_KEY_SIZE)));
    }
    Ok(())
}

impl State for HostState {
    fn get_versioned(&self, key: &[u8]) -> Result<Option<(Vec<u8>, u64)>, Error> {
        key_check(key)?;
        let mut ver: u64 = 0;
        let mut cap = 4 << 10;
        loop {
            let buf = answer_buf(cap);
            let n = unsafe { state_get(key.as_ptr(), key.len(), buf.as_mut_ptr(), buf.len(), &mut ver) };
            match n {
                -1 => return Ok(None),
                n if n < 0 => return Err(Error::from_rc(n)),
                n if n as usize <= buf.len() => return Ok(Some((buf[..n as usize].to_vec(), ver))),
                n => cap = n as usize,
            }
        }
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        match unsafe { state_set(key.as_ptr(), key.len(), value.as_ptr(), value.len()) } {
            0 => Ok(()),
            rc => Err(Error::from_rc(rc as i64)),
        }
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool, Error> {
        match unsafe { state_delete(key.as_ptr(), key.len()) } {
            0 => Ok(false),
            1 => Ok(true),
            rc => Err(Error::from_rc(rc as i64)),
        }
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: u32) -> Result<Vec<Record>, Error> {
        let mut cap = 64 << 10;
        loop {
            let buf = answer_buf(cap);
            let n = unsafe {
                state_scan(start.as_ptr(), start.len(), end.as_ptr(), end.len(), limit, buf.as_mut_ptr(), buf.len())
            };
            if n < 0 {
                return Err(Error::from_rc(n));
            }
            if n as u64 > MAX_SCAN_BYTES as u64 {
                return Err(crate::scan_too_large(n as u64));
            }
            if n as usize > buf.len() {
                cap = n as usize;
                continue;
            }
            return rt::decode_records(&buf[..n as usize])
                .map_err(|e| Error::internal(format!("malformed state_scan answer: {}", e)));
        }
    }
}
