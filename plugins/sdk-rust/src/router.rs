//! The op router: commands and queries that are MsgPack maps with an `"op"`
//! field, routed to one handler per op.
//!
//! This is the convention of the HTTP API and the CLI (docs/api.md): a
//! command or query is one MsgPack value — a JSON body is converted to the
//! equivalent MsgPack, an object to a map with str keys — and a result is
//! MsgPack, rendered back as JSON.

use crate::mp::{self, Value};
use crate::{Entry, Error, Info, Migration, Plugin, State};

/// A command handler: it may read and write the state. Its answer is
/// encoded as MsgPack.
pub type CommandFn = fn(&mut dyn State, &Entry, &Request) -> Result<Value, Error>;
/// A query handler: it may only read.
pub type QueryFn = fn(&dyn State, &Request) -> Result<Value, Error>;
/// A migration (see [`Plugin::migrate`]).
pub type MigrateFn = fn(&mut dyn State, &Entry, &Migration) -> Result<(), Error>;

/// A [`Plugin`] made of handlers, one per op. It can be a `static`:
///
/// ```
/// use raftkv_sdk::{map, Entry, Error, Info, Request, Router, State, Value};
///
/// fn set(st: &mut dyn State, _e: &Entry, req: &Request) -> Result<Value, Error> {
///     st.set(req.bytes("key")?, req.bytes("value")?)?;
///     Ok(Value::Nil)
/// }
///
/// fn get(st: &dyn State, req: &Request) -> Result<Value, Error> {
///     match st.get(req.bytes("key")?)? {
///         Some(v) => Ok(map! {"value" => v}),
///         None => Err(Error::not_found("no such key")),
///     }
/// }
///
/// static PLUGIN: Router = Router {
///     info: Info { name: "tiny", version: "0.1.0", description: "a tiny store" },
///     commands: &[("set", set)],
///     queries: &[("get", get)],
///     migrate: None,
/// };
/// // In the plugin crate: raftkv_sdk::export!(PLUGIN);
/// ```
///
/// The Router also validates commands before they reach the log
/// (`raftkv_validate`): a command that is malformed, has no str `op`, or
/// names no command op is refused there, with the same error.
///
/// Errors it produces for the author, all `bad_request` (code 1):
/// `malformed command: <why>` (not MsgPack, trailing bytes, not a map, a
/// field name that is not a str), `missing op`, `op must be a string`,
/// `unknown command op "x"` (and the same with `query`), and the messages of
/// [`Request`]'s typed getters.
pub struct Router {
    pub info: Info,
    pub commands: &'static [(&'static str, CommandFn)],
    pub queries: &'static [(&'static str, QueryFn)],
    pub migrate: Option<MigrateFn>,
}

impl Router {
    /// Decodes `data` as a request and finds the handler for its op.
    fn route<'a, F>(&self, kind: &str, data: &[u8], table: &'a [(&'static str, F)]) -> Result<(Value, &'a F), Error> {
        let v = mp::decode(data).map_err(|e| Error::bad_request(format!("malformed {}: {}", kind, e)))?;
        let op = {
            let req = Request::new(&v).map_err(|e| Error::bad_request(format!("malformed {}: {}", kind, e.message)))?;
            req.op()?.to_string()
        };
        match table.iter().find(|(name, _)| *name == op) {
            Some((_, f)) => Ok((v, f)),
            None => Err(Error::bad_request(format!("unknown {} op {:?}", kind, op))),
        }
    }
}

impl Plugin for Router {
    fn apply(&self, st: &mut dyn State, e: &Entry) -> Result<Vec<u8>, Error> {
        let (v, f) = self.route("command", e.data, self.commands)?;
        let req = Request::new(&v)?;
        Ok(f(st, e, &req)?.to_bytes())
    }

    fn query(&self, st: &dyn State, q: &[u8]) -> Result<Vec<u8>, Error> {
        let (v, f) = self.route("query", q, self.queries)?;
        let req = Request::new(&v)?;
        Ok(f(st, &req)?.to_bytes())
    }

    fn migrate(&self, st: &mut dyn State, e: &Entry, m: &Migration) -> Result<(), Error> {
        match self.migrate {
            Some(f) => f(st, e, m),
            None => Ok(()),
        }
    }

    fn has_migrate(&self) -> bool {
        self.migrate.is_some()
    }

    /// Refuses, before the log, a command that is not a map with a str
    /// `op` naming one of `commands`, with the same errors `apply` gives.
    /// The fields are checked by the handler's typed getters in `apply`.
    fn validate(&self, cmd: &[u8]) -> Result<(), Error> {
        self.route("command", cmd, self.commands).map(|_| ())
    }

    fn has_validate(&self) -> bool {
        true
    }

    fn info(&self) -> Info {
        self.info
    }
}

/// A command or query that is a MsgPack map with str field names, with
/// typed getters whose errors are `bad_request` results naming the field.
///
/// A field that is absent or nil (JSON `null`) is missing: the `opt_`
/// getters return None for it, the others the error `missing <field>`. A
/// field given twice counts once, with its last value (as a JSON decoder
/// would). A value of the wrong type is `<field> must be <type>`.
pub struct Request<'a> {
    value: &'a Value,
    fields: &'a [(Value, Value)],
}

