//! The node's configuration file from arbitrary bytes: the file's text,
//! then (after a NUL byte) `STAFFPASS_SECTION__KEY=value` environment
//! variables and `section.key=value` command-line overrides, one per NUL
//! separated field. `Config::from_toml` (what `Config::load` runs on the
//! file's text) must return a config or a typed error; a config it
//! accepts must survive its own commented example (`example()` parses
//! back to the same config).
#![no_main]

use libfuzzer_sys::fuzz_target;
use staffpass_node::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(all) = std::str::from_utf8(data) else { return };
    let mut fields = all.split('\0');
    let text = fields.next().unwrap_or_default();
    let mut env = Vec::new();
    let mut overrides = Vec::new();
    for f in fields {
        if f.starts_with("STAFFPASS_") {
            if let Some((k, v)) = f.split_once('=') {
                env.push((k.to_owned(), v.to_owned()));
            }
        } else {
            overrides.push(f.to_owned());
        }
    }
    let Ok(cfg) = Config::from_toml(text, " in fuzz.toml", env, &overrides) else { return };
    let example = cfg.example();
    let back = Config::from_toml(&example, " in the example", Vec::new(), &[])
        .unwrap_or_else(|e| panic!("the example of an accepted config does not parse: {e}\n{example}"));
    assert_eq!(back, cfg, "the example of an accepted config reads back differently");
});
