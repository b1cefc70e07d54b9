//! The handshake, both sides, against a peer whose bytes are the fuzz input: the first
//! byte picks the side (even: this end is the worker, odd: the coordinator).
#![no_main]

use dicesim_hil::conn::{client_handshake, server_handshake};
use dicesim_hil::proto::Role;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&side, rest)) = data.split_first() else {
        return;
    };
    dicesim_fuzz::runtime().block_on(async {
        let mut peer = dicesim_fuzz::Replay::new(rest);
        if side % 2 == 0 {
            let _ = server_handshake(&mut peer, b"fuzz-token").await;
        } else {
            let _ = client_handshake(&mut peer, b"", Role::Coordinator).await;
        }
    });
});
