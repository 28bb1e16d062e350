//! SOAP envelope parsing through the hardened XML reader: any bytes, default limits; a
//! parsed envelope is written back and must parse again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soap_core::{Envelope, XmlLimits};

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::parse(data, &XmlLimits::default()) {
        let again = Envelope::parse(envelope.to_xml().as_bytes(), &XmlLimits::default());
        assert!(again.is_ok(), "{again:?}");
    }
});
