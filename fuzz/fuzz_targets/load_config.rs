//! The configuration loader must never panic: arbitrary bytes (as UTF-8,
//! lossily) go through `Loaded::add_file` and validation in both contexts;
//! every diagnostic is rendered and every decoded resource re-serialized.
//! crates/model/tests/no_panic.rs runs the same body over a fixed corpus.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routerd_model::Loaded;
use routerd_model::validate::Context;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut loaded = Loaded::new();
    loaded.add_file("fuzz.yaml", &text);
    for ctx in [Context::Startup, Context::Effective] {
        for d in loaded.validate(ctx) {
            let _ = d.to_string();
        }
    }
    for r in &loaded.resources {
        let _ = serde_json::to_string(r);
    }
});
