//! The wire decoder: one body through `Msg::decode` (a decoded message must re-encode to a
//! frame that decodes to the same encoding), then the same bytes as a stream of frames
//! through `read_msg` with the post-handshake limit.
#![no_main]

use std::time::Duration;

use dicesim_hil::proto::{read_msg, Msg, MAX_FRAME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Msg::decode(data) {
        let frame = m.encode();
        let again = Msg::decode(&frame[4..]).expect("an encoded message decodes");
        assert_eq!(again.encode(), frame, "re-encoding changed the message");
    }
    dicesim_fuzz::runtime().block_on(async {
        let mut peer = dicesim_fuzz::Replay::new(data);
        while read_msg(&mut peer, MAX_FRAME, Duration::from_millis(50)).await.is_ok() {}
    });
});