impl<'a> Request<'a> {
    /// Wraps a map whose keys are all str; any other value is an error
    /// (`expected a map`, `field names must be strings`).
    pub fn new(v: &'a Value) -> Result<Request<'a>, Error> {
        let fields = match v.as_map() {
            Some(m) => m,
            None => return Err(Error::bad_request(format!("expected a map, got {}", v.type_name()))),
        };
        if fields.iter().any(|(k, _)| k.as_str().is_none()) {
            return Err(Error::bad_request("field names must be strings"));
        }
        Ok(Request { value: v, fields })
    }

    /// The whole request.
    pub fn value(&self) -> &'a Value {
        self.value
    }

    /// The `op` field.
    pub fn op(&self) -> Result<&'a str, Error> {
        self.str("op")
    }

    /// The field's value, None if it is absent or nil.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(_, v)| v)
            .filter(|v| !v.is_nil())
    }

    /// The names of the fields, in order, without repeats: to refuse
    /// unknown ones (see [`only`](#method.only)).
    pub fn names(&self) -> Vec<&'a str> {
        let mut out: Vec<&str> = Vec::new();
        for (k, _) in self.fields {
            let k = k.as_str().unwrap_or_default();
            if !out.contains(&k) {
                out.push(k);
            }
        }
        out
    }

    /// An error (`unknown field "x"`) if the request has a field that is
    /// not `op` or one of `allowed`.
    pub fn only(&self, allowed: &[&str]) -> Result<(), Error> {
        match self.names().into_iter().find(|n| *n != "op" && !allowed.contains(n)) {
            Some(n) => Err(Error::bad_request(format!("unknown field {:?}", n))),
            None => Ok(()),
        }
    }

    fn opt<T>(&self, name: &str, what: &str, f: impl Fn(&'a Value) -> Option<T>) -> Result<Option<T>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match f(v) {
                Some(t) => Ok(Some(t)),
                None => Err(Error::bad_request(format!("{} must be {}", name, what))),
            },
        }
    }

    fn req<T>(&self, name: &str, v: Result<Option<T>, Error>) -> Result<T, Error> {
        v?.ok_or_else(|| Error::bad_request(format!("missing {}", name)))
    }

    pub fn opt_value(&self, name: &str) -> Option<&'a Value> {
        self.get(name)
    }

    pub fn value_of(&self, name: &str) -> Result<&'a Value, Error> {
        self.get(name).ok_or_else(|| Error::bad_request(format!("missing {}", name)))
    }

    /// A str field.
    pub fn opt_str(&self, name: &str) -> Result<Option<&'a str>, Error> {
        self.opt(name, "a string", |v| v.as_str())
    }

    pub fn str(&self, name: &str) -> Result<&'a str, Error> {
        self.req(name, self.opt_str(name))
    }

    /// A str or bin field, as bytes.
    pub fn opt_bytes(&self, name: &str) -> Result<Option<&'a [u8]>, Error> {
        self.opt(name, "a string", |v| v.as_bytes())
    }

    pub fn bytes(&self, name: &str) -> Result<&'a [u8], Error> {
        self.req(name, self.opt_bytes(name))
    }

    /// An integer field that fits an `i64`.
    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, Error> {
        self.opt(name, "a signed 64-bit integer", |v| v.as_i64())
    }

    pub fn i64(&self, name: &str) -> Result<i64, Error> {
        self.req(name, self.opt_i64(name))
    }

    /// An integer field that fits a `u64`.
    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, Error> {
        self.opt(name, "an unsigned 64-bit integer", |v| v.as_u64())
    }

    pub fn u64(&self, name: &str) -> Result<u64, Error> {
        self.req(name, self.opt_u64(name))
    }

    /// A number field (a float, or an integer converted to one).
    pub fn opt_f64(&self, name: &str) -> Result<Option<f64>, Error> {
        self.opt(name, "a number", |v| v.as_f64())
    }

    pub fn f64(&self, name: &str) -> Result<f64, Error> {
        self.req(name, self.opt_f64(name))
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, Error> {
        self.opt(name, "a boolean", |v| v.as_bool())
    }

    pub fn bool(&self, name: &str) -> Result<bool, Error> {
        self.req(name, self.opt_bool(name))
    }

    /// An array field.
    pub fn opt_array(&self, name: &str) -> Result<Option<&'a [Value]>, Error> {
        self.opt(name, "an array", |v| v.as_array())
    }

    pub fn array(&self, name: &str) -> Result<&'a [Value], Error> {
        self.req(name, self.opt_array(name))
    }

    /// A map field, as a Request of its own.
    pub fn opt_map(&self, name: &str) -> Result<Option<Request<'a>>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => Request::new(v).map(Some).map_err(|e| Error::bad_request(format!("{}: {}", name, e.message))),
        }
    }

    pub fn map(&self, name: &str) -> Result<Request<'a>, Error> {
        self.req(name, self.opt_map(name))
    }
}
