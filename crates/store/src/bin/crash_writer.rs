//! Test helper for the kill -9 test: writes atomic batches forever into the
//! store at argv[1], flushing every 50 batches and printing the last flushed
//! sequence number, until it is killed.

use std::io::Write;

use chrono::Utc;
use routerd_model::{Event, ObjectRef, Status};
use routerd_store::Store;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: routerd-store-crash-writer DIR")?;
    let store = Store::open_sled(std::path::Path::new(&dir))?;
    let start = match store.status("k0")? {
        Some(r) => r.status.get("seq").and_then(|v| v.as_u64()).unwrap_or(0) + 1,
        None => 1,
    };
    let mut out = std::io::stdout().lock();
    for seq in start.. {
        let mut w = store.writer();
        let mut st = Status::new();
        st.insert("seq".into(), seq.into());
        for k in 0..10 {
            w.save_status(&format!("k{k}"), &st, Some(seq), Utc::now())?;
        }
        w.append_event(
            Event::info("routerd.test.seq", ObjectRef::default(), Utc::now())
                .attr("seq", seq.to_string()),
        );
        w.commit()?;
        if seq % 50 == 0 {
            store.flush()?;
            writeln!(out, "{seq}")?;
            out.flush()?;
        }
    }
    Ok(())
}
