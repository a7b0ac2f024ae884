//! Wakes the loop when anyone changes nftables.
//!
//! rtnetlink notifications cover routes, rules and links, but not nftables:
//! a `nft flush table ip routerd_nat` from outside would only be repaired at
//! the next periodic resync. Subscribing to the nf_tables multicast group
//! makes drift repair immediate. The messages are not parsed: any change is
//! a reason to observe again (the step is a no-op when nothing differs, so
//! routerd's own commits cost one idle step).

use std::thread;

use netlink_sys::protocols::NETLINK_NETFILTER;
use netlink_sys::{Socket, SocketAddr};
use tokio::sync::mpsc;

/// `NFNLGRP_NFTABLES` from linux/netfilter/nfnetlink.h.
const NFNLGRP_NFTABLES: u32 = 7;

/// Starts a thread that sends `()` on `tx` for every nftables change in the
/// current network namespace. Returns an error when the subscription fails
/// (no netfilter netlink, or not permitted).
pub fn spawn(tx: mpsc::Sender<()>) -> std::io::Result<()> {
    let mut sock = Socket::new(NETLINK_NETFILTER)?;
    sock.bind(&SocketAddr::new(0, 0))?;
    sock.add_membership(NFNLGRP_NFTABLES)?;
    thread::Builder::new()
        .name("routerd-nft-watch".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match sock.recv(&mut &mut buf[..], 0) {
                    Ok(_) => {
                        // Coalesce bursts; a full channel already means "look again".
                        if tx.try_send(()).is_err() && tx.is_closed() {
                            return;
                        }
                    }
                    // ENOBUFS: notifications were lost, which is also a change.
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        let _ = tx.try_send(());
                    }
                    Err(_) => return,
                }
            }
        })?;
    Ok(())
}
