//! The Rust SDK for raftkv plugins (ABI v1, `abi/ABI.md`).
//!
//! A raftkv plugin is a WebAssembly module that turns committed Raft log
//! entries into state changes; raftkv replicates the commands and owns the
//! state. This crate provides, with no dependencies:
//!
//! - the ABI glue: [`export!`] defines the module's exports (`raftkv_abi_v1`,
//!   `raftkv_alloc`, `raftkv_input_buffer`, `raftkv_apply`, `raftkv_query`, `raftkv_validate`,
//!   `raftkv_info`, and optionally `raftkv_migrate`) around a [`Plugin`];
//! - state access through the host functions: [`State`] (get, set, delete,
//!   scan, and paging [`range`](trait.State.html#method.range) iterators);
//! - results: a handler returns `Ok` (code 0) or an [`Error`] with a
//!   [`code`];
//! - entry metadata: [`Entry`] (index, term, leader time, a deterministic
//!   [`seed`](Entry::seed));
//! - a strict MsgPack codec: [`mp`] and [`Value`];
//! - an op router: [`Router`] and [`Request`], for commands and queries that
//!   are maps with an `"op"` field, as the HTTP API and the CLI send them;
//! - [`MemState`] (native builds only) to test a plugin with `cargo test`,
//!   with the host's semantics (per-entry atomicity, limits, versions).
//!
//! Build a plugin as a `cdylib` for `wasm32-unknown-unknown` (no WASI
//! imports: the module imports only the host functions). See README.md.
//!
//! Rules the host relies on: be deterministic — use [`Entry::time`] as the
//! clock and [`Entry::seed`] for randomness, keep nothing in memory from one
//! call to the next; and let the host do atomicity — when a command returns
//! an error (or panics, which traps the module) every write of its entry is
//! undone.

pub mod mp;
mod router;
#[doc(hidden)]
pub mod rt;
mod state;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod host;
#[cfg(not(target_arch = "wasm32"))]
mod mem;

#[cfg(not(target_arch = "wasm32"))]
pub use mem::{MemState, Outcome};
pub use mp::Value;
pub use router::{CommandFn, MigrateFn, QueryFn, Request, Router};
pub use state::{prefix_end, Range, Record, State, PAGE};

/// The error of a scan whose answer would exceed [`MAX_SCAN_BYTES`].
pub fn scan_too_large(n: u64) -> Error {
    Error::too_large(format!("scan answer too large: {} bytes (max {}); ask for fewer records", n, MAX_SCAN_BYTES))
}

use std::fmt;

// README.md's Rust blocks compile (cargo test runs them as doctests).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Sizes the host enforces (ABI.md section 5).
pub const MAX_KEY_SIZE: usize = 4 << 10;
pub const MAX_VALUE_SIZE: usize = 1 << 20;
pub const MAX_RESULT_SIZE: usize = 4 << 20;
pub const MAX_COMMAND_SIZE: usize = 2 << 20;
/// The most records one `state_scan` call may return.
pub const MAX_SCAN_LIMIT: u32 = 10000;
/// The largest scan answer (its MsgPack encoding) [`State::scan`] accepts,
/// as the Go SDK: room for one record of the largest key and value. A scan
/// whose answer would be larger is a `too_large` error (ask for fewer
/// records); [`range`](trait.State.html#method.range) does so by itself.
pub const MAX_SCAN_BYTES: usize = MAX_VALUE_SIZE + (64 << 10);

/// Result codes (ABI.md section 4). Codes 1-63 are the ABI's; a plugin may
/// use 64-255 for its own. 6, 7 and 8 are assigned by the host only.
pub mod code {
    pub const OK: u32 = 0;
    /// Malformed input, unknown operation.
    pub const BAD_REQUEST: u32 = 1;
    /// No such key or object.
    pub const NOT_FOUND: u32 = 2;
    /// A precondition such as compare-and-set failed.
    pub const CONFLICT: u32 = 3;
    /// An input or output exceeds a limit.
    pub const TOO_LARGE: u32 = 4;
    /// An error the plugin detected itself.
    pub const INTERNAL: u32 = 5;
    /// Host-assigned: the plugin trapped (a panic, out of memory...).
    pub const TRAP: u32 = 6;
    /// Host-assigned: the plugin returned without reporting a result.
    pub const NO_RESULT: u32 = 7;
    /// Host-assigned: a query tried to write.
    pub const READ_ONLY: u32 = 8;
}

