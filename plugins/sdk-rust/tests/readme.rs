//! README.md's example plugin and test, as written there (readme_in_sync
//! checks it).

use raftkv_sdk::{map, Entry, Error, Info, Request, Router, State, Value};

fn put(st: &mut dyn State, e: &Entry, req: &Request) -> Result<Value, Error> {
    req.only(&["key", "value"])?; // unknown fields are a bad request
    st.set(req.bytes("key")?, req.bytes("value")?)?;
    Ok(map! {"version" => e.index})
}

fn get(st: &dyn State, req: &Request) -> Result<Value, Error> {
    match st.get(req.bytes("key")?)? {
        Some(v) => Ok(map! {"value" => v}),
        None => Err(Error::not_found("no such key")),
    }
}

pub static PLUGIN: Router = Router {
    info: Info { name: "notes", version: env!("CARGO_PKG_VERSION"), description: "notes" },
    commands: &[("put", put)],
    queries: &[("get", get)],
    migrate: None,
};

raftkv_sdk::export!(PLUGIN);

#[cfg(test)]
mod tests {
    use super::*;
    use raftkv_sdk::MemState;

    #[test]
    fn put_then_get() {
        let mut s = MemState::new();
        let out = s.apply_value(&PLUGIN, &map! {"op" => "put", "key" => "a", "value" => "1"});
        assert_eq!(out.value(), map! {"version" => 1}); // entries are numbered 1, 2, ...
        let out = s.query_value(&PLUGIN, &map! {"op" => "get", "key" => "a"});
        assert_eq!(out.value(), map! {"value" => b"1".to_vec()}); // a bin, whether "1" came as str or bin
    }
}

#[test]
fn exported_plugin_is_the_router() {
    assert_eq!(exported_plugin().info().name, "notes");
}

/// Every line of README.md's Rust blocks is a line of this file (spaces
/// aside), so the README shows code that compiles and passes.
#[test]
fn readme_in_sync() {
    let norm = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let this: Vec<String> = include_str!("readme.rs").lines().map(norm).collect();
    let readme = include_str!("../README.md");
    let mut checked = 0;
    for block in readme.split("```").skip(1).step_by(2) {
        if !block.starts_with("rust") {
            continue;
        }
        for line in block.lines().skip(1).map(norm).filter(|l| !l.is_empty()) {
            assert!(this.contains(&line), "README.md line not in tests/readme.rs: {}", line);
            checked += 1;
        }
    }
    assert!(checked > 30, "only {} README lines checked", checked);
}
