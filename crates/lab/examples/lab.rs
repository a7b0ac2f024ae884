//! Builds the lab, prints its topology and keeps it up for a while so it can be explored
//! by hand with `ip netns exec`. Ctrl-C removes it.
//!
//! `cargo run -p routerd-lab --example lab -- [SECONDS]` (as root; default 300 s).

use std::time::Duration;

use routerd_lab::{Lab, Node, Uplink};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hold: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 300,
    };
    let removed = routerd_lab::cleanup_stale("rdlab")?;
    if !removed.is_empty() {
        eprintln!("removed leftovers of a crashed run: {removed:?}");
    }
    let lab = Lab::build("rdlab")?;
    lab.install_ctrlc_cleanup()?;
    println!("{lab}");
    println!("The router has no default route; for example, as routerd would:");
    println!(
        "  ip netns exec {} ip route add default via {} dev {}",
        lab.ns(Node::Router),
        Uplink::Wan1.gateway(),
        Uplink::Wan1.router_if()
    );
    println!("Keeping the lab up for {hold} s; Ctrl-C removes it earlier.");
    std::thread::sleep(Duration::from_secs(hold));
    lab.teardown()?;
    Ok(())
}