/// An error result: a code (1-255, see [`code`]) and a UTF-8 message. Over
/// HTTP it becomes `{"error":{"code":...,"message":...,"plugin_code":N}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: u32,
    pub message: String,
}

impl Error {
    pub fn new(code: u32, message: impl Into<String>) -> Error {
        Error { code, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::new(code::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(code::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Error {
        Error::new(code::CONFLICT, message)
    }
    pub fn too_large(message: impl Into<String>) -> Error {
        Error::new(code::TOO_LARGE, message)
    }
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(code::INTERNAL, message)
    }

    /// The error for a negative return code of a host state function.
    pub fn from_rc(rc: i64) -> Error {
        match rc {
            -2 => Error::too_large("key or value too large (a key is at most 4 KiB, a value at most 1 MiB)"),
            -3 => Error::internal("read-only: a write during a query"),
            -4 => Error::internal("no entry: a write after the batch's last result"),
            -5 => Error::bad_request("bad argument: an empty key or a scan limit out of range"),
            _ => Error::internal(format!("host returned unknown code {}", rc)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for Error {}

/// A MsgPack decoding error is a bad request.
impl From<mp::DecodeError> for Error {
    fn from(e: mp::DecodeError) -> Error {
        Error::bad_request(e.to_string())
    }
}

/// A committed log entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The Raft log index: the version of every key this entry writes.
    pub index: u64,
    /// The Raft term.
    pub term: u64,
    /// The leader's clock when it accepted the command, Unix nanoseconds:
    /// the same on every node, the only "now" a plugin may use.
    pub time: i64,
    /// The command exactly as the client sent it (empty for a migration).
    pub data: &'a [u8],
}

impl<'a> Entry<'a> {
    /// A pseudo-random seed derived from the term and index, the same on
    /// every node and different for every entry: mix(mix(term) ^ index),
    /// mix being the SplitMix64 step — the same value as the Go SDK's
    /// `Entry.Seed`.
    pub fn seed(&self) -> u64 {
        splitmix64(splitmix64(self.term) ^ self.index)
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

/// What `raftkv_info` reports. Every field may be empty; the plugin is
/// addressed by the name it is deployed under.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Info {
    pub name: &'static str,
    pub version: &'static str,
    pub description: &'static str,
}

/// The input of a migration: the module this one replaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Migration {
    pub from_hash: String,
    pub from_version: String,
    /// The log index of the deploy.
    pub index: u64,
}

/// A state machine. [`Router`] implements it from handlers; implement it
/// yourself for inputs that are not maps with an op.
pub trait Plugin {
    /// Runs one committed entry, on every node, in log order. `Ok(bytes)` is
    /// the result (code 0); an error undoes the entry's writes.
    fn apply(&self, st: &mut dyn State, e: &Entry) -> Result<Vec<u8>, Error>;

    /// Answers a read-only request against the local state.
    fn query(&self, st: &dyn State, q: &[u8]) -> Result<Vec<u8>, Error>;

    /// Runs once when this module replaces an earlier version of the same
    /// plugin, at the deploy's index (`e` is the deploy entry, without
    /// data). An error rejects the upgrade: its writes are undone and the
    /// old module stays. Called only when the module exports
    /// `raftkv_migrate` (`export!(P, migrate)`).
    fn migrate(&self, _st: &mut dyn State, _e: &Entry, _m: &Migration) -> Result<(), Error> {
        Ok(())
    }

    /// Whether the plugin has a migration. The module's exports must agree:
    /// `raftkv_info` refuses the module (the host reports why) when this is
    /// true and the module was exported without `migrate`, or the reverse.
    fn has_migrate(&self) -> bool {
        false
    }

    /// The name, version and description `raftkv_info` reports.
    fn info(&self) -> Info {
        Info::default()
    }

    /// Checks a command before the leader proposes it (`raftkv_validate`,
    /// ABI.md): `Err` refuses it with the error's code (`bad_request` is
    /// HTTP 400) and it never reaches the log. It must be pure: it sees
    /// only the command's bytes, never the state, and runs on one node
    /// only; a command it accepts may still fail in `apply`. Called only
    /// when [`has_validate`](Plugin::has_validate) is true.
    fn validate(&self, _cmd: &[u8]) -> Result<(), Error> {
        Ok(())
    }

    /// Whether the plugin has a `validate`; `raftkv_info` reports it, and
    /// the host calls `raftkv_validate` only when it is true.
    fn has_validate(&self) -> bool {
        false
    }
}

/// Log levels of [`log`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

/// Writes a line to the node's log (tagged with the plugin). Logging has no
/// effect on state or results. Natively it goes to stderr.
pub fn log(level: Level, msg: &str) {
    #[cfg(target_arch = "wasm32")]
    host::log(level as i32, msg);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("raftkv plugin {:?}: {}", level, msg);
}

/// Defines the module's exports around a plugin: `export!(PLUGIN)`, or
/// `export!(PLUGIN, migrate)` to export `raftkv_migrate` too. `PLUGIN` is a
/// path to a `static` (or a const or unit struct) whose type implements
/// [`Plugin`]. Put it once in the plugin crate's `lib.rs`; it expands to
/// nothing outside of wasm32, so the same crate builds natively for tests.
#[macro_export]
macro_rules! export {
    ($plugin:path) => {
        $crate::export!(@exports $plugin, false);
    };
    ($plugin:path, migrate) => {
        $crate::export!(@exports $plugin, true);
        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn raftkv_migrate(ptr: *const u8, len: usize) {
            $crate::host::migrate(&$plugin, ptr, len)
        }
    };
    (@exports $plugin:path, $migrate:expr) => {
        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn raftkv_abi_v1() {}

        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn raftkv_alloc(size: usize) -> *mut u8 {
            $crate::host::alloc(size)
        }

        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn raftkv_input_buffer() -> u64 {
            $crate::host::input_buffer()
        }

        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn raftkv_apply(ptr: *const u8, len: usize) {
            $crate::host::apply(&$plugin, ptr, len)
        }

        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn raftkv_query(ptr: *const u8, len: usize) {
            $crate::host::query(&$plugin, ptr, len)
        }

        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn raftkv_validate(ptr: *const u8, len: usize) {
            $crate::host::validate(&$plugin, ptr, len)
        }

        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn raftkv_info() {
            $crate::host::info(&$plugin, $migrate)
        }

        /// The plugin this crate exports (used by native tests).
        #[allow(dead_code)]
        pub fn exported_plugin() -> &'static dyn $crate::Plugin {
            &$plugin
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_matches_go_sdk() {
        let e = Entry { index: 0, term: 0, ..Default::default() };
        assert_eq!(splitmix64(0), 0xe220a8397b1dcdaf);
        assert_eq!(e.seed(), splitmix64(splitmix64(0)));
        // Values printed by the Go SDK.
        assert_eq!(Entry { index: 7, term: 2, ..Default::default() }.seed(), 0x1b9730bf3fc5de36);
        assert_eq!(Entry { index: 1 << 40, term: 9, ..Default::default() }.seed(), 0xbfaac52422991738);
    }

    #[test]
    fn rc_errors() {
        assert_eq!(Error::from_rc(-2).code, code::TOO_LARGE);
        assert_eq!(Error::from_rc(-5).code, code::BAD_REQUEST);
        assert_eq!(Error::from_rc(-9).message, "host returned unknown code -9");
    }
}
