//! Wire header blocks (`name: value\r\n` lines) parsed into an envelope; a parsed one must
//! survive a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = broker_core::Envelope::from_wire(data, bytes::Bytes::new()) {
        let again =
            broker_core::Envelope::from_wire(&envelope.to_wire_headers(), bytes::Bytes::new());
        assert_eq!(again.ok().as_ref(), Some(&envelope));
    }
});
