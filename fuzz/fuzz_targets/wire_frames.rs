//! The request-response codec as a peer's stream reaches it: a 4-byte
//! length, then that many bytes, for each of the four message types (the
//! first input byte picks which). A frame over the type's bound is refused
//! before it is read; what decodes must write back as the same frame.
#![no_main]

use futures::executor::block_on;
use futures::io::Cursor;
use libfuzzer_sys::fuzz_target;
use libp2p::StreamProtocol;
use libp2p::request_response::Codec as _;
use staffpass_node::network::codec::{ExchangeCodec, RosterCodec};
use staffpass_protocol::wire::{exchange, roster};

fn consumed(input: &[u8], read: u64) -> &[u8] {
    &input[..usize::try_from(read).expect("a small position")]
}

fuzz_target!(|data: &[u8]| {
    let Some((which, frame)) = data.split_first() else { return };
    let mut io = Cursor::new(frame);
    let mut out = Cursor::new(Vec::new());
    match which % 4 {
        0 => {
            let p = StreamProtocol::new(exchange::PROTOCOL);
            let mut c = ExchangeCodec::default();
            let Ok(m) = block_on(c.read_request(&p, &mut io)) else { return };
            block_on(c.write_request(&p, &mut out, m)).expect("a decoded request writes back");
        }
        1 => {
            let p = StreamProtocol::new(exchange::PROTOCOL);
            let mut c = ExchangeCodec::default();
            let Ok(m) = block_on(c.read_response(&p, &mut io)) else { return };
            block_on(c.write_response(&p, &mut out, m)).expect("a decoded response writes back");
        }
        2 => {
            let p = StreamProtocol::new(roster::PROTOCOL);
            let mut c = RosterCodec::default();
            let Ok(m) = block_on(c.read_request(&p, &mut io)) else { return };
            block_on(c.write_request(&p, &mut out, m)).expect("a decoded request writes back");
        }
        _ => {
            let p = StreamProtocol::new(roster::PROTOCOL);
            let mut c = RosterCodec::default();
            let Ok(m) = block_on(c.read_response(&p, &mut io)) else { return };
            block_on(c.write_response(&p, &mut out, m)).expect("a decoded response writes back");
        }
    }
    assert_eq!(out.get_ref().as_slice(), consumed(frame, io.position()), "a frame does not write back the same");
});
