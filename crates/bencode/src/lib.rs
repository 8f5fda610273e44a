//! Bencode (BEP 3): values, a strict decoder for untrusted bytes and a canonical encoder.
